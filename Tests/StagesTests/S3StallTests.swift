import Foundation
import Testing
import Framework
@testable import Stages

/// S3 requests against servers that fail in the ways a network does, all on
/// 127.0.0.1: one that accepts connections and then never answers, and a closed port.
/// A request's retry budget is a deadline for everything it does.
@Suite struct S3StallTests {
    /// A TCP listener on 127.0.0.1 that never accepts: the kernel completes each
    /// connection and queues what the client sends, and nothing ever comes back.
    final class StalledServer {
        let socketFD: Int32
        let port: Int

        init() throws {
            let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) } }
            guard bound == 0, listen(socketFD, 64) == 0 else {
                close(socketFD)
                throw CurlError(code: -1, message: "cannot listen on 127.0.0.1", url: "")
            }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) } }
            self.socketFD = socketFD
            port = Int(UInt16(bigEndian: address.sin_port))
        }

        private var isOpen = true

        /// Closes the listener: connecting to its port is then refused.
        func stop() {
            if isOpen { close(socketFD) }
            isOpen = false
        }

        deinit {
            stop()
        }

        var endpoint: String { "http://127.0.0.1:\(port)" }
    }

    func client(endpoint: String, budget: Duration) -> S3Client {
        var configuration = S3Configuration(endpoint: endpoint, region: "us-east-1", pathStyle: true)
        configuration.retryBudget = budget
        let environment = AWSEnvironment(variables: [
            "AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_EC2_METADATA_DISABLED": "true", "HOME": "/nonexistent",
        ])
        return S3Client(configuration: configuration, credentials: AWSCredentialChain(environment: environment))
    }

    func makeUpload(_ client: S3Client) -> S3Upload {
        let bytes = (0..<20_000).map { UInt8(truncatingIfNeeded: $0) }
        return S3Upload(client: client, bucket: "pipeline-tests", key: "stalled.bin", bytes: SharedBytes(bytes),
                        headers: [("Content-Type", "application/octet-stream")], checksum: true, overwrite: true,
                        partSize: 5 << 20, concurrency: 2, context: testContext())
    }

    func upload(_ client: S3Client, multipart: Bool) async throws -> S3Upload.Result {
        try await makeUpload(client).run(multipart: multipart)
    }

    /// Runs `body` on a thread of its own, as `S3Upload.run` does, and returns its
    /// result. Timings taken inside it do not depend on when the cooperative pool,
    /// which other tests' blocking calls may hold, resumes this test.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// Uploads to a stalled server with a 3 s budget, on a thread of its own (the body
    /// of `S3Upload.run`); returns what it threw and the time it took.
    func stalledUpload(multipart: Bool) async throws -> (String, Duration) {
        let server = try StalledServer()
        let upload = makeUpload(client(endpoint: server.endpoint, budget: .seconds(3)))
        let outcome = try await Self.onThread { () -> (String, Duration) in
            let start = ContinuousClock.now
            do {
                _ = try upload.run(multipart: multipart, cancel: CancelFlag())
                return ("succeeded", ContinuousClock.now - start)
            } catch let error as S3Error {
                return (error.description + (error.isTransient ? " [transient]" : ""), ContinuousClock.now - start)
            } catch {
                return ("\(type(of: error)): \(error)", ContinuousClock.now - start)
            }
        }
        withExtendedLifetime(server) {}
        return outcome
    }

    /// A store's read stops when the run is cancelled, though nothing passed it a flag:
    /// it polls the flag of the `Blocking.run` thread it is on.
    @Test func aStoreReadStopsWhenTheRunIsCancelled() async throws {
        let server = try StalledServer()
        let store = try S3ArtifactStore(uri: "s3://pipeline-tests/stalled", environment: AWSEnvironment(variables: [
            "AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": "/nonexistent", "AWS_ENDPOINT_URL_S3": server.endpoint,
        ]))
        let clock = ContinuousClock()
        let start = clock.now
        let read = Task { try await Blocking.run { _ in try store.manifest(runID: "r", stage: "s") } }
        try await Task.sleep(for: .milliseconds(300))
        read.cancel()
        let result = await read.result
        #expect(clock.now - start < .seconds(5), "took \(clock.now - start)")
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(CancelFlag.current == nil)
        withExtendedLifetime(server) {}
    }

    @Test func stalledServerFailsAPutWithinBudgetPlusOneSecond() async throws {
        let (text, elapsed) = try await stalledUpload(multipart: false)
        #expect(elapsed < .seconds(4), "the upload took \(elapsed) with a 3 s budget")
        #expect(text.hasPrefix("PutObject s3://pipeline-tests/stalled.bin failed: the server at 127.0.0.1:"), "\(text)")
        #expect(text.contains("accepted the connection but sent nothing within 3."), "\(text)")
        #expect(text.contains("(after 1 attempt in 3."), "\(text)")
        #expect(!text.contains("cannot reach"), "\(text)")
        #expect(text.hasSuffix("[transient]"), "\(text)")
    }

    @Test func stalledServerFailsAMultipartUploadWithinBudgetPlusOneSecond() async throws {
        let (text, elapsed) = try await stalledUpload(multipart: true)
        #expect(elapsed < .seconds(4), "the upload took \(elapsed) with a 3 s budget")
        #expect(text.hasPrefix("CreateMultipartUpload"), "\(text)")
        #expect(text.contains("sent nothing within 3."), "\(text)")
    }

    @Test func stalledServerFailsAnUploadTaskInTime() async throws {
        // The same through the async API, with slack for a busy cooperative pool.
        let server = try StalledServer()
        let start = ContinuousClock.now
        await #expect(throws: S3Error.self) { try await upload(client(endpoint: server.endpoint, budget: .seconds(3)), multipart: false) }
        #expect(ContinuousClock.now - start < .seconds(15))
        withExtendedLifetime(server) {}
    }

    @Test func cancellingAnUploadToAStalledServerStopsPromptly() async throws {
        let server = try StalledServer()
        let upload = makeUpload(client(endpoint: server.endpoint, budget: .seconds(60)))
        let flag = CancelFlag()
        Thread {
            Thread.sleep(forTimeInterval: 0.3)
            flag.set()
        }.start()
        let (text, elapsed) = try await Self.onThread { () -> (String, Duration) in
            let start = ContinuousClock.now
            do {
                _ = try upload.run(multipart: false, cancel: flag)
                return ("succeeded", ContinuousClock.now - start)
            } catch {
                return ("\(type(of: error))", ContinuousClock.now - start)
            }
        }
        #expect(text == "CancellationError")
        #expect(elapsed < .milliseconds(1800), "cancelled after 0.3 s, the upload ended after \(elapsed)")
        withExtendedLifetime(server) {}
    }

    @Test func refusedConnectionSaysSo() async throws {
        // A port that was just free: bound, then closed without listening.
        let server = try StalledServer()
        let port = server.port
        server.stop()
        var configuration = client(endpoint: "http://127.0.0.1:\(port)", budget: .seconds(3)).configuration
        configuration.maxAttempts = 2
        configuration.backoffCap = .milliseconds(20)
        let refused = S3Client(configuration: configuration, credentials: client(endpoint: "", budget: .seconds(1)).credentials)
        do {
            _ = try await upload(refused, multipart: false)
            Issue.record("uploaded to a closed port")
        } catch let error as S3Error {
            #expect(error.description.contains("cannot reach http://127.0.0.1:\(port): connection refused"), "\(error)")
            #expect(error.description.contains("(after 2 attempts)"))
        }
    }
}
