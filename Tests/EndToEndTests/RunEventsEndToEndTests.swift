import Foundation
import Testing

/// What the runner prints comes from the run's events: every failure with its stage
/// and reason, the stages that did not run, and in JSON each event's name and code.
@Suite struct RunEventsEndToEndTests {
    /// A run whose first stage cannot be stored: `store/blocked/generate` is a file
    /// where the store wants the stage's directory.
    /// Whole mode (`--no-stream`): streamed, the failing stage's segment starts as one, and
    /// its other members are cancelled rather than not run (StreamingStoreTests).
    func blockedRun(_ extra: [String]) throws -> (RunnerProcess.Result, URL) {
        let directory = try temporaryDirectory()
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("store/blocked"), withIntermediateDirectories: true)
        try Data().write(to: directory.appendingPathComponent("store/blocked/generate"))
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let result = try RunnerProcess.run([path, "--set", "params.size=32", "--run-id", "blocked", "--artifact-store", "store",
                                            "--report", "report.json", "--no-stream"] + extra, in: directory)
        return (result, directory)
    }

    @Test func storeWriteFailuresArePrintedWithTheStageAndTheStagesNotRun() throws {
        let (result, directory) = try blockedRun([])
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("error: stage 'generate' (poisson) failed: cannot store the output in ") }, "\(result.stderr)")
        #expect(lines.contains { $0.hasPrefix("error: run blocked failed after ") && $0.hasSuffix("; not run: normalize, encode, store") },
                "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any]
        #expect(report?["error_code"] as? String == "store_io")
        let stages = report?["stages"] as? [[String: Any]] ?? []
        #expect(stages.first?["error_code"] as? String == "store_io")
        #expect(stages.dropFirst().allSatisfy { $0["status"] as? String == "skipped" })
    }

    @Test func jsonLogsAreTheEventsWithTheirCodes() throws {
        let (result, directory) = try blockedRun(["--log-format", "json"])
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 1)
        let objects = result.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        #expect(objects.count == result.stderr.split(separator: "\n").count, "not all lines are JSON: \(result.stderr)")
        #expect(objects.map { $0["event"] as? String ?? "?" } == ["run_started", "stage_started", "stage_failed", "run_finished"])
        let failed = try #require(objects.first { $0["event"] as? String == "stage_failed" })
        #expect(failed["stage"] as? String == "generate" && failed["error_code"] as? String == "store_io")
        #expect(failed["level"] as? String == "error")
        let finished = try #require(objects.last)
        #expect(finished["not_run"] as? [String] == ["normalize", "encode", "store"])
        #expect(finished["status"] as? String == "failed")
    }

    /// The codes of a program's failures: an exit status may pass on a retry, a command
    /// the shell cannot find will not; the retry is in the events.
    @Test(arguments: [
        ("{command: [sh, -c, 'exit 3'], output: Grid<UInt8>}", true, 2),
        ("{command: ['no-such-tool-here'], shell: true, output: Grid<UInt8>}", false, 1),
    ])
    func execFailuresHaveCodesAndRetryability(with: String, retryable: Bool, attempts: Int) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              run: {type: exec, input: generate, with: \(with), retries: {count: 1, delay: 1ms}}
            """.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(["p.yaml", "--report", "report.json", "--log-format", "json"], in: directory)
        #expect(result.status == 1, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any]
        let entry = (report?["stages"] as? [[String: Any]])?.first { $0["id"] as? String == "run" }
        #expect(entry?["error_code"] as? String == "child_failed", "\(String(describing: entry))")
        #expect(entry?["retryable"] as? Bool == retryable)
        #expect(entry?["attempts"] as? Int == attempts)
        let retries = result.stderr.split(separator: "\n").filter { $0.contains("\"event\":\"stage_retrying\"") }
        #expect(retries.count == attempts - 1, "\(result.stderr)")
    }

    /// Under a scheduler that retries tasks (the Airflow export), the runner runs the
    /// stage once: retries in one place only.
    @Test func noStageRetriesRunsEachStageOnce() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              run: {type: exec, input: generate, with: {command: [sh, -c, 'exit 3'], output: Grid<UInt8>}, retries: {count: 2, delay: 1ms}}
            """.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let once = try RunnerProcess.run(["p.yaml", "--no-stage-retries", "--report", "once.json"], in: directory)
        let retried = try RunnerProcess.run(["p.yaml", "--report", "retried.json"], in: directory)
        #expect(once.status == 1 && retried.status == 1)
        func attempts(_ name: String) throws -> Int? {
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent(name))) as? [String: Any]
            return (report?["stages"] as? [[String: Any]])?.first { $0["id"] as? String == "run" }?["attempts"] as? Int
        }
        #expect(try attempts("once.json") == 1)
        #expect(try attempts("retried.json") == 3)
    }
}
