import Foundation
import Testing
import TestFixtures
import Framework
import Logging
@testable import Stages

/// `checkAccess` of the sinks: what the shallow check finds without the network, what
/// the deep check asks the local S3 server, and the facts they report.
@Suite(.serialized) struct AccessCheckTests {
    func s3Parameters(bucket: String = "pipeline-tests", endpoint: String? = nil) -> Parameters {
        var values: [String: ParameterValue] = ["bucket": .string(bucket), "key": .string("out/{run_id}/x.bin")]
        if let endpoint { values["endpoint"] = .string(endpoint) }
        return parameters(S3Stage.spec, values)
    }

    /// An environment with nothing in it but what the test gives, and no instance metadata.
    func environment(_ variables: [String: String] = [:], home: String = "/nonexistent") -> AWSEnvironment {
        AWSEnvironment(variables: ["AWS_EC2_METADATA_DISABLED": "true", "HOME": home].merging(variables) { _, new in new })
    }

    @Test func s3ShallowCheckWithoutCredentialsSaysHowToProvideThem() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await S3Stage.checkAccess(parameters: s3Parameters(), depth: .shallow, environment: environment())
            Issue.record("no error without credentials")
        } catch let problem as AccessProblem {
            #expect(problem.message == "no AWS credentials found")
            #expect(problem.help?.hasPrefix("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile in /nonexistent/.aws/credentials") == true)
            #expect(problem.help?.contains("/nonexistent/.aws/credentials: no such file") == true)
            #expect(!problem.description.contains("\n"))
        }
        // Well within the 5 s the metadata endpoints would be given, had they not been disabled.
        #expect(clock.now - start < .seconds(4))
    }

    @Test func s3ShallowCheckReportsEndpointRegionAndBucketButNoSecret() async throws {
        let variables = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-that-must-not-show", "AWS_REGION": "eu-west-3"]
        let report = try await S3Stage.checkAccess(parameters: s3Parameters(bucket: "images"), depth: .shallow, environment: environment(variables))
        #expect(report.checked)
        #expect(report.facts["endpoint"] == .string("https://s3.eu-west-3.amazonaws.com"))
        #expect(report.facts["region"] == .string("eu-west-3"))
        #expect(report.facts["bucket"] == .string("images"))
        #expect(report.facts["addressing"] == .string("virtual"))
        #expect(report.facts["credentials"] == .string("environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"))
        #expect(!report.summary.contains("secret-that-must-not-show"))
        #expect(report.facts["bucket_listed"] == nil)
    }

    @Test func s3ShallowCheckNamesTheProfileFileItReads() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent(".aws"), withIntermediateDirectories: true)
        try "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n"
            .write(to: directory.appendingPathComponent(".aws/credentials"), atomically: true, encoding: .utf8)
        let report = try await S3Stage.checkAccess(parameters: s3Parameters(endpoint: "http://127.0.0.1:9"), depth: .shallow,
                                                   environment: environment(home: directory.path))
        #expect(report.facts["credentials"] == .string("\(directory.path)/.aws/credentials [default]"))
        #expect(report.facts["endpoint"] == .string("http://127.0.0.1:9"))
        #expect(report.facts["addressing"] == .string("path"))
        #expect(!report.summary.contains("file-secret"))
    }

    @Test func s3EndpointFromTheEnvironmentMustBeAURL() async throws {
        let variables = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x", "AWS_ENDPOINT_URL_S3": "localhost:9000"]
        await #expect(throws: AccessProblem.self) {
            _ = try await S3Stage.checkAccess(parameters: s3Parameters(), depth: .shallow, environment: environment(variables))
        }
    }

    @Test func s3DeepCheckListsTheBucket() async throws {
        let s3 = try LocalS3.shared()
        let variables = ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey]
        let report = try await S3Stage.checkAccess(parameters: s3Parameters(endpoint: s3.endpoint), depth: .deep, environment: environment(variables))
        #expect(report.facts["bucket_listed"] == .boolean(true))
        #expect(report.facts["endpoint"] == .string(s3.endpoint))
        do {
            _ = try await S3Stage.checkAccess(parameters: s3Parameters(bucket: "no-such-bucket-here", endpoint: s3.endpoint), depth: .deep,
                                              environment: environment(variables))
            Issue.record("no error for a missing bucket")
        } catch let error as S3Error {
            #expect(error.code == "NoSuchBucket")
            #expect(error.description.contains("bucket 'no-such-bucket-here' does not exist"))
        }
        let wrong = ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": "wrong-secret"]
        await #expect(throws: S3Error.self) {
            _ = try await S3Stage.checkAccess(parameters: s3Parameters(endpoint: s3.endpoint), depth: .deep, environment: environment(wrong))
        }
    }

    func filesystemParameters(_ path: String) -> Parameters {
        parameters(FilesystemStage.spec, ["path": .string(path)])
    }

    @Test func filesystemCheckFindsAFileWhereADirectoryMustGo() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("x".utf8).write(to: directory.appendingPathComponent("blocker"))
        do {
            _ = try await FilesystemStage.checkAccess(parameters: filesystemParameters(directory.path + "/blocker/sub/{run_id}/a.jpg"), depth: .shallow)
            Issue.record("no error for a path below a file")
        } catch let problem as AccessProblem {
            #expect(problem.message.hasPrefix("'\(directory.path)/blocker' is not a directory"))
        }
    }

    @Test func filesystemCheckCreatesNothing() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let report = try await FilesystemStage.checkAccess(parameters: filesystemParameters(directory.path + "/new/{{literal}}/{run_id}/a.jpg"),
                                                           depth: .deep)
        #expect(report.facts["directory"] == .string(directory.path + "/new/{literal}"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test func stagesWithoutAccessNeedsReportNothingToCheck() async throws {
        let report = try await StageType(JPEGStage.self).checkAccess(parameters: parameters(JPEGStage.spec, [:]), depth: .deep)
        #expect(!report.checked && report.facts.isEmpty)
    }
}

/// Progress of the encoders and sinks: fractions that only grow and end at 1.
@Suite(.serialized) struct SinkProgressTests {
    /// A context whose progress reports are recorded.
    func recordingContext() -> (StageContext, Recorded) {
        let recorded = Recorded()
        let context = StageContext(stageID: "store", stageType: "test", runID: "run-1", seed: 1, concurrency: 2, logger: Logger(label: "test"),
                                   templateValues: ["run_id": "run-1", "stage": "store", "date": "2026-11-30"],
                                   progress: { recorded.append($0) })
        return (context, recorded)
    }

    final class Recorded: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Double] = []
        func append(_ value: Double) { lock.lock(); values.append(value); lock.unlock() }
        var fractions: [Double] { lock.lock(); defer { lock.unlock() }; return values }
    }

    /// Growing fractions, some below 1, the last 1.
    func expectGradual(_ fractions: [Double], sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(fractions.last == 1, "\(fractions)", sourceLocation: sourceLocation)
        #expect(fractions.contains { $0 > 0 && $0 < 1 }, "\(fractions)", sourceLocation: sourceLocation)
        #expect(zip(fractions, fractions.dropFirst()).allSatisfy { $0 <= $1 }, "\(fractions)", sourceLocation: sourceLocation)
    }

    func image(_ count: Int) -> EncodedImage {
        var rng = Xoshiro256StarStar(seed: 7)
        let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        return EncodedImage(bytes: SharedBytes(bytes), format: "bin", mediaType: "application/octet-stream", width: 1, height: 1)
    }

    @Test func filesystemSinkReportsBytesWritten() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let stage = try FilesystemStage(parameters: parameters(FilesystemStage.spec, ["path": .string(directory.path + "/{run_id}/a.bin")]))
        let (context, recorded) = recordingContext()
        _ = try await stage.run(inputs: StageInputs(["input": image(5 << 20)]), context: context)
        expectGradual(recorded.fractions)
    }

    @Test func s3SinkReportsBytesSent() async throws {
        let s3 = try LocalS3.shared()
        let client = S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                              credentials: AWSCredentialChain(environment: AWSEnvironment(variables: [
                                  "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_EC2_METADATA_DISABLED": "true"])))
        for (key, count, multipart) in [("progress/single.bin", 6 << 20, false), ("progress/multi.bin", 12 << 20, true)] {
            let (context, recorded) = recordingContext()
            let upload = S3Upload(client: client, bucket: "pipeline-tests", key: key, bytes: image(count).bytes,
                                  headers: [("Content-Type", "application/octet-stream")], checksum: true, overwrite: true,
                                  partSize: 5 << 20, concurrency: 2, context: context)
            _ = try await upload.run(multipart: multipart)
            expectGradual(recorded.fractions)
        }
    }

    @Test func jpegEncoderReportsRows() async throws {
        let grid = try slowToEncodeGrid(size: 512)
        let (context, recorded) = recordingContext()
        _ = try await JPEGStage(parameters: parameters(JPEGStage.spec, [:])).run(inputs: StageInputs(["input": grid]), context: context)
        expectGradual(recorded.fractions)
    }
}
