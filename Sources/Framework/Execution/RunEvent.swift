import Foundation
public import Logging

/// Something that happened in a run, when it happened.
///
/// A run is one stream of these, in order: `runStarted`, then per stage `stageStarted`,
/// progress, retries, `artifactStored` and one of `stageSucceeded`, `stageFailed` or
/// `stageCancelled`, interleaved with the stages' `log` records, and `runFinished`
/// last. The console, the JSON log lines, swift-log handlers and the run report
/// (`RunReportBuilder`) are all built from this stream, so they cannot disagree.
public struct RunEvent: Sendable {
    public var time: Date
    public var kind: Kind

    public init(_ kind: Kind, time: Date = Date()) {
        self.kind = kind
        self.time = time
    }

    public enum Kind: Sendable {
        case runStarted(RunStarted)
        case stageStarted(StageStarted)
        case stageProgress(StageProgress)
        case stageSucceeded(StageSucceeded)
        /// An attempt failed and the stage will run again after `delay`.
        case stageRetrying(StageRetrying)
        /// The stage failed for good (after its retries, or storing its output failed).
        case stageFailed(StageFailed)
        /// The stage was stopped because the run was cancelled.
        case stageCancelled(StageCancelled)
        case artifactStored(ArtifactStored)
        /// A grid output's histogram and preview, gathered beside the run (reports).
        case artifactDigested(ArtifactDigested)
        case log(LogRecord)
        case runFinished(RunFinished)
    }

    public struct RunStarted: Sendable {
        public var runID: String
        public var seed: UInt64
        public var pipeline: String
        public var file: String
        /// The stages the run will try, in dependency order.
        public var stages: [PlannedStageSummary]
    }

    /// What the plan says of a stage before it runs.
    public struct PlannedStageSummary: Sendable {
        public var id: String
        public var type: String
        public var seed: UInt64?
        public var parameters: [String: JSONValue]
        /// What the stage's access check found (endpoint, region, bucket), if it made one.
        public var access: [String: JSONValue]?
        /// Its inputs: the producing stage of each port.
        public var inputs: [String: String]? = nil
    }

    public struct StageStarted: Sendable {
        public var stage: String
        public var type: String
        public var attempt: Int
    }

    public struct StageProgress: Sendable {
        public var stage: String
        /// From 0 to 1.
        public var fraction: Double
    }

    public struct StageSucceeded: Sendable {
        public var stage: String
        public var type: String
        /// 0 when the output was reused from the artifact store.
        public var attempts: Int
        public var startedAt: Date
        public var duration: Duration
        public var output: ArtifactSummary
        public var reused: Bool
        /// How its data flowed, when it streamed.
        public var flow: StageFlow? = nil
    }

    public struct StageRetrying: Sendable {
        public var stage: String
        public var type: String
        public var attempt: Int
        public var error: PipelineError
        public var delay: Duration
    }

    public struct StageFailed: Sendable {
        public var stage: String
        public var type: String
        public var attempts: Int
        public var startedAt: Date
        public var duration: Duration
        public var error: PipelineError
    }

    public struct StageCancelled: Sendable {
        public var stage: String
        public var type: String
        public var attempts: Int
        public var startedAt: Date
        public var duration: Duration
    }

    public struct ArtifactDigested: Sendable {
        public var stage: String
        public var digest: GridDigest
    }

    public struct ArtifactStored: Sendable {
        public var stage: String
        /// The store, as `--artifact-store` names it.
        public var store: String
        /// The stored file's name within the stage's directory or prefix.
        public var file: String
        public var byteCount: Int
        public var sha256: String
    }

    public struct LogRecord: Sendable {
        public var level: Logger.Level
        public var message: String
        /// The stage that logged it, or nil for the run's own messages.
        public var stage: String?
        public var metadata: [String: String]

        public init(level: Logger.Level, message: String, stage: String? = nil, metadata: [String: String] = [:]) {
            self.level = level
            self.message = message
            self.stage = stage
            self.metadata = metadata
        }
    }

    public struct RunFinished: Sendable {
        public var runID: String
        public var status: RunReport.Status
        public var duration: Duration
        /// The failure that ended the run.
        public var error: PipelineError?
        /// The stages that never started, in dependency order.
        public var notRun: [String]
        /// The plan's memory estimate and the process's measured peak.
        public var memory: RunReport.MemoryReport? = nil
    }
}

/// Receives a run's events as they happen. Called from the executor's tasks, possibly
/// concurrently: conforming types must be thread-safe and quick (progress events
/// come often).
public protocol RunEventHandler: Sendable {
    func handle(_ event: RunEvent)
}

/// Hands every event to each of several handlers, in order.
public struct RunEventFanOut: RunEventHandler {
    public var handlers: [any RunEventHandler]

    public init(_ handlers: [any RunEventHandler]) {
        self.handlers = handlers
    }

    public func handle(_ event: RunEvent) {
        for handler in handlers { handler.handle(event) }
    }
}

/// Drops every event.
public struct IgnoredEvents: RunEventHandler {
    public init() {}
    public func handle(_ event: RunEvent) {}
}

extension RunEvent {
    /// The event's name in JSON logs: `stage_started`, `artifact_stored`, ...
    public var name: String {
        switch kind {
        case .runStarted: "run_started"
        case .stageStarted: "stage_started"
        case .stageProgress: "stage_progress"
        case .stageSucceeded: "stage_finished"
        case .stageRetrying: "stage_retrying"
        case .stageFailed: "stage_failed"
        case .stageCancelled: "stage_cancelled"
        case .artifactStored: "artifact_stored"
        case .artifactDigested: "artifact_digested"
        case .log: "log"
        case .runFinished: "run_finished"
        }
    }

    /// How much the event matters, for filtering: failures are errors, retries
    /// warnings, store writes debug, progress trace.
    public var level: Logger.Level {
        switch kind {
        case .stageProgress: .trace
        case .artifactStored, .artifactDigested: .debug
        case .stageRetrying: .warning
        case .stageFailed: .error
        case .runFinished(let finished): finished.status == .succeeded ? .info : .error
        case .log(let record): record.level
        case .runStarted, .stageStarted, .stageSucceeded, .stageCancelled: .info
        }
    }

    /// The stage the event is about, if any.
    public var stage: String? {
        switch kind {
        case .runStarted, .runFinished: nil
        case .stageStarted(let event): event.stage
        case .stageProgress(let event): event.stage
        case .stageSucceeded(let event): event.stage
        case .stageRetrying(let event): event.stage
        case .stageFailed(let event): event.stage
        case .stageCancelled(let event): event.stage
        case .artifactStored(let event): event.stage
        case .artifactDigested(let event): event.stage
        case .log(let record): record.stage
        }
    }

    /// The event as one line for people, without a level prefix; nil for progress.
    public var message: String? {
        func stage(_ id: String, _ type: String) -> String { "\(FilePaths.printable(id)) (\(type))" }
        switch kind {
        case .runStarted(let event):
            return "run \(event.runID) of '\(event.pipeline)' (\(event.stages.count) stage\(event.stages.count == 1 ? "" : "s"), seed \(event.seed))"
        case .stageStarted(let event):
            return "▸ \(stage(event.stage, event.type)) started" + (event.attempt > 1 ? " (attempt \(event.attempt))" : "")
        case .stageProgress:
            return nil
        case .stageSucceeded(let event):
            if event.reused { return "✓ \(stage(event.stage, event.type)) reused its stored output: \(event.output.shortDescription)" }
            return "✓ \(stage(event.stage, event.type)) finished in \(event.duration.humanDescription): \(event.output.shortDescription)"
        case .stageRetrying(let event):
            return "\(stage(event.stage, event.type)) attempt \(event.attempt) failed: \(event.error.description); "
                + "retrying in \(event.delay.humanDescription)"
        case .stageFailed(let event):
            return "stage '\(FilePaths.printable(event.stage))' (\(event.type)) failed: \(event.error.description)"
        case .stageCancelled(let event):
            return "✗ \(stage(event.stage, event.type)) cancelled after \(event.duration.humanDescription)"
        case .artifactStored(let event):
            return "\(FilePaths.printable(event.stage)): stored its output in \(event.store) "
                + "(\(event.file), \(ByteCountFormatting.string(event.byteCount)))"
        case .artifactDigested(let event):
            return "\(FilePaths.printable(event.stage)): histogram and preview of its output gathered"
                + (event.digest.seconds.map { " in \(Duration.seconds($0).humanDescription)" } ?? "")
        case .log(let record):
            return record.stage.map { "\(FilePaths.printable($0)): " + record.message } ?? record.message
        case .runFinished(let event):
            let duration = event.duration.humanDescription
            switch event.status {
            case .succeeded:
                return "run \(event.runID) succeeded in \(duration)"
            case .failed, .cancelled:
                var line = "run \(event.runID) \(event.status == .failed ? "failed" : "cancelled") after \(duration)"
                if !event.notRun.isEmpty {
                    line += "; not run: " + event.notRun.map(FilePaths.printable).joined(separator: ", ")
                }
                return line
            }
        }
    }

    /// The event's fields for a JSON log line (besides `time`, `level`, `event` and
    /// `message`); error codes under `error_code`.
    public var fields: [String: JSONValue] {
        func error(_ error: PipelineError) -> [String: JSONValue] {
            ["error": .string(error.description), "error_code": .string(error.code.rawValue), "retryable": .boolean(error.isRetryable)]
        }
        let cancelled: [String: JSONValue] = ["error_code": .string(PipelineError.Code.cancelled.rawValue), "retryable": .boolean(false)]
        var fields: [String: JSONValue] = [:]
        if let stage { fields["stage"] = .string(stage) }
        switch kind {
        case .runStarted(let event):
            fields["run_id"] = .string(event.runID)
            fields["seed"] = .string(String(event.seed))
            fields["pipeline"] = .string(event.pipeline)
            fields["file"] = .string(event.file)
            fields["stages"] = .array(event.stages.map { .string($0.id) })
        case .stageStarted(let event):
            fields["type"] = .string(event.type)
            fields["attempt"] = .integer(event.attempt)
        case .stageProgress(let event):
            fields["fraction"] = .number(event.fraction)
        case .stageSucceeded(let event):
            fields["type"] = .string(event.type)
            fields["attempts"] = .integer(event.attempts)
            fields["duration_seconds"] = .number(event.duration.seconds)
            fields["output"] = .string(event.output.shortDescription)
            fields["reused"] = .boolean(event.reused)
            if let flow = event.flow {
                fields["streamed"] = .boolean(true)
                fields["bands_in"] = .integer(flow.bandsIn)
                fields["bands_out"] = .integer(flow.bandsOut)
                fields["busy_seconds"] = .number(flow.busySeconds)
                fields["waiting_for_input_seconds"] = .number(flow.waitingForInputSeconds)
                fields["waiting_for_output_seconds"] = .number(flow.waitingForOutputSeconds)
            }
        case .stageRetrying(let event):
            fields.merge(error(event.error)) { $1 }
            fields["type"] = .string(event.type)
            fields["attempt"] = .integer(event.attempt)
            fields["delay_seconds"] = .number(event.delay.seconds)
        case .stageFailed(let event):
            fields.merge(error(event.error)) { $1 }
            fields["type"] = .string(event.type)
            fields["attempts"] = .integer(event.attempts)
            fields["duration_seconds"] = .number(event.duration.seconds)
        case .stageCancelled(let event):
            fields["type"] = .string(event.type)
            fields["attempts"] = .integer(event.attempts)
            fields.merge(cancelled) { $1 }
        case .artifactDigested(let event):
            fields["seconds"] = event.digest.seconds.map { .number($0) } ?? .null
        case .artifactStored(let event):
            fields["store"] = .string(event.store)
            fields["file"] = .string(event.file)
            fields["byte_count"] = .integer(event.byteCount)
            fields["sha256"] = .string(event.sha256)
        case .log(let record):
            for (key, value) in record.metadata where fields[key] == nil { fields[key] = .string(value) }
        case .runFinished(let event):
            if let failure = event.error {
                fields.merge(error(failure)) { $1 }
            } else if event.status == .cancelled {
                fields.merge(cancelled) { $1 }
            }
            fields["run_id"] = .string(event.runID)
            fields["status"] = .string(event.status.rawValue)
            fields["duration_seconds"] = .number(event.duration.seconds)
            fields["not_run"] = .array(event.notRun.map { .string($0) })
        }
        return fields
    }
}

/// Passes a run's events to a swift-log `Logger`, for programs that embed the
/// framework and collect logs through swift-log: each event with a message becomes
/// one record at the event's level, with the event's fields as metadata.
public struct SwiftLogEventHandler: RunEventHandler {
    public var logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func handle(_ event: RunEvent) {
        guard let message = event.message, logger.logLevel <= event.level else { return }
        var metadata: Logger.Metadata = ["event": "\(event.name)"]
        for (key, value) in event.fields { metadata[key] = value.loggerMetadata }
        logger.log(level: event.level, "\(message)", metadata: metadata)
    }
}

extension JSONValue {
    var loggerMetadata: Logger.MetadataValue {
        switch self {
        case .string(let text): .string(text)
        case .array(let values): .array(values.map(\.loggerMetadata))
        case .object(let fields): .dictionary(fields.mapValues(\.loggerMetadata))
        case .integer(let value): .stringConvertible(value)
        case .number(let value): .stringConvertible(value)
        case .boolean(let value): .stringConvertible(value)
        case .null: .string("null")
        }
    }
}

/// The swift-log handler behind each stage's `context.logger`: its records become
/// `log` events of the run, with the stage's id.
struct EventLogHandler: LogHandler {
    let stage: String?
    let events: any RunEventHandler
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        events.handle(RunEvent(.log(RunEvent.LogRecord(level: event.level, message: "\(event.message)", stage: stage,
                                                        metadata: merged.mapValues { "\($0)" }))))
    }
}
