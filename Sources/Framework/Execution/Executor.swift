import Foundation
public import Logging

/// How to run a plan.
public struct RunOptions: Sendable {
    public var runID: String
    /// The run seed; stages without an explicit `seed` derive theirs from it.
    public var seed: UInt64
    /// How many stages may run at once, and how many threads a stage may use.
    public var jobs: Int
    public var logger: Logger
    public var observer: any RunObserver
    /// The run's start, used for `{date}`.
    public var startDate: Date
    /// Where every stage's output is persisted, if anywhere.
    public var store: (any ArtifactStore)?
    /// Reuse stored outputs whose fingerprint (stage type, parameters, seed, inputs)
    /// is unchanged instead of running their stages again.
    public var reuse: Bool = false
    /// Where stages make temporary files (`StageContext.temporaryDirectory`).
    public var temporaryDirectory: String = StageContext.defaultTemporaryDirectory

    public init(
        runID: String = RunID.generate(), seed: UInt64 = RunID.randomSeed(),
        jobs: Int = ProcessInfo.processInfo.activeProcessorCount,
        logger: Logger = Logger(label: "pipeline"), observer: any RunObserver = SilentObserver(), startDate: Date = Date()
    ) {
        self.runID = runID
        self.seed = seed
        self.jobs = max(1, jobs)
        self.logger = logger
        self.observer = observer
        self.startDate = startDate
    }
}

/// The result of a run.
public struct RunOutcome: Sendable {
    public var report: RunReport
    /// Outputs of the stages no other stage consumes: the pipeline's results.
    public var outputs: [String: any Artifact]
    /// The failure that ended the run, if any.
    public var failure: StageExecutionError?

    public var succeeded: Bool { report.status == .succeeded }
}

/// A stage that failed for good (after its retries), with the cause.
public struct StageExecutionError: Error, Sendable, CustomStringConvertible {
    public var stageID: String
    public var stageType: String
    public var underlying: any Error

    public var description: String {
        "stage '\(stageID)' (\(stageType)) failed: \(ErrorDescription.readable(underlying))"
    }
}

/// A stage attempt that ran past its `timeout`.
public struct StageTimeoutError: Error, Sendable, CustomStringConvertible {
    public var timeout: Duration
    public var description: String { "timed out after \(timeout.humanDescription)" }
}

/// Runs a plan: each stage as soon as its inputs are ready, independent stages
/// concurrently (at most `jobs` at once), artifacts passed by reference and dropped
/// when their last consumer has finished. The first stage that fails for good cancels
/// the run: running stages are cancelled and nothing further starts.
public struct Executor: Sendable {
    public let plan: Plan
    public let options: RunOptions

    public init(plan: Plan, options: RunOptions) {
        self.plan = plan
        self.options = options
    }

    private struct Completion: Sendable {
        var id: String
        var result: Result<any Artifact, any Error>
        var attempts: Int
        var startedAt: Date
        var duration: Duration
        var reused = false
    }

    /// Each stage's fingerprint: a hash of its type and the type's version
    /// (`StageSpec.version`), parameters, seed (for seeded stages) and its inputs'
    /// fingerprints. Equal fingerprints, equal outputs.
    public var fingerprints: [String: String] {
        var result: [String: String] = [:]
        for stage in plan.stages {  // dependency order: producers first
            let inputs = stage.inputs.sorted { $0.key < $1.key }.map { "\($0.key)=\(result[$0.value] ?? "")" }.joined(separator: ",")
            let seed = stage.type.spec.seedParameter != nil ? String(self.seed(for: stage)) : ""
            let text = [stage.typeName, "version=\(stage.type.spec.version)", Self.canonicalParameters(stage), "seed=" + seed,
                        "inputs=" + inputs].joined(separator: "\n")
            result[stage.id] = SHA256Digest.hex(of: Array(text.utf8))
        }
        return result
    }

    static func canonicalParameters(_ stage: PlannedStage) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(stage.parameters.values.mapValues(\.jsonValue))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func manifest(for stage: PlannedStage, _ artifact: any Artifact, fingerprints: [String: String]) -> ArtifactManifest {
        let parameters = Self.canonicalParameters(stage)
        return ArtifactManifest(
            artifactType: artifact.artifactType.name, file: "", byteCount: 0, sha256: "", stageType: stage.typeName,
            stageVersion: stage.type.spec.version, parameters: stage.parameters.values.mapValues(\.jsonValue), parametersHash: SHA256Digest.hex(of: Array(parameters.utf8)),
            inputFingerprints: stage.inputs.mapValues { fingerprints[$0] ?? "" }, fingerprint: fingerprints[stage.id] ?? "")
    }

    public func run() async -> RunOutcome {
        if let refused = refusingUnstorableOutputs() { return refused }
        let started = Date()
        let clock = ContinuousClock()
        let runStart = clock.now
        options.observer.runStarted(plan: plan, runID: options.runID, seed: options.seed)

        let stagesByID = Dictionary(uniqueKeysWithValues: plan.stages.map { ($0.id, $0) })
        var consumers: [String: Int] = [:]
        for stage in plan.stages {
            for producer in stage.inputs.values { consumers[producer, default: 0] += 1 }
        }
        var waitingOn: [String: Set<String>] = Dictionary(uniqueKeysWithValues: plan.stages.map { ($0.id, Set($0.dependencies)) })
        // Who waits for each stage, so a completion visits only its dependents.
        var dependents: [String: [String]] = [:]
        for stage in plan.stages {
            for producer in waitingOn[stage.id]! { dependents[producer, default: []].append(stage.id) }
        }
        var reports: [String: StageReport] = Dictionary(uniqueKeysWithValues: plan.stages.map { stage in
            (stage.id, StageReport(id: stage.id, type: stage.typeName, status: .skipped, attempts: 0,
                                   seed: stage.type.spec.seedParameter != nil ? seed(for: stage) : nil,
                                   parameters: stage.parameters.values.mapValues(\.jsonValue)))
        })
        var available: [String: any Artifact] = [:]
        var outputs: [String: any Artifact] = [:]
        var failure: StageExecutionError?
        var ready = plan.stages.filter { waitingOn[$0.id]!.isEmpty }.map(\.id)
        var nextReady = 0  // ready[..<nextReady] have been launched
        // Fingerprints only matter to a store; a run without one skips hashing parameters.
        let fingerprints = options.store == nil ? [:] : self.fingerprints

        await withTaskGroup(of: Completion.self) { group in
            var running = 0
            func launch() {
                while failure == nil, !Task.isCancelled, running < options.jobs, nextReady < ready.count {
                    let stage = stagesByID[ready[nextReady]]!
                    nextReady += 1
                    var inputs: [String: any Artifact] = [:]
                    for (port, producer) in stage.inputs { inputs[port] = available[producer] }
                    let stageInputs = StageInputs(inputs)
                    running += 1
                    group.addTask { await self.execute(stage, inputs: stageInputs, fingerprints: fingerprints) }
                }
            }
            launch()
            while let completion = await group.next() {
                running -= 1
                let stage = stagesByID[completion.id]!
                var report = reports[completion.id]!
                report.attempts = completion.attempts
                report.startedAt = completion.startedAt
                report.durationSeconds = completion.duration.seconds
                report.reused = completion.reused ? true : nil
                switch completion.result {
                case .success(let artifact):
                    if consumers[stage.id, default: 0] > 0 {
                        available[stage.id] = artifact
                    } else {
                        outputs[stage.id] = artifact
                    }
                    for candidate in dependents[stage.id] ?? [] where waitingOn[candidate]!.remove(stage.id) != nil {
                        if waitingOn[candidate]!.isEmpty { ready.append(candidate) }
                    }
                    // Say it finished, start what waited for it, and only then compute
                    // the full summary (a scan of a grid, a hash of bytes), so the two overlap.
                    options.observer.stageSucceeded(id: stage.id, type: stage.typeName, duration: completion.duration,
                                                    output: artifact.briefSummary())
                    launch()
                    report.status = .succeeded
                    report.output = artifact.summary()
                case .failure(let error):
                    if error is CancellationError {
                        report.status = .cancelled
                    } else {
                        report.status = .failed
                        report.error = ErrorDescription.readable(error)
                        if failure == nil {
                            failure = StageExecutionError(stageID: stage.id, stageType: stage.typeName, underlying: error)
                            group.cancelAll()
                        }
                    }
                }
                reports[completion.id] = report
                // Drop each input once its last consumer is done.
                for producer in stage.inputs.values {
                    consumers[producer, default: 1] -= 1
                    if consumers[producer] == 0 { available[producer] = nil }
                }
                launch()
            }
        }
        available.removeAll()

        let status: RunReport.Status = failure != nil ? .failed : (reports.values.allSatisfy { $0.status == .succeeded } ? .succeeded : .cancelled)
        let report = RunReport(
            runID: options.runID, seed: options.seed, pipeline: plan.name, file: plan.file, status: status,
            startedAt: started, durationSeconds: (clock.now - runStart).seconds,
            error: failure.map(\.description) ?? (status == .cancelled ? "run cancelled" : nil),
            stages: plan.stages.map { reports[$0.id]! })
        options.observer.runFinished(report: report)
        return RunOutcome(report: report, outputs: status == .succeeded ? outputs : [:], failure: failure)
    }

    /// Runs one stage alone (`--only`): its inputs are read from the store, where the
    /// same plan must have put them (their fingerprints must match), and its output
    /// goes to the store.
    public func runOnly(_ id: String) async -> RunOutcome {
        let started = Date()
        func failed(_ message: String) -> RunOutcome {
            let report = RunReport(runID: options.runID, seed: options.seed, pipeline: plan.name, file: plan.file, status: .failed,
                                   startedAt: started, durationSeconds: 0, error: message, stages: [])
            options.observer.stageFailed(id: id, type: plan.stage(id)?.typeName ?? "?", attempt: 0,
                                         error: StageFailure(message, retryable: false), retryIn: nil)
            options.observer.runFinished(report: report)
            return RunOutcome(report: report, outputs: [:], failure: StageExecutionError(stageID: id, stageType: plan.stage(id)?.typeName ?? "?",
                                                                                          underlying: StageFailure(message, retryable: false)))
        }
        guard let stage = plan.stage(id) else { return failed("no stage '\(id)' in \(plan.file)") }
        guard let store = options.store else { return failed("--only needs an artifact store for its inputs and output") }
        if let refused = refusingUnstorableOutputs(of: [stage] + stage.inputs.values.compactMap(plan.stage)) { return refused }
        let fingerprints = self.fingerprints
        var inputs: [String: any Artifact] = [:]
        for (port, producer) in stage.inputs.sorted(by: { $0.key < $1.key }) {
            do {
                let runID = options.runID
                guard let stored = try await Blocking.run({ try store.manifest(runID: runID, stage: producer) }) else {
                    return failed("input '\(port)' of stage '\(id)' comes from stage '\(producer)', whose output is not in \(store) "
                        + "for run \(options.runID); run stage '\(producer)' first")
                }
                guard stored.fingerprint == fingerprints[producer] else {
                    return failed("the stored output of stage '\(producer)' was made with other parameters, inputs or seed; "
                        + "run stage '\(producer)' again first")
                }
                guard let artifact = try await Blocking.run({ try store.load(runID: runID, stage: producer, codecs: plan.codecs)?.artifact }) else {
                    return failed("the output of stage '\(producer)' vanished from \(store)")
                }
                inputs[port] = artifact
            } catch {
                return failed("cannot read the output of stage '\(producer)': \(ErrorDescription.readable(error))")
            }
        }
        options.observer.runStarted(plan: plan, runID: options.runID, seed: options.seed)
        let completion = await execute(stage, inputs: StageInputs(inputs), fingerprints: fingerprints)
        var report = StageReport(id: stage.id, type: stage.typeName, status: .succeeded, attempts: completion.attempts,
                                 startedAt: completion.startedAt, durationSeconds: completion.duration.seconds,
                                 seed: stage.type.spec.seedParameter != nil ? seed(for: stage) : nil,
                                 parameters: stage.parameters.values.mapValues(\.jsonValue), reused: completion.reused ? true : nil)
        var failure: StageExecutionError?
        var outputs: [String: any Artifact] = [:]
        switch completion.result {
        case .success(let artifact):
            let summary = artifact.summary()
            report.output = summary
            outputs[id] = artifact
            options.observer.stageSucceeded(id: id, type: stage.typeName, duration: completion.duration, output: summary)
        case .failure(let error):
            report.status = error is CancellationError ? .cancelled : .failed
            report.error = ErrorDescription.readable(error)
            if !(error is CancellationError) { failure = StageExecutionError(stageID: id, stageType: stage.typeName, underlying: error) }
        }
        let status: RunReport.Status = failure != nil ? .failed : (report.status == .succeeded ? .succeeded : .cancelled)
        let runReport = RunReport(runID: options.runID, seed: options.seed, pipeline: plan.name, file: plan.file, status: status,
                                  startedAt: started, durationSeconds: Date().timeIntervalSince(started),
                                  error: failure.map(\.description), stages: [report])
        options.observer.runFinished(report: runReport)
        return RunOutcome(report: runReport, outputs: status == .succeeded ? outputs : [:], failure: failure)
    }

    /// The seed a stage runs with: its own `seed` parameter, or one derived from the run seed.
    public func seed(for stage: PlannedStage) -> UInt64 {
        if let name = stage.type.spec.seedParameter?.name, let explicit = stage.parameters.optionalInt(name) {
            return UInt64(explicit)
        }
        return SeedDerivation.seed(runSeed: options.seed, stageID: stage.id)
    }

    private var templateValues: [String: String] {
        var values = plan.params
        values["run_id"] = options.runID
        values["date"] = UTCDate(options.startDate).dateString
        return values
    }

    /// Runs one stage with its retries, or reuses its stored output; persists what it
    /// computes when there is a store. Never throws.
    private func execute(_ stage: PlannedStage, inputs: StageInputs, fingerprints: [String: String]) async -> Completion {
        let clock = ContinuousClock()
        let startedAt = Date()
        let start = clock.now
        let runID = options.runID
        if options.reuse, let store = options.store,
           let stored = try? await Blocking.run({ try store.manifest(runID: runID, stage: stage.id) }),
           stored.fingerprint == fingerprints[stage.id] {
            do {
                // Store I/O blocks: on a thread of its own, off the cooperative pool.
                if let artifact = try await Blocking.run({ try store.load(runID: runID, stage: stage.id, codecs: plan.codecs)?.artifact }) {
                    // A sink's output stands for a file or object elsewhere: reuse it only
                    // if that is still there as recorded.
                    switch try await stage.type.verifyStored(artifact, parameters: stage.parameters) {
                    case .nothingToVerify, .verified:
                        options.logger.info("\(stage.id): reusing its stored output (unchanged stage, parameters and inputs)")
                        return Completion(id: stage.id, result: .success(artifact), attempts: 0, startedAt: startedAt,
                                          duration: clock.now - start, reused: true)
                    case .changed(let reason):
                        options.logger.warning("\(stage.id): stored output cannot be reused (\(reason)); running the stage again")
                    }
                }
            } catch {
                options.logger.warning("\(stage.id): stored output cannot be reused (\(ErrorDescription.readable(error))); running the stage again")
            }
        }
        var completion = await attempt(stage, inputs: inputs, startedAt: startedAt, start: start)
        if case .success(let artifact) = completion.result, let store = options.store {
            let manifest = manifest(for: stage, artifact, fingerprints: fingerprints)
            do {
                try await Blocking.run { try store.save(artifact, manifest: manifest, runID: runID, stage: stage.id, codecs: plan.codecs) }
            } catch {
                completion.result = .failure(StageFailure("cannot store the output in \(store): \(ErrorDescription.readable(error))"))
            }
        }
        return completion
    }

    private func attempt(_ stage: PlannedStage, inputs: StageInputs, startedAt: Date, start: ContinuousClock.Instant) async -> Completion {
        let clock = ContinuousClock()
        var values = templateValues
        values["stage"] = stage.id
        var logger = options.logger
        logger[metadataKey: "stage"] = "\(stage.id)"
        var attempt = 0
        while true {
            attempt += 1
            let observer = options.observer
            let id = stage.id
            let context = StageContext(
                stageID: stage.id, stageType: stage.typeName, runID: options.runID, seed: seed(for: stage), attempt: attempt,
                concurrency: options.jobs, logger: logger, templateValues: values, temporaryDirectory: options.temporaryDirectory,
                pipelineDirectory: StageContext.directory(ofPipelineFile: plan.file),
                progress: { fraction in observer.stageProgress(id: id, fraction: fraction) })
            observer.stageStarted(id: stage.id, type: stage.typeName, attempt: attempt)
            do {
                let artifact = try await runAttempt(stage, inputs: inputs, context: context)
                return Completion(id: stage.id, result: .success(artifact), attempts: attempt, startedAt: startedAt, duration: clock.now - start)
            } catch {
                let cancelled = Task.isCancelled || error is CancellationError
                let retryable = !cancelled && ((error as? StageFailure)?.isRetryable ?? true) && attempt <= stage.retry.count
                let wait = retryable ? stage.retry.delay(beforeRetry: attempt) : nil
                if !cancelled {
                    observer.stageFailed(id: stage.id, type: stage.typeName, attempt: attempt, error: error, retryIn: wait)
                }
                if let wait {
                    do {
                        try await Task.sleep(for: wait)
                        continue
                    } catch {}
                }
                let result: any Error = cancelled || Task.isCancelled ? CancellationError() : error
                return Completion(id: stage.id, result: .failure(result), attempts: attempt, startedAt: startedAt, duration: clock.now - start)
            }
        }
    }

    private func runAttempt(_ stage: PlannedStage, inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let artifact: any Artifact
        if let timeout = stage.timeout {
            artifact = try await withThrowingTaskGroup(of: (any Artifact)?.self) { group in
                group.addTask { try await stage.instance.run(inputs: inputs, context: context) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw StageTimeoutError(timeout: timeout)
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return result }
                }
                throw CancellationError()
            }
        } else {
            artifact = try await stage.instance.run(inputs: inputs, context: context)
        }
        guard artifact.artifactType == stage.outputType else {
            throw StageFailure("returned \(artifact.artifactType), but its spec promised \(stage.outputType) (a bug in the stage type)",
                               retryable: false)
        }
        return artifact
    }
}

/// Run ids and seeds.
public enum RunID {
    /// A new run id that sorts by time: `20261126T174512Z-3f9a2c`.
    public static func generate(date: Date = Date()) -> String {
        let stamp = UTCDate(date).compactTimestamp
        let suffix = String(UInt32.random(in: 0...0xFF_FFFF), radix: 16)
        return stamp + "-" + String(repeating: "0", count: 6 - suffix.count) + suffix
    }

    /// A random run seed, below 2^63 so it can be given back as `--seed`.
    public static func randomSeed() -> UInt64 {
        UInt64.random(in: 0...UInt64(Int.max))
    }

    /// Why a user-given run id cannot be used, or nil. Run ids go into paths and keys,
    /// so they may hold letters, digits and `. _ - : +` only (Airflow's run ids use `:`
    /// and `+`), and must not be `.` or `..`.
    public static func problem(with id: String) -> String? {
        if id.isEmpty { return "is empty" }
        if id.count > 200 { return "is longer than 200 characters" }
        if id == "." || id == ".." { return "would name a directory outside the output" }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:+")
        if let bad = id.first(where: { !allowed.contains($0) }) {
            let shown = bad.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
            return "contains '\(shown)'; use letters, digits and . _ - : + only"
        }
        return nil
    }
}
