import Foundation
import Framework

/// One `StageConformance.evaluate`: runs the stage the ways the checks need and
/// writes down what does not conform. Used by one task at a time, holding
/// `ConformanceLock`.
final class ConformanceRunner {
    let type: StageType
    let parameters: String
    let inputs: [String: any Artifact]
    let failing: [StageConformance.FailingRun]
    let options: StageConformance.Options

    private var report: ConformanceReport
    private let subject: ConformanceSubject
    /// The failing runs, planned before anything runs.
    private let failingSubjects: [ConformanceSubject]
    private let root: URL
    private let outputs: URL
    private let loaderEnvironment: [String: String]
    /// Ports whose modification is reported already (one failure per input is enough).
    private var modified: Set<String> = []
    /// Set when something was left behind: the kit's directory is kept for inspection.
    private var keepDirectory = false

    init(type: StageType, parameters: String, inputs: [String: any Artifact], failing: [StageConformance.FailingRun],
         options: StageConformance.Options) throws {
        self.type = type
        self.parameters = parameters
        self.inputs = inputs
        self.failing = failing
        self.options = options
        root = FileManager.default.temporaryDirectory.appendingPathComponent("stage-conformance-\(UUID().uuidString)")
        outputs = root.appendingPathComponent("outputs")
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        let loaderEnvironment = options.environment.merging([StageConformance.directoryVariable: outputs.path]) { _, new in new }
        self.loaderEnvironment = loaderEnvironment
        do {
            subject = try ConformanceSubject(type: type, parameters: parameters, inputs: inputs, environment: loaderEnvironment)
            failingSubjects = try failing.map { run in
                do {
                    return try ConformanceSubject(
                        type: type, parameters: run.parameters ?? parameters, inputs: run.inputs ?? inputs,
                        environment: loaderEnvironment.merging(run.environment) { _, new in new })
                } catch let error as StageConformance.SetupError {
                    throw StageConformance.SetupError("failing run '\(run.label)': \(error.message)")
                }
            }
        } catch {
            try? FileManager.default.removeItem(at: root)
            throw error
        }
        report = ConformanceReport(stage: type.name, declaredOutputType: subject.stage.outputType)
    }

    func run() async -> ConformanceReport {
        await ProcessEnvironment.with(options.environment) {
            await runChecks()
        }
        if keepDirectory {
            report.notes.append("what was left behind is kept in \(root.path)")
        } else {
            removeKitDirectory()
        }
        return report
    }

    private func runChecks() async {
        let snapshots = snapshots(inputs)

        // The first run: everything else depends on it.
        let before = files(in: outputs)
        let first = TimedRun(subject.stage.instance, inputs: StageInputs(inputs), context: context("conformance-1"))
        let firstEnding = await first.wait(limit: options.timeLimit)
        report.firstRunDuration = first.duration
        checkInputs(inputs, snapshots: snapshots, after: "the first run")
        let firstOutput: any Artifact
        switch firstEnding {
        case nil:
            report.fail(.runs, "the first run on the sample inputs was still running after \(options.timeLimit.humanDescription)")
            return
        case .threw(let error)?:
            report.fail(.runs, "the first run on the sample inputs failed: \(Self.describe(error))")
            return
        case .returned(let artifact)?:
            checkOutputType(artifact, of: "the first run")
            checkStrayFiles(since: before, after: "the first run")
            firstOutput = artifact
        }

        if options.checks.contains(.runsAgain) {
            await checkSecondRun(firstOutput: firstOutput, snapshots: snapshots)
        }
        var cleanupChecked = false
        if options.checks.contains(.cancellation) {
            cleanupChecked = await checkCancellation(snapshots: snapshots)
        }
        if options.checks.contains(.cleanup) {
            for (index, run) in failing.enumerated() {
                await checkFailingRun(run, subject: failingSubjects[index], number: index + 1)
                cleanupChecked = true
            }
            if !cleanupChecked {
                report.notes.append("cleanup after failure was not checked: no run failed (pass 'failing:' runs to check it)")
            }
        }
    }

    // MARK: - The checks

    private func checkSecondRun(firstOutput: any Artifact, snapshots: [String: ArtifactContent.Snapshot]) async {
        let before = files(in: outputs)
        let second = TimedRun(subject.stage.instance, inputs: StageInputs(inputs), context: context("conformance-2"))
        let ending = await second.wait(limit: options.timeLimit)
        checkInputs(inputs, snapshots: snapshots, after: "the second run")
        switch ending {
        case nil:
            report.fail(.runsAgain, "a second run on the same inputs was still running after \(options.timeLimit.humanDescription)")
        case .threw(let error)?:
            report.fail(.runsAgain, "a second run of the same instance on the same inputs failed: \(Self.describe(error))")
        case .returned(let artifact)?:
            checkOutputType(artifact, of: "the second run")
            checkStrayFiles(since: before, after: "the second run")
            if options.deterministic, let difference = ArtifactContent.difference(between: firstOutput, and: artifact) {
                report.fail(.runsAgain, """
                    with the same seed (\(options.seed)) and inputs, the second run returned a different artifact \
                    (\(difference)); pass 'deterministic: false' in the options if the stage's output may vary
                    """)
            }
        }
    }

    /// Runs the stage, cancels it `cancelAfter` into the run, and measures how long it
    /// takes to end. Returns whether the run failed (and its cleanup was checked).
    private func checkCancellation(snapshots: [String: ArtifactContent.Snapshot]) async -> Bool {
        let temporary = root.appendingPathComponent("tmp-cancelled")
        try? FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        let before = files(in: outputs)
        // Copies, so that nothing the earlier runs cached on the inputs (a grid's range,
        // say) makes this run shorter than a first run.
        let copies = inputs.mapValues { ArtifactContent.freshCopy($0) }
        let run = TimedRun(subject.stage.instance, inputs: StageInputs(copies),
                           context: context("conformance-cancelled", temporaryDirectory: temporary.path), cancelAfter: options.cancelAfter)
        let ending = await run.wait(limit: options.timeLimit)
        checkInputs(copies, snapshots: snapshots, after: "the cancelled run")
        let bound = options.cancellationBound
        guard let ending else {
            report.fail(.cancellation, """
                cancelled \(options.cancelAfter.humanDescription) into the run, it was still running \
                \(options.timeLimit.humanDescription) later (bound \(bound.humanDescription))
                """)
            keepDirectory = true
            return false
        }
        guard let latency = run.latencyAfterCancel, latency >= .zero else {
            // It ended before the cancel came: nothing to measure, nothing wrong.
            report.notes.append("""
                cancellation: the run ended after \(run.duration?.humanDescription ?? "?"), before the cancel (due \
                \(options.cancelAfter.humanDescription) into it) came; its latency was not measured (a larger input or \
                a smaller 'cancelAfter' would measure it)
                """)
            switch ending {
            case .returned(let artifact):
                checkOutputType(artifact, of: "the run meant to be cancelled")
                checkStrayFiles(since: before, temporary: temporary, after: "the run meant to be cancelled")
                return false
            case .threw(let error):
                report.fail(.runsAgain, "a third run on the same inputs failed before it was cancelled: \(Self.describe(error))")
                checkLeftovers(since: before, temporary: temporary, after: "the run meant to be cancelled", failedWith: error)
                return true
            }
        }
        report.cancellationLatency = latency
        if latency > bound {
            report.fail(.cancellation, """
                cancelled \(options.cancelAfter.humanDescription) into the run, it took \(latency.humanDescription) \
                to end (bound \(bound.humanDescription))
                """)
        }
        switch ending {
        case .returned(let artifact):
            // Finishing the work after a cancel is allowed; the result must still be right.
            checkOutputType(artifact, of: "the cancelled run")
            checkStrayFiles(since: before, temporary: temporary, after: "the cancelled run")
            return false
        case .threw(let error):
            if !(error is CancellationError) {
                report.fail(.cancellation, """
                    when cancelled it threw \(Self.describe(error)) instead of CancellationError \
                    (or a result); cancellation should not look like a failure of the stage
                    """)
            }
            checkLeftovers(since: before, temporary: temporary, after: "the cancelled run", failedWith: error)
            return true
        }
    }

    private func checkFailingRun(_ failing: StageConformance.FailingRun, subject failingSubject: ConformanceSubject, number: Int) async {
        let label = "failing run '\(failing.label)'"
        let samples = failing.inputs ?? inputs
        let snapshots = snapshots(samples)
        let temporary = root.appendingPathComponent("tmp-failing-\(number)")
        try? FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        let before = files(in: outputs)
        let ending = await ProcessEnvironment.with(failing.environment) {
            let run = TimedRun(failingSubject.stage.instance, inputs: StageInputs(samples),
                               context: context("conformance-failing-\(number)", subject: failingSubject,
                                                temporaryDirectory: temporary.path))
            return await run.wait(limit: options.timeLimit)
        }
        checkInputs(samples, snapshots: snapshots, after: label)
        switch ending {
        case nil:
            report.fail(.cleanup, "\(label) was still running after \(options.timeLimit.humanDescription)")
            keepDirectory = true
        case .returned(let artifact)?:
            report.fail(.cleanup, """
                \(label) succeeded (it returned \(ArtifactContent.label(artifact))), so it shows nothing about \
                cleaning up after a failure; give parameters, inputs or environment that make the stage fail
                """)
            checkStrayFiles(since: before, temporary: temporary, after: label)
        case .threw(let error)?:
            report.failingRunErrors[failing.label] = Self.describe(error)
            checkLeftovers(since: before, temporary: temporary, after: label, failedWith: error)
        }
    }

    private func checkOutputType(_ artifact: any Artifact, of run: String) {
        guard options.checks.contains(.outputType) else { return }
        let declared = subject.stage.outputType
        let returned = artifact.artifactType
        guard returned != declared else { return }
        let traits = { (type: ArtifactType) in type.traits.map(\.name).sorted().joined(separator: ", ") }
        let detail = returned.name == declared.name ? " (traits [\(traits(returned))], not [\(traits(declared))])" : ""
        report.fail(.outputType, """
            \(run) returned \(returned)\(detail), but the spec declares \(declared) for these parameters and input types
            """)
    }

    private func checkInputs(_ samples: [String: any Artifact], snapshots: [String: ArtifactContent.Snapshot], after run: String) {
        guard options.checks.contains(.inputsUnchanged) else { return }
        for (port, artifact) in samples.sorted(by: { $0.key < $1.key }) where !modified.contains(port) {
            guard let snapshot = snapshots[port], let change = ArtifactContent.change(of: artifact, since: snapshot) else { continue }
            modified.insert(port)
            report.fail(.inputsUnchanged, "\(run) modified input '\(port)' (\(ArtifactContent.label(artifact))): \(change)")
        }
    }

    /// After a run that succeeded: no temporary-looking file appeared among the
    /// outputs, and the run's temporary directory, if it had one of its own, is empty.
    private func checkStrayFiles(since before: Set<String>, temporary: URL? = nil, after run: String) {
        guard options.checks.contains(.cleanup) else { return }
        let stray = files(in: outputs).subtracting(before).filter { Self.looksTemporary(($0 as NSString).lastPathComponent) }
        if !stray.isEmpty {
            keepDirectory = true
            report.fail(.cleanup, "\(run) left temporary files next to its outputs: \(stray.sorted().joined(separator: ", "))")
        }
        if let temporary {
            let left = entries(in: temporary)
            if !left.isEmpty {
                keepDirectory = true
                report.fail(.cleanup, "\(run) left files in its temporary directory: \(left.joined(separator: ", "))")
            }
        }
    }

    /// After a run that failed: nothing in its temporary directory and no new file among the outputs.
    private func checkLeftovers(since before: Set<String>, temporary: URL, after run: String, failedWith error: any Error) {
        guard options.checks.contains(.cleanup) else { return }
        let inTemporary = entries(in: temporary)
        let inOutputs = files(in: outputs).subtracting(before).sorted()
        var parts: [String] = []
        if !inTemporary.isEmpty { parts.append("in its temporary directory: " + inTemporary.joined(separator: ", ")) }
        if !inOutputs.isEmpty { parts.append("in the output directory: " + inOutputs.joined(separator: ", ")) }
        guard !parts.isEmpty else { return }
        keepDirectory = true
        report.fail(.cleanup, "after \(run) failed (\(Self.describe(error))), files were left \(parts.joined(separator: "; "))")
    }

    // MARK: - Support

    /// What a run's temporary directory holds.
    private func entries(in temporary: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []).sorted()
    }

    /// Removes the kit's directory: the outputs and each run's temporary directory.
    private func removeKitDirectory() {
        try? FileManager.default.removeItem(at: root)
    }

    private func context(_ runID: String, subject: ConformanceSubject? = nil, temporaryDirectory: String? = nil) -> StageContext {
        (subject ?? self.subject).context(runID: runID, seed: options.seed, concurrency: options.concurrency,
                                          temporaryDirectory: temporaryDirectory)
    }

    /// Copies of the inputs' content, taken only when the inputs check is on.
    private func snapshots(_ samples: [String: any Artifact]) -> [String: ArtifactContent.Snapshot] {
        options.checks.contains(.inputsUnchanged) ? samples.mapValues { ArtifactContent.snapshot($0) } : [:]
    }

    /// Files (not directories) below `directory`, as relative paths. Directories a
    /// failed run created are not counted: making the target's directory first is fine.
    private func files(in directory: URL) -> Set<String> {
        guard let enumerator = FileManager.default.enumerator(atPath: directory.path) else { return [] }
        var result: Set<String> = []
        while let path = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent(path).path, isDirectory: &isDirectory),
               !isDirectory.boolValue {
                result.insert(path)
            }
        }
        return result
    }

    /// `.NAME.tmp-XXXXXX` (what `AtomicFile` writes), `NAME.tmp`, `NAME.part`, `NAME.partial`.
    static func looksTemporary(_ name: String) -> Bool {
        (name.hasPrefix(".") && name.contains(".tmp")) || name.hasSuffix(".tmp") || name.contains(".tmp-")
            || name.hasSuffix(".part") || name.hasSuffix(".partial")
    }

    static func describe(_ error: any Error) -> String {
        error is CancellationError ? "CancellationError" : "'\(error)'"
    }
}
