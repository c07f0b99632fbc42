import Foundation
import Testing
import Framework
import Stages
import TestFixtures

/// `runner pipelines/poisson.yaml --profile s3` against the local S3 server, as a
/// user runs it, and the same job through the filesystem profile.
@Suite(.serialized) struct S3EndToEndTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    func environment(_ s3: LocalS3, secret: String? = nil, home: String) -> [String: String] {
        [
            "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": secret ?? s3.secretKey, "AWS_SESSION_TOKEN": "",
            "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": "us-east-1", "OUTPUT_S3_BUCKET": "pipeline-e2e",
            "AWS_EC2_METADATA_DISABLED": "true", "HOME": home, "AWS_PROFILE": "",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
        ]
    }

    @Test func s3ProfileUploadsTheSameBytesTheFilesystemProfileWrites() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let upload = try RunnerProcess.run([pipeline, "--profile", "s3", "--seed", "11", "--run-id", "e2e-s3", "--report", "report.json"],
                                           in: directory, environment: environment(s3, home: directory.path))
        #expect(upload.status == 0, "\(upload.stderr)")
        let key = "poisson-grid-images/e2e-s3/poisson_grid_2048x2048.jpg"
        #expect(upload.stdout == "s3://pipeline-e2e/\(key)\n")
        let local = try RunnerProcess.run([pipeline, "--seed", "11", "--run-id", "e2e-s3"], in: directory)
        #expect(local.status == 0, "\(local.stderr)")
        let file = try Data(contentsOf: directory.appendingPathComponent("out/\(key)"))

        let client = S3Client(
            configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
            credentials: AWSCredentialChain(environment: AWSEnvironment(variables: ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey])))
        let object = try client.send("GetObject", method: "GET", bucket: "pipeline-e2e", key: key, session: CurlSession())
        #expect(Data(object.body) == file)
        #expect(object.header("Content-Type") == "image/jpeg")

        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any]
        let store = (report?["stages"] as? [[String: Any]])?.first { $0["id"] as? String == "store" }
        let output = store?["output"] as? [String: Any]
        #expect(store?["type"] as? String == "s3")
        #expect(output?["uri"] as? String == "s3://pipeline-e2e/\(key)")
        #expect(output?["byte_count"] as? Int == file.count)
        #expect((output?["etag"] as? String)?.count == 32)
        #expect((output?["sha256"] as? String)?.count == 64)
        // The endpoint, region and bucket the sink used, and where its credentials came from.
        let access = store?["access"] as? [String: Any]
        #expect(access?["endpoint"] as? String == s3.endpoint)
        #expect(access?["region"] as? String == "us-east-1")
        #expect(access?["bucket"] as? String == "pipeline-e2e")
        #expect((access?["credentials"] as? String)?.contains("environment") == true, "\(String(describing: access))")
        let reportText = try String(contentsOf: directory.appendingPathComponent("report.json"), encoding: .utf8)
        #expect(!reportText.contains(s3.secretKey))
    }

    @Test func missingCredentialsSayWhereTheRunnerLooked() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var variables = environment(s3, home: directory.path)
        variables["AWS_ACCESS_KEY_ID"] = ""
        variables["AWS_SECRET_ACCESS_KEY"] = ""
        let result = try RunnerProcess.run([pipeline, "--profile", "s3", "--set", "params.size=64", "--run-id", "nocreds"], in: directory,
                                           environment: variables)
        #expect(result.status == 1)
        // Found out before any stage starts, on one line.
        #expect(result.stderr.hasPrefix("error: stage 'store' (s3) cannot run: no AWS credentials found; set AWS_ACCESS_KEY_ID"), "\(result.stderr)")
        #expect(result.stderr.contains("(looked in: environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: not set;"))
        #expect(result.stderr.contains("\(directory.path)/.aws/credentials: no such file;"))
        #expect(!result.stderr.contains("started"))
    }

    @Test func wrongSecretFailsWithAHintAndNoSecretInTheOutput() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run([pipeline, "--profile", "s3", "--set", "params.size=64", "--run-id", "badsecret", "-v",
                                            "--report", "r.json"], in: directory,
                                           environment: environment(s3, secret: "wrong-secret-value", home: directory.path))
        #expect(result.status == 1)
        // Rejected credentials, not a missing permission.
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("r.json"))) as? [String: Any]
        #expect(report?["error_code"] as? String == "credentials", "\(String(describing: report?["error_code"]))")
        #expect(result.stderr.contains("SignatureDoesNotMatch"))
        #expect(result.stderr.contains("the secret key may be wrong"))
        #expect(!result.stderr.contains("wrong-secret-value") && !result.stdout.contains("wrong-secret-value"))
    }

    /// Keys and store prefixes with dot segments or empty ones are refused at check
    /// time: servers may resolve them as paths and write elsewhere.
    @Test(arguments: [("key", "a/../k.jpg"), ("key", "./k.jpg"), ("key", "a//k.jpg"), ("key", "/k.jpg"), ("key", "dir/")])
    func keysThatAreNotWrittenAsNamedAreRefused(parameter: String, value: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["validate", pipeline, "--profile", "s3", "--set", "stages.store.with.\(parameter)=\(value)"],
                                           in: directory, environment: ["OUTPUT_S3_BUCKET": "b-ok"])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("parameter 'key' of stage 'store' (s3) is '\(value)', which "), "\(result.stderr)")
    }

    @Test(arguments: ["s3://pipeline-e2e/a/../b", "s3://pipeline-e2e/..", "s3://pipeline-e2e/a/./b"])
    func storePrefixesWithDotSegmentsAreRefused(store: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run([pipeline, "--set", "params.size=8", "--artifact-store", store, "--log-format", "json"], in: directory)
        #expect(result.status == 2, "\(result.stderr)")
        let line = try #require(try JSONSerialization.jsonObject(with: Data(result.stderr.utf8)) as? [String: Any])
        #expect(line["event"] as? String == "store_refused" && line["error_code"] as? String == "invalid_store_location", "\(line)")
        #expect((line["message"] as? String)?.contains("'.' or '..' segment") == true)
    }

    @Test func aStoreThatCannotBeUsedCarriesItsCausesCode() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var variables = environment(s3, home: directory.path)
        let missing = try RunnerProcess.run([pipeline, "--set", "params.size=8", "--artifact-store", "s3://no-such-bucket-here/x",
                                             "--log-format", "json"], in: directory, environment: variables)
        #expect(missing.status == 2, "\(missing.stderr)")
        #expect(missing.stderr.contains("\"error_code\":\"no_such_bucket\""), "\(missing.stderr)")
        variables["AWS_ACCESS_KEY_ID"] = ""
        variables["AWS_SECRET_ACCESS_KEY"] = ""
        let uncredited = try RunnerProcess.run([pipeline, "--set", "params.size=8", "--artifact-store", "s3://pipeline-e2e/x",
                                                "--log-format", "json"], in: directory, environment: variables)
        #expect(uncredited.status == 1, "\(uncredited.stderr)")
        #expect(uncredited.stderr.contains("\"error_code\":\"credentials\""), "\(uncredited.stderr)")
        #expect(uncredited.stderr.contains("nothing was run"))
    }

    @Test func missingBucketVariableIsCaughtBeforeAnythingRuns() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["validate", pipeline, "--profile", "s3"], in: directory, environment: ["OUTPUT_S3_BUCKET": ""])
        #expect(result.status == 2)
        #expect(result.stderr.contains("environment variable 'OUTPUT_S3_BUCKET' is not set"))
    }
}

/// `--artifact-store s3://bucket/prefix` against the local S3 server.
@Suite(.serialized) struct S3ArtifactStoreTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    @Test func runAndResumeWithAnS3Store() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_SESSION_TOKEN": "",
                           "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                           "HOME": directory.path, "AWS_PROFILE": ""]
        let store = "s3://pipeline-e2e/stores/team one"
        let arguments = [pipeline, "--artifact-store", store, "--set", "params.size=64"]
        let first = try RunnerProcess.run(arguments + ["--run-id", "s3store", "--seed", "4"], in: directory, environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        let again = try RunnerProcess.run(arguments + ["--resume", "s3store", "--report", "r.json"], in: directory, environment: environment)
        #expect(again.status == 0, "\(again.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("r.json"))) as? [String: Any]
        let stages = report?["stages"] as? [[String: Any]] ?? []
        #expect(stages.count == 4 && stages.allSatisfy { $0["reused"] as? Bool == true })
        #expect(report?["seed"] as? UInt64 == 4)
        // The stored grid is a real .npy object in the bucket.
        let client = S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                              credentials: AWSCredentialChain(environment: AWSEnvironment(variables: environment)))
        let npy = try client.send("GetObject", method: "GET", bucket: "pipeline-e2e", key: "stores/team one/s3store/generate/artifact.npy",
                                  session: CurlSession()).body
        let grid = try npy.withUnsafeBytes { try NPY.read($0, name: "artifact.npy") }
        #expect(grid.width == 64 && grid.height == 64 && grid.elementType == .uint8)
    }
}
