// Foundation's errors reach people as one readable line, never as an
// `Error Domain=NSCocoaErrorDomain Code=260 ... UserInfo={...}` dump: in the run's
// failure, the report's `error` fields and the runner's console.
import Foundation
import Testing
import Framework
import PipelineTesting
import RunnerCLI
import Stages
#if canImport(Glibc)
import Glibc
#endif

/// A source stage that reads its `path` with `Data(contentsOf:)`, as a stage
/// author would, so a missing file throws Foundation's own error.
struct ReadFileStage: Stage {
    static let spec = StageSpec(
        name: "read-file",
        summary: "Reads a file with Data(contentsOf:) into a one-row grid of its bytes.",
        parameters: [ParameterSpec("path", .string, doc: "the file to read")],
        output: .fixed(.grid(.uint8)))

    let path: String

    init(parameters: Parameters) throws {
        path = parameters.string("path")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        return try Grid<UInt8>(width: max(bytes.count, 1), height: 1) { buffer in
            for (i, byte) in bytes.enumerated() { buffer[i] = byte }
        }
    }
}

@Suite struct ReadableErrorTests {
    let missing = "/nonexistent-\(UInt32.random(in: 0...UInt32.max))/input.bin"
    var expected: String { "cannot read '\(missing)': No such file or directory" }
    var yaml: String {
        """
        stages:
          read: {type: read-file, with: {path: '\(missing)'}}
        """
    }

    @Test func foundationErrorsAreRenderedReadably() throws {
        do {
            _ = try Data(contentsOf: URL(fileURLWithPath: missing))
            Issue.record("reading '\(missing)' succeeded")
        } catch {
            #expect(ErrorDescription.readable(error) == expected)
        }
        let bare = NSError(domain: NSCocoaErrorDomain, code: CocoaError.fileReadNoSuchFile.rawValue)
        #expect(!ErrorDescription.readable(bare).contains("Error Domain="), "\(ErrorDescription.readable(bare))")
        #expect(ErrorDescription.readable(SystemError("open", path: "/x", code: ENOENT)) == "cannot open '/x': No such file or directory")
    }

    @Test func runFailureAndReportAreReadable() async throws {
        let harness = PipelineHarness(registry: try BuiltinStages.registry(adding: [StageType(ReadFileStage.self)]))
        let outcome = try await harness.run(yaml)
        #expect(!outcome.succeeded)
        let failure = try #require(outcome.failure)
        #expect(failure.summary == "stage 'read' (read-file) failed: \(expected)")
        #expect(failure.code == .io && !failure.isRetryable && failure.stage == "read")
        #expect(outcome.report.error == failure.summary)
        #expect(outcome.report.errorCode == .io)
        #expect(outcome.report.stages.first { $0.id == "read" }?.error == expected)
        let json = String(decoding: try JSONEncoder().encode(outcome.report), as: UTF8.self)
        #expect(!json.contains("Error Domain="), "\(json)")
    }

    @Test func consoleLineIsReadable() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("readable-error-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("p.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let registry = try BuiltinStages.registry(adding: [StageType(ReadFileStage.self)])
        let report = directory.appendingPathComponent("report.json").path

        // The console writes to file descriptor 2: send it to a file for the run.
        let captured = directory.appendingPathComponent("stderr.txt").path
        let status = await StandardErrorCapture.run(into: captured) {
            await RunnerMain.run(registry: registry, arguments: [file.path, "--run-id", "readable", "--report", report])
        }
        let capturedText = try String(contentsOfFile: captured, encoding: .utf8)
        // Tests running meanwhile may have written there too: pass it all on, and
        // look at this run's lines only (they name its stage).
        FileHandle.standardError.write(Data(capturedText.utf8))
        let stderr = capturedText.components(separatedBy: "\n").filter { $0.contains("'read'") || $0.contains("read-file") }.joined(separator: "\n")
        #expect(status == 1, "\(stderr)")
        #expect(stderr.contains("error: stage 'read' (read-file) failed: \(expected)"), "\(stderr)")
        #expect(!stderr.contains("Error Domain="), "\(stderr)")
        let reportText = try String(contentsOfFile: report, encoding: .utf8)
        #expect(reportText.contains("No such file or directory") && !reportText.contains("Error Domain="), "\(reportText)")
    }
}

/// Points file descriptor 2 at a file while `body` runs, then puts it back.
/// Only one test uses it; other tests' stderr lines in that window land in the file too.
enum StandardErrorCapture {
    static func run<T>(into path: String, _ body: () async -> T) async -> T {
        let saved = dup(STDERR_FILENO)
        let target = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(saved >= 0 && target >= 0, "cannot redirect stderr")
        dup2(target, STDERR_FILENO)
        close(target)
        defer {
            dup2(saved, STDERR_FILENO)
            close(saved)
        }
        return await body()
    }
}
