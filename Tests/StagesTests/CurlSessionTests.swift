import Foundation
import Testing
@testable import Stages
import Framework

/// libcurl through `CurlSession`, against a Python echo server on 127.0.0.1.
@Suite(.serialized) struct CurlSessionTests {
    final class EchoServer {
        let process = Process()
        let port: Int

        init() throws {
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fixtures/echo_server.py")
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script.path]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            var line = Data()
            while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
                line.append(byte)
            }
            guard let port = Int(String(decoding: line, as: UTF8.self)) else {
                process.terminate()
                throw CurlError(code: -1, message: "echo server did not start", url: "")
            }
            self.port = port
        }

        deinit {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        var base: String { "http://127.0.0.1:\(port)" }
    }

    func json(_ response: HTTPResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    /// The sockets of libcurl's transfers are close-on-exec, so a program started
    /// meanwhile never inherits one. The transfer runs on a thread of its own against a
    /// server that accepted the connection and never answers; this thread looks at the
    /// process's descriptors until the connection shows, then abandons the transfer.
    @Test func socketsAreCloseOnExec() throws {
        let found = SocketsSeen()
        let outcome = Outcome()
        let server = try S3StallTests.StalledServer()
        let port = String(format: "%04X", server.port)
        let endpoint = server.endpoint
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            do {
                let session = try CurlSession()
                var request = HTTPRequest(url: endpoint + "/x", timeout: .seconds(20), connectTimeout: .seconds(10))
                request.isCancelled = { !found.isEmpty }
                _ = try session.perform(request)  // abandoned once looked at, or timed out
            } catch {
                outcome.record(error)
            }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while found.isEmpty && ContinuousClock.now < deadline {
            found.record(Self.connections(toPort: port))
            if found.isEmpty { usleep(5_000) }
        }
        done.wait()
        withExtendedLifetime(server) {}
        #expect(!found.isEmpty, "no connection to the server was seen during the transfer; it ended with \(outcome.text)")
        for (fd, closeOnExec) in found.sockets {
            #expect(closeOnExec, "TCP socket descriptor \(fd) would be inherited by child processes")
        }
    }

    /// This process's TCP sockets connected to `port` (hex), with whether each is close-on-exec.
    static func connections(toPort port: String) -> [(Int32, Bool)] {
        var inodes = Set<String>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // Read to the end: a /proc table says its size is 0, and may be many pages long.
            let text = FileHandle(forReadingAtPath: table).flatMap { handle in
                defer { try? handle.close() }
                return (try? handle.readToEnd()).map { String(decoding: $0, as: UTF8.self) }
            } ?? ""
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                if fields.count > 9, fields[2].hasSuffix(":" + port) { inodes.insert(String(fields[9])) }
            }
        }
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { name in
            guard let fd = Int32(name), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                  target.hasPrefix("socket:["), inodes.contains(String(target.dropFirst(8).dropLast())) else { return nil }
            return (fd, fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        }
    }

    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var error: (any Error)?
        func record(_ error: any Error) { lock.withLock { self.error = error } }
        var text: String { lock.withLock { error.map { "\($0)" } ?? "no error" } }
    }

    final class SocketsSeen: @unchecked Sendable {
        private let lock = NSLock()
        private var seen: [(Int32, Bool)] = []
        func record(_ sockets: [(Int32, Bool)]) { lock.lock(); seen += sockets; lock.unlock() }
        var sockets: [(Int32, Bool)] { lock.lock(); defer { lock.unlock() }; return seen }
        var isEmpty: Bool { sockets.isEmpty }
    }

    /// The path goes out as written (and signed): dot segments are not resolved away.
    @Test func dotSegmentsAreSentAsWritten() throws {
        let server = try EchoServer()
        let session = try CurlSession()
        for path in ["/bucket/a/../k.jpg", "/bucket/./k.jpg", "/bucket/.."] {
            let echoed = try json(try session.perform(HTTPRequest(url: server.base + path)))
            #expect(echoed["path"] as? String == path)
        }
    }

    @Test func getPutPostAndStatusCodes() throws {
        let server = try EchoServer()
        let session = try CurlSession()

        let get = try session.perform(HTTPRequest(url: server.base + "/a%20b?x=1", headers: [("X-Custom", "v1")]))
        #expect(get.status == 200)
        #expect(get.header("X-Echo") == "yes")
        let echoed = try json(get)
        #expect(echoed["method"] as? String == "GET")
        #expect(echoed["path"] as? String == "/a%20b?x=1")
        #expect((echoed["headers"] as? [String: String])?["x-custom"] == "v1")

        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let put = try session.perform(HTTPRequest(method: "PUT", url: server.base + "/upload", headers: [("Content-Type", "application/octet-stream")], body: .bytes(body)))
        let putEcho = try json(put)
        #expect(putEcho["method"] as? String == "PUT")
        #expect(putEcho["length"] as? Int == body.count)
        #expect(putEcho["sha256"] as? String == SHA256Hex.of(body))
        #expect((putEcho["headers"] as? [String: String])?["expect"] == nil)

        let post = try session.perform(HTTPRequest(method: "POST", url: server.base + "/p", body: .shared(SharedBytes(Array("xhelloy".utf8)), 1..<6)))
        #expect(try json(post)["length"] as? Int == 5)

        let missing = try session.perform(HTTPRequest(url: server.base + "/status/404"))
        #expect(missing.status == 404)
        let head = try session.perform(HTTPRequest(method: "HEAD", url: server.base + "/status/503"))
        #expect(head.status == 503 && head.body.isEmpty)
    }

    @Test func connectionRefusedIsATransientErrorWithCurlsMessage() throws {
        // Bind and close a socket to get a port nobody listens on.
        let port = try freePort()
        let session = try CurlSession()
        do {
            _ = try session.perform(HTTPRequest(url: "http://127.0.0.1:\(port)/", connectTimeout: .seconds(2)))
            Issue.record("connected to a closed port")
        } catch let error as CurlError {
            #expect(error.isTransient)
            #expect(error.message.contains("Failed to connect to 127.0.0.1 port \(port)"))
        }
    }

    @Test func malformedURLIsAnError() throws {
        let session = try CurlSession()
        #expect(throws: CurlError.self) { try session.perform(HTTPRequest(url: "htp:/nope")) }
    }

    func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

enum SHA256Hex {
    static func of(_ bytes: [UInt8]) -> String {
        Framework.SHA256Digest.hex(of: bytes)
    }
}
