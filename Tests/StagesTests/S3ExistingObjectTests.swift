import Foundation
import Testing
import TestFixtures
import Framework
@testable import Stages

/// `overwrite: false` meeting an object that is already there (moto 5.2.5): the same
/// bytes are the upload's result, whether the object has a SHA-256 checksum (single or
/// multipart) or only an MD5 ETag; other bytes are an error quoting the `--set` that
/// replaces it.
@Suite(.serialized) struct S3ExistingObjectTests {
    /// A bucket of its own: S3IntegrationTests counts the open multipart uploads in
    /// "pipeline-tests", and these run alongside.
    let bucket = "pipeline-existing"
    static let hint = "to replace it, run again with --set stages.test.with.overwrite=true"

    func client(_ s3: LocalS3) -> S3Client {
        S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                 credentials: AWSCredentialChain(environment: AWSEnvironment(variables: [
                     "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey,
                     "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent",
                 ])))
    }

    func upload(_ client: S3Client, key: String, _ bytes: [UInt8], multipart: Bool, checksum: Bool,
                partSize: Int = 5 << 20) async throws -> S3Upload.Result {
        try await S3Upload(client: client, bucket: bucket, key: key, bytes: SharedBytes(bytes),
                           headers: [("Content-Type", "application/octet-stream")], checksum: checksum, overwrite: false,
                           partSize: partSize, concurrency: 2, context: testContext()).run(multipart: multipart)
    }

    func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = Xoshiro256StarStar(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    @Test(arguments: [(false, true), (false, false), (true, true), (true, false)])
    func sameBytesSucceedOtherBytesAreRefused(multipart: Bool, checksum: Bool) async throws {
        let s3 = try LocalS3.shared()
        let client = client(s3)
        _ = try? client.send("CreateBucket", method: "PUT", bucket: bucket, key: "", session: CurlSession())
        let key = "existing/\(UUID().uuidString.lowercased())-\(multipart ? "multi" : "single")-\(checksum ? "sha" : "md5").bin"
        let original = bytes(multipart ? (11 << 20) : 200_000, seed: 3)
        let first = try await upload(client, key: key, original, multipart: multipart, checksum: checksum)
        let again = try await upload(client, key: key, original, multipart: multipart, checksum: checksum)
        #expect(again.etag == first.etag)

        var changed = original
        changed[changed.count / 2] ^= 0xff
        for other in [changed, Array(original.dropLast())] {
            do {
                _ = try await upload(client, key: key, other, multipart: multipart, checksum: checksum)
                Issue.record("replaced an object holding other bytes")
            } catch let error as S3Error {
                #expect(error.description.contains("already exists and "), "\(error)")
                #expect(error.description.contains(Self.hint), "\(error)")
                #expect(!error.isTransient)
            }
        }
        let stored = try client.send("GetObject", method: "GET", bucket: bucket, key: key, session: CurlSession()).body
        #expect(stored == original)
    }

    /// An object cut into other parts than these bytes would be is "different", never a
    /// crash: more stored parts than this part size makes, and fewer.
    @Test(arguments: [(5 << 20, 6 << 20), (6 << 20, 5 << 20)])
    func anObjectCutIntoOtherPartsIsDifferent(stored: Int, now: Int) async throws {
        let s3 = try LocalS3.shared()
        let client = client(s3)
        _ = try? client.send("CreateBucket", method: "PUT", bucket: bucket, key: "", session: CurlSession())
        let key = "existing/\(UUID().uuidString.lowercased())-parts.bin"
        let original = bytes(11 << 20, seed: 5)
        _ = try await upload(client, key: key, original, multipart: true, checksum: true, partSize: stored)
        do {
            _ = try await upload(client, key: key, original, multipart: true, checksum: true, partSize: now)
            Issue.record("an object of \(stored)-byte parts matched \(now)-byte parts")
        } catch let error as S3Error {
            #expect(error.description.contains("was uploaded in \((11 << 20 + stored - 1) / stored) parts"), "\(error)")
            #expect(PipelineError(error).code == .outputExists)
        }
    }
}
