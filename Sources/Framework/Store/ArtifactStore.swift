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
    /// The run seed recorded for a run (in its `run.json`), so `--resume` and `--only`
    /// use the same one; nil when the store has no such run. A record that cannot be
    /// read (not JSON, no seed) throws `ArtifactStoreError` with code `.damagedRun`.
    func recordedSeed(runID: String) throws -> UInt64?
    func recordSeed(_ seed: UInt64, runID: String) throws
    /// The ids of the runs the store holds, sorted, for messages about a run that is
    /// not there; nil when the store cannot list them cheaply (the default).
    func runIDs() throws -> [String]?
}

extension ArtifactStore {
    public func runIDs() throws -> [String]? { nil }
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

    enum CodingKeys: String, CodingKey {
        case artifactType = "artifact_type", file, byteCount = "byte_count", sha256, width, height, elementType = "element_type"
        case format, mediaType = "media_type", stageType = "stage_type", stageVersion = "stage_version", parameters, parametersHash = "parameters_hash"
        case inputFingerprints = "input_fingerprints", fingerprint
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

        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    /// Whether the problem is in what the user asked for (a usage error, exit 2)
    /// rather than in reading or writing.
    public var isUsageError: Bool { code != .io }

    public init(message: String, code: Code = .io) {
        self.message = message
        self.code = code
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
            return "'\(path(context))' is not \(type == String.self ? "a string" : "a \(type)")"
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
