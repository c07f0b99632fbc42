import Foundation

/// What `--report` writes for a sweep: each item's values, status, duration and
/// outputs (every item's full run report would be as large as the sweep is long).
public struct SweepReport: Sendable, Codable {
    public var kind = "sweep"
    public var schemaVersion: Int = RunReport.currentSchemaVersion
    public var runID: String
    public var seed: UInt64
    public var pipeline: String
    public var file: String
    public var status: RunReport.Status
    public var startedAt: Date
    public var durationSeconds: Double
    public var succeeded: Int
    public var failed: Int
    /// Items cancelled while they ran (a signal, or `--fail-fast` after another failed).
    public var cancelled: Int
    /// Items not run: the sweep was cancelled, or stopped at a failure (`--fail-fast`).
    public var notRun: Int
    public var items: [Item]
    public var runnerVersion: String = RunnerVersion.current
    public var invocation: RunReport.Invocation?
    public var machine: RunReport.Machine? = .current
    /// The process's peak resident memory when the sweep ended: it follows `--jobs`,
    /// not the number of items.
    public var measuredPeakBytes: Double = PeakMemory.residentBytes

    public struct Item: Sendable, Codable, Hashable {
        public enum Status: String, Sendable, Codable {
            case succeeded, failed, cancelled
            case notRun = "not_run"
        }

        public var index: Int
        /// The item's matrix values, as written.
        public var values: [String: String]
        public var runID: String
        public var seed: UInt64
        public var status: Status
        public var durationSeconds: Double?
        /// Stages whose stored output was reused (a resumed sweep).
        public var reused: Int?
        public var outputs: [Output]
        public var error: String?
        public var errorCode: PipelineError.Code?
        /// The stage that failed.
        public var stage: String?

        /// A result of the item: the output of a stage no other stage consumes.
        public struct Output: Sendable, Codable, Hashable {
            public var stage: String
            public var type: String
            public var uri: String?
            public var byteCount: Int?
            public var sha256: String?

            enum CodingKeys: String, CodingKey {
                case stage, type, uri, sha256
                case byteCount = "byte_count"
            }
        }

        enum CodingKeys: String, CodingKey {
            case index, values, seed, status, reused, outputs, error, stage
            case runID = "run_id"
            case durationSeconds = "duration_seconds"
            case errorCode = "error_code"
        }
    }

    enum CodingKeys: String, CodingKey {
        case kind, seed, pipeline, file, status, succeeded, failed, cancelled, items, invocation, machine
        case schemaVersion = "schema_version"
        case runID = "run_id"
        case startedAt = "started_at"
        case durationSeconds = "duration_seconds"
        case notRun = "not_run"
        case runnerVersion = "runner_version"
        case measuredPeakBytes = "measured_peak_bytes"
    }

    /// Pretty, key-sorted JSON, dates in milliseconds, as `RunReport.jsonData`.
    public func jsonData() throws -> Data {
        try RunReport.encoder().encode(self)
    }

    /// Reads what `jsonData` wrote.
    public static func decode(_ data: Data) throws -> SweepReport {
        try RunReport.decoder().decode(SweepReport.self, from: data)
    }

    /// Whether `data` is a JSON object whose `kind` is "sweep" (a sweep's report, not a run's).
    public static func isSweep(_ data: Data) -> Bool {
        struct Kind: Decodable { var kind: String? }
        return (try? JSONDecoder().decode(Kind.self, from: data))?.kind == "sweep"
    }
}

/// How far a sweep is, for a progress line.
public struct SweepProgress: Sendable {
    public var total: Int
    public var succeeded: Int
    public var failed: Int
    /// Items cancelled, or stopped before they started, by `--fail-fast` or a signal.
    public var cancelled = 0
    public var elapsed: Duration

    public var done: Int { succeeded + failed + cancelled }
    public var itemsPerSecond: Double { elapsed > .zero ? Double(done) / elapsed.seconds : 0 }
}

/// Runs a sweep's items in one process. At most `options.jobs` items are in flight, so
/// memory follows `--jobs`, not the number of items; their executors share one set of
/// `StageSlots`, so at most `options.jobs` stages run at once across all of them. A
/// failing item leaves the others to finish, unless `failFast` (then nothing more
/// starts and the running items are cancelled).
public struct SweepRunner: Sendable {
    public let sweep: SweepPlan
    /// The sweep's options: its run id, seed, jobs, store. Each item runs with a copy
    /// (`prepare`).
    public let options: RunOptions
    public var failFast = false
    /// Makes an item's options from the sweep's: its run id, seed and event handler
    /// are set; this may add a store (and throw when it cannot).
    public var prepare: @Sendable (_ index: Int, _ plan: Plan, _ options: inout RunOptions) throws -> Void = { _, _, _ in }
    /// Called after each item, in the order they finish.
    public var itemFinished: @Sendable (SweepReport.Item, SweepProgress) -> Void = { _, _ in }

    public init(sweep: SweepPlan, options: RunOptions) {
        self.sweep = sweep
        self.options = options
    }

    /// Runs every item; cancellation of the calling task cancels the running items and
    /// starts no more.
    public func run() async -> SweepReport {
        let clock = ContinuousClock()
        let start = clock.now
        let started = Date()
        let slots = StageSlots(options.jobs)
        let total = sweep.count
        var items: [SweepReport.Item?] = Array(repeating: nil, count: total)
        var progress = SweepProgress(total: total, succeeded: 0, failed: 0, elapsed: .zero)
        await withTaskGroup(of: SweepReport.Item.self) { group in
            var next = 0, running = 0, stopped = false
            func launch() {
                while !stopped, !Task.isCancelled, running < options.jobs, next < total {
                    let index = next
                    next += 1
                    running += 1
                    group.addTask { await runItem(index, slots: slots) }
                }
            }
            launch()
            while let item = await group.next() {
                running -= 1
                items[item.index] = item
                switch item.status {
                case .succeeded: progress.succeeded += 1
                case .failed: progress.failed += 1
                case .cancelled, .notRun: progress.cancelled += 1
                }
                progress.elapsed = clock.now - start
                itemFinished(item, progress)
                if item.status != .succeeded && failFast && !stopped {
                    stopped = true
                    group.cancelAll()
                }
                launch()
            }
        }
        let reports = items.enumerated().map { index, item in
            item ?? SweepReport.Item(index: index, values: Self.values(of: sweep.matrix.items[index]),
                                     runID: sweep.runID(ofItem: index, in: options.runID), seed: seed(ofItem: index),
                                     status: .notRun, outputs: [])
        }
        let failed = reports.filter { $0.status == .failed }.count
        let cancelled = reports.filter { $0.status == .cancelled }.count
        let notRun = reports.filter { $0.status == .notRun }.count
        let succeeded = reports.count - failed - cancelled - notRun
        let status: RunReport.Status = succeeded == reports.count ? .succeeded : (Task.isCancelled ? .cancelled : .failed)
        return SweepReport(runID: options.runID, seed: options.seed, pipeline: sweep.first.name, file: sweep.first.file,
                           status: status, startedAt: started, durationSeconds: (clock.now - start).seconds,
                           succeeded: succeeded, failed: failed, cancelled: cancelled, notRun: notRun, items: reports)
    }

    /// The run seed of item `index`: its matrix `seed`, else the sweep's.
    public func seed(ofItem index: Int) -> UInt64 {
        sweep.matrix.items[index].seed ?? options.seed
    }

    static func values(of item: Matrix.Item) -> [String: String] {
        Dictionary(item.values.map { ($0.name, $0.node.scalar ?? "") }, uniquingKeysWith: { _, last in last })
    }

    private func runItem(_ index: Int, slots: StageSlots) async -> SweepReport.Item {
        var itemOptions = options
        itemOptions.runID = sweep.runID(ofItem: index, in: options.runID)
        itemOptions.seed = seed(ofItem: index)
        itemOptions.stageSlots = slots
        var item = SweepReport.Item(index: index, values: Self.values(of: sweep.matrix.items[index]), runID: itemOptions.runID,
                                    seed: itemOptions.seed, status: .failed, outputs: [])
        let plan: Plan
        do {
            plan = try sweep.plan(ofItem: index)
            // Off the cooperative threads: preparing may read and write a store (a file,
            // or requests to S3).
            let prepare = self.prepare, unprepared = itemOptions
            itemOptions = try await Blocking.run { () -> RunOptions in
                var options = unprepared
                try prepare(index, plan, &options)
                return options
            }
        } catch {
            let failure = PipelineError(error)
            item.error = failure.message
            item.errorCode = failure.code
            return item
        }
        item.seed = itemOptions.seed
        guard !Task.isCancelled else {
            item.status = .notRun
            return item
        }
        let outcome = await Executor(plan: plan, options: itemOptions).run()
        let report = outcome.report
        item.durationSeconds = report.durationSeconds
        item.status = switch report.status {
        case .succeeded: .succeeded
        case .failed: .failed
        case .cancelled: .cancelled
        }
        item.error = report.error
        item.errorCode = report.errorCode
        item.stage = report.stages.first { $0.status == .failed }?.id
        let reused = report.stages.filter { $0.reused == true }.count
        item.reused = reused > 0 ? reused : nil
        item.outputs = outcome.outputs.sorted { $0.key < $1.key }.map { stage, artifact in
            let summary = report.stages.first { $0.id == stage }?.output ?? artifact.briefSummary()
            return SweepReport.Item.Output(stage: stage, type: summary.type, uri: summary.uri, byteCount: summary.byteCount,
                                           sha256: summary.sha256)
        }
        return item
    }
}
