import Foundation

/// Builds a run's report by folding its events: the report says what the event
/// stream said, nothing more. The executor feeds one to every run; a program can
/// feed another the same events (e.g. replayed from JSON logs).
public final class RunReportBuilder: RunEventHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var report: RunReport?
    private var index: [String: Int] = [:]
    /// Each stage's log: its first lines, and a ring of the latest.
    private var logs: [String: LogTail] = [:]

    private struct LogTail {
        var head: [StageReport.LogLine] = []
        var ring: [StageReport.LogLine] = []
        var next = 0
        var omitted = 0

        /// O(1) a line: the first `kept / 2` lines stay, then the latest `kept / 2` turn over.
        mutating func add(_ line: StageReport.LogLine) {
            let half = StageReport.LogLine.kept / 2
            if head.count < half {
                head.append(line)
            } else if ring.count < half {
                ring.append(line)
            } else {
                ring[next] = line
                next = (next + 1) % half
                omitted += 1
            }
        }

        var lines: [StageReport.LogLine] { head + ring[next...] + ring[..<next] }
    }

    public init() {}

    /// The report as the events so far describe it; nil before `runStarted`.
    public var current: RunReport? {
        lock.withLock {
            guard var report else { return nil }
            for (id, tail) in logs {
                guard let position = index[id] else { continue }
                report.stages[position].logs = tail.lines
                report.stages[position].logsOmitted = tail.omitted > 0 ? tail.omitted : nil
            }
            return report
        }
    }

    public func handle(_ event: RunEvent) {
        lock.withLock { fold(event) }
    }

    private func fold(_ event: RunEvent) {
        if case .runStarted(let started) = event.kind {
            report = RunReport(
                runID: started.runID, seed: started.seed, pipeline: started.pipeline, file: started.file, status: .cancelled,
                startedAt: event.time, durationSeconds: 0,
                stages: started.stages.map {
                    StageReport(id: $0.id, type: $0.type, status: .skipped, attempts: 0, seed: $0.seed, parameters: $0.parameters,
                                access: $0.access, inputs: $0.inputs)
                })
            report!.machine = .current
            logs = [:]
            index = Dictionary(started.stages.enumerated().map { ($1.id, $0) }) { first, _ in first }
            return
        }
        guard report != nil else { return }
        func update(_ id: String, _ change: (inout StageReport) -> Void) {
            guard let position = index[id] else { return }
            change(&report!.stages[position])
        }
        /// Ends the stage's open attempt span at `end` (default: the event's time).
        func closeSpan(_ stage: inout StageReport, error: String?, end: Date? = nil) {
            guard var spans = stage.attemptSpans, var last = spans.popLast(), last.durationSeconds == nil else { return }
            last.durationSeconds = max(0, (end ?? event.time).timeIntervalSince(last.startedAt))
            last.error = error
            spans.append(last)
            stage.attemptSpans = spans
        }
        func ended(_ id: String, _ status: StageReport.Status, _ attempts: Int, _ startedAt: Date, _ duration: Duration,
                   error: String? = nil, _ change: (inout StageReport) -> Void) {
            update(id) { stage in
                stage.status = status
                stage.attempts = attempts
                stage.startedAt = startedAt
                stage.durationSeconds = duration.seconds
                // The last attempt ends where the stage's own time says it ended.
                closeSpan(&stage, error: error, end: startedAt.addingTimeInterval(duration.seconds))
                change(&stage)
            }
        }
        switch event.kind {
        case .runStarted, .stageProgress, .artifactStored:
            break
        case .artifactDigested(let digested):
            update(digested.stage) { $0.output?.digest = digested.digest }
        case .log(let record):
            // A long log keeps its beginning and its end (see `LogTail`).
            guard let id = record.stage, index[id] != nil else { break }
            logs[id, default: LogTail()].add(StageReport.LogLine(time: event.time, level: record.level.rawValue, message: record.message))
        case .stageStarted(let started):
            update(started.stage) { stage in
                if stage.startedAt == nil { stage.startedAt = event.time }
                stage.attempts = started.attempt
                stage.attemptSpans = (stage.attemptSpans ?? []) + [StageReport.AttemptSpan(startedAt: event.time)]
            }
        case .stageRetrying(let retrying):
            update(retrying.stage) { stage in
                stage.attempts = retrying.attempt
                closeSpan(&stage, error: retrying.error.description)
            }
        case .stageSucceeded(let finished):
            ended(finished.stage, .succeeded, finished.attempts, finished.startedAt, finished.duration) { stage in
                stage.output = finished.output
                stage.reused = finished.reused ? true : nil
                stage.flow = finished.flow
            }
        case .stageFailed(let failed):
            ended(failed.stage, .failed, failed.attempts, failed.startedAt, failed.duration, error: failed.error.description) { stage in
                stage.error = failed.error.description
                stage.errorCode = failed.error.code
                stage.retryable = failed.error.isRetryable
            }
        case .stageCancelled(let cancelled):
            ended(cancelled.stage, .cancelled, cancelled.attempts, cancelled.startedAt, cancelled.duration) { stage in
                stage.errorCode = .cancelled
                stage.retryable = false
            }
        case .runFinished(let finished):
            report!.status = finished.status
            report!.durationSeconds = finished.duration.seconds
            report!.memory = finished.memory
            report!.error = finished.error?.summary ?? (finished.status == .cancelled ? "run cancelled" : nil)
            report!.errorCode = finished.error?.code ?? (finished.status == .cancelled ? .cancelled : nil)
            report!.retryable = finished.error?.isRetryable ?? (finished.status == .cancelled ? false : nil)
        }
    }
}
