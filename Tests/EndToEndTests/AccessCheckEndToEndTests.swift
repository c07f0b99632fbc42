import Foundation
import Testing
import Framework
import TestFixtures
#if canImport(Glibc)
import Glibc
#endif

/// What stages need from outside is checked before any of them runs (`runner run`),
/// or on request, with one cheap request each (`runner validate --check-access`).
@Suite(.serialized) struct AccessCheckEndToEndTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    /// No credentials anywhere: AWS_* cleared, empty shared files, no instance metadata.
    func noCredentials(in directory: URL, endpoint: String = "http://127.0.0.1:9") throws -> [String: String] {
        let empty = directory.appendingPathComponent("empty-aws-file").path
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        return [
            "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
            "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
            "AWS_ENDPOINT_URL_S3": endpoint, "AWS_REGION": "us-east-1", "OUTPUT_S3_BUCKET": "pipeline-e2e", "HOME": directory.path,
        ]
    }

    func credentials(_ s3: LocalS3, in directory: URL, bucket: String = "pipeline-e2e") throws -> [String: String] {
        var variables = try noCredentials(in: directory, endpoint: s3.endpoint)
        variables["AWS_ACCESS_KEY_ID"] = s3.accessKey
        variables["AWS_SECRET_ACCESS_KEY"] = s3.secretKey
        variables["OUTPUT_S3_BUCKET"] = bucket
        return variables
    }

    @Test func runWithoutCredentialsFailsBeforeTheComputeStarts() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run([pipeline, "--profile", "s3", "--run-id", "nocreds"], in: directory,
                                           environment: try noCredentials(in: directory))
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.elapsed < .seconds(10), "\(result.elapsed)")
        #expect(!result.stderr.contains("started"), "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(lines.first?.hasPrefix("error: stage 'store' (s3) cannot run: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") == true,
                "\(result.stderr)")
        #expect(result.stderr.contains("nothing was run"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out").path))
    }

    @Test func runWithAPathBelowAFileFailsBeforeTheComputeStarts() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("out").path, contents: Data("x".utf8))
        let result = try RunnerProcess.run([pipeline, "--run-id", "blocked"], in: directory)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(!result.stderr.contains("started"), "\(result.stderr)")
        #expect(result.stderr.contains("stage 'store' (filesystem) cannot run: '\(directory.path)/out' is not a directory"), "\(result.stderr)")
    }

    @Test func validateCheckAccessListsTheBucketAndPrintsTheFacts() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["validate", pipeline, "--profile", "s3", "--check-access"], in: directory,
                                           environment: try credentials(s3, in: directory))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("  store (s3): access ok: addressing=path, bucket=pipeline-e2e, bucket_listed=true, credentials=environment variables"),
                "\(result.stdout)")
        #expect(result.stdout.contains("endpoint=\(s3.endpoint), region=us-east-1"), "\(result.stdout)")
        #expect(result.stdout.contains("  store (filesystem)") == false)
        #expect(!result.stdout.contains(s3.secretKey) && !result.stderr.contains(s3.secretKey))
    }

    @Test func validateCheckAccessNamesAMissingBucket() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["validate", pipeline, "--profile", "s3", "--check-access"], in: directory,
                                           environment: try credentials(s3, in: directory, bucket: "no-such-bucket-e2e"))
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("error: stage 'store' (s3) cannot run: ListObjectsV2 s3://no-such-bucket-e2e failed: bucket 'no-such-bucket-e2e' does not exist"),
                "\(result.stderr)")
    }

    /// Without --check-access, validate does not connect to the endpoint: a listening
    /// socket stands in for it, and no connection waits on it afterwards.
    @Test func validateWithoutTheFlagStaysOffline() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let listener = try Listener()
        defer { close(listener.descriptor) }
        var variables = try noCredentials(in: directory, endpoint: "http://127.0.0.1:\(listener.port)")
        variables["AWS_ACCESS_KEY_ID"] = "AKIDEXAMPLE"
        variables["AWS_SECRET_ACCESS_KEY"] = "example"
        let result = try RunnerProcess.run(["validate", pipeline, "--profile", "s3"], in: directory, environment: variables)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains("access ok"))
        #expect(!listener.hasPendingConnection())
        // The same check sees a connection when one is made.
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(probe) }
        var address = listener.address
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(listener.hasPendingConnection())
    }

    /// A TCP socket listening on 127.0.0.1 at a free port, never accepting.
    struct Listener {
        let descriptor: Int32
        let address: sockaddr_in
        var port: Int { Int(UInt16(bigEndian: address.sin_port)) }

        init() throws {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && listen(descriptor, 8) == 0
                    && getsockname(descriptor, $0, &length) == 0 }
            }
            guard bound else { throw SystemError("listen on", path: "127.0.0.1") }
            self.descriptor = descriptor
            self.address = address
        }

        /// Whether a connection is waiting to be accepted.
        func hasPendingConnection() -> Bool {
            var poll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            return Glibc.poll(&poll, 1, 200) == 1
        }
    }
}

/// The progress bar under a pseudo-terminal (util-linux `script`), as a user sees it.
@Suite(.serialized) struct ProgressBarEndToEndTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    /// Runs the runner with a terminal as stdout and stderr; returns what the terminal got.
    func runUnderTerminal(_ arguments: [String], in directory: URL, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let quoted = ([RunnerProcess.executable.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qfec", quoted.joined(separator: " "), "/dev/null"]
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The percentages drawn for `stage`, in order.
    func bar(_ stage: String, in output: String) -> [Int] {
        output.components(separatedBy: "\r\u{1B}[2K  \(stage) [").dropFirst().compactMap { drawn in
            let text = drawn.prefix { $0 != "%" }
            return Int(text.split(separator: " ").last ?? "")
        }
    }

    func expectGradual(_ percents: [Int], _ output: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(percents.last == 100, "\(output)", sourceLocation: sourceLocation)
        #expect(percents.contains { $0 < 100 }, "\(output)", sourceLocation: sourceLocation)
        #expect(zip(percents, percents.dropFirst()).allSatisfy { $0 <= $1 }, "\(output)", sourceLocation: sourceLocation)
    }

    @Test func encoderAndFilesystemSinkDrawProgress() throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "util-linux script is needed")
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // 2048x2048 noise: a JPEG of about 3 MB, a PNG of about 1.6 MB, written 1 MiB at a time.
        for (profile, size) in [("png", 2048), ("default", 2048)] {
            let profiles = profile == "default" ? [] : ["--profile", profile]
            let (status, output) = try runUnderTerminal([pipeline, "--run-id", "bar-\(profile)", "--set", "params.size=\(size)"] + profiles,
                                                        in: directory)
            #expect(status == 0, "\(output)")
            expectGradual(bar("encode", in: output), output)
            expectGradual(bar("store", in: output), output)
        }
    }

    @Test func s3SinkDrawsProgress() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_SESSION_TOKEN": "",
                           "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": "us-east-1", "OUTPUT_S3_BUCKET": "pipeline-e2e",
                           "AWS_EC2_METADATA_DISABLED": "true", "HOME": directory.path, "AWS_PROFILE": ""]
        // The 2048x2048 JPEG is about 3 MB: a single PUT.
        let (status, output) = try runUnderTerminal([pipeline, "--profile", "s3", "--set", "stages.store.with.key=bars/{run_id}.jpg",
                                                     "--run-id", "bar-s3", "--set", "stages.store.with.overwrite=true"],
                                                    in: directory, environment: environment)
        #expect(status == 0, "\(output)")
        expectGradual(bar("store", in: output), output)
    }
}
