import Foundation

/// How artifacts of one or more types become stored bytes and back.
///
/// An artifact store keeps bytes and a manifest (`ArtifactStore.write`/`read`); a
/// codec is what turns an artifact into those bytes and the manifest's descriptive
/// fields, and turns them back into an artifact when a run is resumed or a stage is
/// run alone. The framework's codecs (`ArtifactCodecs.builtin`) store grids as NumPy
/// `.npy`, encoded images as their bytes and stored-object references as JSON. A
/// package with artifact types of its own registers a codec for each, so that runs
/// with an artifact store can hold them:
///
/// ```swift
/// let codec = ArtifactCodec(Report.type, as: Report.self,
///     encode: { report in ArtifactCodec.Encoded(data: Data(report.bytes), fileExtension: "json", mediaType: "application/json") },
///     decode: { data, _ in Report(bytes: SharedBytes(data)) })
/// let registry = try BuiltinStages.registry(adding: myStages).adding([], codecs: [codec])
/// ```
///
/// Implementation requirements: `decode` must accept every `data` that `encode`
/// produced, and give back an artifact of the manifest's type. The store has already
/// checked the bytes' size and SHA-256 against the manifest when `decode` runs.
/// Errors thrown by `decode` are shown with the stored file's name and the type.
public struct ArtifactCodec: Sendable {
    /// What a codec makes of an artifact: the bytes to store, the extension of the
    /// file (or object) that holds them, and fields for the manifest.
    public struct Encoded: Sendable {
        /// The bytes to store.
        public var data: Data
        /// The stored file is `artifact.` + this: `npy`, `jpeg`, `json`. Letters,
        /// digits, `-` and `_` only.
        public var fileExtension: String
        public var width: Int?
        public var height: Int?
        /// A grid's element type (`uint8`).
        public var elementType: String?
        /// A short format name (`jpeg`).
        public var format: String?
        /// The IANA media type of the bytes; stores use it as the Content-Type.
        public var mediaType: String?
        /// Anything else the codec needs to decode the bytes, kept in the manifest's
        /// `fields` (omitted when nil).
        public var fields: [String: JSONValue]?

        public init(data: Data, fileExtension: String, width: Int? = nil, height: Int? = nil, elementType: String? = nil,
                    format: String? = nil, mediaType: String? = nil, fields: [String: JSONValue]? = nil) {
            self.data = data
            self.fileExtension = fileExtension
            self.width = width
            self.height = height
            self.elementType = elementType
            self.format = format
            self.mediaType = mediaType
            self.fields = fields
        }
    }

    /// The artifact types this codec stores, by name.
    public let artifactTypes: [ArtifactType]
    /// Whether this is a built-in codec whose stored form a streamed edge can write as
    /// its bands or chunks pass (`.npy`, an image's bytes); false for any codec a
    /// package registers.
    var storesStreamed = false
    private let encodeArtifact: @Sendable (any Artifact) throws -> Encoded
    private let decodeArtifact: @Sendable (_ data: Data, _ manifest: ArtifactManifest, _ name: String) throws -> any Artifact

    /// A codec for `types`.
    ///
    /// - Parameters:
    ///   - types: The artifact types it handles (all grid types share one codec).
    ///   - encode: The stored form of an artifact of one of `types`.
    ///   - decode: The artifact in `data`, described by `manifest`; `name` says where
    ///     the bytes came from, for messages.
    public init(types: [ArtifactType], encode: @escaping @Sendable (any Artifact) throws -> Encoded,
                decode: @escaping @Sendable (_ data: Data, _ manifest: ArtifactManifest, _ name: String) throws -> any Artifact) {
        self.artifactTypes = types
        self.encodeArtifact = encode
        self.decodeArtifact = decode
    }

    /// A codec for one artifact type whose artifacts are instances of `artifactClass`.
    ///
    /// - Parameters:
    ///   - type: The artifact type, as its stages declare it.
    ///   - artifactClass: The class its artifacts are.
    ///   - encode: The stored form of an artifact.
    ///   - decode: The artifact in `data`, described by `manifest`.
    public init<A: Artifact>(_ type: ArtifactType, as artifactClass: A.Type, encode: @escaping @Sendable (A) throws -> Encoded,
                             decode: @escaping @Sendable (_ data: Data, _ manifest: ArtifactManifest) throws -> A) {
        self.init(types: [type], encode: { artifact in
            guard let typed = artifact as? A else {
                throw ArtifactStoreError(message: "the codec of \(type) was given a \(artifact.artifactType) artifact")
            }
            return try encode(typed)
        }, decode: { data, manifest, _ in try decode(data, manifest) })
    }

    /// The stored form of `artifact`.
    public func encode(_ artifact: any Artifact) throws -> Encoded {
        try encodeArtifact(artifact)
    }

    /// The artifact in `data` (already checked against `manifest`); `name` is for messages.
    public func decode(_ data: Data, manifest: ArtifactManifest, name: String) throws -> any Artifact {
        try decodeArtifact(data, manifest, name)
    }
}

/// The codecs a run uses to store artifacts, one per artifact type name.
///
/// A value, like `StageRegistry`, which carries one (`StageRegistry.codecs`); the
/// planner copies it onto the plan (`Plan.codecs`) and the executor stores and reads
/// back every stage output through it. `builtin` knows every type the framework
/// declares; `StageRegistry.adding(_:codecs:)` adds a package's own.
public struct ArtifactCodecs: Sendable {
    private var byName: [String: ArtifactCodec] = [:]

    /// Codecs for `codecs`' types; two codecs for one type name are a `RegistrationError`.
    public init(_ codecs: [ArtifactCodec] = []) throws(RegistrationError) {
        try register(codecs)
    }

    /// These codecs and `more`; a type that would get a second codec is a `RegistrationError`.
    public func adding(_ more: [ArtifactCodec]) throws(RegistrationError) -> ArtifactCodecs {
        var copy = self
        try copy.register(more)
        return copy
    }

    private mutating func register(_ more: [ArtifactCodec]) throws(RegistrationError) {
        var problems: [String] = []
        var added: [String: ArtifactCodec] = [:]
        for codec in more {
            if codec.artifactTypes.isEmpty { problems.append("an artifact codec names no artifact type") }
            for type in codec.artifactTypes where byName[type.name] != nil || added.updateValue(codec, forKey: type.name) != nil {
                problems.append("artifact type '\(type.name)' has two codecs; register one")
            }
        }
        guard problems.isEmpty else { throw RegistrationError(problems: problems) }
        byName.merge(added) { _, new in new }
    }

    /// The codec for artifacts of the type named `typeName`, if any.
    public func codec(for typeName: String) -> ArtifactCodec? {
        byName[typeName]
    }

    /// The names of the types that have a codec, sorted.
    public var typeNames: [String] { byName.keys.sorted() }

    /// The bytes to store for `artifact`, and `manifest` completed with what they are:
    /// its type, the file name, size, SHA-256 and the codec's fields. An artifact whose type has
    /// no codec is an `ArtifactStoreError` saying to register one.
    public func encode(_ artifact: any Artifact, manifest: ArtifactManifest) throws -> (data: Data, manifest: ArtifactManifest) {
        let type = artifact.artifactType.name
        guard let codec = byName[type] else {
            throw ArtifactStoreError(message: "artifact type \(type) has no codec, so it cannot be stored; " + Self.registrationHelp(type))
        }
        let encoded = try codec.encode(artifact)
        var manifest = try describe(manifest, type: type, encoded)
        manifest.byteCount = encoded.data.count
        manifest.sha256 = encoded.data.withUnsafeBytes { SHA256Digest.hex(of: $0) }
        return (encoded.data, manifest)
    }

    /// Whether an output of `type` can be stored while it streams (its codec is a
    /// built-in one: a grid's `.npy`, an image's bytes).
    public func storesStreamed(_ type: ArtifactType) -> Bool {
        byName[type.name]?.storesStreamed == true
    }

    /// `manifest` completed with what `encoded` (whose `data` is not used) says of an
    /// artifact of the type named `type`: the file name and the codec's fields.
    func describe(_ manifest: ArtifactManifest, type: String, _ encoded: ArtifactCodec.Encoded) throws -> ArtifactManifest {
        let file = "artifact." + encoded.fileExtension
        guard !encoded.fileExtension.isEmpty,
              encoded.fileExtension.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw ArtifactStoreError(message: "the codec of \(type) gave the file extension '\(FilePaths.printable(encoded.fileExtension))'; "
                + "use letters, digits, '-' and '_' only")
        }
        var manifest = manifest
        manifest.artifactType = type
        manifest.file = file
        manifest.width = encoded.width
        manifest.height = encoded.height
        manifest.elementType = encoded.elementType
        manifest.format = encoded.format
        manifest.mediaType = encoded.mediaType
        manifest.fields = encoded.fields
        return manifest
    }

    /// The artifact in `data`, which a store has checked against `manifest`; `name`
    /// says where it came from in messages. The artifact must be of the manifest's type.
    public func decode(_ data: Data, manifest: ArtifactManifest, name: String) throws -> any Artifact {
        let type = manifest.artifactType
        guard let codec = byName[type] else {
            throw ArtifactStoreError(message: "\(name) holds a \(FilePaths.printable(type)), which has no codec here; "
                + Self.registrationHelp(FilePaths.printable(type)))
        }
        let artifact: any Artifact
        do {
            artifact = try codec.decode(data, manifest: manifest, name: name)
        } catch let error as ArtifactStoreError {
            throw error
        } catch {
            throw ArtifactStoreError(message: "\(name) cannot be read back as \(type): \(ErrorDescription.readable(error))")
        }
        guard artifact.artifactType.name == type else {
            throw ArtifactStoreError(message: "\(name) holds \(artifact.artifactType), its manifest says \(type)")
        }
        return artifact
    }

    static func registrationHelp(_ type: String) -> String {
        "register an ArtifactCodec for '\(type)' with StageRegistry.adding(_:codecs:)"
    }

    /// With an artifact store, every output of `stages` is stored: the first stage
    /// whose output type has no codec, with the reason (naming the type and what to
    /// do; the caller names the stage); nil when all can be stored.
    public func unstorableOutput(_ stages: [PlannedStage]) -> (stage: PlannedStage, reason: String)? {
        guard let stage = stages.first(where: { byName[$0.outputType.name] == nil }) else { return nil }
        let type = stage.outputType.name
        return (stage, "its output type \(type) has no codec, so the store cannot hold it; "
            + Self.registrationHelp(type) + ", or run without an artifact store")
    }

    /// The framework's codecs: every grid type as NumPy `.npy` (version 1.0,
    /// little-endian, C order), `EncodedImage` as its bytes (`artifact.FORMAT`) and
    /// `StoredObject` as a JSON reference (`artifact.json`).
    public static let builtin: ArtifactCodecs = {
        do {
            return try ArtifactCodecs([gridCodec, encodedImageCodec, storedObjectCodec])
        } catch {
            preconditionFailure("the built-in artifact codecs overlap: \(error)")
        }
    }()

    /// How the grid codec stores a grid of this shape: `data` is its `.npy` bytes.
    static func gridForm(_ data: Data, elementType: ElementType, width: Int, height: Int) -> ArtifactCodec.Encoded {
        .init(data: data, fileExtension: "npy", width: width, height: height, elementType: elementType.rawValue)
    }

    /// How the encoded-image codec stores an image: `data` is its bytes.
    static func imageForm(_ data: Data, format: String, mediaType: String, width: Int, height: Int) -> ArtifactCodec.Encoded {
        .init(data: data, fileExtension: format, width: width, height: height, format: format, mediaType: mediaType)
    }

    static let gridCodec = streamed(ArtifactCodec(types: ArtifactType.allGrids, encode: { artifact in
        guard let grid = artifact.asGrid else {
            throw ArtifactStoreError(message: "the grid codec was given a \(artifact.artifactType) artifact")
        }
        return gridForm(try NPY.data(grid), elementType: grid.elementType, width: grid.width, height: grid.height)
    }, decode: { data, _, name in
        do {
            return try data.withUnsafeBytes { try NPY.read($0, name: name) }
        } catch let error as NPY.FormatError {
            throw ArtifactStoreError(message: error.message)
        }
    }))

    private static func streamed(_ codec: ArtifactCodec) -> ArtifactCodec {
        var codec = codec
        codec.storesStreamed = true
        return codec
    }

    static let encodedImageCodec = streamed(ArtifactCodec(.encodedImage, as: EncodedImage.self, encode: { image in
        imageForm(image.bytes.withUnsafeBytes { Data($0) }, format: image.format, mediaType: image.mediaType, width: image.width,
                  height: image.height)
    }, decode: { data, manifest in
        EncodedImage(bytes: SharedBytes(data), format: manifest.format ?? "bin", mediaType: manifest.mediaType ?? "application/octet-stream",
                     width: manifest.width ?? 0, height: manifest.height ?? 0)
    }))

    static let storedObjectCodec = ArtifactCodec(types: [.storedObject], encode: { artifact in
        guard let object = artifact as? StoredObject else {
            throw ArtifactStoreError(message: "the StoredObject codec was given a \(artifact.artifactType) artifact")
        }
        var fields: [String: JSONValue] = ["uri": .string(object.uri), "byte_count": .integer(object.byteCount), "sha256": .string(object.sha256)]
        if let etag = object.etag { fields["etag"] = .string(etag) }
        if let mediaType = object.mediaType { fields["media_type"] = .string(mediaType) }
        if let version = object.versionID { fields["version_id"] = .string(version) }
        return .init(data: try ArtifactCodec.encoder.encode(JSONValue.object(fields)), fileExtension: "json")
    }, decode: { data, _, name in
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let uri = object["uri"] as? String,
              let count = object["byte_count"] as? Int, let sha = object["sha256"] as? String else {
            throw ArtifactStoreError(message: "\(name): not a stored-object reference")
        }
        return StoredObject(uri: uri, byteCount: count, sha256: sha, mediaType: object["media_type"] as? String,
                            etag: object["etag"] as? String, versionID: object["version_id"] as? String)
    })
}
