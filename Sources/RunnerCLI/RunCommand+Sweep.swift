import ArgumentParser
import Foundation
import Framework
import Logging

/// A pipeline with a `matrix`: every item run in this process (`SweepRunner`), one
/// progress line on a terminal, one summary line at the end, and a sweep report.
extension RunCommand {
    func runSweep(_ sweep: SweepPlan, console: Console, level: Logger.Level, interruption: SignalWatcher) async throws {
        func usage(_ message: String) throws -> Never {
            console.log(.error, message + "; nothing was run", ["event": .string("usage_error")])
            throw ExitCode(RunnerMain.ExitStatus.invalid)
        }
        if let seed, sweep.matrix.items.allSatisfy({ $0.seed != nil }) {
            try usage("--seed \(seed): every item of the matrix of \(FilePaths.printable(pipeline.file)) has its own seed (matrix key 'seed'), "
                + "so it would not be used; leave --seed out, or the seed out of the matrix")
        }
        if only != nil {
            try usage("--only runs one stage of one run, and \(FilePaths.printable(pipeline.file)) has a matrix of \(sweep.count) items")
        }
        var options = RunOptions(events: ConsoleEvents(console: console), logLevel: level)
        if let runID = runID ?? resume { options.runID = runID }
        if let seed { options.seed = seed }
        if let jobs { options.jobs = jobs }
        options.stageRetries = !noStageRetries
        options.streaming = !streaming.noStream
        options.streamingMinimumBytes = streaming.minimumBytes
        options.bandRows = streaming.bandRows.flatMap { Int($0) }
        let last = sweep.runID(ofItem: sweep.count - 1, in: options.runID)
        if let problem = RunID.problem(with: last) {
            try usage("the sweep's run id '\(FilePaths.printable(options.runID))' is too long for its items' ('\(FilePaths.printable(last))' \(problem))")
        }
        // What the stages need from outside, checked for every item before anything runs
        // (once for what items share).
        // A signal ends the checks of a sweep whose items each reach somewhere else.
        let checking = Task { await sweep.checkAccess(depth: .shallow) }
        interruption.onFirstSignal { checking.cancel() }
        let access = await checking.value
        if let signal = interruption.received {
            console.log(.error, "interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM") before the sweep started; nothing was run",
                        ["event": .string("interrupted")])
            throw ExitCode(128 + signal)
        }
        if !access.failures.isEmpty {
            for failure in access.failures {
                var fields: [String: JSONValue] = ["event": .string("access_check_failed"), "stage": .string(failure.failure.stageID),
                                                   "error_code": .string(failure.failure.code.rawValue)]
                if let item = failure.item { fields["item"] = .integer(item.index) }
                console.log(.error, "\(failure); nothing was run", fields)
            }
            throw ExitCode(RunnerMain.ExitStatus.stageFailed)
        }
        // A store holds each item as a run of its own (RUN_ID.INDEX); the sweep's own
        // record keeps its seed, so that --resume runs every item with it again.
        var store: (any ArtifactStore)?
        if let artifactStore {
            do {
                let opened = try ArtifactStoreRegistry.builtin.open(artifactStore)
                try opened.checkAccess()
                options.seed = try opened.startRun(options.runID, resume != nil ? .resume : .run, seed: seed, newSeed: options.seed)
                store = opened
            } catch {
                let failure = PipelineError(error)
                let usage = (error as? ArtifactStoreError)?.isUsageError == true
                console.log(.error, (usage ? failure.message : "cannot use the artifact store \(FilePaths.printable(artifactStore)): \(failure.message)")
                    + "; nothing was run", ["event": .string("store_refused"), "error_code": .string(failure.code.rawValue)])
                throw ExitCode(usage ? RunnerMain.ExitStatus.invalid : RunnerMain.ExitStatus.stageFailed)
            }
        }

        var runner = SweepRunner(sweep: sweep, options: options)
        runner.failFast = failFast
        let resuming = resume != nil, itemStore = store
        runner.prepare = { index, plan, itemOptions in
            itemOptions.events = ItemEvents(console: console, index: index, label: sweep.matrix.items[index].label)
            if let itemStore {
                let seed = itemOptions.seed
                try itemOptions.useStore(itemStore, for: plan, start: .run, seed: seed, checkAccess: false)
                // A resumed sweep reuses each item's unchanged outputs: only what failed or changed runs again.
                itemOptions.reuse = resuming
            }
        }
        let total = sweep.count
        runner.itemFinished = { item, progress in
            let rate = String(format: "%.1f", progress.itemsPerSecond)
            console.status("sweep: \(progress.done)/\(total) done, \(progress.failed) failed"
                + (progress.cancelled > 0 ? ", \(progress.cancelled) cancelled" : "") + ", \(rate) items/s")
            let label = sweep.matrix.items[item.index].label
            var fields: [String: JSONValue] = ["event": .string("item_finished"), "item": .integer(item.index),
                                               "run_id": .string(item.runID), "status": .string(item.status.rawValue),
                                               "values": .object(item.values.mapValues { .string($0) })]
            if let seconds = item.durationSeconds { fields["duration_seconds"] = .number(seconds) }
            if let code = item.errorCode { fields["error_code"] = .string(code.rawValue) }
            if let error = item.error { fields["error"] = .string(error) }
            if let stage = item.stage { fields["stage"] = .string(stage) }
            // Its stored URIs on stdout as it ends, in one write: a sweep cut short
            // (a signal, a kill) has told what it stored so far.
            let uris = item.status == .succeeded ? item.outputs.compactMap(\.uri) : []
            if !uris.isEmpty { console.output(uris) }
            // Text: the failures (their stage's error came before); JSON: every item.
            if item.status == .succeeded {
                if console.format == .json { console.log(.info, "item \(item.index) (\(label)) succeeded", fields) }
            } else {
                // A stage's failure was told as it happened: the item's line names the stage.
                let why = item.stage.map { " at stage '\(FilePaths.printable($0))'" } ?? (item.error.map { ": \($0)" } ?? "")
                console.log(.error, "item \(item.index) (\(label)) \(item.status == .notRun ? "did not run" : item.status.rawValue)" + why, fields)
            }
        }
        console.log(.info, "sweep \(options.runID): \(total) item\(total == 1 ? "" : "s") of \(sweep.first.name), "
            + "at most \(options.jobs) stage\(options.jobs == 1 ? "" : "s") at once", ["event": .string("sweep_started"),
                                                                                     "run_id": .string(options.runID), "items": .integer(total)])
        let task = Task { await runner.run() }
        interruption.onFirstSignal { task.cancel() }
        var report = await task.value
        report.invocation = RunReport.Invocation(arguments: RunnerContext.arguments, profiles: pipeline.profiles, overrides: pipeline.overrides)
        let rate = report.durationSeconds > 0 ? Double(report.succeeded + report.failed) / report.durationSeconds : 0
        console.log(report.status == .succeeded ? .info : .error,
                    "sweep \(report.runID): \(report.succeeded) of \(total) item\(total == 1 ? "" : "s") succeeded"
                        + (report.failed > 0 ? ", \(report.failed) failed" : "") + (report.cancelled > 0 ? ", \(report.cancelled) cancelled" : "")
                        + (report.notRun > 0 ? ", \(report.notRun) not run" : "")
                        + String(format: " in %.2f s (%.1f items/s)", report.durationSeconds, rate),
                    ["event": .string("sweep_finished"), "status": .string(report.status.rawValue), "succeeded": .integer(report.succeeded),
                     "failed": .integer(report.failed), "cancelled": .integer(report.cancelled), "not_run": .integer(report.notRun), "duration_seconds": .number(report.durationSeconds)])

        let written = report
        let reportWritten = writeReports(json: { try written.jsonData() }, html: { ReportHTML.render(written) }, console: console)
        if let signal = interruption.received, report.status != .succeeded {
            console.log(.error, "interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM"); sweep \(report.runID) cancelled",
                        ["event": .string("interrupted"), "signal": .string(signal == SIGINT ? "SIGINT" : "SIGTERM")])
            throw ExitCode(128 + signal)
        }
        guard report.status == .succeeded && reportWritten else { throw ExitCode(RunnerMain.ExitStatus.stageFailed) }
    }
}

/// An item's events on the console: warnings and errors as they are, naming the item;
/// the rest (its stages starting and finishing) at debug level, so that a sweep of
/// hundreds of items shows its progress line, not thousands of stage lines.
struct ItemEvents: RunEventHandler {
    let console: Console
    let index: Int
    let label: String

    func handle(_ event: RunEvent) {
        if case .stageProgress = event.kind { return }
        guard let message = event.message else { return }
        var fields = event.fields
        fields["event"] = .string(event.name)
        fields["item"] = .integer(index)
        // The item's end is told once, by item_finished: its run's own end (`run q.0
        // failed after 5ms`) only with -v.
        let level = event.level >= .warning && event.name != "run_finished" ? event.level : .debug
        console.log(level, "item \(index) (\(label)): " + message, fields, time: event.time)
    }
}
