import Foundation
import Testing
import TestFixtures
@testable import Framework
import PipelineTesting
@testable import Stages

/// Runs with an artifact store stream too: each streamed output is written to the
/// store as it passes (a grid's `.npy`, an image's bytes), byte for byte what a
/// whole-artifact run stores.
@Suite(.serialized) struct StreamingStoreTests {
    static let harness = PipelineHarness(registry: try! BuiltinStages.registry(adding: []))

    /// The reference chain into a filesystem sink writing `path`.
    static func reference(sink path: String) -> String {
        """
        stages:
          generate: {type: poisson, with: {width: 2000, height: 1001, lambda: 3}}
          normalize: {type: normalize, input: generate}
          encode: {type: jpeg, input: normalize}
          store: {type: filesystem, input: encode, with: {path: "\(path)", overwrite: true}}
        """
    }

    /// A 16-bit grid, normalised (float bands), to PNG.
    static let uint16Chain = """
        stages:
          generate: {type: poisson, with: {width: 1500, height: 1003, lambda: 300}}
          normalize: {type: normalize, input: generate}
          encode: {type: png, input: normalize}
        """

    static let referenceStages = ["generate", "normalize", "encode", "store"]

    /// Every file under `directory`, relative, sorted.
    static func files(_ directory: URL) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory.path)
        var files: [String] = []
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent(path).path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(path)
            }
        }
        return files.sorted()
    }

    /// Runs `yaml` with `store`, streamed or not, and checks how it ran.
    static func run(_ yaml: String, store: any ArtifactStore, runID: String, streaming: Bool, bandRows: Int? = nil,
                    resume: Bool = false) async throws -> RunOutcome {
        let outcome = try await harness.run(yaml, seed: 7, runID: runID, store: store, resume: resume, streaming: streaming, bandRows: bandRows)
        try #require(outcome.succeeded, "\(outcome.failure?.description ?? "")")
        return outcome
    }

    @Test(arguments: [("reference", 0), ("uint16", 1)])
    func aStreamedRunStoresTheSameBytesAsAWholeRun(_ name: String, _ which: Int) async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = which == 0 ? Self.reference(sink: directory.appendingPathComponent("out/image.jpg").path) : Self.uint16Chain
        let stages = which == 0 ? Self.referenceStages : ["generate", "normalize", "encode"]
        let wholeStore = FileArtifactStore(root: directory.appendingPathComponent("whole").path)
        let streamedStore = FileArtifactStore(root: directory.appendingPathComponent("streamed").path)
        let whole = try await Self.run(yaml, store: wholeStore, runID: "r", streaming: false)
        #expect(whole.report.memory?.streamed.isEmpty == true)
        for bandRows in [nil, 7] as [Int?] {
            let streamed = try await Self.run(yaml, store: streamedStore, runID: "r", streaming: true, bandRows: bandRows)
            #expect(streamed.report.memory?.streamed == [stages], "\(name): \(String(describing: streamed.report.memory))")
            for stage in stages {
                let expected = try #require(try wholeStore.manifest(runID: "r", stage: stage))
                let stored = try #require(try streamedStore.manifest(runID: "r", stage: stage), "\(name): no manifest for \(stage)")
                #expect(stored == expected, "\(name): \(stage)'s manifest differs")
                let bytes = try #require(try streamedStore.read(runID: "r", stage: stage)).data
                #expect(bytes == (try #require(try wholeStore.read(runID: "r", stage: stage))).data, "\(name): \(stage)'s bytes differ")
            }
            #expect(Self.files(directory.appendingPathComponent("streamed")) == Self.files(directory.appendingPathComponent("whole")))
        }
        // A stored streamed grid reads back as the grid a whole run computes.
        let grid = try #require(try streamedStore.load(runID: "r", stage: "normalize")?.artifact as? Grid<Float>)
        #expect(grid.width == (which == 0 ? 2000 : 1500))
    }

    /// A store of a package's own that implements only `write`: the default
    /// `beginWrite` holds the bytes and writes them at the commit.
    struct PlainStore: ArtifactStore {
        let inner: FileArtifactStore
        var description: String { inner.description }
        func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String) throws {
            try inner.write(data, manifest: manifest, runID: runID, stage: stage)
        }
        func manifest(runID: String, stage: String) throws -> ArtifactManifest? { try inner.manifest(runID: runID, stage: stage) }
        func read(runID: String, stage: String) throws -> (data: Data, manifest: ArtifactManifest)? { try inner.read(runID: runID, stage: stage) }
        func recordedSeed(runID: String) throws -> UInt64? { try inner.recordedSeed(runID: runID) }
        func recordSeed(_ seed: UInt64, runID: String) throws { try inner.recordSeed(seed, runID: runID) }
    }

    @Test func aStoreWithoutProgressiveWritesGetsTheBufferingDefault() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let wholeStore = FileArtifactStore(root: directory.appendingPathComponent("whole").path)
        let plain = PlainStore(inner: FileArtifactStore(root: directory.appendingPathComponent("plain").path))
        _ = try await Self.run(Self.uint16Chain, store: wholeStore, runID: "r", streaming: false)
        let streamed = try await Self.run(Self.uint16Chain, store: plain, runID: "r", streaming: true)
        #expect(streamed.report.memory?.streamed == [["generate", "normalize", "encode"]])
        for stage in ["generate", "normalize", "encode"] {
            #expect(try plain.manifest(runID: "r", stage: stage) == wholeStore.manifest(runID: "r", stage: stage), "\(stage)")
        }
    }

    @Test func resumeAndOnlyReadWhatAStreamedRunStored() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = Self.reference(sink: directory.appendingPathComponent("out/image.jpg").path)
        let store = FileArtifactStore(root: directory.appendingPathComponent("store").path)
        let first = try await Self.run(yaml, store: store, runID: "r1", streaming: true)
        #expect(first.report.memory?.streamed == [Self.referenceStages])
        // --resume: whole mode, every stored output reused.
        let again = try await Self.run(yaml, store: store, runID: "r1", streaming: true, resume: true)
        #expect(again.report.stages.count == 4 && again.report.stages.allSatisfy { $0.reused == true }, "\(again.report.stages.map(\.reused))")
        #expect(again.report.memory?.streamed.isEmpty == true)
        // --only encode: its input is normalize's streamed .npy; its output is what the streamed run stored.
        let plan = try Self.harness.plan(yaml).get()
        var options = RunOptions(runID: "r1", seed: 7, jobs: 2, events: IgnoredEvents())
        try options.useStore(store, for: plan, start: .only, seed: nil, only: "encode")
        let streamedJPEG = try #require(try store.read(runID: "r1", stage: "encode"))
        let only = await Executor(plan: plan, options: options).runOnly("encode")
        #expect(only.succeeded, "\(only.failure?.description ?? "")")
        let image = try #require(only.outputs["encode"] as? EncodedImage)
        #expect(image.bytes.withUnsafeBytes { Data($0) } == streamedJPEG.data)
        #expect(try store.manifest(runID: "r1", stage: "encode")?.sha256 == streamedJPEG.manifest.sha256)
    }

    @Test func aFailureMidSegmentLeavesNoManifestAndNoTemporaryFile() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The sink's target is a directory: it fails once every band went through the tees.
        let target = directory.appendingPathComponent("out/image.jpg")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let root = directory.appendingPathComponent("store")
        let store = FileArtifactStore(root: root.path)
        let outcome = try await Self.harness.run(Self.reference(sink: target.path), seed: 7, runID: "bad", store: store, bandRows: 16)
        #expect(!outcome.succeeded)
        #expect(outcome.report.memory?.streamed == [Self.referenceStages])
        #expect(outcome.failure?.stage == "store", "\(outcome.failure?.description ?? "")")
        // Only the run's record: no artifact, no manifest, no temporary file.
        #expect(Self.files(root) == ["bad/run.json"], "\(Self.files(root))")
    }

    @Test func aStoreWriteThatFailsMidSegmentIsAStoreErrorOfItsProducer() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let root = directory.appendingPathComponent("store")
        // normalize's directory in the store is a file: its tee cannot begin its write.
        try FileManager.default.createDirectory(at: root.appendingPathComponent("bad"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: root.appendingPathComponent("bad/normalize"))
        let store = FileArtifactStore(root: root.path)
        let outcome = try await Self.harness.run(Self.uint16Chain, seed: 7, runID: "bad", store: store, bandRows: 16)
        #expect(!outcome.succeeded)
        #expect(outcome.report.memory?.streamed == [["generate", "normalize", "encode"]])
        #expect(outcome.failure?.stage == "normalize" && outcome.failure?.code == .storeIO, "\(String(describing: outcome.failure))")
        #expect(outcome.failure?.message.contains("cannot store the output in") == true, "\(outcome.failure?.message ?? "")")
        #expect(Self.files(root) == ["bad/normalize", "bad/run.json"], "\(Self.files(root))")
    }

    /// Runs `runner` in a sandbox on poisson (`side` x `side`), `stages` after it, and a
    /// filesystem sink taking `encode`, with a directory store `store`.
    static func runner(side: Int, _ stages: [String], _ arguments: [String], signals: [(Int32, after: Duration)] = [],
                       check: (HardeningTests.Sandbox, RunnerProcess.Result) throws -> Void) throws {
        let box = try HardeningTests.Sandbox()
        defer { box.remove() }
        let lines = ["generate: {type: poisson, with: {width: \(side), height: \(side), lambda: 3, seed: 1}}"] + stages
            + ["store: {type: filesystem, input: encode, with: {path: out/image.png, overwrite: true}}"]
        let file = try box.write("stages:\n" + lines.map { "  " + $0 + "\n" }.joined())
        try check(box, try box.run([file, "--artifact-store", "store"] + arguments, signals: signals, limit: .seconds(300)))
    }

    @Test func cancellingAStoredStreamedRunLeavesNoManifestAndNoTemporaryFile() throws {
        try Self.runner(side: 8192, ["encode: {type: png, input: generate, with: {compression: 9}}"], ["--run-id", "c", "-v"],
                        signals: [(SIGINT, after: .milliseconds(700))]) { box, result in
            #expect(result.status == 130, "\(result.stderr)")
            #expect(result.stderr.contains("streamed: generate -> encode -> store"), "\(result.stderr)")
            #expect(Self.files(box.root.appendingPathComponent("store")) == ["c/run.json"])
            #expect(box.leftovers.isEmpty, "left in TMPDIR: \(box.leftovers)")
        }
    }

    /// The store's writes are progressive: a stored streamed run holds bands, not the
    /// grids it stores (64 MiB of floats for normalize's output here).
    @Test(arguments: [true, false])
    func aStoredStreamedRunStaysInBoundedMemory(_ streaming: Bool) throws {
        let stages = ["normalize: {type: normalize, input: generate}", "encode: {type: png, input: normalize, with: {compression: 1}}"]
        try Self.runner(side: 4096, stages, ["--report", "report.json"] + (streaming ? [] : ["--no-stream"])) { box, result in
            #expect(result.status == 0, "\(result.stderr)")
            let report = try JSONDecoder().decode(StreamingTests.ReportMemory.self, from: Data(contentsOf: box.root.appendingPathComponent("report.json")))
            let peak = report.memory.measured_peak_bytes / 1_048_576
            // Whole, the floats alone are 64 MiB: the bound tells the two apart.
            #expect(streaming ? peak < 60 : peak > 80, "peak RSS \(peak) MiB, streaming: \(streaming)")
            #expect(report.memory.streamed == (streaming ? [["generate", "normalize", "encode", "store"]] : []))
        }
    }

    @Test func theMemoryEstimateCountsTheStoresWriteBuffers() throws {
        let plan = try Self.harness.plan(Self.uint16Chain).get()
        func peak(_ store: (any ArtifactStore)?) -> Double {
            var options = RunOptions(runID: "m", seed: 1, jobs: 2, events: IgnoredEvents())
            options.store = store
            options.streamingMinimumBytes = 0  // the 3 MB grid streams too
            return Executor(plan: plan, options: options).layout.peakBytes
        }
        let directory = FileArtifactStore(root: "/nonexistent")
        var s3 = try S3ArtifactStore(uri: "s3://bucket/p", environment: AWSEnvironment(variables: [:]))
        s3.partSize = 5 << 20
        #expect(peak(directory) == peak(nil))
        // Two streamed outputs, each with 5 parts of 5 MiB and 2 MiB of chunks.
        #expect(peak(s3) - peak(nil) == 2 * (25 + 2) * 1_048_576)
        // A store that buffers holds the outputs: 1500x1003 of uint16, then of floats.
        #expect(peak(StreamingStoreTests.PlainStore(inner: directory)) - peak(nil) == 1500 * 1003 * 6)
    }

    @Test func aCustomGridCodecDoesNotStreamWithAStore() throws {
        let custom = ArtifactCodec(types: ArtifactType.allGrids, encode: { artifact in
            .init(data: try NPY.data(artifact as! any AnyGrid), fileExtension: "npy")
        }, decode: { data, _, name in try data.withUnsafeBytes { try NPY.read($0, name: name) } })
        let planned = try Self.harness.plan(Self.uint16Chain).get()
        let plan = Plan(name: planned.name, file: planned.file, params: planned.params, stages: planned.stages,
                        codecs: try ArtifactCodecs([custom, ArtifactCodecs.encodedImageCodec, ArtifactCodecs.storedObjectCodec]))
        let layout = StreamingLayout.layout(plan, storing: true)
        #expect(layout.segments.isEmpty)
        #expect(layout.notes["normalize"]?.contains("'generate'") == true, "\(layout.notes)")
        #expect(layout.notes["encode"]?.contains("'normalize'") == true, "\(layout.notes)")
        #expect(StreamingLayout.layout(plan).segments == [["generate", "normalize", "encode"]])
        #expect(StreamingLayout.layout(planned, storing: true).segments == [["generate", "normalize", "encode"]])
    }
}

/// The same against the S3 store on the local S3 server (moto).
@Suite(.serialized) struct StreamingS3StoreTests {
    let bucket = "pipeline-e2e"

    func store(_ s3: LocalS3, prefix: String) throws -> S3ArtifactStore {
        let variables = ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_ENDPOINT_URL_S3": s3.endpoint,
                         "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent"]
        var store = try S3ArtifactStore(uri: "s3://\(bucket)/\(prefix)", environment: AWSEnvironment(variables: variables))
        // normalize's 8 MB of floats go up in two parts; the rest with single PUTs.
        store.multipartThreshold = 5 << 20
        store.partSize = 5 << 20
        return store
    }

    func openUploads(_ store: S3ArtifactStore, prefix: String) throws -> Int {
        let body = try store.client.send("ListMultipartUploads", method: "GET", bucket: bucket, key: "", query: [("prefix", prefix), ("uploads", "")],
                                         session: CurlSession()).body
        return String(decoding: body, as: UTF8.self).components(separatedBy: "<UploadId>").count - 1
    }

    @Test func aStreamedRunStoresTheSameBytesInS3AsAWholeRun() async throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = StreamingStoreTests.reference(sink: directory.appendingPathComponent("out/image.jpg").path)
        let prefix = "streamed-\(UUID().uuidString)"
        let s3Store = try store(s3, prefix: prefix)
        let wholeStore = FileArtifactStore(root: directory.appendingPathComponent("whole").path)
        _ = try await StreamingStoreTests.run(yaml, store: wholeStore, runID: "r", streaming: false)
        let streamed = try await StreamingStoreTests.run(yaml, store: s3Store, runID: "r", streaming: true)
        #expect(streamed.report.memory?.streamed == [StreamingStoreTests.referenceStages])
        for stage in StreamingStoreTests.referenceStages {
            let expected = try #require(try wholeStore.read(runID: "r", stage: stage))
            let stored = try #require(try s3Store.read(runID: "r", stage: stage), "no manifest for \(stage)")
            #expect(stored.manifest == expected.manifest, "\(stage)'s manifest differs")
            #expect(stored.data == expected.data, "\(stage)'s bytes differ")
        }
        let resumed = try await StreamingStoreTests.run(yaml, store: s3Store, runID: "r", streaming: true, resume: true)
        #expect(resumed.report.stages.allSatisfy { $0.reused == true })
        #expect(try openUploads(s3Store, prefix: prefix) == 0)
    }

    @Test func aFailureMidSegmentLeavesNothingInS3() async throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("out/image.jpg")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let prefix = "failed-\(UUID().uuidString)"
        let s3Store = try store(s3, prefix: prefix)
        let outcome = try await StreamingStoreTests.harness.run(StreamingStoreTests.reference(sink: target.path), seed: 7, runID: "bad",
                                                                store: s3Store, bandRows: 16)
        #expect(!outcome.succeeded)
        #expect(outcome.report.memory?.streamed == [StreamingStoreTests.referenceStages])
        for stage in StreamingStoreTests.referenceStages {
            #expect(try s3Store.manifest(runID: "bad", stage: stage) == nil, "\(stage) has a manifest")
        }
        // normalize's multipart upload was aborted.
        #expect(try openUploads(s3Store, prefix: prefix) == 0)
    }
}
