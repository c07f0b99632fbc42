import Foundation
import Testing
import Stages

/// The built `runner` on the shipped pipelines and on bad input, as a user runs it.
@Suite struct RunnerEndToEndTests {
    static var pipelineFiles: [String] {
        let directory = RunnerProcess.packageRoot.appendingPathComponent("pipelines")
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
    }

    @Test func thereArePipelinesToRun() {
        #expect(Self.pipelineFiles.contains("poisson.yaml"))
    }

    @Test(arguments: pipelineFiles)
    func shippedPipelineRuns(_ name: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/\(name)").path
        let validate = try RunnerProcess.run(["validate", path], in: directory)
        #expect(validate.status == 0, "\(validate.stderr)")
        let result = try RunnerProcess.run([path, "--run-id", "e2e", "--seed", "1", "--report", "report.json"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any]
        #expect(report?["status"] as? String == "succeeded")
        #expect(!files(below: directory.appendingPathComponent("out")).isEmpty, "no output written")
        #expect(files(below: directory).allSatisfy { !$0.contains(".tmp-") })
    }

    @Test func referenceJobWritesA2048GrayscaleJPEG() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let result = try RunnerProcess.run([path, "--run-id", "ref-1"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let relative = "out/poisson-grid-images/ref-1/poisson_grid_2048x2048.jpg"
        #expect(files(below: directory) == [relative])
        let file = directory.appendingPathComponent(relative)
        #expect(result.stdout == file.absoluteString + "\n")
        let image = try JPEGCodec.decode([UInt8](Data(contentsOf: file)))
        #expect(image.width == 2048 && image.height == 2048 && image.components == 1)
        // Poisson(3) normalised: most pixels are dark, some bright, none undefined.
        let mean = Double(image.pixels.reduce(0) { $0 + Int($1) }) / Double(image.pixels.count)
        #expect(mean > 20 && mean < 80, "mean pixel \(mean)")
        // stderr has one start and one finish line per stage, with durations.
        for stage in ["generate", "normalize", "encode", "store"] {
            #expect(result.stderr.contains("▸ \(stage) ("))
            #expect(result.stderr.contains("✓ \(stage) ("))
        }
    }

    @Test func pngProfileWritesALosslessPNGOfTheSameGrid() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let png = try RunnerProcess.run([path, "--profile", "png", "--run-id", "p", "--seed", "3", "--set", "params.size=256"], in: directory)
        let jpeg = try RunnerProcess.run([path, "--run-id", "p", "--seed", "3", "--set", "params.size=256", "--set", "stages.encode.with.quality=100"], in: directory)
        #expect(png.status == 0 && jpeg.status == 0, "\(png.stderr)\(jpeg.stderr)")
        let decodedPNG = try PNGCodec.decode([UInt8](Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/p/poisson_grid_256x256.png"))))
        let decodedJPEG = try JPEGCodec.decode([UInt8](Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/p/poisson_grid_256x256.jpg"))))
        #expect(decodedPNG.width == 256 && decodedPNG.bitDepth == 8 && decodedPNG.channels == 1)
        // Same seed, same grid: the quality-100 JPEG is within a few levels of the PNG.
        let error = zip(decodedPNG.samples8, decodedJPEG.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
        #expect(error <= 8, "max difference \(error)")
    }

    @Test func sameSeedSameBytesAcrossJobs() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let one = try RunnerProcess.run([path, "--run-id", "j1", "--seed", "7", "--jobs", "1", "--set", "params.size=512"], in: directory)
        let two = try RunnerProcess.run([path, "--run-id", "j2", "--seed", "7", "--jobs", "2", "--set", "params.size=512"], in: directory)
        #expect(one.status == 0 && two.status == 0, "\(one.stderr)\(two.stderr)")
        let a = try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/j1/poisson_grid_512x512.jpg"))
        let b = try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/j2/poisson_grid_512x512.jpg"))
        #expect(a == b)
    }

    @Test func invalidPipelineShowsEveryProblemAndExitsTwo() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("broken.yaml")
        try """
            stages:
              generate: {type: poison, with: {width: 8}}
              encode: {type: jpeg, input: generat, with: {quality: 0}}
              store: {type: filesystem, input: encode, with: {path: out/x.jpg}}
            """.write(to: file, atomically: true, encoding: .utf8)
        for command in [["validate", file.path], [file.path]] {
            let result = try RunnerProcess.run(command, in: directory)
            #expect(result.status == 2)
            #expect(result.stderr.contains("broken.yaml:2:20: error: unknown stage type 'poison'"))
            #expect(result.stderr.contains("help: did you mean 'poisson'?"))
            #expect(result.stderr.contains("broken.yaml:3:31: error: stage 'encode' (jpeg) takes input from 'generat'"))
            #expect(result.stderr.contains("broken.yaml:3:56: error: parameter 'quality' of stage 'encode' (jpeg) must be 1...100, got 0"))
            #expect(result.stderr.contains("3 problems in"))
        }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out").path), "something was written")
    }

    @Test func failedStageExitsOneAndNamesTheStage() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let arguments = [path, "--run-id", "twice", "--set", "params.size=64"]
        #expect(try RunnerProcess.run(arguments + ["--seed", "1"], in: directory).status == 0)
        // Another seed, other bytes: the existing file is not replaced.
        let second = try RunnerProcess.run(arguments + ["--seed", "2", "--report", "r.json"], in: directory)
        #expect(second.status == 1)
        #expect(second.stderr.contains("stage 'store' (filesystem) failed: "))
        #expect(second.stderr.contains("already exists and "))
        #expect(second.stderr.contains("--set stages.store.with.overwrite=true"))
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("r.json"))) as? [String: Any]
        #expect(report?["status"] as? String == "failed")
        #expect(files(below: directory).filter { $0.hasPrefix("out/") } == ["out/poisson-grid-images/twice/poisson_grid_64x64.jpg"])
    }

    @Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
    func signalCancelsTheRunAndLeavesNothingHalfWritten(signal: Int32, code: Int32) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        // The signal goes as soon as the runner says generation started, however long
        // it took to get there; the grid is large enough that generation is then
        // still running.
        let result = try Self.run([path, "--run-id", "sig", "--set", "params.size=20000", "--jobs", "1"], in: directory,
                                  signal: signal, onceStderrHas: "▸ generate (poisson) started")
        #expect(result.sawLine, "never saw generation start:\n\(result.stderr)")
        #expect(!result.stderr.contains("generate (poisson) finished"), "the signal came too late:\n\(result.stderr)")
        #expect(result.status == code, "\(result.stderr)")
        #expect(result.stderr.contains("interrupted by"))
        #expect(files(below: directory).isEmpty, "left behind: \(files(below: directory))")
    }

    /// Runs `runner arguments`, reading stderr as it comes, and sends `signal` as soon
    /// as stderr holds `line`; then waits for the runner (killing it after `limit`).
    static func run(
        _ arguments: [String], in directory: URL, signal: Int32, onceStderrHas line: String, limit: Duration = .seconds(120)
    ) throws -> (status: Int32, stderr: String, sawLine: Bool) {
        guard FileManager.default.isExecutableFile(atPath: RunnerProcess.executable.path) else {
            throw RunnerProcess.RunnerMissing(path: RunnerProcess.executable.path)
        }
        let process = Process()
        process.executableURL = RunnerProcess.executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit.seconds, execute: watchdog)
        defer { watchdog.cancel() }
        var seen = Data()
        var sawLine = false
        while !sawLine {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // the runner ended without printing the line
            seen.append(chunk)
            if String(decoding: seen, as: UTF8.self).contains(line) {
                sawLine = true
                kill(pid, signal)
            }
        }
        seen.append(err.fileHandleForReading.readDataToEndOfFile())
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: seen, as: UTF8.self), sawLine)
    }

    @Test func badRunIDIsAUsageError() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let result = try RunnerProcess.run([path, "--run-id", "../escape"], in: directory)
        #expect(result.status == 2)
        #expect(result.stderr.contains("--run-id '../escape' contains '/'"))
        let templated = try RunnerProcess.run([path, "--set", "params.size=8/../../x"], in: directory)
        #expect(templated.status != 0)
        #expect(files(below: directory).isEmpty)
    }

    @Test func jsonLogsAreOneObjectPerLine() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let result = try RunnerProcess.run([path, "--set", "params.size=32", "--log-format", "json"], in: directory)
        #expect(result.status == 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 10)  // run start, 4 x (start, finish), run finish
        let events = lines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["event"] as? String
        }
        #expect(events.count == lines.count)
        #expect(events.filter { $0 == "stage_finished" }.count == 4)
    }

    @Test func quietPrintsNothingOnSuccess() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let result = try RunnerProcess.run([path, "--set", "params.size=16", "-q"], in: directory)
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
    }

    @Test func stagesAndGraphCommands() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let list = try RunnerProcess.run(["stages"], in: directory)
        #expect(list.status == 0)
        for name in ["poisson:", "normalize:", "jpeg:", "png:", "filesystem:"] { #expect(list.stdout.contains(name)) }
        let one = try RunnerProcess.run(["stages", "jpeg", "--format", "json"], in: directory)
        let json = try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any]
        #expect(json?["name"] as? String == "jpeg")
        let quality = (json?["parameters"] as? [[String: Any]])?.first { $0["name"] as? String == "quality" }
        #expect(quality?["default"] as? Int == 95)
        let unknown = try RunnerProcess.run(["stages", "jpg"], in: directory)
        #expect(unknown.status == 2 && unknown.stderr.contains("did you mean 'jpeg'?"))

        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        // At 2048 the job's data is small enough to be held whole; --stream streams it anyway.
        let dot = try RunnerProcess.run(["graph", path, "--stream"], in: directory)
        // Every edge of the reference job streams.
        #expect(dot.stdout.contains("\"generate\" -> \"normalize\" [label=\"Grid<UInt8> (streamed)\", style=bold, penwidth=2];"))
        #expect(dot.stdout.contains("\"encode\" -> \"store\" [label=\"EncodedImage (streamed)\", style=bold, penwidth=2];"))
        let mermaid = try RunnerProcess.run(["graph", path, "--format", "mermaid", "--stream"], in: directory)
        #expect(mermaid.stdout.hasPrefix("flowchart LR"))
        #expect(mermaid.stdout.contains("s_normalize == \"Grid#lt;Float32#gt; (streamed)\" ==> s_encode"))

    }
}
