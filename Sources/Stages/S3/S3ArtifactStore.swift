import Foundation
import Framework

/// An artifact store in S3 (`--artifact-store s3://bucket/prefix`): the same layout
/// and manifests as a directory store, under `prefix/RUN_ID/STAGE/`. Each object
/// appears whole or not at all (a PUT is atomic), and the manifest is written last.
public struct S3ArtifactStore: ArtifactStore {
    public let bucket: String
    public let prefix: String
    let client: S3Client

    /// A store for `s3://bucket/prefix`, with the region, endpoint and credentials
    /// of `environment` (as the s3 stage finds them).
    public init(uri: String, environment: AWSEnvironment = AWSEnvironment()) throws {
        guard uri.hasPrefix("s3://") else {
            throw ArtifactStoreError(message: "'\(FilePaths.printable(uri))' is not an s3:// URI", code: .invalidLocation)
        }
        let rest = uri.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        if let problem = S3Stage.bucketNameProblem(bucket) {
            throw ArtifactStoreError(message: "artifact store bucket '\(FilePaths.printable(bucket))' \(problem)", code: .invalidLocation)
        }
        self.bucket = bucket
        self.prefix = rest.dropFirst(bucket.count).split(separator: "/").joined(separator: "/")
        let endpoint = environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"]
        client = S3Client(configuration: S3Configuration(endpoint: endpoint, region: environment.region ?? "us-east-1", pathStyle: endpoint != nil),
                          credentials: AWSCredentialChain(environment: environment))
    }

    /// `s3://bucket/prefix`, for `ArtifactStoreRegistry`.
    public static let scheme = ArtifactStoreRegistry.Scheme(name: "s3", example: "s3://bucket/prefix") { try S3ArtifactStore(uri: $0) }

    public var description: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)") }

    func key(_ runID: String, _ stage: String?, _ file: String) -> String {
        ([prefix, runID, stage].compactMap { $0 }.filter { !$0.isEmpty } + [file]).joined(separator: "/")
    }

    private func put(_ data: Data, key: String, contentType: String) throws {
        _ = try client.send("PutObject \(description)/\(key)", method: "PUT", bucket: bucket, key: key,
                            headers: [("Content-Type", contentType)], body: .bytes(Array(data)), session: CurlSession())
    }

    /// The object's bytes, or nil when there is no such key.
    private func get(key: String) throws -> Data? {
        do {
            return Data(try client.send("GetObject \(description)/\(key)", method: "GET", bucket: bucket, key: key, session: CurlSession()).body)
        } catch let error as S3Error where error.code == "NoSuchKey" || error.status == 404 {
            return nil
        }
    }

    public func save(_ artifact: any Artifact, manifest: ArtifactManifest, runID: String, stage: String) throws {
        let (data, manifest) = try ArtifactCodec.encode(artifact, manifest: manifest)
        try put(data, key: key(runID, stage, manifest.file), contentType: manifest.mediaType ?? "application/octet-stream")
        try put(try ArtifactCodec.encoder.encode(manifest), key: key(runID, stage, "manifest.json"), contentType: "application/json")
    }

    public func manifest(runID: String, stage: String) throws -> ArtifactManifest? {
        let name = key(runID, stage, "manifest.json")
        return try get(key: name).map { try ArtifactCodec.decodeManifest($0, name: "\(description)/\(name)") }
    }

    public func load(runID: String, stage: String) throws -> (artifact: any Artifact, manifest: ArtifactManifest)? {
        guard let manifest = try manifest(runID: runID, stage: stage) else { return nil }
        let name = key(runID, stage, manifest.file)
        guard let data = try get(key: name) else {
            throw ArtifactStoreError(message: "\(description)/\(name) is missing, though its manifest is there")
        }
        return (try ArtifactCodec.decode(data, manifest: manifest, name: "\(description)/\(name)"), manifest)
    }

    public func recordedSeed(runID: String) throws -> UInt64? {
        let name = key(runID, nil, "run.json")
        return try get(key: name).map { try RunRecord.seed(in: $0, name: "s3://\(bucket)/\(name)") }
    }

    /// The runs under the store's prefix: a ListObjectsV2 with the delimiter `/` (its
    /// first page, up to 1,000 names, which is plenty for a message).
    public func runIDs() throws -> [String]? {
        let base = prefix.isEmpty ? "" : prefix + "/"
        let response = try client.send("ListObjectsV2 \(description)", method: "GET", bucket: bucket, key: "",
                                       query: [("delimiter", "/"), ("list-type", "2"), ("prefix", base)], session: CurlSession())
        var rest = String(decoding: response.body, as: UTF8.self)[...]
        var runs: [String] = []
        while let start = rest.range(of: "<CommonPrefixes>"), let end = rest.range(of: "</CommonPrefixes>", range: start.upperBound..<rest.endIndex) {
            let entry = rest[start.upperBound..<end.lowerBound]
            if let open = entry.range(of: "<Prefix>"), let close = entry.range(of: "</Prefix>") {
                var name = XMLText.unescape(String(entry[open.upperBound..<close.lowerBound]))
                if name.hasPrefix(base) { name.removeFirst(base.count) }
                if name.hasSuffix("/") { name.removeLast() }
                if !name.isEmpty { runs.append(name) }
            }
            rest = rest[end.upperBound...]
        }
        return runs.sorted()
    }

    public func recordSeed(_ seed: UInt64, runID: String) throws {
        try put(RunRecord.data(seed: seed), key: key(runID, nil, "run.json"), contentType: "application/json")
    }
}
