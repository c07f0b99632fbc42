import Foundation
import Testing
import Framework
@testable import Stages

/// The exec supervisor's pieces: line splitting, the quoted stderr tail, shell
/// quoting and the environment a program gets.
@Suite struct ChildProcessTests {
    func split(_ chunks: [[UInt8]]) -> [String] {
        var splitter = LineSplitter()
        var lines: [String] = []
        for chunk in chunks {
            chunk.withUnsafeBytes { splitter.feed($0) { lines.append($0) } }
        }
        splitter.finish { lines.append($0) }
        return lines
    }

    @Test func linesAreSplitAcrossChunksAndLongOnesCut() {
        #expect(split([Array("ab\ncd".utf8), Array("e\n\nf".utf8)]) == ["ab", "cde", "", "f"])
        let long = [UInt8](repeating: UInt8(ascii: "x"), count: 10_000)
        let lines = split([Array(long[..<3000]), Array(long[3000...]) + Array("\nnext\n".utf8)])
        #expect(lines.count == 2)
        #expect(lines[0] == String(repeating: "x", count: 4096) + " [line cut: 5904 more bytes]")
        #expect(lines[1] == "next")
    }

    @Test func splittingIsLinearInTheBytes() {
        // 64 MiB in one line, fed in 64 KiB chunks: a quadratic splitter would not finish.
        var splitter = LineSplitter()
        let chunk = [UInt8](repeating: UInt8(ascii: "y"), count: 65_536)
        var lines: [String] = []
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for _ in 0..<1024 { chunk.withUnsafeBytes { splitter.feed($0) { lines.append($0) } } }
            splitter.finish { lines.append($0) }
        }
        #expect(lines.count == 1 && lines[0].hasSuffix("[line cut: \(64 * 1024 * 1024 - 4096) more bytes]"))
        #expect(elapsed < .seconds(5), "took \(elapsed)")
    }

    @Test func theQuotedTailIsAtMost20LinesAnd4KiB() {
        var recent = RecentLines()
        for index in 0..<100 { recent.append("line \(index)") }
        #expect(recent.lines.count == 20 && recent.lines.first == "line 80")
        let big = (0..<20).map { "\($0): " + String(repeating: "z", count: 1000) }
        let quoted = RecentLines.quote(big)
        #expect(quoted.utf8.count <= 4096)
        #expect(quoted.hasSuffix(big[19]))
    }

    @Test func shellQuotingKeepsAnyValueOneWord() throws {
        for value in ["plain", "a b", "x; touch pwned", "it's", "$(id) `id` \"q\" \\ *", ""] {
            let quoted = ExecStage.shellQuoted(value)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "printf '%s|' " + quoted]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(String(decoding: output, as: UTF8.self) == value + "|", "value \(value)")
        }
    }

    @Test func credentialsAreWithheldUnlessNamed() {
        let environment = ["PATH": "/bin", "HOME": "/h", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
                           "AWS_REGION": "eu", "GITHUB_TOKEN": "g", "DB_PASSWORD": "p", "LANG": "C",
                           "GITHUB_PAT": "x", "DB_PASS": "x", "HTTP_AUTH": "x", "AZURE_STORAGE_CONNECTION_STRING": "x",
                           "PWD": "/w", "OLDPWD": "/v", "PASSAGE": "kept", "AUTHOR": "kept"]
        #expect(ExecStage.programEnvironment(environment, passing: []) == ["PATH": "/bin", "HOME": "/h", "AWS_REGION": "eu", "LANG": "C",
                                                                            "PWD": "/w", "OLDPWD": "/v", "PASSAGE": "kept", "AUTHOR": "kept"])
        #expect(ExecStage.programEnvironment(environment, passing: ["AWS_SESSION_TOKEN"])["AWS_SESSION_TOKEN"] == "t")
    }
}
