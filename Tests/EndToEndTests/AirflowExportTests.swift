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

    /// Runs DAG `dagID` of `directory`/dags once on Airflow, with `environment`
    /// (shell assignments, e.g. `NAME=value`) in the worker's environment.
    static func runDAG(_ dagID: String, in directory: URL, conf: String, environment: String = "") throws -> AirflowRun {
        guard FileManager.default.isExecutableFile(atPath: Self.airflowPython) else {
            throw PythonFixture.StartError(description: "\(Self.airflowPython) not found: run scripts/test, which installs Airflow")
        }
        let home = directory.appendingPathComponent("airflow-home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let script = RunnerProcess.packageRoot.appendingPathComponent("Tests/Fixtures/airflow_run.py").path
        let output = try RunnerProcess.shell("cd '\(directory.path)' && \(environment) '\(Self.airflowPython)' '\(script)' '\(home.path)' '\(directory.path)/dags' '\(dagID)' '\(conf)' 2>/dev/null | tail -1")
        return try JSONDecoder().decode(AirflowRun.self, from: Data(output.utf8))
    }

    @Test func exportedReferencePipelineRunsOnAirflowAndMatchesAPlainRun() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let export = try RunnerProcess.run(["export", "airflow", pipeline, "-o", "dags/poisson.py", "--artifact-store", "store",
                                            "--runner", RunnerProcess.executable.path, "--set", "params.size=128"], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let run = try Self.runDAG("poisson-grid", in: directory, conf: "{\"seed\": 7}")
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
        let run = try Self.runDAG("failing", in: directory, conf: "{}")
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
        #expect(a.contains("skip_on_exit_code=None,") && a.contains("append_env=True,") && a.contains("cwd=literal(WORKDIR),"))
        #expect(a.contains("task_generate >> task_normalize"))
        #expect(a.contains("RUNNER = \"/opt/runner\"") && a.contains("ARTIFACT_STORE = \"/data/store\""))
    }

    /// Loads a DAG file with Airflow's own Python and returns what `script` prints
    /// (the DAG is `dag`).
    func inspectDAG(_ file: URL, _ script: String) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: Self.airflowPython) else {
            throw PythonFixture.StartError(description: "\(Self.airflowPython) not found: run scripts/test, which installs Airflow")
        }
        let program = "import json, runpy, sys; dag = runpy.run_path(sys.argv[1])['dag']; " + script
        let home = file.deletingLastPathComponent().appendingPathComponent("inspect-home").path
        return try RunnerProcess.shell("AIRFLOW_HOME='\(home)' '\(Self.airflowPython)' -c \"\(program)\" '\(file.path)' 2>/dev/null | tail -1")
    }

    @Test func jinjaLookingPathsReachTheTasksAsTheyAre() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Braces, a Jinja statement and a comment opener in the working directory, the
        // store and the pipeline's own path: Jinja would render or reject each.
        let workdir = directory.appendingPathComponent("work {{ ds }} {% if x %}{#")
        let pipelineDirectory = directory.appendingPathComponent("pipe {{ run_id }}")
        for folder in [workdir, pipelineDirectory] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        try """
            name: braces
            stages:
              generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
              encode: {type: png, input: generate}
              store: {type: filesystem, input: encode, with: {path: "out/{run_id}/braces.png"}}
            """.write(to: pipelineDirectory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let export = try RunnerProcess.run(["export", "airflow", pipelineDirectory.appendingPathComponent("p.yaml").path,
                                            "-o", "dags/braces.py", "--artifact-store", "store {{ ds }}",
                                            "--workdir", workdir.path, "--runner", RunnerProcess.executable.path], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let dag = try String(contentsOf: directory.appendingPathComponent("dags/braces.py"), encoding: .utf8)
        #expect(dag.contains("cwd=literal(WORKDIR),"))
        let run = try Self.runDAG("braces", in: directory, conf: "{}")
        #expect(run.state == "success", "\(run)")
        #expect(run.tasks == ["generate": "success", "encode": "success", "store": "success"])
        let runID = try #require(run.run_id)
        #expect(FileManager.default.fileExists(atPath: workdir.appendingPathComponent("out/\(runID)/braces.png").path))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("store {{ ds }}/\(runID)/store/manifest.json").path))
    }

    @Test func anS3StoreStaysAURIAndTheDAGCarriesItsSettings() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        // Defaults first: only the store is given.
        let plain = try RunnerProcess.run(["export", "airflow", pipeline, "-o", "dags/q.py", "--artifact-store", "s3://bucket/prefix"], in: directory)
        #expect(plain.status == 0, "\(plain.stderr)")
        let plainText = try String(contentsOf: directory.appendingPathComponent("dags/q.py"), encoding: .utf8)
        #expect(plainText.contains("ARTIFACT_STORE = \"s3://bucket/prefix\""),
                "\(plainText.split(separator: "\n").first { $0.hasPrefix("ARTIFACT_STORE") } ?? "")")
        let defaults = try inspectDAG(directory.appendingPathComponent("dags/q.py"),
                                      "print(json.dumps({'schedule': str(dag.schedule), 'owner': dag.default_args.get('owner')}))")
        #expect(defaults == "{\"schedule\": \"None\", \"owner\": \"airflow\"}")

        let export = try RunnerProcess.run(["export", "airflow", pipeline, "-o", "dags/p.py", "--artifact-store", "s3://bucket/runs/{{ x }}",
                                            "--pipeline-path", "/srv/pipelines/poisson.yaml", "--schedule", "@daily",
                                            "--owner", "imaging", "--runner", "/opt/runner"], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let text = try String(contentsOf: directory.appendingPathComponent("dags/p.py"), encoding: .utf8)
        #expect(text.contains("ARTIFACT_STORE = \"s3://bucket/runs/{{ x }}\""), "\(text)")
        #expect(text.contains("PIPELINE = \"/srv/pipelines/poisson.yaml\""))
        let printed = try inspectDAG(directory.appendingPathComponent("dags/p.py"), """
            task = dag.get_task('generate'); \
            print(json.dumps({'owner': dag.default_args.get('owner'), 'retries': dag.default_args.get('retries'), \
            'schedule': str(dag.schedule), 'doc': dag.doc_md, 'store': dag.params['artifact_store'], \
            'cwd': type(task.cwd).__name__, 'command': type(task.bash_command).__name__}))
            """)
        struct Inspected: Decodable { var owner: String?; var retries: Int?; var schedule: String; var doc: String?; var store: String; var cwd: String; var command: String }
        let dag = try JSONDecoder().decode(Inspected.self, from: Data(printed.utf8))
        #expect(dag.owner == "imaging" && dag.retries == 0 && dag.schedule == "@daily")
        #expect(dag.store == "s3://bucket/runs/{{ x }}")
        #expect(dag.doc?.contains("poisson-grid") == true && dag.doc?.contains("/srv/pipelines/poisson.yaml") == true, "\(dag)")
        #expect(dag.cwd == "LiteralValue" && dag.command == "LiteralValue", "\(dag)")
        // Airflow retries the task; the runner inside runs the stage once per try.
        #expect(text.components(separatedBy: "--only ").count - 1 == text.components(separatedBy: "--no-stage-retries").count - 1, "\(text)")
        #expect(text.contains("--no-stage-retries"))
    }

    /// A store every task of the DAG would refuse is refused by the export.
    @Test(arguments: [("foo://x", "unknown scheme 'foo://'"), ("s3://b/p", "bucket 'b'"), ("", "is empty"), ("file:/data", "without its '//'")])
    func storesTheTasksWouldRefuseAreRefused(store: String, expected: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let export = try RunnerProcess.run(["export", "airflow", pipeline, "-o", "p.py", "--artifact-store", store], in: directory)
        #expect(export.status == 2, "\(export.stderr)")
        #expect(export.stderr.hasPrefix("error: --artifact-store: ") && export.stderr.contains(expected), "\(export.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("p.py").path))
        // The run refuses it the same way.
        let run = try RunnerProcess.run([pipeline, "--set", "params.size=8", "--artifact-store", store], in: directory)
        #expect(run.status == 2 && run.stderr.contains(expected), "\(run.stderr)")
        #expect(files(below: directory).isEmpty, "\(files(below: directory))")
    }

    @Test func theDefaultRunnerIsTheRealExecutableWhenFoundThroughPATH() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // `runner` found through PATH, by way of a symbolic link.
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: bin.appendingPathComponent("runner").path,
                                                   withDestinationPath: RunnerProcess.executable.path)
        let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        _ = try RunnerProcess.shell("cd '\(directory.path)' && PATH='\(bin.path)':\"$PATH\" runner export airflow '\(pipeline)' -o p.py --artifact-store store")
        let text = try String(contentsOf: directory.appendingPathComponent("p.py"), encoding: .utf8)
        let real = RunnerProcess.executable.resolvingSymlinksInPath().path
        #expect(text.contains("RUNNER = \"\(real)\""), "\(text.split(separator: "\n").first { $0.hasPrefix("RUNNER") } ?? "")")
    }
}
