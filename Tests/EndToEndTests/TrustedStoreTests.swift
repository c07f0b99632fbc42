import Foundation
import Framework
import Stages
import Testing
import TestFixtures

/// Issue 11 §1 with the built runner: unknown and damaged runs, clean usage errors,
/// stores chosen by scheme, stage versions shown, reused sinks verified.
@Suite struct TrustedStoreTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
    let small = ["--set", "params.size=64"]

    /// The bytes of every file below `directory`, by relative path.
    func snapshot(_ directory: URL) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for path in files(below: directory) { result[path] = try Data(contentsOf: directory.appendingPathComponent(path)) }
        return result
    }

    func stageReport(_ file: URL) throws -> [String: [String: Any]] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        let stages = json?["stages"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: stages.map { ($0["id"] as! String, $0) })
    }

    /// The lines of stderr, without the empty last one.
    func lines(_ text: String) -> [Substring] { text.split(separator: "\n") }

    @Test func resumingARunTheStoreDoesNotHoldIsAUsageError() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try RunnerProcess.run([pipeline, "--run-id", "r1", "--artifact-store", "store"] + small, in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        let result = try RunnerProcess.run([pipeline, "--resume", "r2", "--artifact-store", "store"] + small, in: directory)
        #expect(result.status == 2)
        #expect(lines(result.stderr).count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("no run 'r2' in the artifact store '\(directory.path)/store'; runs there: r1"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("store/r2").path))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/poisson-grid-images/r2").path))
    }

    @Test(arguments: ["not json at all", "{\"sed\": 3}", "{\"seed\": -1}"])
    func aDamagedRunRecordIsAnErrorThatLeavesTheRunAlone(record: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try RunnerProcess.run([pipeline, "--run-id", "r1", "--seed", "5", "--artifact-store", "store"] + small, in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        try Data(record.utf8).write(to: directory.appendingPathComponent("store/r1/run.json"))
        let before = try snapshot(directory)
        for extra in [["--resume", "r1"], ["--run-id", "r1", "--set", "stages.store.with.overwrite=true"], ["--run-id", "r1", "--only", "encode"]] {
            let result = try RunnerProcess.run([pipeline, "--artifact-store", "store"] + extra + small, in: directory)
            #expect(result.status == 2, "\(extra): \(result.stderr)")
            #expect(lines(result.stderr).count == 1, "\(result.stderr)")
            #expect(result.stderr.contains("'\(directory.path)/store/r1/run.json' is damaged"), "\(result.stderr)")
            #expect(!result.stderr.contains("Error Domain"))
            #expect(try snapshot(directory) == before, "\(extra) changed the stored run")
        }
    }

    @Test func onlyWithAnUnknownStageSuggestsOneBeforeAnythingRuns() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run([pipeline, "--run-id", "r1", "--artifact-store", "store", "--only", "encdoe"] + small, in: directory)
        #expect(result.status == 2)
        #expect(result.stderr.contains("no stage 'encdoe' in"), "\(result.stderr)")
        #expect(result.stderr.contains("did you mean 'encode'?"), "\(result.stderr)")
        // Nothing ran, nothing was written.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("store").path))
    }

    @Test func aStorePathThatIsAFileIsOneReadableLine() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("a file\n".utf8).write(to: directory.appendingPathComponent("store"))
        for location in ["store", "store/below"] {
            let result = try RunnerProcess.run([pipeline, "--run-id", "r1", "--artifact-store", location] + small, in: directory)
            #expect(result.status == 2, "\(location): \(result.stderr)")
            #expect(lines(result.stderr).count == 1, "\(result.stderr)")
            #expect(result.stderr.contains("artifact store '\(location)'"), "\(result.stderr)")
            #expect(result.stderr.contains("a file"), "\(result.stderr)")
            #expect(!result.stderr.contains("Error Domain"))
        }
    }

    @Test func storesAreChosenByScheme() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let unknown = try RunnerProcess.run([pipeline, "--run-id", "r1", "--artifact-store", "gs://bucket/prefix"] + small, in: directory)
        #expect(unknown.status == 2, "\(unknown.stderr)")
        #expect(lines(unknown.stderr).count == 1, "\(unknown.stderr)")
        #expect(unknown.stderr.contains("unknown scheme 'gs://'") && unknown.stderr.contains("file://") && unknown.stderr.contains("s3://"),
                "\(unknown.stderr)")
        #expect(files(below: directory).isEmpty, "\(files(below: directory))")

        // file:///abs/path is the directory it names (percent-decoded), not a relative 'file:' directory.
        let uri = StoredObject.fileURI(directory.path + "/my store")
        let stored = try RunnerProcess.run([pipeline, "--run-id", "r1", "--artifact-store", uri] + small, in: directory)
        #expect(stored.status == 0, "\(stored.stderr)")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("my store/r1/run.json").path))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("my store/r1/generate/manifest.json").path))
    }

    @Test func aDeletedOrChangedSinkOutputIsNotReused() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try RunnerProcess.run([pipeline, "--run-id", "r1", "--seed", "3", "--artifact-store", "store"] + small, in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        let image = directory.appendingPathComponent("out/poisson-grid-images/r1/poisson_grid_64x64.jpg")
        let bytes = try Data(contentsOf: image)
        try FileManager.default.removeItem(at: image)

        let resumed = try RunnerProcess.run([pipeline, "--resume", "r1", "--artifact-store", "store", "--report", "r.json"] + small, in: directory)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("store: stored output cannot be reused ('\(image.path)' no longer exists); running the stage again"),
                "\(resumed.stderr)")
        #expect(try Data(contentsOf: image) == bytes)
        let report = try stageReport(directory.appendingPathComponent("r.json"))
        #expect(report["encode"]?["reused"] as? Bool == true)
        #expect(report["store"]?["reused"] == nil)

        // Changed bytes are not taken for the stored ones either: the sink runs again
        // (and, without overwrite, refuses to replace the file).
        try Data("other bytes".utf8).write(to: image)
        let changed = try RunnerProcess.run([pipeline, "--resume", "r1", "--artifact-store", "store"] + small, in: directory)
        #expect(changed.status == 1, "\(changed.stderr)")
        #expect(changed.stderr.contains("is 11 bytes, \(bytes.count) were written"), "\(changed.stderr)")

        // Intact: reused without running.
        try bytes.write(to: image)
        let intact = try RunnerProcess.run([pipeline, "--resume", "r1", "--artifact-store", "store", "--report", "i.json"] + small, in: directory)
        #expect(intact.status == 0, "\(intact.stderr)")
        #expect(try stageReport(directory.appendingPathComponent("i.json"))["store"]?["reused"] as? Bool == true)
    }

    @Test func stagesShowsTheVersion() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = try RunnerProcess.run(["stages", "jpeg"], in: directory)
        #expect(text.status == 0)
        // 2 since restart_rows defaults to 2 (issue 12).
        #expect(JPEGStage.spec.version == 2)
        #expect(text.stdout.contains("  version: 2"), "\(text.stdout)")
        let json = try RunnerProcess.run(["stages", "jpeg", "--format", "json"], in: directory)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["version"] as? Int == 2)
    }
}

/// Against the local S3 server: a reused `s3` sink is checked with a HEAD request;
/// an S3 store lists its runs and refuses a damaged record.
@Suite(.serialized) struct TrustedS3SinkTests {
    let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    func environment(_ s3: LocalS3, home: String) -> [String: String] {
        ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_SESSION_TOKEN": "",
         "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
         "HOME": home, "AWS_PROFILE": "", "OUTPUT_S3_BUCKET": "pipeline-e2e"]
    }

    func client(_ s3: LocalS3, _ environment: [String: String]) -> S3Client {
        S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                 credentials: AWSCredentialChain(environment: AWSEnvironment(variables: environment)))
    }

    @Test func aDeletedObjectIsUploadedAgainOnResume() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = ["AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_SESSION_TOKEN": "",
                           "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                           "HOME": directory.path, "AWS_PROFILE": "", "OUTPUT_S3_BUCKET": "pipeline-e2e"]
        let runID = "verify-\(UUID().uuidString.prefix(8))"
        let arguments = [pipeline, "--profile", "s3", "--artifact-store", "store", "--set", "params.size=64"]
        let first = try RunnerProcess.run(arguments + ["--run-id", runID, "--seed", "6"], in: directory, environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        let key = "poisson-grid-images/\(runID)/poisson_grid_64x64.jpg"
        let client = S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                              credentials: AWSCredentialChain(environment: AWSEnvironment(variables: environment)))
        let uploaded = try client.send("GetObject", method: "GET", bucket: "pipeline-e2e", key: key, session: CurlSession()).body

        // Intact: reused after a HEAD.
        let again = try RunnerProcess.run(arguments + ["--resume", runID, "--report", "a.json"], in: directory, environment: environment)
        #expect(again.status == 0, "\(again.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("a.json"))) as? [String: Any]
        #expect((report?["stages"] as? [[String: Any]] ?? []).allSatisfy { $0["reused"] as? Bool == true })

        _ = try client.send("DeleteObject", method: "DELETE", bucket: "pipeline-e2e", key: key, session: CurlSession())
        let resumed = try RunnerProcess.run(arguments + ["--resume", runID, "--report", "r.json"], in: directory, environment: environment)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("store: stored output cannot be reused (s3://pipeline-e2e/\(key) no longer exists)"), "\(resumed.stderr)")
        let restored = try client.send("GetObject", method: "GET", bucket: "pipeline-e2e", key: key, session: CurlSession()).body
        #expect(restored == uploaded)
    }

    @Test func aReplacedObjectIsNotTakenForTheUploadedOne() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = environment(s3, home: directory.path)
        let runID = "replaced-\(UUID().uuidString.prefix(8))"
        let arguments = [pipeline, "--profile", "s3", "--artifact-store", "store", "--set", "params.size=64"]
        let first = try RunnerProcess.run(arguments + ["--run-id", runID, "--seed", "6"], in: directory, environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        let key = "poisson-grid-images/\(runID)/poisson_grid_64x64.jpg"
        _ = try client(s3, environment).send("PutObject", method: "PUT", bucket: "pipeline-e2e", key: key, body: .bytes(Array("other".utf8)),
                                             session: CurlSession())
        // The sink runs again; without overwrite it then refuses to replace the object.
        let resumed = try RunnerProcess.run(arguments + ["--resume", runID], in: directory, environment: environment)
        #expect(resumed.status == 1, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("store: stored output cannot be reused (s3://pipeline-e2e/\(key) is 5 bytes"), "\(resumed.stderr)")
        #expect(resumed.stderr.contains("already exists"), "\(resumed.stderr)")
    }

    @Test func anS3StoreNamesItsRunsAndRefusesADamagedRecord() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = environment(s3, home: directory.path)
        let prefix = "stores/trusted \(UUID().uuidString.prefix(8))"
        let arguments = [pipeline, "--artifact-store", "s3://pipeline-e2e/\(prefix)", "--set", "params.size=64"]
        for run in ["a1", "b2"] {
            let result = try RunnerProcess.run(arguments + ["--run-id", run], in: directory, environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
        }
        let unknown = try RunnerProcess.run(arguments + ["--resume", "c3"], in: directory, environment: environment)
        #expect(unknown.status == 2, "\(unknown.stderr)")
        #expect(unknown.stderr == "error: no run 'c3' in the artifact store 's3://pipeline-e2e/\(prefix)'; runs there: a1, b2; nothing was run\n")

        let record = "\(prefix)/a1/run.json"
        _ = try client(s3, environment).send("PutObject", method: "PUT", bucket: "pipeline-e2e", key: record, body: .bytes(Array("{}".utf8)),
                                             session: CurlSession())
        let damaged = try RunnerProcess.run(arguments + ["--resume", "a1"], in: directory, environment: environment)
        #expect(damaged.status == 2, "\(damaged.stderr)")
        #expect(damaged.stderr.contains("'s3://pipeline-e2e/\(record)' is damaged: it has no 'seed'"), "\(damaged.stderr)")
        let after = try client(s3, environment).send("GetObject", method: "GET", bucket: "pipeline-e2e", key: record, session: CurlSession()).body
        #expect(after == Array("{}".utf8))
    }
}
