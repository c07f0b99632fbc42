import Foundation
import Testing
@testable import Framework
import PipelineTesting

/// An artifact type the framework does not know: a note, stored as UTF-8 text.
final class Note: Artifact {
    static let type = ArtifactType(name: "Note")
    let text: String
    init(_ text: String) { self.text = text }
    var artifactType: ArtifactType { Self.type }
    func summary() -> ArtifactSummary { ArtifactSummary(type: artifactType) }

    static let codec = ArtifactCodec(type, as: Note.self, encode: { note in
        ArtifactCodec.Encoded(data: Data(note.text.utf8), fileExtension: "txt", mediaType: "text/plain", fields: ["chars": .integer(note.text.count)])
    }, decode: { data, manifest in
        guard manifest.fields?["chars"] != nil else { throw NoteError() }
        return Note(String(decoding: data, as: UTF8.self))
    })
}

struct NoteError: Error, CustomStringConvertible {
    var description: String { "the manifest has no 'chars'" }
}

/// Makes a `Note` from a seeded number, so a resumed run can tell reuse from a re-run.
struct NoteSource: Stage {
    /// How many times the stage ran, by run id.
    final class Runs: @unchecked Sendable {
        private let lock = NSLock()
        private var counts: [String: Int] = [:]
        func count(_ runID: String) { lock.lock(); counts[runID, default: 0] += 1; lock.unlock() }
        subscript(runID: String) -> Int { lock.lock(); defer { lock.unlock() }; return counts[runID, default: 0] }
    }
    static let runs = Runs()

    static let spec = StageSpec(
        name: "note",
        summary: "A note holding a number drawn from the stage's seed.",
        parameters: [ParameterSpec("seed", .integer, range: .atLeast(0), optional: true, doc: "the seed")],
        output: .fixed(Note.type))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        NoteSource.runs.count(context.runID)
        return Note("seed \(context.seed)")
    }
}

/// Counts the characters of a note, as a one-row grid.
struct NoteLength: Stage {
    static let spec = StageSpec(
        name: "note_length",
        summary: "The length of a note, as a 1x1 grid.",
        inputs: [InputPort(accepts: .oneOf(Note.type), doc: "a note")],
        output: .fixed(.grid(.uint32)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let note = try #require(inputs.input as? Note)
        return try Grid<UInt32>(width: 1, height: 1, values: [UInt32(note.text.count)])
    }
}

/// Issue 11: artifact codecs registered per type, and resuming through the framework.
@Suite(.serialized) struct ArtifactCodecTests {
    let yaml = """
        stages:
          make: {type: note}
          length: {type: note_length, input: make}
        """

    func temporaryStore() -> (FileArtifactStore, URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("codec-store-\(UUID().uuidString)")
        return (FileArtifactStore(root: root.path), root)
    }

    func harness(codecs: [ArtifactCodec] = [Note.codec]) throws -> PipelineHarness {
        PipelineHarness(registry: try StageRegistry([StageType(NoteSource.self), StageType(NoteLength.self)], codecs: codecs))
    }

    @Test func aCustomTypeIsStoredThroughItsCodecAndResumed() async throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        let harness = try harness()
        let id = "n1-" + UUID().uuidString
        let first = try await harness.run(yaml, seed: 7, runID: id, store: store)
        #expect(first.succeeded, "\(String(describing: first.failure))")
        let manifest = try #require(try store.manifest(runID: id, stage: "make"))
        #expect(manifest.artifactType == "Note" && manifest.file == "artifact.txt" && manifest.mediaType == "text/plain")
        #expect(manifest.fields == ["chars": .integer((first.outputs["length"] as? Grid<UInt32>)?.elements.first.map(Int.init) ?? -1)])
        let text = try String(contentsOf: root.appendingPathComponent("\(id)/make/artifact.txt"), encoding: .utf8)
        #expect(text.hasPrefix("seed "))

        let resumed = try await harness.run(yaml, seed: 99, runID: id, store: store, resume: true)
        #expect(resumed.succeeded, "\(String(describing: resumed.failure))")
        #expect(resumed.report.seed == 7, "the resumed run uses the recorded seed")
        #expect(resumed.report.stages.allSatisfy { $0.reused == true })
        #expect(NoteSource.runs[id] == 1, "the note stage ran again")
        #expect((resumed.outputs["length"] as? Grid<UInt32>)?.elements == (first.outputs["length"] as? Grid<UInt32>)?.elements)
        let (loaded, _) = try #require(try store.load(runID: id, stage: "make", codecs: harness.registry.codecs))
        #expect((loaded as? Note)?.text == text)
    }

    @Test func resumingARunTheStoreDoesNotHoldFails() async throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        let error = await #expect(throws: ArtifactStoreError.self) {
            _ = try await harness().run(yaml, runID: "nowhere", store: store, resume: true)
        }
        #expect(error?.code == .unknownRun)
        #expect(error?.message.contains("no run 'nowhere' in the artifact store") == true, "\(String(describing: error))")
    }

    @Test func aTypeWithoutACodecFailsTheRunBeforeAnyStageRuns() async throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        let id = "n2-" + UUID().uuidString
        let error = await #expect(throws: ArtifactStoreError.self) { _ = try await harness(codecs: []).run(yaml, runID: id, store: store) }
        #expect(error?.code == .noCodec && error?.isUsageError == true)
        #expect(error?.message == "stage 'make' (note) cannot run with an artifact store: its output type Note has no codec, so the store "
            + "cannot hold it; register an ArtifactCodec for 'Note' with StageRegistry.adding(_:codecs:), or run without an artifact store")
        #expect(NoteSource.runs[id] == 0)
        #expect(!FileManager.default.fileExists(atPath: root.path), "the store was written to")
        // Without a store nothing needs storing: the same registry runs the pipeline.
        #expect(try await harness(codecs: []).run(yaml).succeeded)

        // --only: only the stage and its inputs pass through the store, so a stage whose
        // inputs have no codec is refused, and one that needs none is not.
        let plan = try harness(codecs: []).plan(yaml).get()
        var options = RunOptions(runID: id)
        #expect(throws: ArtifactStoreError.self) { try options.useStore(store, for: plan, start: .only, seed: nil, only: "length") }
        try options.useStore(store, for: try harness().plan(yaml).get(), start: .only, seed: nil, only: "length")
    }

    @Test func aCodecErrorNamesTheFileAndType() throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        var manifest = ArtifactManifest(artifactType: "", file: "", byteCount: 0, sha256: "", stageType: "note",
                                        parameters: [:], parametersHash: "", inputFingerprints: [:], fingerprint: "f")
        let codecs = try ArtifactCodecs.builtin.adding([Note.codec])
        try store.save(Note("hello"), manifest: manifest, runID: "r", stage: "s", codecs: codecs)
        // A manifest without the codec's field: the codec refuses it, and the message says where and what.
        manifest = try #require(try store.manifest(runID: "r", stage: "s"))
        manifest.fields = nil
        try store.write(Data("hello".utf8), manifest: manifest, runID: "r", stage: "s")
        let error = #expect(throws: ArtifactStoreError.self) { _ = try store.load(runID: "r", stage: "s", codecs: codecs) }
        #expect(error?.message == "\(root.path)/r/s/artifact.txt cannot be read back as Note: the manifest has no 'chars'")
        // Read with codecs that do not know the type.
        let unknown = #expect(throws: ArtifactStoreError.self) { _ = try store.load(runID: "r", stage: "s") }
        #expect(unknown?.message.contains("holds a Note, which has no codec here; register an ArtifactCodec for 'Note'") == true)
    }

    @Test func twoCodecsForOneTypeAreARegistrationError() throws {
        let error = #expect(throws: RegistrationError.self) { _ = try StageRegistry([], codecs: [Note.codec, Note.codec]) }
        #expect(error?.problems == ["artifact type 'Note' has two codecs; register one"])
        let builtin = #expect(throws: RegistrationError.self) {
            _ = try StageRegistry([]).adding([], codecs: [ArtifactCodec(.encodedImage, as: EncodedImage.self, encode: { _ in
                ArtifactCodec.Encoded(data: Data(), fileExtension: "bin")
            }, decode: { _, _ in EncodedImage(bytes: [UInt8](), format: "x", mediaType: "x", width: 0, height: 0) })])
        }
        #expect(builtin?.problems == ["artifact type 'EncodedImage' has two codecs; register one"])
    }

    /// The built-in stored forms are those of stores written before codecs existed,
    /// so existing stores still load.
    @Test func builtInStoredFormsAreUnchanged() throws {
        let (store, root) = temporaryStore()
        defer { try? FileManager.default.removeItem(at: root) }
        let manifest = ArtifactManifest(artifactType: "", file: "", byteCount: 0, sha256: "", stageType: "t",
                                        parameters: [:], parametersHash: "h", inputFingerprints: [:], fingerprint: "f")
        try store.save(try Grid<UInt16>(width: 2, height: 1, values: [1, 515]), manifest: manifest, runID: "r", stage: "grid")
        let npy = try Data(contentsOf: root.appendingPathComponent("r/grid/artifact.npy"))
        #expect(npy.prefix(8) == Data([0x93] + Array("NUMPY".utf8) + [1, 0]))
        #expect(npy.suffix(4) == Data([1, 0, 3, 2]))
        try store.save(StoredObject(uri: "file:///x", byteCount: 3, sha256: "abc", etag: "e"), manifest: manifest, runID: "r", stage: "object")
        let object = try String(contentsOf: root.appendingPathComponent("r/object/artifact.json"), encoding: .utf8)
        #expect(object == "{\n  \"byte_count\" : 3,\n  \"etag\" : \"e\",\n  \"sha256\" : \"abc\",\n  \"uri\" : \"file:///x\"\n}")
        try store.save(EncodedImage(bytes: [1, 2], format: "png", mediaType: "image/png", width: 1, height: 1), manifest: manifest,
                       runID: "r", stage: "image")
        let json = try String(contentsOf: root.appendingPathComponent("r/image/manifest.json"), encoding: .utf8)
        #expect(json == """
            {
              "artifact_type" : "EncodedImage",
              "byte_count" : 2,
              "file" : "artifact.png",
              "fingerprint" : "f",
              "format" : "png",
              "height" : 1,
              "input_fingerprints" : {

              },
              "media_type" : "image/png",
              "parameters" : {

              },
              "parameters_hash" : "h",
              "sha256" : "\(SHA256Digest.hex(of: [1, 2]))",
              "stage_type" : "t",
              "width" : 1
            }
            """)
        for stage in ["grid", "object", "image"] {
            #expect(try store.load(runID: "r", stage: stage) != nil, "\(stage)")
        }
    }
}
