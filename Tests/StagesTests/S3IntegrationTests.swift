import Foundation
import Testing
import TestFixtures
import Framework
@testable import Stages

/// The S3 upload path against a real S3-compatible server (moto 5.2.5) on 127.0.0.1
/// with signature checking on, directly and through a fault-injecting proxy.
@Suite(.serialized) struct S3IntegrationTests {
    let bucket = "pipeline-tests"

    func client(_ s3: LocalS3, secret: String? = nil, endpoint: String? = nil, fast: Bool = false) -> S3Client {
        var configuration = S3Configuration(endpoint: endpoint ?? s3.endpoint, region: "us-east-1", pathStyle: true)
        if fast {
            configuration.backoffBase = .milliseconds(5)
            configuration.backoffCap = .milliseconds(50)
            configuration.requestTimeout = .seconds(2)
            configuration.maxAttempts = 4
        }
        let environment = AWSEnvironment(variables: [
            "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": secret ?? s3.secretKey,
            "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent",
        ])
        return S3Client(configuration: configuration, credentials: AWSCredentialChain(environment: environment))
    }

    func upload(_ client: S3Client, key: String, _ bytes: [UInt8], multipart: Bool = false, overwrite: Bool = true,
                concurrency: Int = 3, checksum: Bool = true) async throws -> S3Upload.Result {
        let upload = S3Upload(client: client, bucket: bucket, key: key, bytes: SharedBytes(bytes),
                              headers: [("Content-Type", "application/octet-stream")], checksum: checksum, overwrite: overwrite,
                              partSize: 5 << 20, concurrency: concurrency, context: testContext())
        return try await upload.run(multipart: multipart)
    }

    func get(_ client: S3Client, key: String) throws -> [UInt8] {
        try client.send("GetObject", method: "GET", bucket: bucket, key: key, session: CurlSession()).body
    }

    func openUploads(_ client: S3Client) throws -> Int {
        let body = try client.send("ListMultipartUploads", method: "GET", bucket: bucket, key: "", query: [("uploads", "")],
                                   session: CurlSession()).body
        return String(decoding: body, as: UTF8.self).components(separatedBy: "<UploadId>").count - 1
    }

    func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = Xoshiro256StarStar(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    @Test func uploadReadsBackByteIdentical() async throws {
        let s3 = try LocalS3.shared()
        let client = client(s3)
        let bytes = randomBytes(300_000, seed: 1)
        let result = try await upload(client, key: "single/object.bin", bytes)
        #expect(result.etag == bytes.withUnsafeBytes { S3Digests.md5Hex($0) })
        #expect(try get(client, key: "single/object.bin") == bytes)
    }

    @Test func awkwardKeysRoundTrip() async throws {
        let s3 = try LocalS3.shared()
        let client = client(s3)
        for key in ["dir one/ünï+code 😀 (1).jpg", "a=b&c:d@e~f%g.txt", "plus+and space/x"] {
            let bytes = Array(key.utf8)
            _ = try await upload(client, key: key, bytes)
            #expect(try get(client, key: key) == bytes, "\(key)")
        }
    }

    @Test func wrongSecretFailsWithAClearMessage() async throws {
        let s3 = try LocalS3.shared()
        do {
            _ = try await upload(client(s3, secret: "not-the-secret"), key: "denied.bin", [1, 2, 3])
            Issue.record("uploaded with a wrong secret")
        } catch let error as S3Error {
            #expect(error.code == "SignatureDoesNotMatch")
            #expect(!error.isTransient)
            #expect(error.description.contains("the secret key may be wrong, or the region ('us-east-1') may not be the bucket's, or the clock may be off"))
            #expect(!error.description.contains("not-the-secret"))
        }
    }

    @Test func missingBucketIsNamed() async throws {
        let s3 = try LocalS3.shared()
        let upload = S3Upload(client: client(s3), bucket: "no-such-bucket", key: "k", bytes: SharedBytes([1]), headers: [],
                              checksum: false, overwrite: true, partSize: 5 << 20, concurrency: 1, context: testContext())
        do {
            _ = try await upload.run(multipart: false)
            Issue.record("uploaded to a missing bucket")
        } catch let error as S3Error {
            #expect(error.code == "NoSuchBucket")
            #expect(error.description.contains("bucket 'no-such-bucket' does not exist"))
        }
    }

    /// With a checksum S3 verifies the bytes; without one the ETag is checked against
    /// the MD5s of the parts. Either way the object reads back the same.
    @Test(arguments: [true, false])
    func multipartCompletesWithTheRightETag(checksum: Bool) async throws {
        let s3 = try LocalS3.shared()
        let client = client(s3)
        let bytes = randomBytes((12 << 20) + 12345, seed: 2)
        let key = "multi/object-\(checksum).bin"
        let result = try await upload(client, key: key, bytes, multipart: true, checksum: checksum)
        let parts = stride(from: 0, to: bytes.count, by: 5 << 20).map { start in
            bytes[start..<min(bytes.count, start + (5 << 20))].withUnsafeBytes { S3Digests.md5($0) }
        }
        #expect(parts.count == 3)
        #expect(result.etag == S3Digests.multipartETag(partMD5s: parts))
        #expect(result.etag.hasSuffix("-3"))
        #expect(try get(client, key: key) == bytes)
        #expect(try openUploads(client) == 0)
    }

    @Test func failedMultipartUploadIsAborted() async throws {
        let s3 = try LocalS3.shared()
        let proxy = try PythonFixture(script: "fault_proxy.py", arguments: [String(s3.port), "part2", "-1"])
        let failing = client(s3, endpoint: "http://127.0.0.1:\(proxy.firstLine)", fast: true)
        do {
            _ = try await upload(failing, key: "multi/fails.bin", randomBytes(11 << 20, seed: 3), multipart: true, concurrency: 1)
            Issue.record("a multipart upload with a failing part succeeded")
        } catch let error as S3Error {
            #expect(error.code == "AccessDenied")
            #expect(error.description.contains("UploadPart 2/3"))
        }
        #expect(try openUploads(client(s3)) == 0, "parts were left behind")
    }

    /// An abort that fails is said with the failure, so it reaches the user whoever
    /// logs the upload (an artifact store's uploads have no log of their own).
    @Test func aFailedAbortIsPartOfTheError() async throws {
        let s3 = try LocalS3.shared()
        let proxy = try PythonFixture(script: "fault_proxy.py", arguments: [String(s3.port), "part2abort", "-1"])
        let failing = client(s3, endpoint: "http://127.0.0.1:\(proxy.firstLine)", fast: true)
        do {
            _ = try await upload(failing, key: "multi/abort-fails.bin", randomBytes(11 << 20, seed: 4), multipart: true, concurrency: 1)
            Issue.record("a multipart upload with a failing part succeeded")
        } catch let error as S3Error {
            #expect(error.description.contains("could not abort multipart upload"), "\(error)")
            #expect(error.description.contains("its parts may remain"))
        }
        // Clean up what the test left, so that the other tests' counts hold.
        let direct = client(s3)
        let body = String(decoding: try direct.send("ListMultipartUploads", method: "GET", bucket: bucket, key: "", query: [("uploads", "")],
                                                    session: CurlSession()).body, as: UTF8.self)
        for entry in body.components(separatedBy: "<Upload>").dropFirst() where entry.contains("<Key>multi/abort-fails.bin</Key>") {
            guard let start = entry.range(of: "<UploadId>"), let end = entry.range(of: "</UploadId>") else { continue }
            _ = try direct.send("AbortMultipartUpload", method: "DELETE", bucket: bucket, key: "multi/abort-fails.bin",
                                query: [("uploadId", String(entry[start.upperBound..<end.lowerBound]))], session: CurlSession())
        }
    }

    @Test func overwriteFalseRefusesAnExistingObject() async throws {
        let s3 = try LocalS3.shared()
        let client = client(s3)
        _ = try await upload(client, key: "conditional.bin", [1], overwrite: false)
        do {
            _ = try await upload(client, key: "conditional.bin", [2], overwrite: false)
            Issue.record("overwrote an object with overwrite false")
        } catch let error as S3Error {
            #expect(error.status == 412)
            #expect(error.description.contains("already exists"))
        }
        #expect(try get(client, key: "conditional.bin") == [1])
    }

    @Test(arguments: ["slowdown", "error500", "reset", "stall"])
    func transientFaultsAreRetried(mode: String) async throws {
        let s3 = try LocalS3.shared()
        let proxy = try PythonFixture(script: "fault_proxy.py", arguments: [String(s3.port), mode, "2"])
        let flaky = client(s3, endpoint: "http://127.0.0.1:\(proxy.firstLine)", fast: true)
        let bytes = randomBytes(50_000, seed: 4)
        _ = try await upload(flaky, key: "flaky/\(mode).bin", bytes)
        #expect(try get(client(s3), key: "flaky/\(mode).bin") == bytes)
        let injected = try CurlSession().perform(HTTPRequest(url: "http://127.0.0.1:\(proxy.firstLine)/__faults")).body
        #expect(String(decoding: injected, as: UTF8.self) == "2")
    }

    @Test func endlessFaultsGiveUpCleanly() async throws {
        let s3 = try LocalS3.shared()
        let proxy = try PythonFixture(script: "fault_proxy.py", arguments: [String(s3.port), "slowdown", "-1"])
        let start = ContinuousClock.now
        do {
            _ = try await upload(client(s3, endpoint: "http://127.0.0.1:\(proxy.firstLine)", fast: true), key: "never.bin", [1, 2])
            Issue.record("an upload through endless faults succeeded")
        } catch let error as S3Error {
            #expect(error.code == "SlowDown")
            #expect(error.description.contains("(after 4 attempts)"))
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func unreachableEndpointIsAClearError() async throws {
        let s3 = try LocalS3.shared()
        var configuration = S3Configuration(endpoint: "http://127.0.0.1:9", region: "us-east-1", pathStyle: true)
        configuration.maxAttempts = 2
        configuration.backoffCap = .milliseconds(20)
        let environment = AWSEnvironment(variables: ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey])
        let unreachable = S3Client(configuration: configuration, credentials: AWSCredentialChain(environment: environment))
        do {
            _ = try await upload(unreachable, key: "x", [1])
            Issue.record("uploaded to a closed port")
        } catch let error as S3Error {
            #expect(error.description.contains("cannot reach http://127.0.0.1:9"))
            #expect(error.description.contains("(after 2 attempts)"))
        }
    }
}
