import Foundation
public import Logging

/// How to run a plan.
public struct RunOptions: Sendable {
    public var runID: String
    /// The run seed; stages without an explicit `seed` derive theirs from it.
    public var seed: UInt64
    /// How many stages may run at once, and how many threads a stage may use.
    public var jobs: Int
    /// Where the run's events go (console, JSON logs, swift-log); the executor also
    /// folds them into the run's report.
    public var events: any RunEventHandler
    /// The lowest level of the stages' log records that become `log` events.
    public var logLevel: Logger.Level
    /// The run's start, used for `{date}`.
    public var startDate: Date
    /// Where every stage's output is persisted, if anywhere.
    public var store: (any ArtifactStore)?
    /// Reuse stored outputs whose fingerprint (stage type, parameters, seed, inputs)
    /// is unchanged instead of running their stages again.
    public var reuse: Bool = false
    /// Run each stage once, ignoring its `retries`: for a scheduler that retries tasks
    /// itself (the Airflow export), so that a failing stage is not retried twice over.
    public var stageRetries: Bool = true
    /// Where stages make temporary files (`StageContext.temporaryDirectory`).
    public var temporaryDirectory: String = StageContext.defaultTemporaryDirectory
    /// What each stage's access check found (`Plan.checkAccess`, by stage id): the S3
    /// endpoint, region and bucket a sink will use, for the run's events and report.
    public var accessFacts: [String: [String: JSONValue]] = [:]
    /// Stream data between streaming stages a band at a time (`StreamingLayout`);
    /// false holds every artifact whole (`--no-stream`). A run with an artifact store
    /// streams too, each streamed output written to the store as it passes; a run that
    /// reuses stored outputs (`reuse`, `--resume`) holds every artifact whole, since
    /// each stage may be reused or run on its own.
    public var streaming: Bool = true
    /// Gather each whole grid's histogram and preview for the report (`--report`,
    /// `--report-html`).
    public var digests: Bool = false
    /// Rows per band of streamed grids; nil lets each segment choose (about 256 KiB).
    public var bandRows: Int?
    /// Data estimated below this many bytes is held whole (`StreamingLayout`); 0
    /// streams every edge that can stream.
    public var streamingMinimumBytes: Double = StreamingLayout.defaultMinimumBytes
    /// Slots shared with other runs in the process (a sweep's items): each stage, or
    /// streamed segment, holds one while it runs, on top of this run's own `jobs`.
    public var stageSlots: StageSlots?

    /// - Parameter events: By default, swift-log records through a `Logger` labelled
    ///   `pipeline` (whatever `LoggingSystem` the program bootstrapped).
    public init(
        runID: String = RunID.generate(), seed: UInt64 = RunID.randomSeed(),
        jobs: Int = ProcessInfo.processInfo.activeProcessorCount,
        events: any RunEventHandler = SwiftLogEventHandler(logger: Logger(label: "pipeline")), logLevel: Logger.Level = .info,
        startDate: Date = Date()
    ) {
        self.runID = runID
        self.seed = seed
        self.jobs = max(1, jobs)
        self.events = events
        self.logLevel = logLevel
        self.startDate = startDate
    }
}

/// The result of a run.
public struct RunOutcome: Sendable {
    /// The run's events folded into a report.
    public var report: RunReport
    /// Outputs of the stages no other stage consumes: the pipeline's results.
    public var outputs: [String: any Artifact]
    /// The failure that ended the run, if any, with its stage.
    public var failure: PipelineError?

    public var succeeded: Bool { report.status == .succeeded }
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
    /// Byte grids already digested in this run (`options.digests`).
    let digestCache = GridDigestCache()
    /// Digests being gathered beside the run, each on a thread of its own.
    let digestTasks = DigestTasks()

    final class DigestTasks: @unchecked Sendable {
        private let lock = NSLock()
        private var tasks: [Task<RunEvent.ArtifactDigested?, Never>] = []

        func add(_ task: Task<RunEvent.ArtifactDigested?, Never>) {
            lock.withLock { tasks.append(task) }
        }

        func takeAll() -> [Task<RunEvent.ArtifactDigested?, Never>] {
            lock.withLock { defer { tasks = [] }; return tasks }
        }
    }

    /// Waits for the digests gathered beside the run and reports each: the run ends
    /// when its report has them.
    func finishDigests(events: Events) async {
        for task in digestTasks.takeAll() {
            if let digested = await task.value { events.emit(.artifactDigested(digested)) }
        }
    }

    public init(plan: Plan, options: RunOptions) {
        self.plan = plan
        self.options = options
    }

    struct Completion: Sendable {
        var id: String
        var result: Result<any Artifact, any Error>
        var attempts: Int
        var startedAt: Date
        var duration: Duration
        var reused = false
        /// The output's full summary (a scan of a grid, a hash of bytes), computed in
        /// the stage's own task so that it overlaps other stages' work.
        var summary: ArtifactSummary?
        /// How its data flowed, when it streamed.
        var flow: StageFlow?
        /// Cancelled while it waited for one of the sweep's slots: it never started.
        var notStarted = false
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
        manifest(for: stage, type: artifact.artifactType, fingerprints: fingerprints)
    }

    func manifest(for stage: PlannedStage, type: ArtifactType, fingerprints: [String: String]) -> ArtifactManifest {
        let parameters = Self.canonicalParameters(stage)
        return ArtifactManifest(
            artifactType: type.name, file: "", byteCount: 0, sha256: "", stageType: stage.typeName,
            stageVersion: stage.type.spec.version, parameters: stage.parameters.values.mapValues(\.jsonValue), parametersHash: SHA256Digest.hex(of: Array(parameters.utf8)),
            inputFingerprints: stage.inputs.mapValues { fingerprints[$0] ?? "" }, fingerprint: fingerprints[stage.id] ?? "")
    }

    /// The run's events go to the report builder and to `options.events`.
    struct Events: RunEventHandler, Sendable {
        let builder = RunReportBuilder()
        let handler: any RunEventHandler

        func emit(_ kind: RunEvent.Kind) {
            handle(RunEvent(kind))
        }

        func handle(_ event: RunEvent) {
            builder.handle(event)
            handler.handle(event)
        }
    }

    private func runStarted(_ stages: [PlannedStage], events: Events) {
        events.emit(.runStarted(RunEvent.RunStarted(
            runID: options.runID, seed: options.seed, pipeline: plan.name, file: plan.file,
            stages: stages.map { stage in
                RunEvent.PlannedStageSummary(id: stage.id, type: stage.typeName,
                                             seed: stage.type.spec.seedParameter != nil ? seed(for: stage) : nil,
                                             parameters: stage.parameters.values.mapValues(\.jsonValue),
                                             access: options.accessFacts[stage.id],
                                             inputs: stage.inputs.isEmpty ? nil : stage.inputs)
            })))
    }

    /// Emits what a stage's completion says: succeeded (with the full summary of its
    /// output), failed for good, or cancelled. Returns the failure, if any.
    private func finished(_ stage: PlannedStage, _ completion: Completion, events: Events) -> PipelineError? {
        switch completion.result {
        case .success(let artifact):
            events.emit(.stageSucceeded(RunEvent.StageSucceeded(
                stage: stage.id, type: stage.typeName, attempts: completion.attempts, startedAt: completion.startedAt,
                duration: completion.duration, output: completion.summary ?? artifact.summary(), reused: completion.reused,
                flow: completion.flow)))
            return nil
        case .failure(let error) where error is CancellationError:
            events.emit(.stageCancelled(RunEvent.StageCancelled(
                stage: stage.id, type: stage.typeName, attempts: completion.attempts, startedAt: completion.startedAt,
                duration: completion.duration)))
            return nil
        case .failure(let error):
            let failure = PipelineError(error, stage: stage.id, stageType: stage.typeName)
            events.emit(.stageFailed(RunEvent.StageFailed(
                stage: stage.id, type: stage.typeName, attempts: completion.attempts, startedAt: completion.startedAt,
                duration: completion.duration, error: failure)))
            return failure
        }
    }

    private func runFinished(failure: PipelineError?, allSucceeded: Bool, notRun: [String], duration: Duration,
                             events: Events, layout: StreamingLayout? = nil) -> RunReport {
        let status: RunReport.Status = failure != nil ? .failed : (allSucceeded ? .succeeded : .cancelled)
        let layout = layout ?? StreamingLayout.whole(plan, bandRows: options.bandRows, jobs: options.jobs)
        let memory = RunReport.MemoryReport(estimatedPeakBytes: layout.peakBytes, measuredPeakBytes: PeakMemory.residentBytes,
                                            streamed: layout.segments, materialised: layout.notes.isEmpty ? nil : layout.notes)
        events.emit(.runFinished(RunEvent.RunFinished(runID: options.runID, status: status, duration: duration, error: failure,
                                                      notRun: notRun, memory: memory)))
        // The builder has seen runStarted, so it has a report.
        return events.builder.current!
    }

    /// Which edges stream and how much memory the run needs: streaming unless
    /// `options.streaming` is off or the run reuses stored outputs (`--resume`: whole
    /// mode, where each stage is reused or run on its own). With a store, streamed
    /// outputs are written to it as they pass (`Executor+StoreTee`).
    public var layout: StreamingLayout {
        guard options.streaming && !(options.store != nil && options.reuse) else {
            return StreamingLayout.whole(plan, bandRows: options.bandRows, jobs: options.jobs)
        }
        var layout = StreamingLayout.layout(plan, storing: options.store != nil, bandRows: options.bandRows, jobs: options.jobs,
                                            minimumBytes: options.streamingMinimumBytes)
        if let store = options.store { layout.addStoreWrites(store) }
        return layout
    }

    public func run() async -> RunOutcome {
        let clock = ContinuousClock()
        let runStart = clock.now
        let events = Events(handler: options.events)
        runStarted(plan.stages, events: events)

        let stagesByID = Dictionary(uniqueKeysWithValues: plan.stages.map { ($0.id, $0) })
        var consumers: [String: Int] = [:]
        for stage in plan.stages {
            for producer in stage.inputs.values { consumers[producer, default: 0] += 1 }
        }
        // What runs as one: a streamed segment, or a single stage.
        let layout = self.layout
        var units: [[String]] = []
        for stage in plan.stages {
            if let segment = layout.segment(of: stage.id) {
                if segment[0] == stage.id { units.append(segment) }
            } else {
                units.append([stage.id])
            }
        }
        var waitingOn: [Set<String>] = units.map { members in
            Set(members.flatMap { stagesByID[$0]!.dependencies }).subtracting(members)
        }
        // Who waits for each stage, so a completion visits only its dependents.
        var dependents: [String: [Int]] = [:]
        for (unit, producers) in waitingOn.enumerated() {
            for producer in producers { dependents[producer, default: []].append(unit) }
        }
        var available: [String: any Artifact] = [:]
        var outputs: [String: any Artifact] = [:]
        var failure: PipelineError?
        var succeeded = 0
        var ready = units.indices.filter { waitingOn[$0].isEmpty }
        var nextReady = 0  // ready[..<nextReady] have been launched
        // Fingerprints only matter to a store; a run without one skips hashing parameters.
        let fingerprints = options.store == nil ? [:] : self.fingerprints

        var unstarted: Set<String> = []
        await withTaskGroup(of: [Completion].self) { group in
            var running = 0
            func launch() {
                while failure == nil, !Task.isCancelled, running < options.jobs, nextReady < ready.count {
                    let members = units[ready[nextReady]].map { stagesByID[$0]! }
                    nextReady += 1
                    var inputs: [String: any Artifact] = [:]
                    for (port, producer) in members[0].inputs { inputs[port] = available[producer] }
                    let stageInputs = StageInputs(inputs)
                    running += 1
                    let slots = options.stageSlots
                    if members.count > 1 {
                        group.addTask {
                            await Self.holding(slots, members) {
                                await self.executeSegment(members, inputs: stageInputs, layout: layout, fingerprints: fingerprints, events: events)
                            }
                        }
                    } else {
                        group.addTask {
                            await Self.holding(slots, members) { [await self.execute(members[0], inputs: stageInputs, fingerprints: fingerprints, events: events)] }
                        }
                    }
                }
            }
            launch()
            while let completions = await group.next() {
                running -= 1
                for completion in completions {
                    if completion.notStarted {
                        unstarted.insert(completion.id)
                        continue
                    }
                    let stage = stagesByID[completion.id]!
                    // The stage's end is told before anything that waited for it starts,
                    // so the events are in dependency order.
                    if let error = finished(stage, completion, events: events), failure == nil {
                        failure = error
                        group.cancelAll()
                    }
                    if case .success(let artifact) = completion.result {
                        succeeded += 1
                        if consumers[stage.id, default: 0] > 0 {
                            available[stage.id] = artifact
                        } else {
                            outputs[stage.id] = artifact
                        }
                        for unit in dependents[stage.id] ?? [] where waitingOn[unit].remove(stage.id) != nil {
                            if waitingOn[unit].isEmpty { ready.append(unit) }
                        }
                    }
                    // Drop each input once its last consumer is done.
                    for producer in stage.inputs.values {
                        consumers[producer, default: 1] -= 1
                        if consumers[producer] == 0 { available[producer] = nil }
                    }
                }
                launch()
            }
        }
        available.removeAll()
        await finishDigests(events: events)

        let launched = Set(ready[..<nextReady].flatMap { units[$0] }).subtracting(unstarted)
        let report = runFinished(failure: failure, allSucceeded: succeeded == plan.stages.count,
                                 notRun: plan.stages.map(\.id).filter { !launched.contains($0) },
                                 duration: clock.now - runStart, events: events, layout: layout)
        return RunOutcome(report: report, outputs: report.status == .succeeded ? outputs : [:], failure: failure)
    }

    /// `body`, holding one of `slots` when there are shared slots. When the task is
    /// cancelled while it waits (fail-fast, a signal), `body` does not run: its stages
    /// come back `notStarted`, and the report counts them as not run.
    private static func holding(_ slots: StageSlots?, _ members: [PlannedStage], _ body: () async -> [Completion]) async -> [Completion] {
        guard let slots else { return await body() }
        guard await slots.acquire() else {
            return members.map { Completion(id: $0.id, result: .failure(CancellationError()), attempts: 0, startedAt: Date(),
                                             duration: .zero, notStarted: true) }
        }
        defer { slots.release() }
        return await body()
    }

    /// Runs one stage alone (`--only`): its inputs are read from the store, where the
    /// same plan must have put them (their fingerprints must match), and its output
    /// goes to the store.
    public func runOnly(_ id: String) async -> RunOutcome {
        let clock = ContinuousClock()
        let runStart = clock.now
        let started = Date()
        let events = Events(handler: options.events)
        guard let stage = plan.stage(id) else {
            // The CLI checks the id first; a program that embeds the executor gets a report too.
            runStarted([], events: events)
            let failure = PipelineError("no stage '\(FilePaths.printable(id))' in \(plan.file)", retryable: false, code: .inputNotStored)
            return RunOutcome(report: runFinished(failure: failure, allSucceeded: false, notRun: [], duration: clock.now - runStart,
                                                  events: events),
                              outputs: [:], failure: failure)
        }
        runStarted([stage], events: events)
        func failed(_ message: String, code: PipelineError.Code = .inputNotStored) -> RunOutcome {
            let completion = Completion(id: id, result: .failure(PipelineError(message, retryable: false, code: code)), attempts: 0,
                                        startedAt: started, duration: clock.now - runStart)
            let failure = finished(stage, completion, events: events)
            return RunOutcome(report: runFinished(failure: failure, allSucceeded: false, notRun: [], duration: clock.now - runStart,
                                                  events: events),
                              outputs: [:], failure: failure)
        }
        guard let store = options.store else { return failed("--only needs an artifact store for its inputs and output") }
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
                return failed("cannot read the output of stage '\(producer)': \(ErrorDescription.readable(error))",
                              code: PipelineError(error).code)
            }
        }
        let completion = await execute(stage, inputs: StageInputs(inputs), fingerprints: fingerprints, events: events)
        let failure = finished(stage, completion, events: events)
        var outputs: [String: any Artifact] = [:]
        if case .success(let artifact) = completion.result { outputs[id] = artifact }
        let succeeded = failure == nil && !outputs.isEmpty
        await finishDigests(events: events)
        let report = runFinished(failure: failure, allSucceeded: succeeded, notRun: [], duration: clock.now - runStart, events: events)
        return RunOutcome(report: report, outputs: succeeded ? outputs : [:], failure: failure)
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
    private func execute(_ stage: PlannedStage, inputs: StageInputs, fingerprints: [String: String], events: Events) async -> Completion {
        var completion = await executeUnsummarized(stage, inputs: inputs, fingerprints: fingerprints, events: events)
        if case .success(let artifact) = completion.result {
            completion.summary = artifact.summary()
            digest(artifact, of: stage.id)
        }
        return completion
    }

    /// Gathers the report's digest of `artifact`, when it is a grid and the run
    /// gathers digests, beside the run (the grid is immutable, and kept alive by the
    /// task); `finishDigests` reports it. On the pool when the grid's values were
    /// counted as they were written (the work is then the preview's, a fraction of a
    /// millisecond, less than a thread costs to start), else on a thread of its own at
    /// the lowest priority (nice 19), so that the stages' threads come first and the
    /// count takes the time they leave.
    func digest(_ artifact: any Artifact, of stage: String) {
        guard options.digests, let grid = artifact.asGrid else { return }
        let cache = digestCache
        let bounded = GridDigestAccumulator.isBounded(grid)
        digestTasks.add(Task.detached(priority: .utility) {
            @Sendable func timed() -> GridDigest? {
                let clock = ContinuousClock(), start = clock.now
                var digest = GridDigestAccumulator.digest(grid, cache: cache)
                digest?.seconds = (clock.now - start).seconds
                return digest
            }
            let digest = bounded ? timed() : try? await Blocking.run { () -> GridDigest? in
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)  // on Linux, this thread
                return timed()
            }
            return digest.map { RunEvent.ArtifactDigested(stage: stage, digest: $0) }
        })
    }

    /// Reports a streamed grid's digest, gathered from its bands, with the others.
    func digest(_ streamed: StreamedGridDigest, of stage: String) {
        digestTasks.add(Task.detached(priority: .utility) {
            streamed.finish().map { RunEvent.ArtifactDigested(stage: stage, digest: $0) }
        })
    }

    private struct NothingToReuse: Error {}

    private func executeUnsummarized(_ stage: PlannedStage, inputs: StageInputs, fingerprints: [String: String],
                                     events: Events) async -> Completion {
        let clock = ContinuousClock()
        let startedAt = Date()
        let start = clock.now
        let runID = options.runID
        func log(_ level: Logger.Level, _ message: String) {
            events.emit(.log(RunEvent.LogRecord(level: level, message: message, stage: stage.id)))
        }
        if options.reuse, let store = options.store {
            do {
                // Store I/O blocks: on a thread of its own, off the cooperative pool.
                // No manifest: nothing stored yet. Another fingerprint: made differently.
                guard let stored = try await Blocking.run({ try store.manifest(runID: runID, stage: stage.id) }),
                      stored.fingerprint == fingerprints[stage.id] else { throw NothingToReuse() }
                if let artifact = try await Blocking.run({ try store.load(runID: runID, stage: stage.id, codecs: plan.codecs)?.artifact }) {
                    // A sink's output stands for a file or object elsewhere: reuse it only
                    // if that is still there as recorded.
                    switch try await stage.type.verifyStored(artifact, parameters: stage.parameters) {
                    case .nothingToVerify, .verified:
                        return Completion(id: stage.id, result: .success(artifact), attempts: 0, startedAt: startedAt,
                                          duration: clock.now - start, reused: true)
                    case .changed(let reason):
                        log(.warning, "stored output cannot be reused (\(reason)); running the stage again")
                    }
                }
            } catch is NothingToReuse {
            } catch {
                // A damaged manifest or artifact: said, then computed again.
                log(.warning, "stored output cannot be reused (\(ErrorDescription.readable(error))); running the stage again")
            }
        }
        var completion = await attempt(stage, inputs: inputs, startedAt: startedAt, start: start, events: events)
        if case .success(let artifact) = completion.result, let store = options.store,
           let failure = await storeOutput(stage, artifact, in: store, fingerprints: fingerprints, events: events) {
            completion.result = .failure(failure)
        }
        return completion
    }

    /// Saves `artifact`, `stage`'s whole output, in `store` and says so
    /// (`artifactStored`); the failure that replaces the stage's success if that fails.
    func storeOutput(_ stage: PlannedStage, _ artifact: any Artifact, in store: any ArtifactStore, fingerprints: [String: String],
                     events: Events) async -> (any Error)? {
        let manifest = manifest(for: stage, artifact, fingerprints: fingerprints)
        let runID = options.runID
        do {
            // Cancellable: a run stopped by a signal does not wait for a large write.
            let saved = try await Blocking.run { cancel in
                try store.save(artifact, manifest: manifest, runID: runID, stage: stage.id, codecs: plan.codecs, cancel: cancel)
            }
            emitStored(stage, saved, in: store, events: events)
            return nil
        } catch {
            return storeFailure(error, in: store)
        }
    }

    func emitStored(_ stage: PlannedStage, _ saved: ArtifactManifest, in store: any ArtifactStore, events: Events) {
        events.emit(.artifactStored(RunEvent.ArtifactStored(stage: stage.id, store: store.description, file: saved.file,
                                                           byteCount: saved.byteCount, sha256: saved.sha256)))
    }

    /// What a failed store write makes of a stage: cancelled when the run is, else
    /// `store_io`, retryable as its cause.
    func storeFailure(_ error: any Error, in store: any ArtifactStore) -> any Error {
        if Task.isCancelled { return CancellationError() }
        let cause = PipelineError(error)
        return PipelineError("cannot store the output in \(store): \(cause.message)", retryable: cause.isRetryable, code: .storeIO)
    }

    /// The context of one attempt of `stage`: its seed, templates, logger and progress.
    func context(for stage: PlannedStage, attempt: Int, events: Events) -> StageContext {
        var values = templateValues
        values["stage"] = stage.id
        // The report keeps a stage's lines from info up, whatever the console shows
        // (the console filters by its own level).
        let level = min(options.logLevel, .info)
        var logger = Logger(label: "pipeline.stage") { _ in
            EventLogHandler(stage: stage.id, events: events, logLevel: level)
        }
        logger.logLevel = level
        let id = stage.id
        return StageContext(
            stageID: stage.id, stageType: stage.typeName, runID: options.runID, seed: seed(for: stage), attempt: attempt,
            concurrency: options.jobs, logger: logger, templateValues: values, temporaryDirectory: options.temporaryDirectory,
            pipelineDirectory: StageContext.directory(ofPipelineFile: plan.file), gathersDigests: options.digests,
            progress: { fraction in events.emit(.stageProgress(RunEvent.StageProgress(stage: id, fraction: fraction))) })
    }

    /// What an attempt's error means for `stage`: its failure, and whether to run it
    /// again (then the wait before the retry is over). Cancelled means the run was: a
    /// stage that throws CancellationError on its own has failed, and says so. A
    /// failure is retried when it is retryable, `retryable` allows it, and the stage's
    /// `retries` are not used up.
    func failedAttempt(_ error: any Error, of stage: PlannedStage, attempt: Int, retryable: Bool = true,
                       events: Events) async -> (failure: PipelineError, retry: Bool) {
        let cancelled = Task.isCancelled
        let cause: any Error = error is CancellationError && !cancelled
            ? PipelineError("stopped with a cancellation, though the run was not cancelled", retryable: false, code: .stageFailed)
            : error
        let failure = PipelineError(cause, stage: stage.id, stageType: stage.typeName)
        guard !cancelled && retryable && failure.isRetryable && options.stageRetries && attempt <= stage.retry.count else {
            return (failure, false)
        }
        let wait = stage.retry.delay(beforeRetry: attempt)
        events.emit(.stageRetrying(RunEvent.StageRetrying(stage: stage.id, type: stage.typeName, attempt: attempt, error: failure, delay: wait)))
        do {
            try await Task.sleep(for: wait)
            return (failure, true)
        } catch {
            return (failure, false)
        }
    }

    private func attempt(_ stage: PlannedStage, inputs: StageInputs, startedAt: Date, start: ContinuousClock.Instant,
                         events: Events) async -> Completion {
        let clock = ContinuousClock()
        var attempt = 0
        while true {
            attempt += 1
            let context = context(for: stage, attempt: attempt, events: events)
            events.emit(.stageStarted(RunEvent.StageStarted(stage: stage.id, type: stage.typeName, attempt: attempt)))
            do {
                let artifact = try await runAttempt(stage, inputs: inputs, context: context)
                return Completion(id: stage.id, result: .success(artifact), attempts: attempt, startedAt: startedAt, duration: clock.now - start)
            } catch {
                let (failure, retry) = await failedAttempt(error, of: stage, attempt: attempt, events: events)
                if retry { continue }
                let result: any Error = Task.isCancelled ? CancellationError() : failure
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
            throw PipelineError("returned \(artifact.artifactType), but its spec promised \(stage.outputType) (a bug in the stage type)",
                                retryable: false, code: .stageBug)
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
    /// so they may hold letters, digits and `. _ - : + ~` only (what Airflow allows in
    /// its run ids by default; its own use `:` and `+`), and must not be `.` or `..`.
    public static func problem(with id: String) -> String? {
        if id.isEmpty { return "is empty" }
        if id.count > 200 { return "is longer than 200 characters" }
        if id == "." || id == ".." { return "would name a directory outside the output" }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:+~")
        if let bad = id.first(where: { !allowed.contains($0) }) {
            let shown = bad.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
            return "contains '\(shown)'; use letters, digits and . _ - : + ~ only"
        }
        return nil
    }
}
