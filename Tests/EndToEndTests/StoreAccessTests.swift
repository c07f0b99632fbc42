import Foundation
import Testing
import TestFixtures

/// Issue 11: `--artifact-store s3://...` is checked before any stage runs.
@Suite(.serialized) struct StoreAccessTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
    let small = ["--set", "params.size=64"]

    /// No AWS settings at all: credentials from nowhere, no instance metadata.
    func bareEnvironment(_ directory: URL) throws -> [String: String] {
        let empty = directory.appendingPathComponent("empty-aws-file")
        try Data().write(to: empty)
        var environment = ["AWS_CONFIG_FILE": empty.path, "AWS_SHARED_CREDENTIALS_FILE": empty.path, "AWS_EC2_METADATA_DISABLED": "true",
                           "HOME": directory.path]
        for name in ProcessInfo.processInfo.environment.keys where name.hasPrefix("AWS_") && environment[name] == nil {
            environment[name] = ""
        }
        return environment
    }

    @Test func missingCredentialsFailTheRunBeforeTheFirstStage() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = ContinuousClock.now
        let result = try RunnerProcess.run([pipeline, "--run-id", "r1", "--artifact-store", "s3://bucket/x"] + small, in: directory,
                                           environment: try bareEnvironment(directory))
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(result.status == 1, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("cannot use the artifact store s3://bucket/x: no AWS credentials found; set AWS_ACCESS_KEY_ID"), "\(result.stderr)")
        #expect(!result.stderr.contains("started"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out").path))
    }

    @Test func aMissingBucketIsAUsageError() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var environment = try bareEnvironment(directory)
        environment.merge(["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_ENDPOINT_URL_S3": s3.endpoint,
                           "AWS_REGION": "us-east-1"]) { _, new in new }
        let result = try RunnerProcess.run([pipeline, "--run-id", "r1", "--artifact-store", "s3://no-such-store-bucket/x"] + small,
                                           in: directory, environment: environment)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("artifact store 's3://no-such-store-bucket/x': bucket 'no-such-store-bucket' does not exist"), "\(result.stderr)")
        #expect(!result.stderr.contains("started"), "\(result.stderr)")
    }
}
