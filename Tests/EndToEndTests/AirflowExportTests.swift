import Foundation
import Framework
import Stages
import Testing
import TestFixtures

/// `runner export airflow` and the DAG it writes, run on real Apache Airflow 3.3.2
/// (installed by scripts/test from Tests/Fixtures/airflow-lock.txt).
@Suite(.serialized) struct AirflowExportTests {
    static var airflowPython: String {
        ProcessInfo.processInfo.environment["PIPELINE_TEST_AIRFLOW_PYTHON"]
            ?? RunnerProcess.packageRoot.appendingPathComponent(".build/airflow-venv/bin/python").path
    }

    struct AirflowRun: Decodable {
        var exit: Int
        var run_id: String?
        var state: String?
        var tasks: [String: String]
    }

    func runDAG(_ dagID: String, in directory: URL, conf: String) throws -> AirflowRun {
        guard FileManager.default.isExecutableFile(atPath: Self.airflowPython) else {
            throw PythonFixture.StartError(description: "\(Self.airflowPython) not found: run scripts/test, which installs Airflow")
        }
        let home = directory.appendingPathComponent("airflow-home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let script = RunnerProcess.packageRoot.appendingPathComponent("Tests/Fixtures/airflow_run.py").path
        let output = try RunnerProcess.shell("cd '\(directory.path)' && '\(Self.airflowPython)' '\(script)' '\(home.path)' '\(directory.path)/dags' '\(dagID)' '\(conf)' 2>/dev/null | tail -1")
        return try JSONDecoder().decode(AirflowRun.self, from: Data(output.utf8))
    }

    @Test func exportedReferencePipelineRunsOnAirflowAndMatchesAPlainRun() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let export = try RunnerProcess.run(["export", "airflow", pipeline, "-o", "dags/poisson.py", "--artifact-store", "store",
                                            "--runner", RunnerProcess.executable.path, "--set", "params.size=128"], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let run = try runDAG("poisson-grid", in: directory, conf: "{\"seed\": 7}")
        #expect(run.exit == 0 && run.state == "success", "\(run)")
        #expect(run.tasks == ["generate": "success", "normalize": "success", "encode": "success", "store": "success"])
        let runID = try #require(run.run_id)
        #expect(runID.contains(":") && runID.contains("+"))  // Airflow's ids, taken as they are
        for stage in ["generate", "normalize", "encode", "store"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("store/\(runID)/\(stage)/manifest.json").path))
        }
        let plain = try RunnerProcess.run([pipeline, "--seed", "7", "--run-id", "plain", "--set", "params.size=128"], in: directory)
        #expect(plain.status == 0)
        let viaAirflow = try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/\(runID)/poisson_grid_128x128.jpg"))
        let direct = try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/plain/poisson_grid_128x128.jpg"))
        #expect(viaAirflow == direct)
    }

    @Test func aFailingStageFailsTheRunAndItsDownstreamTasks() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            name: failing
            stages:
              generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
              broken: {type: exec, input: generate, with: {command: [sh, -c, "echo forced failure >&2; exit 3"], output: Grid<UInt8>}}
              encode: {type: png, input: broken}
              store: {type: filesystem, input: encode, with: {path: "out/{run_id}/failing.png"}}
            """.write(to: directory.appendingPathComponent("failing.yaml"), atomically: true, encoding: .utf8)
        let export = try RunnerProcess.run(["export", "airflow", "failing.yaml", "-o", "dags/failing.py", "--artifact-store", "store",
                                            "--runner", RunnerProcess.executable.path], in: directory)
        #expect(export.status == 0)
        let run = try runDAG("failing", in: directory, conf: "{}")
        #expect(run.state == "failed")
        #expect(run.tasks == ["generate": "success", "broken": "failed", "encode": "upstream_failed", "store": "upstream_failed"])
    }

    @Test func exportIsDeterministicAndMapsRetriesAndTimeouts() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            name: policy
            stages:
              generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}, retries: {count: 2, delay: 5s}, timeout: 90s}
              normalize: {type: normalize, input: generate}
            """.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let arguments = ["export", "airflow", "p.yaml", "--artifact-store", "/data/store", "--runner", "/opt/runner", "--workdir", "/data"]
        #expect(try RunnerProcess.run(arguments + ["-o", "a.py"], in: directory).status == 0)
        #expect(try RunnerProcess.run(arguments + ["-o", "b.py"], in: directory).status == 0)
        let a = try String(contentsOf: directory.appendingPathComponent("a.py"), encoding: .utf8)
        #expect(a == (try String(contentsOf: directory.appendingPathComponent("b.py"), encoding: .utf8)))
        #expect(a.contains("retries=2,") && a.contains("retry_delay=datetime.timedelta(milliseconds=5000),"))
        #expect(a.contains("execution_timeout=datetime.timedelta(milliseconds=90000),"))
        #expect(a.contains("skip_on_exit_code=None,") && a.contains("append_env=True,") && a.contains("cwd=WORKDIR,"))
        #expect(a.contains("task_generate >> task_normalize"))
        #expect(a.contains("RUNNER = \"/opt/runner\"") && a.contains("ARTIFACT_STORE = \"/data/store\""))
    }
}
