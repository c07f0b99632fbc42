import Foundation
import Framework
import PipelineTesting
import Stages
import Testing
@testable import CustomStages

/// The extension package's own tests, written with the framework's test support.
@Suite struct CustomStagesTests {
    let harness = PipelineHarness(registry: try! CustomStages.registry())

    @Test func thresholdOnARamp() async throws {
        let outcome = try await harness.run("""
            stages:
              ramp: {type: ramp, with: {width: 256, height: 2}}
              half: {type: threshold, input: ramp, with: {level: 128}}
            """)
        let grid = try #require(outcome.outputs["half"] as? Grid<UInt8>)
        // ramp(x) = x for width 256, so the right half (x >= 128) is white.
        #expect(grid.elements == Array(repeating: Array(repeating: UInt8(0), count: 128) + Array(repeating: 255, count: 128), count: 2).flatMap { $0 })
    }

    @Test func histogramReportCountsEveryValue() async throws {
        let outcome = try await harness.run("""
            stages:
              ramp: {type: ramp, with: {width: 256, height: 3}}
              counts: {type: histogram, input: ramp}
              keep: {type: memory, input: counts, with: {name: "counts.json"}}
            """)
        let stored = try #require(outcome.outputs["keep"] as? StoredObject)
        #expect(stored.uri == "memory://counts.json")
        let json = try #require(MemoryStore.shared["counts.json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        #expect(report["total"] as? Int == 768)
        #expect(report["min"] as? Int == 0 && report["max"] as? Int == 255)
        #expect((report["counts"] as? [String: Int])?.count == 256)
        #expect((report["counts"] as? [String: Int])?.values.allSatisfy { $0 == 3 } == true)
    }

    @Test func reportsAreCheckedLikeAnyOtherType() {
        harness.expectProblem("""
            stages:
              ramp: {type: ramp, with: {width: 8, height: 8}}
              counts: {type: histogram, input: ramp}
              encode: {type: png, input: ‸counts}
            """, "stage 'encode' (png) accepts Grid<Float32>, Grid<UInt8> or Grid<UInt16>, but 'counts' (histogram) produces Report")
        harness.expectProblem("""
            stages:
              ramp: {type: ramp, with: {width: 8, height: 8}}
              mask: {type: threshold, input: ramp, with: {level: ‸300}}
            """, "parameter 'level' of stage 'mask' (threshold) must be 0...255, got 300")
    }

    /// The shipped pipeline, through this package's own runner executable.
    @Test func customRunnerRunsTheExamplePipeline() throws {
        let (root, runner) = (ExamplePackage.root, ExamplePackage.runner)
        let directory = try ExamplePackage.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = runner
        process.arguments = [root.appendingPathComponent("pipelines/threshold.yaml").path, "--run-id", "demo", "--seed", "3", "-q"]
        process.currentDirectoryURL = directory
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        for file in ["histogram.json", "mask.png", "ramp.png"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/demo/\(file)").path), "\(file)")
        }
        let mask = try PNGCodec.decode([UInt8](Data(contentsOf: directory.appendingPathComponent("out/demo/mask.png"))))
        #expect(Set(mask.samples8).isSubset(of: [0, 255]) && mask.width == 256)

        let listing = Process()
        listing.executableURL = runner
        listing.arguments = ["stages"]
        let output = Pipe()
        listing.standardOutput = output
        try listing.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        listing.waitUntilExit()
        for name in ["ramp:", "threshold:", "histogram:", "poisson:", "exec:"] { #expect(text.contains(name), "\(name)") }
    }
}

/// Runs with an artifact store: this package's `Report` is stored through its codec,
/// and a resumed run reads it back.
@Suite struct ReportStoreTests {
    let harness = PipelineHarness(registry: try! CustomStages.registry())
    let yaml = """
        stages:
          ramp: {type: ramp, with: {width: 64, height: 4}}
          counts: {type: histogram, input: ramp}
        """

    @Test func aReportIsStoredAndAResumeReusesIt() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("report-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = FileArtifactStore(root: root.path)
        let first = try await harness.run(yaml, runID: "r1", store: store)
        #expect(first.succeeded, "\(String(describing: first.failure))")
        let made = try #require(first.outputs["counts"] as? Report)
        let manifest = try #require(try store.manifest(runID: "r1", stage: "counts"))
        #expect(manifest.artifactType == "Report" && manifest.file == "artifact.json" && manifest.mediaType == "application/json")

        let resumed = try await harness.run(yaml, runID: "r1", store: store, resume: true)
        #expect(resumed.succeeded, "\(String(describing: resumed.failure))")
        #expect(resumed.report.stages.allSatisfy { $0.reused == true }, "\(resumed.report.stages.map { ($0.id, $0.status, $0.reused as Any, $0.error as Any) })")
        let read = try #require(resumed.outputs["counts"] as? Report)
        #expect(Array(read.bytes) == Array(made.bytes))
    }

    /// The same through this package's runner: its registry's codecs reach the plan.
    @Test func customRunnerStoresAndResumesTheExamplePipeline() throws {
        let directory = try ExamplePackage.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pipeline = ExamplePackage.root.appendingPathComponent("pipelines/threshold.yaml").path
        for arguments in [["--run-id", "s1", "--seed", "3"], ["--resume", "s1", "--report", "again.json"]] {
            let process = Process()
            process.executableURL = ExamplePackage.runner
            process.arguments = [pipeline, "--artifact-store", "store", "-q"] + arguments
            process.currentDirectoryURL = directory
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(arguments)")
        }
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("store/s1/counts/artifact.json").path))
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("again.json"))) as? [String: Any]
        let stages = report?["stages"] as? [[String: Any]] ?? []
        #expect(!stages.isEmpty && stages.allSatisfy { $0["reused"] as? Bool == true })
    }

    @Test func withoutTheCodecTheRunFailsBeforeAnyStageRuns() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("report-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let bare = PipelineHarness(registry: try BuiltinStages.registry(adding: CustomStages.all))
        let error = await #expect(throws: ArtifactStoreError.self) {
            _ = try await bare.run(yaml, runID: "r1", store: FileArtifactStore(root: root.path))
        }
        let message = error?.message ?? ""
        #expect(message.contains("stage 'counts' (histogram)") && message.contains("Report has no codec"), "\(message)")
        #expect(message.contains("register an ArtifactCodec for 'Report'"), "\(message)")
        // Nothing ran, nothing was stored.
        #expect(!FileManager.default.fileExists(atPath: root.path))
    }
}

/// This package's root, its built `custom-runner`, and scratch directories for runs.
enum ExamplePackage {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let runner = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("custom-runner")

    /// A new empty directory; the caller removes it.
    static func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }
}
