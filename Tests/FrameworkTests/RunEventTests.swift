import Foundation
import Logging
import Testing
@testable import Framework

/// Keeps every event of a run, in order.
final class EventRecorder: RunEventHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var events: [RunEvent] = []

    func handle(_ event: RunEvent) {
        lock.withLock { events.append(event) }
    }

    var all: [RunEvent] { lock.withLock { events } }
    /// Names, without progress.
    var names: [String] { all.map(\.name).filter { $0 != "stage_progress" } }
}

/// Logs a line through the stage's logger, then fails with an error of its own code.
private struct ChattyStage: Stage {
    static let spec = StageSpec(
        name: "chatty", summary: "Logs, then fails with a coded error.",
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")], output: .fixed(.grid(.uint8)))

    struct QuotaError: CodedError, CustomStringConvertible {
        var errorCode: PipelineError.Code { "quota_exceeded" }
        var isRetryable: Bool { false }
        var description: String { "the quota is used up" }
    }

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        context.logger.info("checking the quota", metadata: ["quota": "7"])
        context.reportProgress(0.5)
        throw QuotaError()
    }
}

/// A swift-log handler that keeps records.
private final class RecordingLogHandler: LogHandler, @unchecked Sendable {
    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var records: [(level: Logger.Level, message: String, metadata: Logger.Metadata)] = []
    }
    let box: Box
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    init(box: Box) { self.box = box }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        box.lock.withLock { box.records.append((event.level, "\(event.message)", event.metadata ?? [:])) }
    }
}

@Suite struct RunEventTests {
    let registry = try! testRegistry.adding([StageType(ChattyStage.self), StageType(QuitterStage.self)])

    func run(_ yaml: String, events: any RunEventHandler) async throws -> RunOutcome {
        let plan = try planYAML(yaml, registry: registry).get()
        return await Executor(plan: plan, options: RunOptions(runID: "events-" + UUID().uuidString, seed: 1, jobs: 1, events: events)).run()
    }

    @Test func aRunIsOneOrderedStreamAndTheReportIsItsFold() async throws {
        let key = "events-" + UUID().uuidString
        let recorder = EventRecorder()
        let outcome = try await run("""
            stages:
              src: {type: constant}
              flaky: {type: pass, input: src, with: {failures: 1, key: \(key)}, retries: {count: 2, delay: 1ms}}
              talk: {type: chatty, input: flaky}
              after: {type: pass, input: talk}
            """, events: recorder)
        #expect(!outcome.succeeded)
        #expect(recorder.names == [
            "run_started",
            "stage_started", "stage_finished",  // src
            "stage_started", "stage_retrying", "stage_started", "stage_finished",  // flaky
            "stage_started", "log", "stage_failed",  // talk
            "run_finished",
        ])
        let events = recorder.all
        guard case .stageRetrying(let retry) = events.first(where: { $0.name == "stage_retrying" })?.kind else {
            Issue.record("no retry event"); return
        }
        #expect(retry.stage == "flaky" && retry.attempt == 1 && retry.error.code == .stageFailed && retry.error.isRetryable)
        guard case .log(let record) = events.first(where: { $0.name == "log" })?.kind else { Issue.record("no log event"); return }
        #expect(record.stage == "talk" && record.message == "checking the quota" && record.metadata["quota"] == "7")
        #expect(events.contains { if case .stageProgress(let p) = $0.kind { p.stage == "talk" && p.fraction == 0.5 } else { false } })
        guard case .stageFailed(let failed) = events.first(where: { $0.name == "stage_failed" })?.kind else { return }
        #expect(failed.error.code == "quota_exceeded" && !failed.error.isRetryable && failed.error.stage == "talk")
        guard case .runFinished(let finished) = events.last?.kind else { Issue.record("no run_finished last"); return }
        #expect(finished.status == .failed && finished.notRun == ["after"] && finished.error?.code == "quota_exceeded")

        // The outcome's report is what folding the same events gives.
        let replay = RunReportBuilder()
        events.forEach(replay.handle)
        let folded = try #require(replay.current)
        #expect(try folded.jsonData() == outcome.report.jsonData())
        #expect(folded.stages.map(\.status) == [.succeeded, .succeeded, .failed, .skipped])
        #expect(folded.stages[1].attempts == 2)
        // Each attempt's span, the failed one with its error; the stage's own log lines.
        let spans = try #require(folded.stages[1].attemptSpans)
        #expect(spans.count == 2 && spans[0].error != nil && spans[1].error == nil && spans.allSatisfy { $0.durationSeconds != nil }, "\(spans)")
        #expect(folded.stages[2].logs?.map(\.message).contains("checking the quota") == true, "\(folded.stages[2].logs ?? [])")
        #expect(folded.stages[2].attemptSpans?.last?.error?.isEmpty == false)
        #expect(folded.schemaVersion == RunReport.currentSchemaVersion && folded.machine?.cores == ProcessInfo.processInfo.activeProcessorCount)
        #expect(folded.stages[2].errorCode == "quota_exceeded" && folded.stages[2].retryable == false)
        #expect(folded.errorCode == "quota_exceeded" && outcome.failure?.code == "quota_exceeded")
    }

    /// A stage's report keeps its first and its latest log lines, and counts the rest.
    @Test func aLongLogKeepsItsBeginningAndItsEnd() throws {
        let builder = RunReportBuilder()
        builder.handle(RunEvent(.runStarted(RunEvent.RunStarted(runID: "r", seed: 1, pipeline: "p", file: "p.yaml", stages: [
            RunEvent.PlannedStageSummary(id: "s", type: "t", seed: nil, parameters: [:], access: nil),
        ]))))
        for line in 0..<500 {
            builder.handle(RunEvent(.log(RunEvent.LogRecord(level: .info, message: "line \(line)", stage: "s"))))
        }
        builder.handle(RunEvent(.log(RunEvent.LogRecord(level: .info, message: "the run's own"))))
        let stage = try #require(builder.current?.stages.first)
        let kept = StageReport.LogLine.kept
        #expect(stage.logs?.map(\.message) == (0..<(kept / 2)).map { "line \($0)" } + ((500 - kept / 2)..<500).map { "line \($0)" })
        #expect(stage.logsOmitted == 500 - kept)
    }

    /// A report of the first layout (no schema_version) still reads, as version 1.
    @Test func aVersionOneReportStillReads() throws {
        let json = """
            {"duration_seconds": 0.5, "file": "p.yaml", "pipeline": "p", "run_id": "r", "runner_version": "0.10.0", "seed": 3,
             "started_at": "2026-11-01T10:00:00Z", "status": "succeeded",
             "stages": [{"attempts": 1, "duration_seconds": 0.1, "id": "s", "parameters": {}, "started_at": "2026-11-01T10:00:00Z",
                         "status": "succeeded", "type": "t"}]}
            """
        let report = try RunReport.decode(Data(json.utf8))
        #expect(report.schemaVersion == 1 && report.machine == nil && report.stages.first?.logs == nil && report.runnerVersion == "0.10.0")
        // And what it writes reads back the same.
        let again = try RunReport.decode(try report.jsonData())
        #expect(try again.jsonData() == report.jsonData())
    }

    @Test func storeWriteFailuresAreStageFailures() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("events-store-" + UUID().uuidString).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let plan = try planYAML("stages:\n  src: {type: constant}\n  next: {type: pass, input: src}\n", registry: registry).get()
        var options = RunOptions(runID: "blocked", seed: 1, jobs: 1, events: IgnoredEvents())
        options.store = FileArtifactStore(root: root)
        // The directory the store would put src's output in is a file.
        try FileManager.default.createDirectory(atPath: root + "/blocked", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: root + "/blocked/src", contents: Data()))
        let recorder = EventRecorder()
        options.events = recorder
        let outcome = await Executor(plan: plan, options: options).run()
        #expect(!outcome.succeeded)
        guard case .stageFailed(let failed) = recorder.all.first(where: { $0.name == "stage_failed" })?.kind else {
            Issue.record("no stage_failed event: \(recorder.names)"); return
        }
        #expect(failed.stage == "src" && failed.error.code == .storeIO)
        #expect(failed.error.message.contains("cannot store the output"), "\(failed.error.message)")
        #expect(outcome.report.stages.first?.errorCode == .storeIO)
        #expect(recorder.names.last == "run_finished")
    }

    @Test func storedArtifactsAreEvents() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("events-store-" + UUID().uuidString).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let plan = try planYAML("stages:\n  src: {type: constant}\n", registry: registry).get()
        let recorder = EventRecorder()
        var options = RunOptions(runID: "stored", seed: 1, jobs: 1, events: recorder)
        options.store = FileArtifactStore(root: root)
        #expect(await Executor(plan: plan, options: options).run().succeeded)
        guard case .artifactStored(let stored) = recorder.all.first(where: { $0.name == "artifact_stored" })?.kind else {
            Issue.record("no artifact_stored event: \(recorder.names)"); return
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: root + "/stored/src/" + stored.file))
        #expect(stored.stage == "src" && stored.byteCount == bytes.count)
        #expect(stored.sha256 == bytes.withUnsafeBytes { SHA256Digest.hex(of: $0) })
    }

    @Test func swiftLogHandlersGetTheEvents() async throws {
        let box = RecordingLogHandler.Box()
        let logger = Logger(label: "test") { _ in RecordingLogHandler(box: box) }
        _ = try await run("stages:\n  src: {type: constant}\n  talk: {type: chatty, input: src}\n",
                          events: SwiftLogEventHandler(logger: logger))
        let records = box.lock.withLock { box.records }
        let events = records.compactMap { record -> String? in
            if case .string(let name)? = record.metadata["event"] { return name }
            return nil
        }
        #expect(events == ["run_started", "stage_started", "stage_finished", "stage_started", "log", "stage_failed", "run_finished"])
        let failed = try #require(records.first { $0.metadata["event"].map { "\($0)" } == "stage_failed" })
        #expect(failed.level == .error && "\(failed.metadata["error_code"] ?? "")" == "quota_exceeded")
        #expect(records.contains { $0.message == "talk: checking the quota" && $0.level == .info })
    }

    @Test func errorsAreClassifiedByTypeNotByMessage() {
        #expect(PipelineError(SystemError("open", path: "/x", code: ENOENT)).code == .io)
        #expect(!PipelineError(SystemError("open", path: "/x", code: ENOENT)).isRetryable)
        #expect(PipelineError(SystemError("read", code: EAGAIN)).isRetryable)
        #expect(PipelineError(StageTimeoutError(timeout: .seconds(1))).code == .timeout)
        #expect(PipelineError(StageTimeoutError(timeout: .seconds(1))).isRetryable)
        #expect(PipelineError(CancellationError()).code == .cancelled)
        #expect(PipelineError(AllocationError(byteCount: 1e18, purpose: "a grid")).code == .outOfMemory)
        #expect(PipelineError(ArtifactStoreError(message: "x", code: .unknownRun)).code == .unknownRun)
        // A message that mentions a timeout is still just a stage failure.
        struct Opaque: Error, CustomStringConvertible { var description: String { "timed out: access denied" } }
        let opaque = PipelineError(Opaque(), stage: "s", stageType: "t")
        #expect(opaque.code == .stageFailed && opaque.isRetryable && opaque.summary == "stage 's' (t) failed: timed out: access denied")
    }

    /// A stage that throws CancellationError while the run goes on has failed: the run
    /// is "failed", with a stage_failed event, not "cancelled".
    @Test func aStagesOwnCancellationIsAFailure() async throws {
        let recorder = EventRecorder()
        let outcome = try await run("stages:\n  src: {type: constant}\n  stop: {type: quitter, input: src}\n", events: recorder)
        #expect(outcome.report.status == .failed)
        #expect(outcome.failure?.stage == "stop" && outcome.failure?.isRetryable == false)
        #expect(recorder.names.contains("stage_failed") && !recorder.names.contains("stage_cancelled"), "\(recorder.names)")
    }

    @Test func progressThatIsNotANumberIsDropped() {
        let seen = EventRecorder()
        let context = StageContext(stageID: "s", stageType: "t", runID: "r", seed: 1, logger: Logger(label: "t"), progress: { fraction in
            seen.handle(RunEvent(.stageProgress(RunEvent.StageProgress(stage: "s", fraction: fraction))))
        })
        context.reportProgress(0.0 / 0.0)
        context.reportProgress(.infinity)
        context.reportProgress(0.5)
        #expect(seen.all.count == 1)
    }

    @Test func decodingErrorsAreReadableAndInvalidData() {
        struct Record: Decodable { var seed: Int }
        do {
            _ = try JSONDecoder().decode(Record.self, from: Data("{\"seed\": \"x\"}".utf8))
            Issue.record("decoded")
        } catch {
            let failure = PipelineError(error)
            #expect(failure.code == .invalidData && !failure.isRetryable)
            #expect(failure.message == "cannot decode the data: 'seed' is not a whole number", "\(failure.message)")
            #expect(!ErrorDescription.readable(error).contains("Context("))
        }
    }
}

/// Throws CancellationError although nothing cancelled the run.
private struct QuitterStage: Stage {
    static let spec = StageSpec(
        name: "quitter", summary: "Stops with a cancellation of its own.",
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")], output: .fixed(.grid(.uint8)))
    init(parameters: Parameters) throws {}
    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        throw CancellationError()
    }
}
