import Foundation
import Testing

/// What a user sees when something is off: every failure said once, with its place
/// and what to do, through the same channel (JSON with --log-format json), and the
/// events in an order a reader can follow.
@Suite struct UserFacingMessagesTests {
    /// Writes `yaml` as p.yaml in a new directory and runs the runner there.
    func run(_ yaml: String, _ arguments: [String]) throws -> (RunnerProcess.Result, URL) {
        let directory = try temporaryDirectory()
        try yaml.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        return (try RunnerProcess.run(arguments, in: directory), directory)
    }

    func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static let small = """
        stages:
          generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
          encode: {type: png, input: generate}
        """

    @Test func aStageStoppedByAnothersFailureIsCancelledInTheEventsAndTheReport() throws {
        let (result, directory) = try run("""
            stages:
              generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
              slow: {type: exec, input: generate, with: {command: [sleep, '30'], output: Grid<UInt8>}}
              bad: {type: exec, input: generate, with: {command: [sh, -c, 'sleep 0.3; exit 1'], output: Grid<UInt8>}}
            """, ["p.yaml", "--jobs", "2", "--log-format", "json", "--report", "r.json"])
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 1 && result.elapsed < .seconds(20), "\(result.stderr)")
        let events = jsonLines(result.stderr)
        let cancelled = events.first { $0["event"] as? String == "stage_cancelled" }
        #expect(cancelled?["stage"] as? String == "slow", "\(result.stderr)")
        #expect(cancelled?["error_code"] as? String == "cancelled" && cancelled?["retryable"] as? Bool == false)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("r.json"))) as? [String: Any]
        let slow = (report?["stages"] as? [[String: Any]])?.first { $0["id"] as? String == "slow" }
        #expect(slow?["status"] as? String == "cancelled" && slow?["error_code"] as? String == "cancelled", "\(String(describing: slow))")
        #expect(report?["error_code"] as? String == "child_failed" && report?["retryable"] as? Bool == true)
    }

    @Test func withJSONLogsEveryLineIsAnEvent() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try "stages:\n  a: {type: nope}\n".write(to: directory.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
        try Self.small.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        for arguments in [["bad.yaml"], ["p.yaml", "--run-id", "r", "--artifact-store", "s", "--only", "encdoe"],
                          ["p.yaml", "--report", "."], ["p.yaml", "--bogus"], ["p.yaml", "--jobs", "0"], ["p.yaml", "--run-id", "a/b"]] {
            let result = try RunnerProcess.run(arguments + ["--log-format", "json"], in: directory)
            #expect(result.status == 2)
            let lines = result.stderr.split(separator: "\n")
            let events = jsonLines(result.stderr)
            #expect(!lines.isEmpty && events.count == lines.count, "not all JSON: \(result.stderr)")
            #expect(events.allSatisfy { $0["event"] is String && $0["level"] as? String == "error" }, "\(result.stderr)")
        }
        let invalid = jsonLines(try RunnerProcess.run(["bad.yaml", "--log-format", "json"], in: directory).stderr).first
        #expect(invalid?["event"] as? String == "pipeline_invalid" && invalid?["line"] as? Int == 2 && invalid?["column"] as? Int == 13,
                "\(String(describing: invalid))")
        #expect(invalid?["file"] as? String == "bad.yaml")
    }

    /// Whole (`--no-stream`), a stage ends before its consumer starts; streamed, a
    /// segment's stages start together, and each output is still stored before its
    /// stage is said to have finished.
    @Test(arguments: [false, true])
    func eventsFollowTheGraph(streamed: Bool) throws {
        let (result, directory) = try run(Self.small + "\n  store: {type: filesystem, input: encode, with: {path: 'out/{run_id}.png'}}\n",
                                          ["p.yaml", "--jobs", "2", "--log-format", "json", "--artifact-store", "s", "--run-id", "o", "-v"]
                                            + (streamed ? [] : ["--no-stream"]))
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 0, "\(result.stderr)")
        let events = jsonLines(result.stderr).map { ($0["event"] as? String ?? "", $0["stage"] as? String ?? "") }
        func index(_ event: String, _ stage: String) -> Int? { events.firstIndex { $0 == (event, stage) } }
        for (producer, consumer) in [("generate", "encode"), ("encode", "store")] {
            let finished = try #require(index("stage_finished", producer))
            let stored = try #require(index("artifact_stored", producer))
            let started = try #require(index("stage_started", consumer))
            #expect(stored < finished && (streamed || finished < started), "\(events)")
        }
    }

    @Test func validateCheckAccessSaysOkOnlyWhenAccessIsOk() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data().write(to: directory.appendingPathComponent("afile"))
        try (Self.small + "\n  store: {type: filesystem, input: encode, with: {path: 'afile/x.png'}}\n")
            .write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(["validate", "p.yaml", "--check-access"], in: directory)
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty, "\(result.stdout)")
        #expect(result.stderr.contains("error: stage 'store' (filesystem) cannot run: ") && result.stderr.contains("p.yaml is valid, but 1 stage cannot run"),
                "\(result.stderr)")
    }

    @Test(arguments: [
        (["p.yaml", "--jobs", "0"], "error: --jobs must be at least 1, got 0"),
        (["p.yaml", "--jobs", "5000"], "error: --jobs must be at most 1024, got 5000"),
        (["p.yaml", "--jobs", "99999999999999999999999"], "error: --jobs must be at most 1024, got 99999999999999999999999"),
        (["p.yaml", "--set", "stages.generate.with.width=99999999999999999999"], "is out of range: integers go from"),
        (["p.yaml", "--resume", "r1", "--artifact-store", "s", "--seed", "3"], "continues a run made with seed 5; leave out --seed 3"),
        (["p.yaml", "--artifact-store", ""], "the artifact store location is empty"),
        (["p.yaml", "--artifact-store", "file:"], "looks like a file URI without its '//'"),
    ])
    func usageErrorsAreAboutTheValue(arguments: [String], expected: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Self.small.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let first = try RunnerProcess.run(["p.yaml", "--run-id", "r1", "--artifact-store", "s", "--seed", "5"], in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        let before = files(below: directory)
        let result = try RunnerProcess.run(arguments, in: directory)
        #expect(result.status == 2)
        #expect(result.stderr.contains(expected), "\(result.stderr)")
        #expect(!result.stderr.contains("Error:") && !result.stderr.contains("Usage:"), "\(result.stderr)")
        #expect(try String(contentsOf: directory.appendingPathComponent("s/r1/run.json"), encoding: .utf8).contains("5"))
        #expect(files(below: directory) == before, "something was written: \(files(below: directory))")
    }

    @Test func aPipelineFileThatIsAFIFOIsRefusedAtOnce() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(mkfifo(directory.appendingPathComponent("fifo.yaml").path, 0o600) == 0)
        let result = try RunnerProcess.run(["fifo.yaml"], in: directory, signals: [], limit: .seconds(20))
        #expect(!result.hung && result.status == 2)
        #expect(result.stderr.contains("pipeline file 'fifo.yaml' cannot be read: it is a FIFO (a pipe), not a regular file"), "\(result.stderr)")
    }

    @Test func execMessagesSayWhatToWrite() throws {
        // One string with shell: true runs; two words with shell: true say how to write it.
        let (ok, okDirectory) = try run("""
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              copy: {type: exec, input: generate, with: {command: 'cp {inputs.input} {output}', shell: true, output: Grid<UInt8>}}
            """, ["p.yaml"])
        defer { try? FileManager.default.removeItem(at: okDirectory) }
        #expect(ok.status == 0, "\(ok.stderr)")
        let (list, listDirectory) = try run("""
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              copy: {type: exec, input: generate, with: {command: [cp, '{inputs.input}', '{output}'], shell: true, output: Grid<UInt8>}}
            """, ["p.yaml"])
        defer { try? FileManager.default.removeItem(at: listDirectory) }
        #expect(list.status == 2)
        #expect(list.stderr.contains("with shell: true must be one string for /bin/sh -c, got a list of 3 words"), "\(list.stderr)")
        #expect(list.stderr.contains("help: write the whole command line as one string: command: 'cp {inputs.input} {output}'"))
        // A relative program path is looked for in the working directory, and the message says which.
        let (missing, missingDirectory) = try run("""
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              run: {type: exec, input: generate, with: {command: [sub/tool.sh], workdir: /tmp, output: Grid<UInt8>}}
            """, ["p.yaml"])
        defer { try? FileManager.default.removeItem(at: missingDirectory) }
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("command 'sub/tool.sh' not found (looked for it in the working directory '/tmp'"), "\(missing.stderr)")
        // Output that is a directory is said to be one.
        let (directoryOutput, outputDirectory) = try run("""
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              run: {type: exec, input: generate, with: {command: [mkdir, '{output}'], output: Grid<UInt8>}}
            """, ["p.yaml"])
        defer { try? FileManager.default.removeItem(at: outputDirectory) }
        #expect(directoryOutput.status == 1)
        #expect(directoryOutput.stderr.contains("Is a directory"), "\(directoryOutput.stderr)")
    }

    @Test func aDamagedManifestIsSaidAndTheStageRunsAgain() throws {
        let (first, directory) = try run(Self.small, ["p.yaml", "--run-id", "m", "--artifact-store", "s"])
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(first.status == 0, "\(first.stderr)")
        try Data("{".utf8).write(to: directory.appendingPathComponent("s/m/encode/manifest.json"))
        let resumed = try RunnerProcess.run(["p.yaml", "--resume", "m", "--artifact-store", "s", "--report", "r.json"], in: directory)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("warning: encode: stored output cannot be reused ("), "\(resumed.stderr)")
        #expect(resumed.stderr.contains("manifest.json: not a valid manifest (not JSON)"), "\(resumed.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("r.json"))) as? [String: Any]
        let reused = (report?["stages"] as? [[String: Any]])?.map { $0["reused"] as? Bool ?? false }
        #expect(reused == [true, false])
    }

    /// A filesystem path must name a file: one ending with '/', '.' or '..' is refused
    /// when the pipeline is checked, and one that turns out to be a directory says so,
    /// without suggesting an overwrite that could not help.
    @Test func aSinkPathMustNameAFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try (Self.small + "\n  store: {type: filesystem, input: encode, with: {path: 'out/x.png'}}\n")
            .write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        for path in ["out/{run_id}/", "out/{run_id}/..", "out/."] {
            let result = try RunnerProcess.run(["validate", "p.yaml", "--set", "stages.store.with.path=\(path)"], in: directory)
            #expect(result.status == 2 && result.stderr.contains("it names a directory, not a file"), "\(path): \(result.stderr)")
        }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("out/taken.png"), withIntermediateDirectories: true)
        let result = try RunnerProcess.run(["p.yaml", "--set", "stages.store.with.path=out/taken.png", "--report", "r.json"], in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains("out/taken.png' is a directory; 'path' must name a file"), "\(result.stderr)")
        #expect(!result.stderr.contains("overwrite=true"), "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("r.json"))) as? [String: Any]
        #expect(report?["error_code"] as? String == "invalid_parameter")
    }
}
