import Foundation
import Testing
@testable import Framework

/// The same stage type name at two versions.
struct VersionOneSource: Stage {
    static let spec = StageSpec(name: "versioned", summary: "A grid of ones.", output: .fixed(.grid(.uint8)))
    init(parameters: Parameters) throws {}
    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        RunLog.shared.record("ran \(context.runID) v1")
        return try Grid<UInt8>(width: 2, height: 2, values: [1, 1, 1, 1])
    }
}

struct VersionTwoSource: Stage {
    static let spec = StageSpec(name: "versioned", summary: "A grid of twos.", output: .fixed(.grid(.uint8)), version: 2)
    init(parameters: Parameters) throws {}
    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        RunLog.shared.record("ran \(context.runID) v2")
        return try Grid<UInt8>(width: 2, height: 2, values: [2, 2, 2, 2])
    }
}

/// What the stages here ran, never reset (`Recorder.shared` is reset by other suites);
/// each test filters by its own run id.
final class RunLog: @unchecked Sendable {
    static let shared = RunLog()
    private let lock = NSLock()
    private var entries: [String] = []
    func record(_ line: String) { lock.lock(); entries.append(line); lock.unlock() }
    func lines() -> [String] { lock.lock(); defer { lock.unlock() }; return entries }
}

/// What `CheckedStage.verifyStored` answers, by the stage's `key`.
final class Verdicts: @unchecked Sendable {
    static let shared = Verdicts()
    private let lock = NSLock()
    private var verdicts: [String: StoredOutputCheck] = [:]
    func set(_ key: String, _ verdict: StoredOutputCheck) { lock.lock(); verdicts[key] = verdict; lock.unlock() }
    func get(_ key: String) -> StoredOutputCheck { lock.lock(); defer { lock.unlock() }; return verdicts[key] ?? .nothingToVerify }
}

/// Passes a grid through; its verify hook answers what `Verdicts` says for its key.
struct CheckedStage: Stage {
    static let spec = StageSpec(
        name: "checked", summary: "Passes a grid through, with a verify hook.",
        parameters: [ParameterSpec("key", .string, doc: "key into Verdicts")],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")], output: .fixed(.grid(.uint8)))
    init(parameters: Parameters) throws {}
    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        RunLog.shared.record("ran \(context.runID) checked")
        return try inputs.get(Grid<UInt8>.self)
    }
    static func verifyStored(_ output: any Artifact, parameters: Parameters) async throws -> StoredOutputCheck {
        Verdicts.shared.get(parameters.string("key"))
    }
}

@Suite struct TrustedStoreUnitTests {
    func temporaryStore() -> (FileArtifactStore, URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        return (FileArtifactStore(root: root.path), root)
    }

    func execute(_ plan: Plan, store: any ArtifactStore, runID: String, reuse: Bool) async -> RunOutcome {
        var options = RunOptions(runID: runID, seed: 1, jobs: 2)
        options.store = store
        options.reuse = reuse
        return await Executor(plan: plan, options: options).run()
    }

    @Test func theStageVersionIsPartOfTheFingerprintSoOlderOutputsAreNotReused() async throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        let runID = "v-\(UUID().uuidString)"
        let yaml = "stages:\n  source: {type: versioned}\n"
        let old = try planYAML(yaml, registry: try StageRegistry([StageType(VersionOneSource.self)])).get()
        let new = try planYAML(yaml, registry: try StageRegistry([StageType(VersionTwoSource.self)])).get()
        let options = RunOptions(runID: runID, seed: 1)
        #expect(Executor(plan: old, options: options).fingerprints["source"] != Executor(plan: new, options: options).fingerprints["source"])

        #expect(await execute(old, store: store, runID: runID, reuse: false).succeeded)
        #expect(try store.manifest(runID: runID, stage: "source")?.stageVersion == 1)
        let resumed = await execute(new, store: store, runID: runID, reuse: true)
        #expect(resumed.succeeded)
        #expect(resumed.report.stages[0].reused == nil)
        #expect(RunLog.shared.lines().filter { $0.hasPrefix("ran \(runID)") } == ["ran \(runID) v1", "ran \(runID) v2"])
        let grid = try #require(resumed.outputs["source"] as? Grid<UInt8>)
        #expect(grid.elements == [2, 2, 2, 2])
        #expect(try store.manifest(runID: runID, stage: "source")?.stageVersion == 2)
    }

    @Test func aVersionBelowOneIsRefusedAtRegistration() {
        struct Bad: Stage {
            static let spec = StageSpec(name: "bad", summary: "Bad version.", output: .fixed(.grid(.uint8)), version: 0)
            init(parameters: Parameters) throws {}
            func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact { fatalError() }
        }
        let error = #expect(throws: RegistrationError.self) { _ = try StageRegistry([StageType(Bad.self)]) }
        #expect(error?.problems == ["stage type 'bad': version is 0; versions start at 1"])
    }

    @Test(arguments: [StoredOutputCheck.verified, .nothingToVerify, .changed("the file is gone")])
    func theVerifyHookDecidesWhetherAStoredOutputIsReused(verdict: StoredOutputCheck) async throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        let runID = "c-\(UUID().uuidString)"
        let plan = try planYAML("""
            stages:
              source: {type: constant}
              sink: {type: checked, input: source, with: {key: \(runID)}}
            """, registry: try testRegistry.adding([StageType(CheckedStage.self)])).get()
        #expect(await execute(plan, store: store, runID: runID, reuse: false).succeeded)
        Verdicts.shared.set(runID, verdict)
        let resumed = await execute(plan, store: store, runID: runID, reuse: true)
        #expect(resumed.succeeded)
        let sink = try #require(resumed.report.stages.first { $0.id == "sink" })
        let ran = RunLog.shared.lines().filter { $0 == "ran \(runID) checked" }.count
        if case .changed = verdict {
            #expect(sink.reused == nil && ran == 2)
        } else {
            #expect(sink.reused == true && ran == 1)
        }
    }

    @Test func storesAreChosenByScheme() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("scheme-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(ArtifactStoreRegistry.scheme(of: "s3://b/p") == "s3")
        #expect(ArtifactStoreRegistry.scheme(of: "File:///x") == "file")
        #expect(ArtifactStoreRegistry.scheme(of: "out/a://b") == nil)
        #expect(ArtifactStoreRegistry.scheme(of: "plain/dir") == nil)
        let registry = ArtifactStoreRegistry.standard
        #expect((try registry.open("plain/dir") as? FileArtifactStore)?.root == FilePaths.absolute("plain/dir"))
        #expect((try registry.open("file://\(root.path)/a%20b") as? FileArtifactStore)?.root == root.path + "/a b")
        #expect((try registry.open("file://localhost\(root.path)") as? FileArtifactStore)?.root == root.path)

        let unknown = #expect(throws: ArtifactStoreError.self) { _ = try registry.open("s3://bucket/prefix") }
        #expect(unknown?.code == .invalidLocation)
        #expect(unknown?.message == "artifact store 's3://bucket/prefix' has the unknown scheme 's3://'; "
            + "known: file:// (file:///path/to/dir), or a plain directory path")
        let remote = #expect(throws: ArtifactStoreError.self) { _ = try registry.open("file://host/x") }
        #expect(remote?.code == .invalidLocation)

        // A custom scheme.
        let custom = registry.adding(.init(name: "mem", example: "mem://name") { _ in FileArtifactStore(root: root.path) })
        #expect((try custom.open("mem://x") as? FileArtifactStore)?.root == root.path)

        // A path that is a file.
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data().write(to: root.appendingPathComponent("file"))
        for path in ["\(root.path)/file", "\(root.path)/file/below"] {
            let error = #expect(throws: ArtifactStoreError.self) { _ = try registry.open(path) }
            #expect(error?.code == .invalidLocation)
            #expect(error?.message.contains("a file") == true)
        }
    }

    @Test func startingARunChecksTheStoredRecord() throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        let missing = #expect(throws: ArtifactStoreError.self) { _ = try store.startRun("r1", .resume, seed: nil, newSeed: 9) }
        #expect(missing?.code == .unknownRun)
        #expect(missing?.message == "no run 'r1' in the artifact store '\(root.path)'; it holds no runs")
        #expect(try store.startRun("r1", .run, seed: nil, newSeed: 9) == 9)
        #expect(try store.startRun("r1", .resume, seed: nil, newSeed: 5) == 9)
        #expect(try store.startRun("r2", .only, seed: nil, newSeed: 5) == SeedDerivation.seed(runSeed: 0, stageID: "r2"))
        let other = #expect(throws: ArtifactStoreError.self) { _ = try store.startRun("r3", .resume, seed: nil, newSeed: 9) }
        #expect(other?.message.hasSuffix("; runs there: r1, r2") == true, "\(String(describing: other))")

        // The full range of seeds survives the record.
        #expect(try store.startRun("big", .run, seed: UInt64.max - 1, newSeed: 0) == UInt64.max - 1)
        #expect(try store.recordedSeed(runID: "big") == UInt64.max - 1)

        let record = root.appendingPathComponent("r1/run.json")
        for damaged in ["{", "[1]", "{\"seed\": \"x\"}", "{}"] {
            try Data(damaged.utf8).write(to: record)
            let error = #expect(throws: ArtifactStoreError.self) { _ = try store.startRun("r1", .run, seed: 4, newSeed: 9) }
            #expect(error?.code == .damagedRun, "\(damaged)")
            #expect(error?.message.contains("'\(record.path)' is damaged") == true)
            #expect(try Data(contentsOf: record) == Data(damaged.utf8), "the damaged record was replaced")
        }
        // JSON whose seed is out of range is a bad seed, not "not JSON".
        for (text, reason) in [("{\"seed\": -1}", "its 'seed' is not a whole number"), ("{\"seed\": 1.5}", "its 'seed' is not a whole number"),
                               ("{\"seed\": 18446744073709551616}", "its 'seed' is not a whole number"), ("{", "not JSON"),
                               ("[1]", "not a JSON object"), ("{}", "it has no 'seed'")] {
            try Data(text.utf8).write(to: record)
            let error = #expect(throws: ArtifactStoreError.self) { _ = try store.startRun("r1", .run, seed: nil, newSeed: 9) }
            #expect(error?.message.contains("is damaged: \(reason)") == true, "\(text): \(String(describing: error))")
        }
        // A directory where the record should be is a damaged run too, not a read error.
        try FileManager.default.removeItem(at: record)
        try FileManager.default.createDirectory(at: record, withIntermediateDirectories: false)
        let directory = #expect(throws: ArtifactStoreError.self) { _ = try store.startRun("r1", .resume, seed: nil, newSeed: 9) }
        #expect(directory?.code == .damagedRun && directory?.message.contains("is damaged: it is a directory") == true,
                "\(String(describing: directory))")
        // A resume keeps the run's seed: another --seed is refused, the recorded one is not.
        #expect(try store.startRun("s1", .run, seed: 5, newSeed: 0) == 5)
        let conflict = #expect(throws: ArtifactStoreError.self) { _ = try store.startRun("s1", .resume, seed: 3, newSeed: 0) }
        #expect(conflict?.code == .conflictingSeed && conflict?.isUsageError == true)
        #expect(try store.recordedSeed(runID: "s1") == 5)
        #expect(try store.startRun("s1", .resume, seed: 5, newSeed: 0) == 5)
        // So does one stage of it.
        let only = #expect(throws: ArtifactStoreError.self) { _ = try store.startRun("s1", .only, seed: 7, newSeed: 0) }
        #expect(only?.code == .conflictingSeed)
        #expect(try store.recordedSeed(runID: "s1") == 5)
    }

    /// Rewriting a stage's output removes its old manifest first: a write stopped
    /// halfway leaves no manifest describing other bytes, and no new artifact.
    @Test func aRewriteStoppedHalfwayLeavesNoManifest() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rewrite-store-" + UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: root) }
        let store = FileArtifactStore(root: root.path)
        let manifest = ArtifactManifest(artifactType: "", file: "", byteCount: 0, sha256: "", stageType: "t", parameters: [:],
                                        parametersHash: "", inputFingerprints: [:], fingerprint: "f")
        _ = try store.save(try Grid<UInt8>(width: 8, height: 8) { $0.initialize(repeating: 1) }, manifest: manifest, runID: "r", stage: "s")
        #expect(try store.manifest(runID: "r", stage: "s") != nil)
        let cancel = CancelFlag()
        cancel.set()
        #expect(throws: CancellationError.self) {
            try store.save(try Grid<UInt8>(width: 8, height: 8) { $0.initialize(repeating: 2) }, manifest: manifest, runID: "r", stage: "s",
                           cancel: cancel)
        }
        #expect(try store.manifest(runID: "r", stage: "s") == nil)
        #expect(try store.read(runID: "r", stage: "s") == nil)
    }

    @Test func aStoredRunsIdCannotLeaveTheStore() throws {
        let plan = try planYAML("stages:\n  a: {type: constant}\n").get()
        var options = RunOptions(runID: "../outside", seed: 1, events: IgnoredEvents())
        let error = #expect(throws: ArtifactStoreError.self) {
            try options.useStore(FileArtifactStore(root: "/tmp/never-\(UUID().uuidString)"), for: plan, start: .run, seed: nil)
        }
        #expect(error?.code == .invalidLocation && error?.message.contains("run id '../outside'") == true)
    }

    /// A cancelled run does not wait for its store write, and leaves nothing of it.
    @Test func aCancelledWriteLeavesNothing() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cancel-store-" + UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: root) }
        let store = FileArtifactStore(root: root.path)
        let grid = try Grid<UInt8>(width: 4096, height: 4096) { $0.initialize(repeating: 7) }
        let manifest = ArtifactManifest(artifactType: "", file: "", byteCount: 0, sha256: "", stageType: "t", parameters: [:],
                                        parametersHash: "", inputFingerprints: [:], fingerprint: "f")
        let cancel = CancelFlag()
        cancel.set()
        #expect(throws: CancellationError.self) {
            try store.save(grid, manifest: manifest, runID: "r", stage: "s", cancel: cancel)
        }
        #expect(try store.manifest(runID: "r", stage: "s") == nil)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: root.path + "/r/s")) ?? []
        #expect(left.isEmpty, "\(left)")
        // Not cancelled, the same write succeeds.
        let saved = try store.save(grid, manifest: manifest, runID: "r", stage: "s")
        #expect(try store.manifest(runID: "r", stage: "s") == saved)
    }

    @Test func aManifestThatIsNotJSONHasAReadableReason() {
        let error = #expect(throws: ArtifactStoreError.self) { _ = try ArtifactCodec.decodeManifest(Data("not json".utf8), name: "m.json") }
        #expect(error?.message == "m.json: not a valid manifest (not JSON)")
        let missing = #expect(throws: ArtifactStoreError.self) { _ = try ArtifactCodec.decodeManifest(Data("{}".utf8), name: "m.json") }
        #expect(missing?.message.contains("Error Domain") == false)
        #expect(missing?.message.hasPrefix("m.json: not a valid manifest ('") == true, "\(String(describing: missing))")
    }
}
