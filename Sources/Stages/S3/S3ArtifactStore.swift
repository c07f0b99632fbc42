import Foundation
import Framework

/// An artifact store in S3 (`--artifact-store s3://bucket/prefix`): the same layout
/// and manifests as a directory store, under `prefix/RUN_ID/STAGE/`.
///
/// Artifacts go up the way the `s3` sink uploads: through `S3Upload`, with a SHA-256
/// checksum S3 verifies, retries with backoff, and in parts (concurrently) above
/// `multipartThreshold`. Each object appears whole or not at all (a PUT, or the
/// completion of a multipart upload, is atomic; a failed multipart upload is
/// aborted), and the manifest is written last, so a failed upload leaves none.
/// Requests reuse the store's connections (`sessions`), from any thread.
public struct S3ArtifactStore: ArtifactStore {
    public let bucket: String
    public let prefix: String
    let client: S3Client
    /// The store's connections, shared by its uploads, reads and listings.
    let sessions = CurlSessionPool()
    /// Artifacts larger than this many bytes are uploaded in parts.
    public var multipartThreshold = 16 << 20
    /// Bytes per part of a multipart upload (S3 needs at least 5 MiB, but the last).
    public var partSize = 8 << 20
    /// Parts uploaded at once.
    public var concurrency = 4

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
        let path = rest.dropFirst(bucket.count).drop { $0 == "/" }
        if S3Stage.hasDotSegment(path) {
            throw ArtifactStoreError(message: "artifact store '\(FilePaths.printable(uri))' has a '.' or '..' segment in its prefix, "
                + "which would not name the objects as written; write the prefix without them", code: .invalidLocation)
        }
        self.prefix = path.split(separator: "/").joined(separator: "/")
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

    func put(_ bytes: SharedBytes, key: String, contentType: String, runID: String, stage: String,
                     cancel: CancelFlag = CancelFlag()) throws {
        let upload = S3Upload(client: client, bucket: bucket, key: key, bytes: bytes, headers: [("Content-Type", contentType)],
                              checksum: true, overwrite: true, partSize: partSize, concurrency: concurrency,
                              context: .forStore(stageID: stage, runID: runID), sessions: sessions)
        _ = try upload.run(multipart: bytes.count > multipartThreshold, cancel: cancel)
    }

    /// Sends one request on one of the store's connections; a cancelled run stops it
    /// (through the flag of the `Blocking.run` it is called on, if any).
    private func send(_ operation: String, method: String, key: String, query: [(name: String, value: String)] = [],
                      client: S3Client? = nil) throws -> HTTPResponse {
        let flag = CancelFlag.current
        return try sessions.withSession { session in
            try (client ?? self.client).send("\(operation) s3://\(bucket)/\(key)", method: method, bucket: bucket, key: key, query: query,
                                             session: session, isCancelled: { flag?.isSet() ?? false })
        }
    }

    /// The object's bytes, or nil when there is no such key.
    private func get(key: String) throws -> Data? {
        do {
            return Data(try send("GetObject", method: "GET", key: key).body)
        } catch let error as S3Error where error.code == "NoSuchKey" || error.status == 404 {
            return nil
        }
    }

    public func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String) throws {
        try write(data, manifest: manifest, runID: runID, stage: stage, cancel: CancelFlag())
    }

    public func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String, cancel: CancelFlag) throws {
        // An older output's manifest goes first: no manifest ever describes other bytes.
        _ = try send("DeleteObject", method: "DELETE", key: key(runID, stage, "manifest.json"))
        try put(SharedBytes(data), key: key(runID, stage, manifest.file), contentType: manifest.mediaType ?? "application/octet-stream",
                runID: runID, stage: stage, cancel: cancel)
        // Last: its presence says the artifact is complete.
        if cancel.isSet() { throw CancellationError() }
        try put(SharedBytes(try ArtifactCodec.encoder.encode(manifest)), key: key(runID, stage, "manifest.json"),
                contentType: "application/json", runID: runID, stage: stage, cancel: cancel)
    }

    /// Uploads the bytes as they come, as the `s3` sink streams (`S3StreamingUpload`):
    /// a single PUT when the object ends at `multipartThreshold` bytes or fewer, else
    /// parts of `partSize` as they fill, `concurrency` at once; then the manifest.
    public func beginWrite(runID: String, stage: String, manifest: ArtifactManifest, cancel: CancelFlag) throws -> any ArtifactStoreWriter {
        // An older output's manifest goes first: no manifest ever describes other bytes.
        _ = try send("DeleteObject", method: "DELETE", key: key(runID, stage, "manifest.json"))
        return S3StoreWriter(store: self, runID: runID, stage: stage, manifest: manifest, cancel: cancel)
    }

    /// The part buffers (`(concurrency + 1) x partSize`) and two chunks of 1 MiB.
    public func progressiveWriteBytes(byteCount: Double) -> Double {
        Double(concurrency + 1) * Double(partSize) + 2 * 1_048_576
    }

    public func manifest(runID: String, stage: String) throws -> ArtifactManifest? {
        let name = key(runID, stage, "manifest.json")
        return try get(key: name).map { try ArtifactCodec.decodeManifest($0, name: "s3://\(bucket)/\(name)") }
    }

    public func read(runID: String, stage: String) throws -> (data: Data, manifest: ArtifactManifest)? {
        guard let manifest = try manifest(runID: runID, stage: stage) else { return nil }
        let name = key(runID, stage, manifest.file)
        guard let data = try get(key: name) else {
            throw ArtifactStoreError(message: "s3://\(bucket)/\(name) is missing, though its manifest is there")
        }
        try manifest.check(data, name: "s3://\(bucket)/\(name)")
        return (data, manifest)
    }

    public func recordedSeed(runID: String) throws -> UInt64? {
        let name = key(runID, nil, "run.json")
        return try get(key: name).map { try RunRecord.seed(in: $0, name: "s3://\(bucket)/\(name)") }
    }

    /// The runs under the store's prefix: a ListObjectsV2 with the delimiter `/` (its
    /// first page, up to 1,000 names, which is plenty for a message).
    public func runIDs() throws -> [String]? {
        let base = prefix.isEmpty ? "" : prefix + "/"
        let response = try send("ListObjectsV2", method: "GET", key: "", query: [("delimiter", "/"), ("list-type", "2"), ("prefix", base)])
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
        try put(SharedBytes(RunRecord.data(seed: seed)), key: key(runID, nil, "run.json"), contentType: "application/json",
                runID: runID, stage: "run.json")
    }

    /// The most time `checkAccess` takes.
    public static let accessCheckBudget: Duration = .seconds(3)

    /// Resolves the credentials and lists at most one key under the prefix (a
    /// ListObjectsV2 with max-keys=1, which needs s3:ListBucket), with one retry and
    /// within `accessCheckBudget`. A bucket that does not exist is an
    /// `ArtifactStoreError` with the code `.invalidLocation`; missing credentials,
    /// access denied and an unreachable endpoint have the code `.io`. Messages are
    /// one line.
    public func checkAccess() throws {
        let deadline = ContinuousClock.now + Self.accessCheckBudget
        do {
            _ = try client.credentials.credentials(deadline: deadline, isCancelled: { false })
        } catch let error as AWSCredentialError {
            // Nothing found anywhere: what to do first, then where the chain looked.
            guard let remedy = error.remedy else { throw ArtifactStoreError(message: Self.oneLine(error.message), cause: .credentials) }
            throw ArtifactStoreError(message: "no AWS credentials found; " + remedy + " (looked in: " + error.looked.joined(separator: "; ") + ")",
                                     cause: .credentials)
        }
        var configuration = client.configuration
        configuration.maxAttempts = 2
        configuration.backoffCap = .milliseconds(200)
        configuration.retryBudget = Self.accessCheckBudget
        configuration.connectTimeout = .seconds(2)
        configuration.lowSpeedTime = .seconds(2)
        let probe = S3Client(configuration: configuration, credentials: client.credentials)
        let base = prefix.isEmpty ? "" : prefix + "/"
        do {
            _ = try send("ListObjectsV2", method: "GET", key: "", query: [("list-type", "2"), ("max-keys", "1"), ("prefix", base)], client: probe)
        } catch let error as S3Error where error.code == "NoSuchBucket" {
            let endpoint = configuration.endpoint ?? "AWS region \(configuration.region)"
            throw ArtifactStoreError(message: "artifact store '\(description)': bucket '\(bucket)' does not exist at \(endpoint); "
                + "create it, or check the bucket name, AWS_ENDPOINT_URL_S3 and AWS_REGION", code: .invalidLocation, cause: .noSuchBucket)
        } catch let error as S3Error {
            throw ArtifactStoreError(message: Self.oneLine(error.description), cause: error.errorCode)
        }
    }

    /// `text` on one line: its lines joined with "; ", list bullets dropped.
    static func oneLine(_ text: String) -> String {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .map { $0.hasPrefix("- ") ? String($0.dropFirst(2)) : $0 }
            .joined(separator: "; ").replacingOccurrences(of: ":; ", with: ": ")
    }
}

/// A progressive write to an S3 store: the appended bytes go through a byte stream
/// (two 1 MiB chunks) to an `S3StreamingUpload` on a thread of its own, whose part
/// buffers are bounded (`(concurrency + 1) x partSize`). `abort` stops the upload,
/// which aborts a multipart upload; `commit` waits for it, then writes the manifest.
final class S3StoreWriter: ArtifactStoreWriter, @unchecked Sendable {
    private let store: S3ArtifactStore
    private let runID: String
    private let stage: String
    private let manifest: ArtifactManifest
    private let io: StreamIO
    private let writer: ByteStreamWriter
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<S3StreamingUpload.Outcome, any Error>?
    private var finished = false

    init(store: S3ArtifactStore, runID: String, stage: String, manifest: ArtifactManifest, cancel: CancelFlag) {
        self.store = store
        self.runID = runID
        self.stage = stage
        self.manifest = manifest
        let stream = ByteStream(capacity: 2)
        let io = StreamIO(bytesInput: stream, bandRows: 1, bandBuffers: 2, cancel: cancel)
        self.io = io
        writer = ByteStreamWriter(stream: stream, pool: io.pool(bufferSize: 1 << 20, count: 2, purpose: "a chunk of 1 MiB for the artifact store"))
        let target = S3ObjectTarget(client: store.client, bucket: store.bucket, key: store.key(runID, stage, manifest.file),
                                    headers: [("Content-Type", manifest.mediaType ?? "application/octet-stream")], checksum: true,
                                    overwrite: true, partSize: store.partSize, context: .forStore(stageID: stage, runID: runID),
                                    sessions: store.sessions)
        let upload = S3StreamingUpload(target: target, concurrency: store.concurrency, multipartThreshold: store.multipartThreshold)
        let thread = Thread { [self] in
            let outcome = Result { try upload.run(stream, io: io) }
            // A failed upload stops the stream, so that `append` never waits for it.
            if case .failure(let error) = outcome { io.stop(error) }
            result = outcome
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try writer.write(bytes)
    }

    /// Waits for the upload's end, once; its outcome.
    private func wait() -> Result<S3StreamingUpload.Outcome, any Error> {
        if !finished {
            done.wait()
            finished = true
        }
        return result!
    }

    func commit() throws -> ArtifactManifest {
        do {
            try writer.finish()
        } catch {
            abort()
            throw wait().failure ?? error
        }
        let outcome = try wait().get()
        var manifest = manifest
        manifest.byteCount = outcome.byteCount
        manifest.sha256 = outcome.sha256
        if io.cancel.isSet() { throw CancellationError() }
        // Last: its presence says the artifact is complete.
        try store.put(SharedBytes(try ArtifactCodec.encoder.encode(manifest)), key: store.key(runID, stage, "manifest.json"),
                      contentType: "application/json", runID: runID, stage: stage, cancel: io.cancel)
        return manifest
    }

    func abort() {
        io.stop(CancellationError())
        _ = wait()
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
