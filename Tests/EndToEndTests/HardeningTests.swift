import Foundation
import Testing
import Framework
import TestFixtures

/// Hostile input, child programs and signals, run through the built runner: paths
/// never leave where the pipeline says, nothing crashes, child processes are
/// supervised, and a signal at any moment ends the run cleanly.
@Suite struct HardeningTests {
    /// A fresh directory with its own TMPDIR and HOME, removed afterwards.
    struct Sandbox {
        let root: URL
        var tmp: URL { root.appendingPathComponent("tmp") }
        var home: URL { root.appendingPathComponent("home") }
        var environment: [String: String] { ["TMPDIR": tmp.path, "HOME": home.path] }

        init() throws {
            root = try temporaryDirectory()
            for directory in [tmp, home] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        }

        func write(_ yaml: String, name: String = "p.yaml") throws -> String {
            let file = root.appendingPathComponent(name)
            try yaml.write(to: file, atomically: true, encoding: .utf8)
            return file.path
        }

        func run(_ arguments: [String], signals: [(Int32, after: Duration)] = [], limit: Duration = .seconds(60),
                 shell: String? = nil, environment extra: [String: String] = [:]) throws -> RunnerProcess.Result {
            try RunnerProcess.run(arguments, in: root, environment: environment.merging(extra) { _, new in new },
                                  signals: signals, limit: limit, shell: shell)
        }

        var leftovers: [String] { (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? ["unreadable"] }
        func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: root.appendingPathComponent(relative).path) }
        func remove() { try? FileManager.default.removeItem(at: root) }
    }

    /// Processes whose command line contains `text` (for programs that must not survive).
    static func processes(matching text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid -> String? in
            guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }

    static let source = "generate: {type: poisson, with: {width: 16, height: 16, lambda: 3, seed: 1}}"

    // MARK: 1. Paths

    @Test func tildeIsALiteralNameNeverTheHomeDirectory() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let file = try box.write("""
            params: {tag: t}
            stages:
              \(Self.source)
              encode: {type: png, input: generate}
              literal: {type: filesystem, input: encode, with: {path: "~/x.png"}}
              templated: {type: filesystem, input: encode, with: {path: "{tag}/y.png"}}
            """)
        let result = try box.run([file, "--set", "params.tag=~"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(box.exists("~/x.png") && box.exists("~/y.png"))
        #expect(files(below: box.home).isEmpty, "written into HOME: \(files(below: box.home))")
    }

    @Test func controlCharactersInPathsAndKeysAreRefusedAtCheckTime() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let file = try box.write("""
            params: {tag: t}
            stages:
              \(Self.source)
              encode: {type: png, input: generate}
              nul: {type: filesystem, input: encode, with: {path: "out/a\\0b.png"}}
              key: {type: s3, input: encode, with: {bucket: b, key: "k\\x01ey", region: us-east-1}}
              templated: {type: filesystem, input: encode, with: {path: "out/{tag}.png"}}
            """)
        let result = try box.run(["validate", file, "--set", "params.tag=a\u{7}b"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("p.yaml:5:"), "\(result.stderr)")  // the nul stage's path, by position
        #expect(result.stderr.contains("p.yaml:6:"), "\(result.stderr)")  // the s3 key
        #expect(result.stderr.contains("p.yaml:7:"), "\(result.stderr)")  // {tag} with a control character
        #expect(result.stderr.components(separatedBy: "control character").count - 1 >= 3, "\(result.stderr)")
        #expect(!box.exists("out"))
        // Paths given on the command line, and an exec stage's working directory.
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        for option in ["--report", "--artifact-store"] {
            let refused = try box.run([path, option, "r\u{9}x"])
            #expect(refused.status == 2 && refused.stderr.contains("\(option) 'r\\tx' has a control character at offset 1"), "\(refused.stderr)")
        }
        let workdir = try box.write("""
            stages:
              \(Self.source)
              program: {type: exec, input: generate, with: {command: [cp, "{inputs.input}", "{output}"], output: Grid<UInt8>, workdir: "w\\nd"}}
            """, name: "workdir.yaml")
        let refusedWorkdir = try box.run(["validate", workdir])
        #expect(refusedWorkdir.status == 2 && refusedWorkdir.stderr.contains("has a control character at offset 1"), "\(refusedWorkdir.stderr)")
        #expect(files(below: box.root).sorted() == ["p.yaml", "workdir.yaml"])
    }

    @Test func aFileNameOf255BytesCanBeWritten() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let name = String(repeating: "a", count: 251) + ".png"
        let file = try box.write("""
            stages:
              \(Self.source)
              encode: {type: png, input: generate}
              store: {type: filesystem, input: encode, with: {path: "out/\(name)"}}
            """)
        let result = try box.run([file])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(box.exists("out/\(name)"))
        #expect(files(below: box.root.appendingPathComponent("out")) == [name])
    }

    // MARK: 2. Nothing crashes

    /// An exec stage whose program writes `script` (Python) to write its output.
    func execPipeline(_ script: String, output: String = "Grid<Float32>") -> String {
        """
        stages:
          \(Self.source)
          program:
            type: exec
            input: generate
            with:
              command: ['\(PythonFixture.python)', '-c', '\(script.replacingOccurrences(of: "{", with: "{{").replacingOccurrences(of: "}", with: "}}"))', '{output}']
              output: \(output)
        """
    }

    @Test func anOverflowingNpyShapeFailsTheStage() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let script = #"import sys; h = "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (4611686018427387904, 4), }"; h += " " * (63 - (10 + len(h)) % 64) + "\n"; open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode() + bytes(64))"#
        let result = try box.run([try box.write(execPipeline(script))])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("claims") && result.stderr.contains("EB of data"), "\(result.stderr)")
        #expect(box.leftovers.isEmpty, "left in TMPDIR: \(box.leftovers)")
    }

    @Test func anAllocationThatFailsIsAStageErrorNamingTheSize() throws {
        let box = try Sandbox()
        defer { box.remove() }
        // A sparse 60000x60000 float32 .npy: 14.4 GB claimed, and the file really is that long.
        let script = #"import sys; h = "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (60000, 60000), }"; h += " " * (63 - (10 + len(h)) % 64) + "\n"; f = open(sys.argv[1], "wb"); f.write(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode()); f.truncate(f.tell() + 60000 * 60000 * 4)"#
        let result = try box.run([try box.write(execPipeline(script))], shell: "ulimit -v 3000000")
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("cannot allocate 14.4 GB for a 60000x60000 grid of Float32"), "\(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"))
        #expect(box.leftovers.isEmpty, "left in TMPDIR: \(box.leftovers)")
    }

    @Test func theMemoryCheckHonoursRLIMIT_ASAndNeverShowsAWrappedSize() throws {
        let box = try Sandbox()
        defer { box.remove() }
        func pipeline(_ width: String, _ height: String) -> String {
            """
            stages:
              generate: {type: poisson, with: {width: \(width), height: \(height), lambda: 3, seed: 1}}
            """
        }
        // 1.6 GB: less than the machine's memory, more than the 1 GB address-space limit.
        let limited = try box.run(["validate", try box.write(pipeline("40000", "40000"))], shell: "ulimit -v 1000000")
        #expect(limited.status == 2, "\(limited.stderr)")
        #expect(limited.stderr.contains("1.6 GB") && limited.stderr.contains("RLIMIT_AS"), "\(limited.stderr)")
        // 2^32 x 2^32 bytes wraps a 64-bit product to 0.
        let huge = try box.run(["validate", try box.write(pipeline("4294967296", "4294967296"), name: "huge.yaml")])
        #expect(huge.status == 2)
        #expect(huge.stderr.contains("18.4 EB"), "\(huge.stderr)")
        // No wrapped size: neither 0 B nor a negative number (the help may quote --options).
        #expect(!huge.stderr.contains(" 0 B") && huge.stderr.range(of: " -[0-9]", options: .regularExpression) == nil, "\(huge.stderr)")
    }

    // MARK: 3. Supervised child processes

    /// A pipeline with one exec stage running `command` through /bin/sh (it copies its
    /// input to its output unless told otherwise).
    func shellPipeline(_ command: String, extra: String = "", params: String = "{}") -> String {
        """
        params: \(params)
        stages:
          \(Self.source)
          program:
            type: exec
            input: generate
            with:
              command: ["\(command)"]
              shell: true
              output: Grid<UInt8>
              \(extra)
        """
    }

    @Test func theStageEndsWhenItsProgramExitsEvenIfADescendantHoldsItsPipes() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let file = try box.write(shellPipeline("(sleep 31.25 &); cp {inputs.input} {output}"))
        let result = try box.run([file], limit: .seconds(25))
        #expect(!result.hung && result.status == 0, "\(result.stderr)")
        #expect(result.elapsed < .seconds(10))
        #expect(Self.processes(matching: "sleep 31.25").isEmpty)
        #expect(box.leftovers.isEmpty)
    }

    @Test func aTimeoutEndsTheRunEvenWhenChildrenIgnoreSIGTERMOrCallSetsid() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let command = #"setsid sh -c 'trap \"\" TERM; sleep 32.25' & trap '' TERM; sleep 32.5"#
        let file = try box.write(shellPipeline(command, extra: "timeout: 1s"))
        let result = try box.run([file], limit: .seconds(30))
        #expect(!result.hung, "the run did not end")
        #expect(result.status == 1 && result.stderr.contains("timed out after 1"), "\(result.stderr)")
        // timeout + grace (2 s) + 1 s, and the runner's own start.
        #expect(result.elapsed < .seconds(5), "took \(result.elapsed)")
        #expect(Self.processes(matching: "sleep 32.").isEmpty, "\(Self.processes(matching: "sleep 32."))")
        #expect(box.leftovers.isEmpty)
    }

    @Test func aSecondSignalKillsEveryChildAndRemovesTemporaryDirectories() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let file = try box.write(shellPipeline("trap '' INT TERM; sleep 33.25; cp {inputs.input} {output}"))
        let result = try box.run([file], signals: [(SIGINT, after: .milliseconds(1500)), (SIGINT, after: .milliseconds(1800))],
                                 limit: .seconds(30))
        #expect(!result.hung)
        #expect(result.status == 130, "\(result.stderr)")
        #expect(result.elapsed < .seconds(3), "took \(result.elapsed)")
        #expect(Self.processes(matching: "sleep 33.25").isEmpty, "\(Self.processes(matching: "sleep 33.25"))")
        #expect(box.leftovers.isEmpty, "left in TMPDIR: \(box.leftovers)")
    }

    /// A runner started with SIGINT ignored (a background job of a script) keeps it
    /// ignored, as shells do; SIGTERM still ends the run.
    @Test func aSignalIgnoredAtStartStaysIgnored() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let file = try box.write(shellPipeline("sleep 1.5; cp {inputs.input} {output}"))
        let ignored = try box.run([file], signals: [(SIGINT, after: .milliseconds(500))], limit: .seconds(30), shell: "trap '' INT")
        #expect(ignored.status == 0 && !ignored.stderr.contains("interrupted"), "\(ignored.stderr)")
        let terminated = try box.run([file], signals: [(SIGTERM, after: .milliseconds(500))], limit: .seconds(30), shell: "trap '' INT")
        #expect(terminated.status == 143, "\(terminated.stderr)")
    }

    @Test func aHugeOutputLineIsCutAndTheErrorQuotesAtMost4KiB() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let script = #"import sys; sys.stderr.write("x" * 50_000_000 + "\nlast words\n"); sys.exit(3)"#
        let result = try box.run([try box.write(execPipeline(script))], limit: .seconds(30))
        #expect(result.status == 1, "\(result.stderr.prefix(2000))")
        #expect(result.elapsed < .seconds(8), "took \(result.elapsed)")
        #expect(result.stderr.contains("[line cut: 49995904 more bytes]"))
        #expect(result.stderr.contains("last words"))
        // Every line (the log line and the error) is bounded: the output is small.
        #expect(result.stderr.utf8.count < 16_384, "stderr is \(result.stderr.utf8.count) bytes")
    }

    @Test func valuesPutIntoAShellCommandAreQuoted() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let spaced = box.root.appendingPathComponent("tmp dir")
        try FileManager.default.createDirectory(at: spaced, withIntermediateDirectories: true)
        let file = try box.write(shellPipeline("echo tag={tag} >&2; cp {inputs.input} {output}", params: "{tag: t}"))
        let result = try box.run([file, "--set", "params.tag=x; touch pwned", "-v"], environment: ["TMPDIR": spaced.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("tag=x; touch pwned"))
        #expect(!box.exists("pwned") && !box.exists("tmp dir/pwned"))
        // ${tag} would be pasted into the shell text when the file loads: refused.
        let pasted = try box.write(shellPipeline("echo ${tag} >&2; cp {inputs.input} {output}", params: "{tag: t}"), name: "pasted.yaml")
        let refused = try box.run(["validate", pasted, "--set", "params.tag=x; touch pwned"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("with shell: true puts param 'tag' in with '${tag}'"), "\(refused.stderr)")
    }

    @Test func programsGetNoCredentialsUnlessPassedByName() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let show = "echo key=$(printenv AWS_SECRET_ACCESS_KEY || echo absent) token=$(printenv AWS_SESSION_TOKEN || echo absent) >&2; cp {inputs.input} {output}"
        let secrets = ["AWS_SECRET_ACCESS_KEY": "sekrit", "AWS_SESSION_TOKEN": "tok"]
        let withheld = try box.run([try box.write(shellPipeline(show))], environment: secrets)
        #expect(withheld.status == 0, "\(withheld.stderr)")
        #expect(withheld.stderr.contains("key=absent token=absent"), "\(withheld.stderr)")
        let passed = try box.run([try box.write(shellPipeline(show, extra: "pass_env: [AWS_SECRET_ACCESS_KEY]"), name: "q.yaml")],
                                 environment: secrets)
        #expect(passed.stderr.contains("key=sekrit token=absent"), "\(passed.stderr)")
    }

    @Test func programsInheritNoDescriptorButTheirOwnThree() throws {
        let box = try Sandbox()
        defer { box.remove() }
        // Eight programs started at once: none may see another's pipes (or any other
        // descriptor of the runner). `ls` lists its own: 0, 1, 2 and 3, the directory
        // it reads. Its list goes next to {output}, in the stage's private directory:
        // the eight share the pipeline's directory as their working directory.
        let check = #"ls /proc/self/fd > {output}.fds; fds=$(sort -n {output}.fds | tr '\\n' ' '); [ \"$fds\" = '0 1 2 3 ' ] || {{ echo open: $fds >&2; exit 3; }}; sleep 0.3; cp {inputs.input} {output}"#
        var yaml = "stages:\n  \(Self.source)\n"
        for index in 0..<8 {
            yaml += """
                  p\(index): {type: exec, input: generate, with: {command: ["\(check)"], shell: true, output: Grid<UInt8>}}

                """
        }
        let result = try box.run([try box.write(yaml), "--jobs", "8"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("open:"))
    }

    // MARK: 4. Signals at any moment

    /// A SIGTERM sent the moment the first stage says it started (the moment the old
    /// runner was still installing its handler): every try exits 143, cleanly.
    @Test func aSignalRightAfterTheFirstStageStartsEndsTheRunCleanly() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        var statuses: [Int32] = []
        for attempt in 0..<10 {
            let process = Process()
            process.executableURL = RunnerProcess.executable
            process.arguments = [path, "--set", "params.size=3000", "--jobs", "1", "--run-id", "r\(attempt)"]
            process.currentDirectoryURL = box.root
            process.environment = ProcessInfo.processInfo.environment.merging(box.environment) { _, new in new }
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var seen = Data()
            while true {
                let chunk = err.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                seen.append(chunk)
                if String(decoding: seen, as: UTF8.self).contains("started") {
                    kill(process.processIdentifier, SIGTERM)
                    break
                }
            }
            _ = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            statuses.append(process.terminationReason == .uncaughtSignal ? -process.terminationStatus : process.terminationStatus)
        }
        #expect(statuses.allSatisfy { $0 == 143 }, "exit statuses (negative: killed by that signal): \(statuses)")
        #expect(files(below: box.root).isEmpty, "left behind: \(files(below: box.root))")
    }

    /// A run stopped while its filesystem sink writes leaves neither the file, nor
    /// its temporary file, nor the directories the sink made for it.
    @Test func aSinkStoppedMidFileLeavesNoDirectoriesBehind() throws {
        let box = try Sandbox()
        defer { box.remove() }
        // Bytes straight from the samples to PNG: the sink starts writing at once.
        let file = try box.write("""
            name: slow
            stages:
              generate: {type: poisson, with: {width: 30000, height: 30000, lambda: 3}}
              encode: {type: png, input: generate}
              store: {type: filesystem, input: encode, with: {path: "out/{run_id}/deep/slow.png"}}
            """)
        let process = Process()
        process.executableURL = RunnerProcess.executable
        process.arguments = [file, "-q"]
        process.currentDirectoryURL = box.root
        process.environment = ProcessInfo.processInfo.environment.merging(box.environment) { _, new in new }
        try process.run()
        let clock = ContinuousClock(), deadline = clock.now + .seconds(60)
        while clock.now < deadline, !files(below: box.root).contains(where: { $0.hasPrefix("out/") }) { Thread.sleep(forTimeInterval: 0.02) }
        #expect(clock.now < deadline, "the sink never started writing")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 143)
        #expect(!FileManager.default.fileExists(atPath: box.root.appendingPathComponent("out").path), "left behind: \(files(below: box.root))")
    }

    /// From the moment the runner can catch a signal (its handler is the first thing
    /// main installs), a SIGTERM at any moment ends the run with 143 and leaves nothing.
    @Test(arguments: [0, 1, 2, 4, 8, 15, 30, 60, 120, 250])
    func aSignalAtAnyMomentEndsTheRunCleanly(delay: Int) throws {
        let box = try Sandbox()
        defer { box.remove() }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let result = try RunnerProcess.run([path, "--set", "params.size=3000", "--jobs", "1"], in: box.root, environment: box.environment,
                                           signals: [(SIGTERM, after: .milliseconds(delay))], limit: .seconds(30),
                                           timeSignalsFromHandler: true)
        #expect(result.status == 143, "after \(delay) ms: status \(result.status)\n\(result.stderr)")
        #expect(files(below: box.root).filter { $0 != "p.yaml" }.isEmpty, "left behind: \(files(below: box.root))")
        // Nor the directories the sink made for its file.
        #expect(!FileManager.default.fileExists(atPath: box.root.appendingPathComponent("out").path), "after \(delay) ms: out/ left behind")
    }
}
