import Foundation
import Testing
import TestFixtures
@testable import Framework
@testable import Stages

/// Issue 11: the S3 artifact store uploads through the sink's code (`S3Upload`:
/// multipart, checksums, retries, reused connections) and checks access up front.
@Suite(.serialized) struct S3StoreTests {
    let bucket = "pipeline-tests"

    func variables(_ s3: LocalS3, endpoint: String? = nil) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_ENDPOINT_URL_S3": endpoint ?? s3.endpoint,
         "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent"]
    }

    func store(_ s3: LocalS3, prefix: String, endpoint: String? = nil) throws -> S3ArtifactStore {
        var store = try S3ArtifactStore(uri: "s3://\(bucket)/\(prefix)", environment: AWSEnvironment(variables: variables(s3, endpoint: endpoint)))
        store.multipartThreshold = 5 << 20
        store.partSize = 5 << 20
        return store
    }

    func manifest() -> ArtifactManifest {
        ArtifactManifest(artifactType: "", file: "", byteCount: 0, sha256: "", stageType: "poisson", parameters: [:], parametersHash: "h",
                         inputFingerprints: [:], fingerprint: "f")
    }

    func noise(width: Int, height: Int) throws -> Grid<UInt8> {
        var rng = Xoshiro256StarStar(seed: 9)
        return try Grid<UInt8>(width: width, height: height) { buffer in
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: rng.next()) }
        }
    }

    @Test func aLargeGridGoesUpInPartsAndReadsBack() throws {
        let s3 = try LocalS3.shared()
        let prefix = "stores/multipart-\(UUID().uuidString)"
        let store = try store(s3, prefix: prefix)
        let grid = try noise(width: 4000, height: 3000)  // 12 MB: three parts of 5 MiB at most
        try store.save(grid, manifest: manifest(), runID: "r", stage: "generate")

        let (artifact, stored) = try #require(try store.load(runID: "r", stage: "generate"))
        #expect((artifact as? Grid<UInt8>)?.elements == grid.elements)
        #expect(stored.file == "artifact.npy" && stored.byteCount > 12_000_000)
        let client = S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                              credentials: AWSCredentialChain(environment: AWSEnvironment(variables: variables(s3))))
        let head = try client.send("HeadObject", method: "HEAD", bucket: bucket, key: "\(prefix)/r/generate/artifact.npy", session: CurlSession())
        let etag = (head.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
        #expect(etag.hasSuffix("-3"), "not a multipart upload: ETag \(etag)")
        // The store's requests went through its own connections, which it keeps for the next ones.
        #expect(store.sessions.idleCount >= 1)
    }

    @Test func aFailedUploadLeavesNoManifest() throws {
        let s3 = try LocalS3.shared()
        let proxy = try PythonFixture(script: "fault_proxy.py", arguments: [String(s3.port), "part2", "-1"])
        let prefix = "stores/failing-\(UUID().uuidString)"
        let failing = try store(s3, prefix: prefix, endpoint: "http://127.0.0.1:\(proxy.firstLine)")
        let error = #expect(throws: S3Error.self) {
            try failing.save(try noise(width: 4000, height: 3000), manifest: manifest(), runID: "r", stage: "generate")
        }
        #expect(error?.operation.contains("UploadPart 2/3") == true, "\(String(describing: error))")
        #expect(error?.code == "AccessDenied", "\(String(describing: error))")
        let direct = try store(s3, prefix: prefix)
        #expect(try direct.manifest(runID: "r", stage: "generate") == nil)
        #expect(try direct.load(runID: "r", stage: "generate") == nil)
    }

    @Test func checkAccessPassesForAReachableBucket() throws {
        let s3 = try LocalS3.shared()
        try store(s3, prefix: "stores/access").checkAccess()
    }

    @Test func checkAccessNamesAMissingBucketAsAUsageError() throws {
        let s3 = try LocalS3.shared()
        let store = try S3ArtifactStore(uri: "s3://no-such-store-bucket/p", environment: AWSEnvironment(variables: variables(s3)))
        let error = #expect(throws: ArtifactStoreError.self) { try store.checkAccess() }
        #expect(error?.code == .invalidLocation)
        #expect(error?.isUsageError == true)
        #expect(error?.message == "artifact store 's3://no-such-store-bucket/p': bucket 'no-such-store-bucket' does not exist at \(s3.endpoint); "
            + "create it, or check the bucket name, AWS_ENDPOINT_URL_S3 and AWS_REGION")
    }

    @Test func checkAccessWithoutCredentialsIsQuickAndOneLine() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("no-creds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = directory.appendingPathComponent("empty").path
        try Data().write(to: URL(fileURLWithPath: empty))
        let environment = AWSEnvironment(variables: ["AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
                                                     "AWS_EC2_METADATA_DISABLED": "true", "HOME": directory.path])
        let store = try S3ArtifactStore(uri: "s3://some-bucket/x", environment: environment)
        let start = ContinuousClock.now
        let error = #expect(throws: ArtifactStoreError.self) { try store.checkAccess() }
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(error?.code == .io)
        #expect(error?.message.hasPrefix("no AWS credentials found; set AWS_ACCESS_KEY_ID") == true, "\(String(describing: error))")
        #expect(error?.message.contains("(looked in: ") == true)
        #expect(error?.message.contains("\n") == false)
    }

    @Test func checkAccessToAnUnreachableEndpointEndsWithinItsBudget() throws {
        let s3 = try LocalS3.shared()
        let store = try store(s3, prefix: "p", endpoint: "http://127.0.0.1:9")
        let start = ContinuousClock.now
        let error = #expect(throws: ArtifactStoreError.self) { try store.checkAccess() }
        #expect(ContinuousClock.now - start < S3ArtifactStore.accessCheckBudget + .seconds(1))
        #expect(error?.message.contains("cannot reach http://127.0.0.1:9") == true, "\(String(describing: error))")
    }

    /// A pool hands a session to one caller at a time, from any thread, and keeps it.
    @Test func sessionPoolReusesSessionsAcrossThreads() throws {
        let pool = CurlSessionPool(capacity: 2)
        let seen = SessionsSeen()
        Blocking.parallel(4) { _ in
            for _ in 0..<20 { try? pool.withSession { seen.use(ObjectIdentifier($0)) } }
        }
        #expect(seen.overlapped == false)
        #expect((1...2).contains(pool.idleCount))
    }
}

/// Whether two callers ever held the same session at once.
final class SessionsSeen: @unchecked Sendable {
    private let lock = NSLock()
    private var inUse: Set<ObjectIdentifier> = []
    private var overlaps = 0

    var overlapped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return overlaps > 0
    }

    func use(_ id: ObjectIdentifier) {
        lock.lock()
        if !inUse.insert(id).inserted { overlaps += 1 }
        lock.unlock()
        Thread.sleep(forTimeInterval: 0.001)
        lock.lock()
        inUse.remove(id)
        lock.unlock()
    }
}
