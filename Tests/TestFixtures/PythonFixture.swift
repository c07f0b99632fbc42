import Foundation

/// A Python helper process from Tests/Fixtures: started, its first line of output
/// read, and stopped (stdin closed, then killed) when the value goes away or the
/// test process ends.
public final class PythonFixture: @unchecked Sendable {
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The virtual environment scripts/test creates with Tests/Fixtures/requirements.txt.
    public static var python: String {
        ProcessInfo.processInfo.environment["PIPELINE_TEST_PYTHON"]
            ?? packageRoot.appendingPathComponent(".build/test-venv/bin/python").path
    }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    public let process = Process()
    private let input = Pipe()
    public let firstLine: String

    public init(script: String, arguments: [String], python: String = PythonFixture.python) throws {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw StartError(description: "\(python) not found: run scripts/test, which creates it with Tests/Fixtures/requirements.txt")
        }
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [Self.packageRoot.appendingPathComponent("Tests/Fixtures/\(script)").path] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = input
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        firstLine = String(decoding: line, as: UTF8.self)
        if firstLine.isEmpty {
            kill(process.processIdentifier, SIGKILL)
            throw StartError(description: "\(script) did not start")
        }
    }

    deinit {
        try? input.fileHandleForWriting.close()
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// The local S3 server, started once for the whole test run.
public struct LocalS3: Sendable {
    public let endpoint: String
    public let accessKey: String
    public let secretKey: String
    public let port: Int

    public static let buckets = ["pipeline-tests", "pipeline-e2e"]

    nonisolated(unsafe) private static var fixture: PythonFixture?
    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: Result<LocalS3, any Error>?

    public static func shared() throws -> LocalS3 {
        lock.lock()
        defer { lock.unlock() }
        if let started { return try started.get() }
        let result = Result { () throws -> LocalS3 in
            let server = try PythonFixture(script: "s3_server.py", arguments: buckets)
            fixture = server
            let json = try JSONSerialization.jsonObject(with: Data(server.firstLine.utf8)) as? [String: String] ?? [:]
            guard let endpoint = json["endpoint"], let access = json["access_key"], let secret = json["secret_key"],
                  let port = Int(endpoint.split(separator: ":").last ?? "") else {
                throw PythonFixture.StartError(description: "unexpected s3_server.py output: \(server.firstLine)")
            }
            return LocalS3(endpoint: endpoint, accessKey: access, secretKey: secret, port: port)
        }
        started = result
        return try result.get()
    }
}
