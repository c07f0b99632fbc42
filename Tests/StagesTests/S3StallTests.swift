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

    func upload(_ client: S3Client, multipart: Bool) async throws -> S3Upload.Result {
        let bytes = (0..<20_000).map { UInt8(truncatingIfNeeded: $0) }
        let upload = S3Upload(client: client, bucket: "pipeline-tests", key: "stalled.bin", bytes: SharedBytes(bytes),
                              headers: [("Content-Type", "application/octet-stream")], checksum: true, overwrite: true,
                              partSize: 5 << 20, concurrency: 2, context: testContext())
        return try await upload.run(multipart: multipart)
    }

    /// Uploads to a stalled server with a 3 s budget; returns the error and the time taken.
    func stalledUpload(multipart: Bool) async throws -> (S3Error?, Duration) {
        let server = try StalledServer()
        let start = ContinuousClock.now
        var failure: S3Error?
        do {
            _ = try await upload(client(endpoint: server.endpoint, budget: .seconds(3)), multipart: multipart)
            Issue.record("an upload to a server that never answers succeeded")
        } catch let error as S3Error {
            failure = error
        }
        let elapsed = ContinuousClock.now - start
        withExtendedLifetime(server) {}
        return (failure, elapsed)
    }

    /// The wall-clock bound of a whole upload has a second of slack over budget + 1 s:
    /// when the full suite runs, other tests' blocking calls on the cooperative pool
    /// can delay the resumption of this test's task by about that much. The request
    /// itself is timed exactly below, on a thread of its own.
    static let uploadBound: Duration = .seconds(5)

    @Test func stalledServerFailsARequestWithinBudgetPlusOneSecond() async throws {
        let server = try StalledServer()
        let client = client(endpoint: server.endpoint, budget: .seconds(3))
        let outcome = try await Self.onThread { () -> (String, Duration) in
            let start = ContinuousClock.now
            do {
                _ = try client.send("PutObject", method: "PUT", bucket: "pipeline-tests", key: "stalled.bin",
                                    body: .bytes(Array(repeating: 7, count: 20_000)), session: CurlSession(), isCancelled: { false })
                return ("succeeded", ContinuousClock.now - start)
            } catch {
                return ("\(error)", ContinuousClock.now - start)
            }
        }
        #expect(outcome.1 < .seconds(4), "the request took \(outcome.1) with a 3 s budget")
        #expect(outcome.0.contains("accepted the connection but sent nothing within 3."), "\(outcome.0)")
        #expect(outcome.0.contains("(after 1 attempt in 3."), "\(outcome.0)")
        withExtendedLifetime(server) {}
    }

    /// Runs `body` on a thread of its own, as `S3Upload` does, and returns its result.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    @Test func stalledServerFailsAPutWithinTheBudget() async throws {
        let (error, elapsed) = try await stalledUpload(multipart: false)
        #expect(elapsed < Self.uploadBound, "the upload took \(elapsed) with a 3 s budget")
        let text = error?.description ?? ""
        #expect(text.contains("the server at 127.0.0.1:") && text.contains("sent nothing within"), "\(text)")
        #expect(!text.contains("cannot reach"), "\(text)")
        #expect(error?.isTransient == true)
    }

    @Test func stalledServerFailsAMultipartUploadWithinTheBudget() async throws {
        let (error, elapsed) = try await stalledUpload(multipart: true)
        #expect(elapsed < Self.uploadBound, "the upload took \(elapsed) with a 3 s budget")
        let text = error?.description ?? ""
        #expect(text.hasPrefix("CreateMultipartUpload"), "\(text)")
        #expect(text.contains("sent nothing within"), "\(text)")
    }

    @Test func cancellingAnUploadToAStalledServerStopsPromptly() async throws {
        let server = try StalledServer()
        let client = client(endpoint: server.endpoint, budget: .seconds(60))
        let task = Task { try await upload(client, multipart: false) }
        try await Task.sleep(for: .milliseconds(300))
        let cancelled = ContinuousClock.now
        task.cancel()
        let result = await task.result
        #expect(ContinuousClock.now - cancelled < .milliseconds(1500))
        #expect(throws: CancellationError.self) { try result.get() }
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
