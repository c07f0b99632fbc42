import Foundation
import Framework
import Testing

/// Issue 11, "Command line and report": `--version`, messages about option values,
/// reports that cannot be written, and echoes that are safe for a terminal.
@Suite struct CommandLineTests {
    static let tinyPipeline = """
        name: tiny
        stages:
          generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
          encode: {type: png, input: generate}
          store: {type: filesystem, input: encode, with: {path: "OUTPUT"}}
        """

    /// A directory holding `tiny.yaml`, whose sink writes `output`.
    func tinyPipeline(writing output: String = "out/tiny.png") throws -> URL {
        let directory = try temporaryDirectory()
        try Self.tinyPipeline.replacingOccurrences(of: "OUTPUT", with: output)
            .write(to: directory.appendingPathComponent("tiny.yaml"), atomically: true, encoding: .utf8)
        return directory
    }

    // MARK: --version

    @Test func versionPrintsTheRunnerAndItsLibraries() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["--version"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "runner \(RunnerVersion.current)")
        for library in ["libjpeg-turbo", "libpng", "zlib", "libyaml", "libcurl"] {
            let line = lines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(library + " ") }
            let version = line.map { $0.trimmingCharacters(in: .whitespaces).dropFirst(library.count + 1) } ?? ""
            #expect(version.first?.isNumber == true && version.contains("."), "\(library): \(result.stdout)")
        }
        #expect(lines.contains("  libyaml \(YAMLParser.libraryVersion)"))
    }

    @Test func theReportRecordsTheRunnerVersion() throws {
        let directory = try tinyPipeline()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["tiny.yaml", "--report", "report.json", "-q"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let data = try Data(contentsOf: directory.appendingPathComponent("report.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(report["runner_version"] as? String == RunnerVersion.current)
    }

    /// The report says how the run was asked for: the arguments, and the profiles and
    /// `--set`s applied, in order.
    @Test func theReportRecordsTheCommandLine() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let arguments = [path, "--profile", "png", "--set", "params.size=16", "--set", "params.lambda=2", "--report", "r.json", "-q"]
        let result = try RunnerProcess.run(arguments, in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let data = try Data(contentsOf: directory.appendingPathComponent("r.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let invocation = try #require(report["invocation"] as? [String: Any], "no invocation in \(report.keys.sorted())")
        #expect(invocation["arguments"] as? [String] == arguments)
        #expect(invocation["profiles"] as? [String] == ["png"])
        #expect(invocation["overrides"] as? [String] == ["params.size=16", "params.lambda=2"])
    }

    // MARK: option values

    @Test(arguments: [
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["--jobs", "-3"], "--jobs must be at least 1, got -3"),
        (["--jobs", "abc"], "--jobs must be a whole number, at least 1, got 'abc'"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 18446744073709551615, got '-1'"),
        (["--seed", "1e3"], "--seed must be a whole number from 0 to 18446744073709551615, got '1e3'"),
    ])
    func badOptionValuesGetAMessageAboutTheValue(arguments: [String], message: String) throws {
        let directory = try tinyPipeline()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["tiny.yaml"] + arguments, in: directory)
        #expect(result.status == 2)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(!result.stderr.contains("Missing value"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out").path))
    }

    // MARK: report write failures

    @Test(arguments: [
        ("reports", "it is a directory"),
        ("plain/report.json", "'plain' is not a directory"),
        ("/proc/self/report.json", "cannot create a file in '/proc/self'"),
    ])
    func aReportThatCannotBeWrittenIsRefusedBeforeTheRun(report: String, reason: String) throws {
        let directory = try tinyPipeline()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("reports"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: directory.appendingPathComponent("plain"))
        let result = try RunnerProcess.run(["tiny.yaml", "--report", report], in: directory)
        #expect(result.status == 2)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("error: cannot write the report to '\(report)': \(reason)"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out").path), "the run started")
    }

    @Test func aReportThatCannotBeWrittenAtTheEndFailsTheRun() throws {
        // The sink writes the file `blocker`; the report wants the directory `blocker/`,
        // which could still be created when the run started.
        let directory = try tinyPipeline(writing: "blocker")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["tiny.yaml", "--report", "blocker/report.json"], in: directory)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("blocker").path))
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("cannot write the report to 'blocker/report.json'"), "\(result.stderr)")
    }

    // MARK: safe echoes

    /// The rendered snippet line (`N | text`) and the caret line's caret offset, in scalars.
    func snippet(in stderr: String, line number: Int) throws -> (text: [Unicode.Scalar], caret: Int) {
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let index = try #require(lines.firstIndex { $0.hasPrefix("\(number) | ") }, "\(stderr.prefix(2000))")
        let caretLine = Array(lines[index + 1].unicodeScalars)
        let caret = try #require(caretLine.firstIndex(of: "^"))
        return (Array(lines[index].unicodeScalars), caret)
    }

    @Test func longSourceLinesAreCutAroundTheCaret() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let padding = String(repeating: "x", count: 5000)
        // Line 3: the error (an unknown type) in the middle of a 10,000-character line,
        // after a long anchor name and before a long comment.
        try """
            name: long
            stages:
              generate: &a\(padding) {type: poissn} # \(padding)
            """.write(to: directory.appendingPathComponent("long.yaml"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(["validate", "long.yaml"], in: directory)
        #expect(result.status == 2)
        #expect(result.stderr.contains("unknown stage type 'poissn'"), "\(result.stderr.prefix(500))")
        let (text, caret) = try snippet(in: result.stderr, line: 3)
        #expect(text.count <= 130, "the line is shown whole: \(text.count) characters")
        #expect(String(String.UnicodeScalarView(text)).hasPrefix("3 | …") && text.last == "…")
        let shown = String(String.UnicodeScalarView(text[caret...]))
        #expect(shown.hasPrefix("poissn"), "the caret points at '\(shown.prefix(10))'")
    }

    @Test func aLongLineIsCutAtItsEndWhenTheCaretIsNearItsStart() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            name: long
            stages:
              generate: {type: poissn} # \(String(repeating: "y", count: 10_000))
            """.write(to: directory.appendingPathComponent("long.yaml"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(["validate", "long.yaml"], in: directory)
        #expect(result.status == 2)
        let (text, caret) = try snippet(in: result.stderr, line: 3)
        #expect(text.count <= 130 && text.last == "…" && !String(String.UnicodeScalarView(text)).contains("…  "))
        #expect(String(String.UnicodeScalarView(text[caret...])).hasPrefix("poissn"))
    }

    @Test(arguments: [
        ["tiny.yaml", "--run-id", "bad\u{1B}[31mred"],
        ["tiny.yaml", "--resume", "bad\u{1B}]0;title\u{07}", "--artifact-store", "store"],
        ["tiny.yaml", "--jobs", "1\u{1B}[2J"],
        ["tiny.yaml", "--log-format", "x\u{1B}[31m"],
        ["tiny.yaml", "--no-such\u{1B}[31m"],
        ["stages", "poi\u{1B}[31mson"],
        ["escape\u{1B}[31m.yaml"],
        ["validate", "escape\u{1B}[31m.yaml"],
        ["validate", "typed.yaml"],
        ["validate", "raw.yaml"],
    ])
    func controlCharactersInEchoedValuesAreEscaped(arguments: [String]) throws {
        let directory = try tinyPipeline()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A type name with an escape sequence (YAML's \e), and a raw ESC in a file.
        try "name: typed\nstages:\n  a: {type: \"poi\\e[31mson\"}\n"
            .write(to: directory.appendingPathComponent("typed.yaml"), atomically: true, encoding: .utf8)
        // (libyaml's reader refuses it with the position 1:1, so the ESC is on line 1.)
        try "name: raw # \u{1B}[31m red\nstages:\n  a: {type: poisson}\n"
            .write(to: directory.appendingPathComponent("raw.yaml"), atomically: true, encoding: .utf8)
        try "name: x\u{1B}[31m\nstages:\n  a: {type: poissn}\n"
            .write(to: directory.appendingPathComponent("escape\u{1B}[31m.yaml"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(arguments, in: directory)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(!result.stderr.isEmpty)
        #expect(!result.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" && $0 != "\t" || $0.value == 0x7F },
                "raw control character in: \(result.stderr.debugDescription)")
        #expect(!result.stdout.unicodeScalars.contains { $0.value == 0x1B }, "\(result.stdout.debugDescription)")
        #expect(result.stderr.contains("\\u{1B}"), "\(result.stderr.debugDescription)")
    }
}
