internal import Crypto
import Foundation

/// Where a run's artifacts are persisted, under `{run_id}/{stage}/`, for resuming a
/// run or running one stage at a time (`--artifact-store`, `--resume`, `--only`).
public protocol ArtifactStore: Sendable, CustomStringConvertible {
    /// Persists a stage's output, already encoded (`ArtifactCodecs.encode`), with its
    /// manifest; atomically: a reader sees the whole artifact and manifest, or nothing.
    /// The manifest goes last. `manifest.file` names the bytes' file (or object).
    func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String) throws
    /// `write`, stopping soon after `cancel` is set (a cancelled run) with a
    /// `CancellationError`, leaving nothing half-written. The default ignores `cancel`.
    func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String, cancel: CancelFlag) throws
    /// The manifest of a stored output, or nil when there is none.
    func manifest(runID: String, stage: String) throws -> ArtifactManifest?
    /// A stored output's bytes and manifest, after checking the bytes' size and
    /// SHA-256 against the manifest (`ArtifactManifest.check`); nil when there is none.
    func read(runID: String, stage: String) throws -> (data: Data, manifest: ArtifactManifest)?
    /// The run seed recorded for a run (in its `run.json`), so `--resume` and `--only`
    /// use the same one; nil when the store has no such run. A record that cannot be
    /// read (not JSON, no seed) throws `ArtifactStoreError` with code `.damagedRun`.
    func recordedSeed(runID: String) throws -> UInt64?
    func recordSeed(_ seed: UInt64, runID: String) throws
    /// The ids of the runs the store holds, sorted, for messages about a run that is
    /// not there; nil when the store cannot list them cheaply (the default).
    func runIDs() throws -> [String]?
    /// Checks, before anything runs, that the store can be used: a remote store
    /// resolves its credentials and endpoint and makes one cheap request, and fails
    /// within a few seconds with an `ArtifactStoreError` saying what is wrong (code
    /// `.invalidLocation` when the store itself does not exist). The default does nothing.
    func checkAccess() throws
    /// Starts a progressive write of a stage's output: its bytes come through
    /// `ArtifactStoreWriter.append` as they are made (a streamed grid's `.npy`, an
    /// image's chunks), and `commit` stores them with `manifest` (its `file` and the
    /// codec's fields filled in; the size and SHA-256 are computed on the way), the
    /// manifest last, as `write` does. Any older manifest of the stage is gone once this
    /// returns. `abort` leaves nothing: no manifest, no half-written file or object.
    /// `cancel` set (the segment stopped) makes a blocked `append` stop soon.
    ///
    /// The default keeps the bytes in memory and calls `write` at `commit`: correct for
    /// any store, but not bounded in memory. `FileArtifactStore` and `S3ArtifactStore`
    /// write as the bytes come.
    func beginWrite(runID: String, stage: String, manifest: ArtifactManifest, cancel: CancelFlag) throws -> any ArtifactStoreWriter
    /// The memory a progressive write of an output of about `byteCount` bytes holds
    /// (its buffers), for the plan's memory estimate. The default, which holds the
    /// bytes, is `byteCount`.
    func progressiveWriteBytes(byteCount: Double) -> Double
}

/// A progressive write to an artifact store (`ArtifactStore.beginWrite`): `append`
/// the bytes in order, then `commit` or `abort`, once, from one thread at a time.
public protocol ArtifactStoreWriter: AnyObject, Sendable {
    /// Adds bytes to the stored output.
    func append(_ bytes: UnsafeRawBufferPointer) throws
    /// Makes the output whole: the bytes in place, then the manifest (with the size and
    /// SHA-256 of what was appended); returns the manifest as written. After a failure,
    /// nothing is stored (as after `abort`).
    func commit() throws -> ArtifactManifest
    /// Removes what was written (temporary files, a multipart upload); no manifest.
    func abort()
}

/// The size and SHA-256 of bytes seen one piece at a time: what a progressive write
/// puts in its manifest.
public struct ArtifactDigest: Sendable {
    private var hasher = SHA256()
    public private(set) var byteCount = 0

    public init() {}

    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
        byteCount += bytes.count
    }

    /// `manifest` with the size and SHA-256 of the bytes added.
    public func complete(_ manifest: ArtifactManifest) -> ArtifactManifest {
        var manifest = manifest
        manifest.byteCount = byteCount
        manifest.sha256 = SHA256Digest.hex(digest: hasher.finalize())
        return manifest
    }
}

/// A progressive write from three steps (append bytes, put them in place with the
/// manifest, remove them): counts and hashes the bytes for the manifest, and stops
/// with a `CancellationError` once `cancel` is set.
public final class DigestingStoreWriter: ArtifactStoreWriter, @unchecked Sendable {
    private let manifest: ArtifactManifest
    private let cancel: CancelFlag
    private let write: (UnsafeRawBufferPointer) throws -> Void
    private let finish: (ArtifactManifest) throws -> Void
    private let remove: () -> Void
    private var digest = ArtifactDigest()

    /// - Parameters:
    ///   - append: Writes bytes after those before.
    ///   - commit: Puts the bytes in place, then `manifest` (with their size and SHA-256).
    ///   - abort: Removes what was written.
    public init(manifest: ArtifactManifest, cancel: CancelFlag, append: @escaping (UnsafeRawBufferPointer) throws -> Void,
                commit: @escaping (_ manifest: ArtifactManifest) throws -> Void, abort: @escaping () -> Void) {
        self.manifest = manifest
        self.cancel = cancel
        write = append
        finish = commit
        remove = abort
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        if cancel.isSet() { throw CancellationError() }
        try write(bytes)
        digest.add(bytes)
    }

    public func commit() throws -> ArtifactManifest {
        if cancel.isSet() { throw CancellationError() }
        let manifest = digest.complete(manifest)
        try finish(manifest)
        return manifest
    }

    public func abort() { remove() }
}

/// The bytes of the default progressive write.
private final class WriteBuffer: @unchecked Sendable {
    var data = Data()
}

extension ArtifactStore {
    public func runIDs() throws -> [String]? { nil }

    public func checkAccess() throws {}

    public func progressiveWriteBytes(byteCount: Double) -> Double { byteCount }

    /// Keeps the bytes in memory and calls `write` at `commit` (not bounded in memory).
    public func beginWrite(runID: String, stage: String, manifest: ArtifactManifest, cancel: CancelFlag) throws -> any ArtifactStoreWriter {
        let buffer = WriteBuffer()
        return DigestingStoreWriter(manifest: manifest, cancel: cancel, append: { buffer.data.append(contentsOf: $0) }, commit: { manifest in
            defer { buffer.data = Data() }
            try write(buffer.data, manifest: manifest, runID: runID, stage: stage, cancel: cancel)
        }, abort: { buffer.data = Data() })
    }

    public func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String, cancel: CancelFlag) throws {
        try write(data, manifest: manifest, runID: runID, stage: stage)
    }

    /// Encodes `artifact` with `codecs` and persists it with `manifest` (`write`);
    /// returns the manifest as written (file name, size, SHA-256 filled in).
    @discardableResult
    public func save(_ artifact: any Artifact, manifest: ArtifactManifest, runID: String, stage: String,
                     codecs: ArtifactCodecs = .builtin, cancel: CancelFlag = CancelFlag()) throws -> ArtifactManifest {
        let (data, manifest) = try codecs.encode(artifact, manifest: manifest)
        try write(data, manifest: manifest, runID: runID, stage: stage, cancel: cancel)
        return manifest
    }

    /// Reads a stored output back (`read`) and decodes it with `codecs`; nil when
    /// there is none.
    public func load(runID: String, stage: String, codecs: ArtifactCodecs = .builtin) throws
        -> (artifact: any Artifact, manifest: ArtifactManifest)? {
        guard let (data, manifest) = try read(runID: runID, stage: stage) else { return nil }
        return (try codecs.decode(data, manifest: manifest, name: "\(description)/\(runID)/\(stage)/\(manifest.file)"), manifest)
    }
}

/// What is known about a stored artifact: enough to check it and to decide whether
/// it can be reused.
public struct ArtifactManifest: Codable, Sendable, Hashable {
    public var artifactType: String
    public var file: String
    public var byteCount: Int
    public var sha256: String
    public var width: Int?
    public var height: Int?
    public var elementType: String?
    public var format: String?
    public var mediaType: String?
    public var stageType: String
    /// The stage type's `StageSpec.version` (part of the fingerprint); nil in
    /// manifests written before versions existed.
    public var stageVersion: Int?
    public var parameters: [String: JSONValue]
    public var parametersHash: String
    /// Fingerprints of the stage's inputs, by port.
    public var inputFingerprints: [String: String]
    /// Hash of the stage type and version, parameters, seed and input fingerprints: equal
    /// fingerprints mean the stage would compute the same output.
    public var fingerprint: String
    /// What the artifact's codec recorded besides the fields above (`ArtifactCodec.Encoded.fields`);
    /// absent from the JSON when nil.
    public var fields: [String: JSONValue]? = nil

    /// Checks that `data` is what the manifest describes (its size and SHA-256);
    /// `name` says where it came from in the error.
    public func check(_ data: Data, name: String) throws {
        guard data.count == byteCount else {
            throw ArtifactStoreError(message: "\(name) is \(data.count) bytes, its manifest says \(byteCount): truncated or replaced")
        }
        let digest = data.withUnsafeBytes { SHA256Digest.hex(of: $0) }
        guard digest == sha256 else {
            throw ArtifactStoreError(message: "\(name) does not match the SHA-256 in its manifest: the file is corrupt")
        }
    }

    enum CodingKeys: String, CodingKey {
        case artifactType = "artifact_type", file, byteCount = "byte_count", sha256, width, height, elementType = "element_type"
        case format, mediaType = "media_type", stageType = "stage_type", stageVersion = "stage_version", parameters, parametersHash = "parameters_hash"
        case inputFingerprints = "input_fingerprints", fingerprint, fields
    }
}

/// A problem reading from or writing to an artifact store.
public struct ArtifactStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of problem: a growable set of stable names.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Reading or writing failed, or a stored artifact is damaged.
        public static let io = Code(rawValue: "store_io")
        /// The store's location cannot be a store: an unknown URI scheme, a path that is a file.
        public static let invalidLocation = Code(rawValue: "invalid_store_location")
        /// `--resume` names a run the store does not hold.
        public static let unknownRun = Code(rawValue: "unknown_run")
        /// A run's `run.json` cannot be read: not JSON, or no seed.
        public static let damagedRun = Code(rawValue: "damaged_run")
        /// A stage's output type has no codec (`ArtifactCodec`), so a run with a store cannot hold it.
        public static let noCodec = Code(rawValue: "no_codec")
        /// `--resume` with a `--seed` other than the one the run was made with.
        public static let conflictingSeed = Code(rawValue: "conflicting_seed")

        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    /// The run's error code for the cause, when it says more than `code` (a store
    /// that cannot be reached for lack of `credentials`, a `no_such_bucket`).
    public var cause: PipelineError.Code?
    public var description: String { message }

    /// Whether the problem is in what the user asked for (a usage error, exit 2)
    /// rather than in reading or writing.
    public var isUsageError: Bool { code != .io }

    public init(message: String, code: Code = .io, cause: PipelineError.Code? = nil) {
        self.message = message
        self.code = code
        self.cause = cause
    }
}

/// The manifest's JSON form, shared by every store.
extension ArtifactCodec {
    /// Parses a manifest and checks the fields that name things: `file` must be one
    /// bare file name (no `/`, `..`, control characters), so that reading a stored
    /// artifact never leaves its stage's directory or prefix.
    public static func decodeManifest(_ data: Data, name: String) throws -> ArtifactManifest {
        let manifest: ArtifactManifest
        do {
            manifest = try JSONDecoder().decode(ArtifactManifest.self, from: data)
        } catch let error as DecodingError {
            throw ArtifactStoreError(message: "\(name): not a valid manifest (\(reason(error)))")
        } catch {
            throw ArtifactStoreError(message: "\(name): not a valid manifest")
        }
        guard FilePaths.isBareName(manifest.file) else {
            throw ArtifactStoreError(message: "\(name) is damaged: its 'file' field '\(FilePaths.printable(manifest.file))' is not a bare file name")
        }
        guard manifest.byteCount >= 0 else {
            throw ArtifactStoreError(message: "\(name) is damaged: its 'byte_count' is negative")
        }
        return manifest
    }

    /// A decoding failure in words, without Foundation's `Error Domain=...` dump.
    public static func reason(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, _ key: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath + (key.map { [$0] } ?? [])
            return keys.map { key in key.intValue.map { String($0) } ?? key.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return "not JSON"
        case .dataCorrupted(let context):
            return "'\(path(context))' is not valid"
        case .keyNotFound(let key, let context):
            return "'\(path(context, key))' is missing"
        case .typeMismatch(let type, let context):
            let kind: String
            switch type {
            case is String.Type: kind = "a string"
            case is Bool.Type: kind = "true or false"
            case is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type, is UInt32.Type, is UInt.Type: kind = "a whole number"
            case is Double.Type, is Float.Type: kind = "a number"
            default: kind = "a \(type)"
            }
            return "'\(path(context))' is not \(kind)"
        case .valueNotFound(_, let context):
            return "'\(path(context))' is null"
        @unknown default:
            return "cannot be decoded"
        }
    }

    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
