import Foundation
import Framework
import Testing
import TestFixtures

/// `--artifact-store`, `--resume` and `--only` with the built runner.
@Suite struct ArtifactStoreTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
    let small = ["--set", "params.size=64"]

    func report(_ directory: URL, _ name: String) throws -> [String: [String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent(name))) as? [String: Any]
        let stages = json?["stages"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: stages.map { ($0["id"] as! String, $0) })
    }

    @Test func storedArtifactsAreReadableAndResumeReusesThem() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try RunnerProcess.run([pipeline, "--run-id", "r1", "--seed", "5", "--artifact-store", "store", "--report", "first.json"] + small,
                                          in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        for stage in ["generate", "normalize", "encode", "store"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("store/r1/\(stage)/manifest.json").path), "\(stage)")
        }
        // NumPy opens the stored grids.
        let check = try RunnerProcess.shell("'\(PythonFixture.python)' -c 'import numpy as np; a = np.load(\"\(directory.path)/store/r1/generate/artifact.npy\"); "
            + "b = np.load(\"\(directory.path)/store/r1/normalize/artifact.npy\"); print(a.shape, a.dtype, b.dtype, float(b.max()))'")
        #expect(check == "(64, 64) uint8 float32 1.0")

        // Nothing changed: every stage is reused, the sink included (no "already exists").
        let again = try RunnerProcess.run([pipeline, "--resume", "r1", "--artifact-store", "store", "--report", "again.json"] + small, in: directory)
        #expect(again.status == 0, "\(again.stderr)")
        let reused = try report(directory, "again.json")
        #expect(reused.values.allSatisfy { $0["reused"] as? Bool == true })
        #expect((try report(directory, "first.json"))["generate"]?["seed"] as? UInt64 == reused["generate"]?["seed"] as? UInt64)

        // A changed parameter re-runs exactly that stage and what depends on it.
        let changed = try RunnerProcess.run([pipeline, "--resume", "r1", "--artifact-store", "store", "--report", "changed.json",
                                             "--set", "stages.encode.with.quality=80", "--set", "stages.store.with.overwrite=true"] + small, in: directory)
        #expect(changed.status == 0, "\(changed.stderr)")
        let rerun = try report(directory, "changed.json")
        #expect(rerun["generate"]?["reused"] as? Bool == true && rerun["normalize"]?["reused"] as? Bool == true)
        #expect(rerun["encode"]?["reused"] == nil && rerun["store"]?["reused"] == nil)
    }

    @Test func stageByStageEqualsOneRun() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let whole = try RunnerProcess.run([pipeline, "--run-id", "whole", "--seed", "8"] + small, in: directory)
        #expect(whole.status == 0)
        // A run "killed" after its second stage: generate and normalize alone, then resumed.
        for stage in ["generate", "normalize"] {
            let step = try RunnerProcess.run([pipeline, "--run-id", "steps", "--seed", "8", "--artifact-store", "store", "--only", stage] + small,
                                             in: directory)
            #expect(step.status == 0, "\(step.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("store/steps/encode").path))
        let rest = try RunnerProcess.run([pipeline, "--resume", "steps", "--artifact-store", "store", "--report", "rest.json"] + small, in: directory)
        #expect(rest.status == 0, "\(rest.stderr)")
        #expect((try report(directory, "rest.json"))["normalize"]?["reused"] as? Bool == true)
        let a = try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/whole/poisson_grid_64x64.jpg"))
        let b = try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/steps/poisson_grid_64x64.jpg"))
        #expect(a == b)
    }

    @Test func onlyNamesTheStageThatMustRunFirst() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run([pipeline, "--run-id", "fresh", "--artifact-store", "store", "--only", "encode"] + small, in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains("input 'input' of stage 'encode' comes from stage 'normalize', whose output is not in"))
        #expect(result.stderr.contains("run stage 'normalize' first"))
    }

    @Test func corruptionIsDetected() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try RunnerProcess.run([pipeline, "--run-id", "c", "--seed", "2", "--artifact-store", "store"] + small, in: directory)
        #expect(first.status == 0)
        let file = directory.appendingPathComponent("store/c/generate/artifact.npy")
        var bytes = try Data(contentsOf: file)
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: file)
        let store = FileArtifactStore(root: directory.appendingPathComponent("store").path)
        #expect(throws: ArtifactStoreError.self) { _ = try store.load(runID: "c", stage: "generate") }
        try Data(bytes.prefix(100)).write(to: file)
        do {
            _ = try store.load(runID: "c", stage: "generate")
            Issue.record("loaded a truncated artifact")
        } catch let error as ArtifactStoreError {
            #expect(error.message.contains("truncated or replaced"))
        }
        // Resuming runs the damaged stage again rather than trusting it.
        let resumed = try RunnerProcess.run([pipeline, "--resume", "c", "--artifact-store", "store", "--report", "r.json",
                                             "--set", "stages.store.with.overwrite=true"] + small, in: directory)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("generate: stored output cannot be reused"))
        #expect((try report(directory, "r.json"))["generate"]?["reused"] == nil)
    }
}
