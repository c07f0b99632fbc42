import Foundation

/// Where a run's artifacts are persisted, under `{run_id}/{stage}/`, for resuming a
/// run or running one stage at a time (`--artifact-store`, `--resume`, `--only`).
public protocol ArtifactStore: Sendable, CustomStringConvertible {
    /// Persists a stage's output with its manifest; atomically: a reader sees the
    /// whole artifact and manifest, or nothing.
    func save(_ artifact: any Artifact, manifest: ArtifactManifest, runID: String, stage: String) throws
    /// The manifest of a stored output, or nil when there is none.
    func manifest(runID: String, stage: String) throws -> ArtifactManifest?
    /// Reads a stored output back, checking its size and SHA-256 against the manifest.
    func load(runID: String, stage: String) throws -> (artifact: any Artifact, manifest: ArtifactManifest)?
    /// The run seed recorded for a run, so `--resume` and `--only` use the same one.
    func recordedSeed(runID: String) throws -> UInt64?
    func recordSeed(_ seed: UInt64, runID: String) throws
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
    public var parameters: [String: JSONValue]
    public var parametersHash: String
    /// Fingerprints of the stage's inputs, by port.
    public var inputFingerprints: [String: String]
    /// Hash of the stage type, parameters, seed and input fingerprints: equal
    /// fingerprints mean the stage would compute the same output.
    public var fingerprint: String

    enum CodingKeys: String, CodingKey {
        case artifactType = "artifact_type", file, byteCount = "byte_count", sha256, width, height, elementType = "element_type"
        case format, mediaType = "media_type", stageType = "stage_type", parameters, parametersHash = "parameters_hash"
        case inputFingerprints = "input_fingerprints", fingerprint
    }
}

/// A problem reading from or writing to an artifact store.
public struct ArtifactStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}

/// How artifacts become stored bytes and back, for every store: grids as NumPy
/// `.npy`, encoded images as their bytes, stored-object references as JSON; the
/// manifest records the file name, size and SHA-256 that reading checks.
public enum ArtifactCodec {
    /// The bytes to store and the manifest completed with what they are.
    public static func encode(_ artifact: any Artifact, manifest: ArtifactManifest) throws -> (data: Data, manifest: ArtifactManifest) {
        var manifest = manifest
        let data: Data
        switch artifact {
        case let grid as any AnyGrid:
            manifest.file = "artifact.npy"
            data = try NPY.data(grid)
            manifest.width = grid.width
            manifest.height = grid.height
            manifest.elementType = grid.elementType.rawValue
        case let image as EncodedImage:
            manifest.file = "artifact.\(image.format)"
            data = image.bytes.withUnsafeBytes { Data($0) }
            manifest.width = image.width
            manifest.height = image.height
            manifest.format = image.format
            manifest.mediaType = image.mediaType
        case let object as StoredObject:
            manifest.file = "artifact.json"
            var fields: [String: JSONValue] = ["uri": .string(object.uri), "byte_count": .integer(object.byteCount), "sha256": .string(object.sha256)]
            if let etag = object.etag { fields["etag"] = .string(etag) }
            if let mediaType = object.mediaType { fields["media_type"] = .string(mediaType) }
            if let version = object.versionID { fields["version_id"] = .string(version) }
            data = try encoder.encode(JSONValue.object(fields))
        default:
            throw ArtifactStoreError(message: "artifact type \(artifact.artifactType) has no stored form")
        }
        manifest.byteCount = data.count
        manifest.sha256 = data.withUnsafeBytes { SHA256Digest.hex(of: $0) }
        return (data, manifest)
    }

    /// The artifact in `data`, after checking its size and SHA-256 against `manifest`;
    /// `name` says where it came from in messages.
    public static func decode(_ data: Data, manifest: ArtifactManifest, name: String) throws -> any Artifact {
        guard data.count == manifest.byteCount else {
            throw ArtifactStoreError(message: "\(name) is \(data.count) bytes, its manifest says \(manifest.byteCount): truncated or replaced")
        }
        let digest = data.withUnsafeBytes { SHA256Digest.hex(of: $0) }
        guard digest == manifest.sha256 else {
            throw ArtifactStoreError(message: "\(name) does not match the SHA-256 in its manifest: the file is corrupt")
        }
        let artifact: any Artifact
        switch manifest.artifactType {
        case let type where type.hasPrefix("Grid<"):
            artifact = try data.withUnsafeBytes { try NPY.read($0, name: name) }
        case ArtifactType.encodedImage.name:
            artifact = EncodedImage(bytes: SharedBytes(data), format: manifest.format ?? "bin", mediaType: manifest.mediaType ?? "application/octet-stream",
                                    width: manifest.width ?? 0, height: manifest.height ?? 0)
        case ArtifactType.storedObject.name:
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let uri = object["uri"] as? String,
                  let count = object["byte_count"] as? Int, let sha = object["sha256"] as? String else {
                throw ArtifactStoreError(message: "\(name): not a stored-object reference")
            }
            artifact = StoredObject(uri: uri, byteCount: count, sha256: sha, mediaType: object["media_type"] as? String,
                                    etag: object["etag"] as? String, versionID: object["version_id"] as? String)
        default:
            throw ArtifactStoreError(message: "\(name): artifact type \(manifest.artifactType) cannot be read back from a store")
        }
        guard artifact.artifactType.name == manifest.artifactType else {
            throw ArtifactStoreError(message: "\(name) holds \(artifact.artifactType), its manifest says \(manifest.artifactType)")
        }
        return artifact
    }

    /// Parses a manifest and checks the fields that name things: `file` must be one
    /// bare file name (no `/`, `..`, control characters), so that reading a stored
    /// artifact never leaves its stage's directory or prefix.
    public static func decodeManifest(_ data: Data, name: String) throws -> ArtifactManifest {
        let manifest: ArtifactManifest
        do {
            manifest = try JSONDecoder().decode(ArtifactManifest.self, from: data)
        } catch {
            throw ArtifactStoreError(message: "\(name): not a valid manifest (\(error))")
        }
        guard FilePaths.isBareName(manifest.file) else {
            throw ArtifactStoreError(message: "\(name) is damaged: its 'file' field '\(FilePaths.printable(manifest.file))' is not a bare file name")
        }
        guard manifest.byteCount >= 0 else {
            throw ArtifactStoreError(message: "\(name) is damaged: its 'byte_count' is negative")
        }
        return manifest
    }

    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// An artifact store in a directory.
public struct FileArtifactStore: ArtifactStore {
    public let root: String

    public init(root: String) {
        // Taken literally: '~' is a directory name here, never the home directory.
        self.root = FilePaths.absolute(root)
    }

    public var description: String { root }

    func directory(_ runID: String, _ stage: String) -> String { "\(root)/\(runID)/\(stage)" }

    public func save(_ artifact: any Artifact, manifest: ArtifactManifest, runID: String, stage: String) throws {
        let directory = directory(runID, stage)
        try FilePaths.createDirectories(directory)
        let (data, manifest) = try ArtifactCodec.encode(artifact, manifest: manifest)
        try Self.atomicWrite(data, to: directory + "/" + manifest.file)
        // The manifest goes last: its presence says the artifact is complete.
        try Self.atomicWrite(try ArtifactCodec.encoder.encode(manifest), to: directory + "/manifest.json")
    }

    public func manifest(runID: String, stage: String) throws -> ArtifactManifest? {
        let path = directory(runID, stage) + "/manifest.json"
        guard let data = try Self.contents(path) else { return nil }
        return try ArtifactCodec.decodeManifest(data, name: path)
    }

    public func load(runID: String, stage: String) throws -> (artifact: any Artifact, manifest: ArtifactManifest)? {
        guard let manifest = try manifest(runID: runID, stage: stage) else { return nil }
        let path = directory(runID, stage) + "/" + manifest.file
        guard let data = try Self.contents(path) else {
            throw ArtifactStoreError(message: "\(path) is missing, though its manifest is there")
        }
        return (try ArtifactCodec.decode(data, manifest: manifest, name: path), manifest)
    }

    /// The run seed recorded for a run, so `--resume` and `--only` use the same one.
    public func recordedSeed(runID: String) -> UInt64? {
        guard let data = try? Self.contents("\(root)/\(runID)/run.json") else { return nil }
        return RunRecord.seed(in: data)
    }

    public func recordSeed(_ seed: UInt64, runID: String) throws {
        try FilePaths.createDirectories("\(root)/\(runID)")
        try Self.atomicWrite(RunRecord.data(seed: seed), to: "\(root)/\(runID)/run.json")
    }

    static func atomicWrite(_ data: Data, to path: String) throws {
        try AtomicFile.write(data, to: path, overwrite: true)
    }

    /// A stored file's bytes, or nil when it does not exist.
    static func contents(_ path: String) throws -> Data? {
        let bytes: SharedBytes
        do {
            bytes = try FileContents.read(path)
        } catch let error as SystemError where error.code == ENOENT {
            return nil
        }
        // No copy: the Data keeps the malloc'd bytes alive.
        return bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress, buffer.count > 0 else { return Data() }
            return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: buffer.count, deallocator: .custom { _, _ in _ = bytes })
        }
    }
}

/// `run.json`: what a store records about a run (its seed).
public enum RunRecord {
    public static func data(seed: UInt64) -> Data { Data("{\"seed\": \(seed)}\n".utf8) }

    public static func seed(in data: Data) -> UInt64? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return (object["seed"] as? NSNumber)?.uint64Value
    }
}
