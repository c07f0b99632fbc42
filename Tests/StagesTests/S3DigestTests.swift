import Foundation
import Testing
import Framework
@testable import Stages

/// S3's integrity values, against figures computed independently with Python's
/// hashlib for the parts "aaaaa" and "bbb".
@Suite struct S3DigestTests {
    let parts: [[UInt8]] = [Array("aaaaa".utf8), Array("bbb".utf8)]

    @Test func multipartETag() {
        #expect(S3Digests.multipartETag(partMD5s: parts.map { $0.withUnsafeBytes { S3Digests.md5($0) } }) == "72d27afac8e2fbd3662861b9d607a02c-2")
    }

    @Test func compositeChecksum() {
        let sums = parts.map { $0.withUnsafeBytes { S3Digests.sha256Base64($0) } }
        #expect(sums == ["7ZaOhA0Q0tMTqHC8ExpOLDEdetCb3zKzQYFHIh9RpuI=", "PnRLncOTibrwxaBmBYm4QC89u0m4mz518sk1WFKjxnc="])
        #expect(S3Digests.compositeChecksum(partChecksums: sums) == "klO+rIGEBmpS+FYbl0V177NZOk8sR9bZjF+0fMGntig=-2")
    }

    @Test func oneHashGivesTheSignedHashAndTheChecksum() {
        let digests = Array("Welcome to Amazon S3.".utf8).withUnsafeBytes { S3Digests.forRequest($0, checksum: true) }
        #expect(digests.payloadHash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        // The checksum is the same SHA-256, base64; S3 verifies it, so no MD5 is made.
        #expect(Data(base64Encoded: digests.checksum ?? "").map { SigV4.hex($0) } == digests.payloadHash)
        #expect(digests.md5 == nil)
    }

    @Test func withoutAChecksumTheETagIsCheckedByMD5() {
        let digests = Array("Welcome to Amazon S3.".utf8).withUnsafeBytes { S3Digests.forRequest($0, checksum: false) }
        #expect(digests.payloadHash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        #expect(digests.checksum == nil)
        #expect(digests.md5.map { SigV4.hex($0) } == "d447d0e8f289f16a12ff6027ce77c258")
    }

    @Test func mismatchesAreErrors() throws {
        let upload = S3Upload(client: S3Client(configuration: S3Configuration(endpoint: "http://127.0.0.1:9", region: "us-east-1", pathStyle: true),
                                               credentials: AWSCredentialChain(environment: AWSEnvironment(variables: [:]))),
                              bucket: "b", key: "k", bytes: SharedBytes([1]), headers: [], checksum: true, overwrite: true,
                              partSize: 5 << 20, concurrency: 1, context: testContext())
        #expect(throws: S3Error.self) { try upload.verify(checksum: "AAAA", expected: "BBBB") }
        #expect(throws: S3Error.self) { try upload.verify(etag: "72d27afac8e2fbd3662861b9d607a02c", expected: "00000000000000000000000000000000") }
        // Not MD5-shaped (SSE-KMS) or absent: nothing to compare.
        try upload.verify(etag: "kms-etag", expected: "00000000000000000000000000000000")
        try upload.verify(checksum: nil, expected: "BBBB")
        // A multipart ETag names its part count.
        try upload.verify(multipartETag: "72d27afac8e2fbd3662861b9d607a02c-2", parts: 2)
        #expect(throws: S3Error.self) { try upload.verify(multipartETag: "72d27afac8e2fbd3662861b9d607a02c-3", parts: 2) }
        #expect(throws: S3Error.self) { try upload.verify(multipartETag: "72d27afac8e2fbd3662861b9d607a02c", parts: 2) }
        try upload.verify(multipartETag: "kms-etag", parts: 2)
    }
}
