import ArgumentParser
import Dispatch
import Foundation
import Framework
import Logging
import Stages

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Check a pipeline, then run it (the default command).")

    @OptionGroup var pipeline: PipelineOptions

    // Values are taken as they come (`parsing: .unconditional`), so `--seed -1` gets a
    // message about -1 rather than "Missing value"; validate() checks them.
    @Option(parsing: .unconditional, help: "The run id (letters, digits, . _ - : +); default: RUNNER_RUN_ID, else a new time-sortable id.")
    var runID: String?

    @Option(name: .customLong("seed"), parsing: .unconditional,
            help: ArgumentHelp("The run seed (0 to \(UInt64.max)); stages without their own seed derive theirs from it. Default: RUNNER_SEED, else random, recorded in the report.", valueName: "seed"))
    var seedText: String?

    @Option(name: .customLong("jobs"), parsing: .unconditional,
            help: ArgumentHelp("How many stages run at once, and threads per stage (at least 1). Default: the number of cores.", valueName: "jobs"))
    var jobsText: String?

    /// The most stages at once, and threads per stage, `--jobs` allows.
    static let maxJobs = 1024

    /// `--seed` as a number; validate() has checked it.
    var seed: UInt64? { seedText.flatMap { UInt64($0) } }
    /// `--jobs` as a number; validate() has checked it.
    var jobs: Int? { jobsText.flatMap { Int($0) } }

    @Option(help: ArgumentHelp("Write a JSON run report to this file.", valueName: "file"))
    var report: String?

    @Option(name: .customLong("report-html"), help: ArgumentHelp("Write the run's report as one self-contained HTML page to this file.", valueName: "file"))
    var reportHTML: String?

    @Option(help: ArgumentHelp("Persist every stage's output in this directory or s3://bucket/prefix, under RUN_ID/STAGE/. Default: RUNNER_ARTIFACT_STORE, else none.", valueName: "dir"))
    var artifactStore: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Resume run RUN_ID: reuse stored outputs whose stage, parameters and inputs are unchanged.", valueName: "run-id"))
    var resume: String?

    @Option(help: ArgumentHelp("Run only this stage, reading its inputs from the artifact store (needs --run-id).", valueName: "stage"))
    var only: String?

    @Option(help: "text or json.")
    var logFormat: LogFormat = .text

    @OptionGroup var streaming: StreamingOptions

    @Flag(help: "Run each stage once, ignoring its 'retries' (for a scheduler that retries tasks itself, as the Airflow export does).")
    var noStageRetries = false

    @Flag(help: "In a sweep (a pipeline with a 'matrix'), stop at the first item that fails: start no more, cancel the running ones.")
    var failFast = false

    @Option(name: .customLong("item"), parsing: .unconditional,
            help: ArgumentHelp("Run only item K (from 0) of the pipeline's matrix, as the run RUN_ID.K with the item's seed: what each task of an exported sweep runs.",
                               valueName: "K"))
    var itemText: String?

    /// `--item` as a number; validate() has checked it.
    var item: Int? { itemText.flatMap { Int($0) } }

    @Flag(name: .shortAndLong, help: "Only print errors.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Print debug messages.")
    var verbose = false

    /// Options a container's environment may give: each applies only when its option
    /// is not on the command line, and an empty variable counts as unset.
    static let environmentOptions = [("RUNNER_RUN_ID", "--run-id"), ("RUNNER_SEED", "--seed"), ("RUNNER_ARTIFACT_STORE", "--artifact-store"),
                                     ("RUNNER_ITEM", "--item")]

    /// Takes the options `environmentOptions` names from `environment` where the
    /// command line left them out, refusing a bad value by its variable's name.
    mutating func adoptEnvironment(_ environment: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let value = environment[name], !value.isEmpty else { return nil }
            return value
        }
        if runID == nil, resume == nil, let value = value("RUNNER_RUN_ID") {
            if let problem = RunID.problem(with: value) {
                throw ValidationError("RUNNER_RUN_ID (for --run-id) '\(FilePaths.printable(value))' \(problem)")
            }
            runID = value
        }
        if seedText == nil, let value = value("RUNNER_SEED") {
            guard UInt64(value) != nil else {
                throw ValidationError("RUNNER_SEED (for --seed) must be a whole number from 0 to \(UInt64.max), got '\(FilePaths.printable(value))'")
            }
            seedText = value
        }
        if itemText == nil, let value = value("RUNNER_ITEM") {
            guard (Int(value) ?? -1) >= 0 else {
                throw ValidationError("RUNNER_ITEM (for --item) must be a whole number, at least 0, got '\(FilePaths.printable(value))'")
            }
            itemText = value
        }
        if artifactStore == nil, let value = value("RUNNER_ARTIFACT_STORE") {
            if let offset = FilePaths.controlCharacterOffset(in: value) {
                throw ValidationError("RUNNER_ARTIFACT_STORE (for --artifact-store) '\(FilePaths.printable(value))' has a control character at offset \(offset); paths cannot hold one")
            }
            artifactStore = value
        }
    }

    /// The variable that gave `option`'s value, when the command line did not.
    func variable(for option: String) -> String? {
        let given = RunnerContext.arguments.contains { $0 == option || $0.hasPrefix(option + "=") }
        guard !given, let (name, _) = Self.environmentOptions.first(where: { $0.1 == option }) else { return nil }
        let value = ProcessInfo.processInfo.environment[name] ?? ""
        return value.isEmpty ? nil : name
    }

    mutating func validate() throws {
        try adoptEnvironment(ProcessInfo.processInfo.environment)
        if let runID, let problem = RunID.problem(with: runID) {
            throw ValidationError("--run-id '\(FilePaths.printable(runID))' \(problem)")
        }
        if let seedText, UInt64(seedText) == nil {
            throw ValidationError("--seed must be a whole number from 0 to \(UInt64.max), got '\(FilePaths.printable(seedText))'")
        }
        if let jobsText {
            let digits = !jobsText.isEmpty && jobsText.allSatisfy { $0.isASCII && $0.isNumber }
            guard let jobs = Int(jobsText) else {
                if digits {
                    throw ValidationError("--jobs must be at most \(Self.maxJobs), got \(jobsText)")
                }
                throw ValidationError("--jobs must be a whole number, at least 1, got '\(FilePaths.printable(jobsText))'")
            }
            if jobs < 1 {
                throw ValidationError("--jobs must be at least 1, got \(jobs)")
            }
            // Also the threads a stage may start: a bound keeps a typo from starting millions.
            if jobs > Self.maxJobs {
                throw ValidationError("--jobs must be at most \(Self.maxJobs), got \(jobs)")
            }
        }
        for (option, value) in [("--report", report), ("--report-html", reportHTML), ("--artifact-store", artifactStore)] {
            if let value, let offset = FilePaths.controlCharacterOffset(in: value) {
                throw ValidationError("\(option) '\(FilePaths.printable(value))' has a control character at offset \(offset); paths cannot hold one")
            }
        }
        if quiet && verbose {
            throw ValidationError("--quiet and --verbose cannot be used together")
        }
        if let itemText, (Int(itemText) ?? -1) < 0 {
            throw ValidationError("--item must be a whole number, at least 0, got '\(FilePaths.printable(itemText))'")
        }
        if let resume, let problem = RunID.problem(with: resume) {
            throw ValidationError("--resume '\(FilePaths.printable(resume))' \(problem)")
        }
        if resume != nil && runID != nil && resume != runID {
            throw ValidationError("--resume names the run; leave out --run-id or give the same id")
        }
        if (resume != nil || only != nil) && artifactStore == nil {
            throw ValidationError("--resume and --only need --artifact-store DIR")
        }
        if only != nil && runID == nil && resume == nil {
            throw ValidationError("--only needs --run-id: the run whose stored artifacts it reads")
        }

    }

    /// Writes `--report` and `--report-html`, each whole or not at all; false when one
    /// could not be written (said on the console).
    func writeReports(json: () throws -> Data, html: () -> String, console: Console) -> Bool {
        var written = true
        for (path, isHTML) in [(report, false), (reportHTML, true)] {
            guard let path else { continue }
            do {
                let bytes = isHTML ? Array(html().utf8) : [UInt8](try json()) + [10]
                try AtomicFile.write(bytes, to: path, overwrite: true)
            } catch {
                console.log(.error, "cannot write the report to '\(FilePaths.printable(path))': \(ErrorDescription.readable(error))",
                            ["event": .string("report_failed"), "error_code": .string(PipelineError(error).code.rawValue)])
                written = false
            }
        }
        return written
    }

    func run() async throws {
        // Installed by RunnerMain.main before anything else; a program that embeds
        // RunnerMain.run handles its own signals.
        let interruption = SignalWatcher.shared
        interruption.deferSignals()
        let level: Logger.Level = quiet ? .error : (verbose ? .debug : .info)
        // Everything below goes through the console: with --log-format json, every
        // line on stderr is a JSON object with an `event`.
        let console = Console(format: logFormat, level: level)
        for path in [report, reportHTML].compactMap({ $0 }) {
            if let problem = ReportPath.problem(with: path)
                ?? (FilePaths.sameFile(path, pipeline.file) ? "it is the pipeline file itself" : nil) {
                console.log(.error, "cannot write the report to '\(FilePaths.printable(path))': \(problem); nothing was run",
                            ["event": .string("usage_error")])
                throw ExitCode(RunnerMain.ExitStatus.invalid)
            }
        }
        if let report, let reportHTML, FilePaths.absolute(report) == FilePaths.absolute(reportHTML) || FilePaths.sameFile(report, reportHTML) {
            console.log(.error, "--report and --report-html name the same file; give each its own", ["event": .string("usage_error")])
            throw ExitCode(RunnerMain.ExitStatus.invalid)
        }
        // A matrix: every item is planned and its memory checked before anything runs.
        let streaming = self.streaming
        // With at most --jobs items in flight, each item has its share of the limit.
        let itemsAtOnce = self.jobs ?? ProcessInfo.processInfo.activeProcessorCount, oneItem = item != nil
        let limit = streaming.limit
        // With --item, only that item is planned (an exported sweep's task).
        let sweep = try pipeline.sweep(console: console, only: item, check: { plan, items in
            // A signal ends the planning of a long sweep (it is deferred until the run).
            if let signal = interruption.received {
                console.log(.error, "interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM") while the sweep was checked; nothing was run",
                            ["event": .string("interrupted")])
                throw ExitCode(128 + signal)
            }
            try streaming.check(streaming.layout(plan), of: plan, console: console, sharedBy: oneItem ? 1 : min(items, itemsAtOnce), limit: limit)
        })
        if let sweep, item == nil {
            try await runSweep(sweep, console: console, level: level, interruption: interruption)
            return
        }
        // One item of a matrix (`--item`) runs as the sweep would run it: as the run
        // RUN_ID.K, with the item's seed when the matrix gives one.
        var plan: Plan
        var runID = self.runID ?? resume, seed = self.seed
        if let item {
            guard let sweep else {
                console.log(.error, "--item: \(FilePaths.printable(pipeline.file)) has no matrix; nothing was run", ["event": .string("usage_error")])
                throw ExitCode(RunnerMain.ExitStatus.invalid)
            }
            guard item < sweep.count else {
                console.log(.error, "--item \(item): the matrix of \(FilePaths.printable(pipeline.file)) has items 0 to \(sweep.count - 1); nothing was run",
                            ["event": .string("usage_error")])
                throw ExitCode(RunnerMain.ExitStatus.invalid)
            }
            if let seed, let own = sweep.matrix.items[item].seed {
                console.log(.error, "--seed \(seed): matrix item \(item) (\(sweep.matrix.items[item].label)) has its own seed, \(own), so it "
                    + "would not be used; leave --seed out, or the seed out of the matrix; nothing was run", ["event": .string("usage_error")])
                throw ExitCode(RunnerMain.ExitStatus.invalid)
            }
            plan = try sweep.plan(ofItem: item)
            runID = sweep.runID(ofItem: item, in: runID ?? RunID.generate())
            seed = sweep.matrix.items[item].seed ?? seed
        } else {
            plan = try pipeline.plan(console: console)
        }
        var options = RunOptions(events: ConsoleEvents(console: console), logLevel: level)
        if let runID { options.runID = runID }
        if let seed { options.seed = seed }
        if let jobs { options.jobs = jobs }
        options.stageRetries = !noStageRetries
        options.digests = report != nil || reportHTML != nil
        options.streaming = !streaming.noStream
        options.streamingMinimumBytes = streaming.minimumBytes
        options.bandRows = streaming.bandRows.flatMap { Int($0) }
        if let only, plan.stage(only) == nil {
            let help = Suggestions.didYouMean(only, in: plan.stages.map(\.id))
                ?? "its stages: " + plan.stages.map { "'\($0.id)'" }.joined(separator: ", ")
            console.log(.error, "--only: no stage '\(FilePaths.printable(only))' in \(FilePaths.printable(pipeline.file))\n  help: \(help)",
                        ["event": .string("usage_error")])
            throw ExitCode(RunnerMain.ExitStatus.invalid)
        }
        // What the stages need from outside (credentials, a writable directory) is
        // there, before any of them starts: a run that cannot finish fails now.
        // A signal during the checks before the run is acted on before anything else.
        func exitIfInterrupted() throws {
            guard let signal = interruption.received else { return }
            console.log(.error, "interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM") before the run started; nothing was run",
                        ["event": .string("interrupted"), "signal": .string(signal == SIGINT ? "SIGINT" : "SIGTERM")])
            throw ExitCode(128 + signal)
        }
        let access = await plan.checkAccess(depth: .shallow, only: only.map { [$0] })
        try exitIfInterrupted()
        if let failure = plan.failures(in: access).first {
            console.log(.error, "\(failure); nothing was run", ["event": .string("access_check_failed"), "stage": .string(failure.stageID),
                                                               "type": .string(failure.stageType), "error": .string(failure.reason),
                                                               "error_code": .string(failure.code.rawValue)])
            throw ExitCode(RunnerMain.ExitStatus.stageFailed)
        }
        if let artifactStore {
            do {
                // Chosen by URI scheme: a plain path or file:// is a directory, s3:// a bucket.
                let store = try ArtifactStoreRegistry.builtin.open(artifactStore)
                // Checks the codecs and access, then: resumed and single-stage runs use the seed
                // the run started with; a run started by --only alone derives it from the run id.
                try options.useStore(store, for: plan, start: resume != nil ? .resume : (only != nil ? .only : .run), seed: seed, only: only)
            } catch {
                try exitIfInterrupted()
                let failure = PipelineError(error)
                let usage = (error as? ArtifactStoreError)?.isUsageError == true
                var message = usage ? failure.message
                    : "cannot use the artifact store \(FilePaths.printable(artifactStore)): \(failure.message)"
                // Say so when a value came from the environment, not the command line.
                if let name = variable(for: "--artifact-store") {
                    message = "\(name)=\(FilePaths.printable(artifactStore)) (for --artifact-store): " + message
                }
                if let name = variable(for: "--seed"), let seed {
                    message = message.replacingOccurrences(of: "leave out --seed \(seed)", with: "unset \(name) (it gives --seed \(seed))")
                }
                console.log(.error, message + "; nothing was run",
                            ["event": .string("store_refused"), "error_code": .string(failure.code.rawValue),
                             "retryable": .boolean(failure.isRetryable)])
                throw ExitCode(usage ? RunnerMain.ExitStatus.invalid : RunnerMain.ExitStatus.stageFailed)
            }
        }
        try exitIfInterrupted()
        options.accessFacts = access.compactMapValues { result in
            guard case .success(let report) = result, report.checked else { return nil }
            return report.facts
        }
        let executor = Executor(plan: plan, options: options)
        try streaming.check(executor.layout, of: plan, console: console)

        let only = self.only
        let runTask = Task {
            if let only { return await executor.runOnly(only) }
            return await executor.run()
        }
        interruption.onFirstSignal { runTask.cancel() }
        let outcome = await runTask.value

        var written = outcome.report
        written.invocation = RunReport.Invocation(arguments: RunnerContext.arguments, profiles: pipeline.profiles,
                                                  overrides: pipeline.overrides)
        let reportWritten = writeReports(json: { try written.jsonData() }, html: { ReportHTML.render(written) }, console: console)
        // A signal that came after every stage had finished changes nothing: the run
        // did what it was asked, and its exit code agrees with its report.
        if let signal = interruption.received, !outcome.succeeded {
            console.log(.error, "interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM"); run \(options.runID) cancelled",
                        ["event": .string("interrupted"), "signal": .string(signal == SIGINT ? "SIGINT" : "SIGTERM")])
            throw ExitCode(128 + signal)
        }
        // A run whose report was asked for and could not be written has not done
        // what it was asked: it does not exit 0.
        guard outcome.succeeded && reportWritten else {
            throw ExitCode(RunnerMain.ExitStatus.stageFailed)
        }
        for stage in plan.stages {
            if let stored = outcome.outputs[stage.id] as? StoredObject {
                print(stored.uri)
            }
        }
    }
}
