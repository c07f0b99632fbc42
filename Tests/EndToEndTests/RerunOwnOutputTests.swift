import Foundation
import Testing
import Framework
import Stages
import TestFixtures

/// Re-runs that meet their own output: a sink whose target already holds exactly the
/// bytes to be written succeeds and leaves it alone; other bytes are an error whose
/// message quotes the `--set` that allows overwriting.
@Suite(.serialized) struct RerunOwnOutputTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
    static let hint = "--set stages.store.with.overwrite=true"

    @Test func filesystemSinkMeetingTheSameBytesSucceeds() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let arguments = [pipeline, "--set", "params.size=256", "--run-id", "again", "--seed", "7"]
        let first = try RunnerProcess.run(arguments, in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        let file = directory.appendingPathComponent("out/poisson-grid-images/again/poisson_grid_256x256.jpg")
        let written = try Data(contentsOf: file)
        let inode = try FileManager.default.attributesOfItem(atPath: file.path)[.systemFileNumber] as? Int

        let second = try RunnerProcess.run(arguments, in: directory)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try Data(contentsOf: file) == written)
        #expect(try FileManager.default.attributesOfItem(atPath: file.path)[.systemFileNumber] as? Int == inode, "the file was replaced")
        #expect(try FileManager.default.contentsOfDirectory(atPath: file.deletingLastPathComponent().path) == [file.lastPathComponent])

        let other = try RunnerProcess.run([pipeline, "--set", "params.size=256", "--run-id", "again", "--seed", "8", "--report", "other.json"],
                                          in: directory)
        #expect(other.status == 1)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("other.json"))) as? [String: Any]
        #expect(report?["error_code"] as? String == "output_exists")
        #expect(other.stderr.contains("stage 'store' (filesystem) failed"), "\(other.stderr)")
        #expect(other.stderr.contains("already exists"))
        #expect(other.stderr.contains(Self.hint), "\(other.stderr)")
        #expect(try Data(contentsOf: file) == written)

        // The flag the message quotes does replace it.
        let replaced = try RunnerProcess.run([pipeline, "--set", "params.size=256", "--run-id", "again", "--seed", "8", "--set",
                                              "stages.store.with.overwrite=true"], in: directory)
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(try Data(contentsOf: file) != written)
    }

    @Test func s3SinkMeetingTheSameObjectSucceeds() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = [
            "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_SESSION_TOKEN": "",
            "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": "us-east-1", "OUTPUT_S3_BUCKET": "pipeline-e2e",
            "AWS_EC2_METADATA_DISABLED": "true", "HOME": directory.path, "AWS_PROFILE": "",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
        ]
        let runID = "again-\(UUID().uuidString.prefix(8).lowercased())"
        let key = "poisson-grid-images/\(runID)/poisson_grid_256x256.jpg"
        let arguments = [pipeline, "--profile", "s3", "--set", "params.size=256", "--run-id", runID]
        let client = S3Client(
            configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
            credentials: AWSCredentialChain(environment: AWSEnvironment(variables: ["AWS_ACCESS_KEY_ID": s3.accessKey,
                                                                                    "AWS_SECRET_ACCESS_KEY": s3.secretKey])))
        func object() throws -> HTTPResponse {
            try client.send("GetObject", method: "GET", bucket: "pipeline-e2e", key: key, session: CurlSession())
        }

        let first = try RunnerProcess.run(arguments + ["--seed", "7"], in: directory, environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        let uploaded = try object()

        let second = try RunnerProcess.run(arguments + ["--seed", "7", "--report", "report.json"], in: directory, environment: environment)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout == "s3://pipeline-e2e/\(key)\n")
        let again = try object()
        #expect(again.body == uploaded.body)
        #expect(again.header("ETag") == uploaded.header("ETag"))
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any]
        let output = (report?["stages"] as? [[String: Any]])?.first { $0["id"] as? String == "store" }?["output"] as? [String: Any]
        #expect((output?["etag"] as? String).map { "\"\($0)\"" } == uploaded.header("ETag"))

        let other = try RunnerProcess.run(arguments + ["--seed", "8"], in: directory, environment: environment)
        #expect(other.status == 1)
        #expect(other.stderr.contains("stage 'store' (s3) failed"), "\(other.stderr)")
        #expect(other.stderr.contains("already exists"))
        #expect(other.stderr.contains(Self.hint), "\(other.stderr)")
        #expect(try object().body == uploaded.body)
    }
}
