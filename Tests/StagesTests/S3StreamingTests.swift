import Foundation
import Testing
import TestFixtures
import Framework
@testable import Stages

/// `S3Stage.stream` against the local S3 server (moto 5.2.5): bytes fed chunk by chunk
/// from a producer thread go up as a single PUT or as a multipart upload, the same
/// bytes come back, a failure mid-stream leaves nothing behind, and an object already
/// there is met as `run` meets it.
@Suite(.serialized) struct S3StreamingTests {
    /// A bucket of its own: other suites count the open multipart uploads in theirs.
    let bucket = "pipeline-streaming"

    struct ProducerFailure: Error {}

    func client(_ s3: LocalS3) -> S3Client {
        S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                 credentials: AWSCredentialChain(environment: environment(s3)))
    }

    func environment(_ s3: LocalS3) -> AWSEnvironment {
        AWSEnvironment(variables: [
            "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey,
            "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent",
        ])
    }

    func stage(_ s3: LocalS3, key: String, partSize: Int = 5 << 20, threshold: Int = 16 << 20, concurrency: Int = 2,
               checksum: Bool = true, overwrite: Bool = false) throws -> S3Stage {
        var stage = try S3Stage(parameters: parameters(S3Stage.spec, [
            "bucket": .string(bucket), "key": .string(key), "endpoint": .string(s3.endpoint),
            "part_size": .integer(partSize), "multipart_threshold": .integer(threshold), "concurrency": .integer(concurrency),
            "checksum": .string(checksum ? "sha256" : "none"), "overwrite": .boolean(overwrite),
        ]))
        stage.environment = environment(s3)
        return stage
    }

    func prepare(_ s3: LocalS3) -> S3Client {
        let client = client(s3)
        _ = try? client.send("CreateBucket", method: "PUT", bucket: bucket, key: "", session: CurlSession())
        return client
    }

    func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = Xoshiro256StarStar(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    func get(_ client: S3Client, key: String) throws -> [UInt8] {
        try client.send("GetObject", method: "GET", bucket: bucket, key: key, session: CurlSession()).body
    }

    func exists(_ client: S3Client, key: String) throws -> Bool {
        do {
            _ = try client.send("HeadObject", method: "HEAD", bucket: bucket, key: key, session: CurlSession())
            return true
        } catch let error as S3Error where error.status == 404 {
            return false
        }
    }

    func openUploads(_ client: S3Client, key: String) throws -> Int {
        let body = try client.send("ListMultipartUploads", method: "GET", bucket: bucket, key: "", query: [("uploads", ""), ("prefix", key)],
                                   session: CurlSession()).body
        return String(decoding: body, as: UTF8.self).components(separatedBy: "<UploadId>").count - 1
    }

    /// Runs `stage.stream` on this thread while a producer thread writes `bytes` in
    /// chunks of `chunk` bytes; `interrupt`, when given, is called by the producer once
    /// `after` bytes were written, and the producer then stops.
    func stream(_ stage: S3Stage, _ bytes: [UInt8], chunk: Int = 300_000, after: Int = .max,
                interrupt: (@Sendable (ByteStream, StreamIO) -> Void)? = nil) throws -> StoredObject? {
        let stream = ByteStream(capacity: 4)
        let io = StreamIO(bytesInput: stream, bandRows: 64, bandBuffers: 4, cancel: CancelFlag())
        let done = DispatchSemaphore(value: 0)
        let producer = Thread {
            defer { done.signal() }
            do {
                try stream.begin(EncodedStreamInfo(format: "bin", mediaType: "application/octet-stream", width: 7, height: 3))
                let writer = ByteStreamWriter(stream: stream, pool: BufferPool(bufferSize: chunk, count: 4, purpose: "test chunks"))
                var offset = 0
                while offset < bytes.count {
                    if offset >= after, let interrupt {
                        interrupt(stream, io)
                        return
                    }
                    let end = min(bytes.count, offset + chunk)
                    try bytes[offset..<end].withUnsafeBytes { try writer.write($0) }
                    offset = end
                }
                try writer.finish()
            } catch {
                // The consumer stopped: nothing more to write.
            }
        }
        producer.start()
        defer { done.wait() }
        return try stage.stream(io, context: testContext()) as? StoredObject
    }

    @Test func aSmallObjectGoesUpAsOneSinglePut() throws {
        let s3 = try LocalS3.shared()
        let client = prepare(s3)
        // More than a part, below the threshold: held in two part buffers, sent as one PUT.
        let input = bytes((6 << 20) + 777, seed: 11)
        let key = "stream/\(UUID().uuidString.lowercased())-single.bin"
        let stored = try #require(try stream(stage(s3, key: key), input))
        #expect(stored.etag == input.withUnsafeBytes { S3Digests.md5Hex($0) })
        #expect(stored.uri == "s3://\(bucket)/\(key)")
        #expect(stored.byteCount == input.count)
        #expect(stored.sha256 == input.withUnsafeBytes { SHA256Digest.hex(of: $0) })
        #expect(stored.mediaType == "application/octet-stream")
        #expect(try get(client, key: key) == input)
        #expect(try openUploads(client, key: key) == 0)
    }

    @Test func anEmptyObjectGoesUpAsOneSinglePut() throws {
        let s3 = try LocalS3.shared()
        let client = prepare(s3)
        let key = "stream/\(UUID().uuidString.lowercased())-empty.bin"
        let stored = try #require(try stream(stage(s3, key: key), []))
        #expect(stored.byteCount == 0)
        #expect(stored.sha256 == [UInt8]().withUnsafeBytes { SHA256Digest.hex(of: $0) })
        #expect(try get(client, key: key) == [])
    }

    /// Parts go up as they fill: three parts of 5 MiB, with or without a checksum; and
    /// with a threshold above what the pool holds (concurrency 1: two part buffers).
    @Test(arguments: [(true, 5 << 20, 2), (false, 5 << 20, 2), (true, 64 << 20, 1)])
    func aLargeObjectGoesUpInParts(checksum: Bool, threshold: Int, concurrency: Int) throws {
        let s3 = try LocalS3.shared()
        let client = prepare(s3)
        let input = bytes((12 << 20) + 12345, seed: 12)
        let key = "stream/\(UUID().uuidString.lowercased())-multi.bin"
        let stored = try #require(try stream(stage(s3, key: key, threshold: threshold, concurrency: concurrency, checksum: checksum),
                                             input, chunk: 1 << 20))
        let parts = stride(from: 0, to: input.count, by: 5 << 20).map { start in
            input[start..<min(input.count, start + (5 << 20))].withUnsafeBytes { S3Digests.md5($0) }
        }
        #expect(stored.etag == S3Digests.multipartETag(partMD5s: parts))
        #expect(stored.etag?.hasSuffix("-3") == true)
        #expect(stored.byteCount == input.count)
        #expect(stored.sha256 == input.withUnsafeBytes { SHA256Digest.hex(of: $0) })
        #expect(try get(client, key: key) == input)
        #expect(try openUploads(client, key: key) == 0)
    }

    /// The producer fails (or the segment is stopped, as the executor does) once two
    /// parts were sent and the multipart upload is open: the upload is aborted, no
    /// object and no parts remain, and the failure is what `stream` throws.
    @Test(arguments: ["producer", "stop"])
    func aFailureMidStreamLeavesNothingBehind(how: String) throws {
        let s3 = try LocalS3.shared()
        let client = prepare(s3)
        let input = bytes(20 << 20, seed: 13)
        let key = "stream/\(UUID().uuidString.lowercased())-fails.bin"
        let stage = try stage(s3, key: key, threshold: 5 << 20, concurrency: 2)
        do {
            _ = try stream(stage, input, chunk: 1 << 20, after: 11 << 20) { stream, io in
                // Wait until the upload is open on the server, so that there is something to abort.
                let deadline = ContinuousClock.now + .seconds(30)
                while (try? openUploads(client, key: key)) != 1 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
                Thread.sleep(forTimeInterval: 0.5)
                if how == "producer" { stream.fail(ProducerFailure()) } else { io.stop(CancellationError()) }
            }
            Issue.record("a stream that failed was uploaded")
        } catch {
            if how == "producer" {
                #expect(error is ProducerFailure, "\(error)")
            } else {
                #expect(error is CancellationError, "\(error)")
            }
        }
        #expect(try openUploads(client, key: key) == 0)
        #expect(try !exists(client, key: key))
    }

    /// A part the server refuses (403 on part 2, through the fault proxy) fails the
    /// stage with that error, stops the producer (the helper waits for it), and the
    /// upload is aborted; when the abort fails too, the error says so.
    @Test(arguments: ["part2", "part2abort"])
    func aFailingPartAbortsTheUpload(mode: String) throws {
        let s3 = try LocalS3.shared()
        let client = prepare(s3)
        let proxy = try PythonFixture(script: "fault_proxy.py", arguments: [String(s3.port), mode, "-1"])
        let key = "stream/\(UUID().uuidString.lowercased())-part-fails.bin"
        var stage = try S3Stage(parameters: parameters(S3Stage.spec, [
            "bucket": .string(bucket), "key": .string(key), "endpoint": .string("http://127.0.0.1:\(proxy.firstLine)"),
            "part_size": .integer(5 << 20), "multipart_threshold": .integer(5 << 20), "concurrency": .integer(2),
        ]))
        stage.environment = environment(s3)
        do {
            _ = try stream(stage, bytes(16 << 20, seed: 15), chunk: 1 << 20)
            Issue.record("an upload with a failing part succeeded")
        } catch let error as S3Error {
            #expect(error.code == "AccessDenied", "\(error)")
            #expect(error.description.contains("UploadPart 2"), "\(error)")
            #expect(error.description.contains("could not abort multipart upload") == (mode == "part2abort"), "\(error)")
        }
        #expect(try !exists(client, key: key))
        if mode == "part2" {
            #expect(try openUploads(client, key: key) == 0, "parts were left behind")
        } else {
            // Clean up what the failed abort left.
            let body = String(decoding: try client.send("ListMultipartUploads", method: "GET", bucket: bucket, key: "",
                                                        query: [("uploads", ""), ("prefix", key)], session: CurlSession()).body, as: UTF8.self)
            for entry in body.components(separatedBy: "<UploadId>").dropFirst() {
                guard let end = entry.range(of: "</UploadId>") else { continue }
                _ = try client.send("AbortMultipartUpload", method: "DELETE", bucket: bucket, key: key,
                                    query: [("uploadId", String(entry[..<end.lowerBound]))], session: CurlSession())
            }
            #expect(try openUploads(client, key: key) == 0)
        }
    }

    /// overwrite false: the same bytes already there are a success (single PUT and
    /// multipart, compared through the digests computed while streaming); other bytes
    /// are the "already exists" error quoting the --set; no upload is left open.
    @Test(arguments: [false, true])
    func anExistingObjectIsComparedWithTheStreamedBytes(multipart: Bool) throws {
        let s3 = try LocalS3.shared()
        let client = prepare(s3)
        let input = bytes(multipart ? (11 << 20) : 300_000, seed: 14)
        let key = "stream/\(UUID().uuidString.lowercased())-existing.bin"
        let stage = try stage(s3, key: key, threshold: 5 << 20)
        let first = try #require(try stream(stage, input, chunk: 1 << 20))
        let again = try #require(try stream(stage, input, chunk: 1 << 20))
        #expect(again.etag == first.etag)
        #expect(again.sha256 == first.sha256)

        var changed = input
        changed[changed.count / 2] ^= 0xff
        for other in [changed, Array(input.dropLast())] {
            do {
                _ = try stream(stage, other, chunk: 1 << 20)
                Issue.record("replaced an object holding other bytes")
            } catch let error as S3Error {
                #expect(error.description.contains("already exists and "), "\(error)")
                #expect(error.description.contains("to replace it, run again with --set stages.test.with.overwrite=true"), "\(error)")
                #expect(PipelineError(error).code == .outputExists)
            }
        }
        #expect(try get(client, key: key) == input)
        #expect(try openUploads(client, key: key) == 0)
    }

    @Test func estimateHoldsThePartsInFlightAndTheOneFilling() throws {
        let estimate = S3Stage.estimate(parameters: parameters(S3Stage.spec, [
            "bucket": .string(bucket), "key": .string("k"), "part_size": .integer(6 << 20), "concurrency": .integer(3),
        ]), input: nil, bandRows: 64, bandBuffers: 4)
        #expect(estimate.output == nil)
        #expect(estimate.streamingBytes == Double(4 * (6 << 20)))
        #expect(S3Stage.streaming(parameters: parameters(S3Stage.spec, ["bucket": .string(bucket), "key": .string("k")]))
            == StreamingSupport(input: true, output: false))
    }
}
