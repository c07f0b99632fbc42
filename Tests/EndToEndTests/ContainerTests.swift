import Foundation
import Framework
import Testing
import TestFixtures

/// The runner's container image (built from the Containerfile by scripts/test with
/// `scripts/image --local-bases`) run with podman, directly and as the tasks of a
/// `--operator docker` DAG on real Airflow with the Docker provider, pointed at
/// podman's Docker API.
@Suite(.serialized) struct ContainerTests {
    static var image: String {
        ProcessInfo.processInfo.environment["PIPELINE_TEST_IMAGE"] ?? "localhost/pipeline-runner:test"
    }

    /// podman's configuration for these machines (scripts/container-env), when the
    /// tests run without scripts/test having set it.
    static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if environment["CONTAINERS_CONF"] == nil {
            environment["CONTAINERS_CONF"] = RunnerProcess.packageRoot.appendingPathComponent(".build/containers/containers.conf").path
        }
        return environment
    }

    struct Outcome {
        var status: Int32
        var output: String
    }

    /// Starts podman with `arguments`, its standard output and error going to `output`.
    static func startPodman(_ arguments: [String], output: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["podman"] + arguments
        process.environment = environment
        guard FileManager.default.createFile(atPath: output, contents: nil), let file = FileHandle(forWritingAtPath: output) else {
            throw PythonFixture.StartError(description: "cannot create \(output)")
        }
        process.standardOutput = file
        process.standardError = file
        try process.run()
        try file.close()
        return process
    }

    /// Runs podman with `arguments`; standard output and error together. (Not for
    /// `podman run --detach`: Foundation's Process waits for the container's monitor,
    /// which inherits the descriptor it watches, so that returns only when the
    /// container ends.)
    static func podman(_ arguments: [String]) throws -> Outcome {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("podman-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = try startPodman(arguments, output: path)
        process.waitUntilExit()
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return Outcome(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    static func requireImage() throws {
        let exists = try podman(["image", "exists", image])
        guard exists.status == 0 else {
            throw PythonFixture.StartError(description: "no image \(image) (podman: \(exists.output)): run scripts/test, which builds it with scripts/image --local-bases")
        }
    }

    /// A directory the image's user (uid 10001) can write, as a volume for /work.
    func volume() throws -> URL {
        let directory = try temporaryDirectory()
        #expect(chown(directory.path, 10001, 10001) == 0)
        return directory
    }

    static let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    /// The reference JPEG a plain run (the runner built here, outside any container)
    /// writes with `seed`.
    func plainRun(seed: Int) throws -> Data {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plain = try RunnerProcess.run([Self.pipeline, "--seed", "\(seed)", "--run-id", "plain"], in: directory)
        #expect(plain.status == 0, "\(plain.stderr)")
        return try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/plain/poisson_grid_2048x2048.jpg"))
    }

    @Test func theImageRunsTheReferencePipelineAndWritesAPlainRunsBytes() throws {
        try Self.requireImage()
        let work = try volume()
        defer { try? FileManager.default.removeItem(at: work) }
        // The baked-in pipeline, options on the command line.
        let run = try Self.podman(["run", "--rm", "--network=none", "-v", "\(work.path):/work", Self.image,
                                   "/pipelines/poisson.yaml", "--seed", "7", "--run-id", "inside"])
        #expect(run.status == 0, "\(run.output)")
        let inside = work.appendingPathComponent("out/poisson-grid-images/inside/poisson_grid_2048x2048.jpg")
        let plain = try plainRun(seed: 7)
        #expect(try Data(contentsOf: inside) == plain)
        // Written by the image's user, not root.
        let owner = try FileManager.default.attributesOfItem(atPath: inside.path)[.ownerAccountID] as? Int
        #expect(owner == 10001)
        // The same run configured by the environment alone, with an artifact store.
        let configured = try Self.podman(["run", "--rm", "--network=none", "-v", "\(work.path):/work",
                                          "-e", "RUNNER_SEED=7", "-e", "RUNNER_RUN_ID=configured", "-e", "RUNNER_ARTIFACT_STORE=store",
                                          Self.image, "/pipelines/poisson.yaml"])
        #expect(configured.status == 0, "\(configured.output)")
        #expect(try Data(contentsOf: work.appendingPathComponent("out/poisson-grid-images/configured/poisson_grid_2048x2048.jpg")) == plain)
        #expect(FileManager.default.fileExists(atPath: work.appendingPathComponent("store/configured/encode/manifest.json").path))
    }

    @Test func theImageHoldsTheRunnerTheRuntimeLibrariesAndAUserOfItsOwn() throws {
        try Self.requireImage()
        let inspect = try Self.podman(["image", "inspect", "--format", "{{.Config.User}}|{{.Config.WorkingDir}}|{{json .Config.Entrypoint}}", Self.image])
        #expect(inspect.status == 0 && inspect.output.trimmingCharacters(in: .whitespacesAndNewlines) == "10001:10001|/work|[\"/usr/local/bin/runner\"]",
                "\(inspect.output)")
        // Every library the runner links is in the image (the Swift runtime is in the
        // runner), and libcurl, which it opens on first use, is there too.
        let libraries = try Self.podman(["run", "--rm", "--network=none", "--entrypoint", "/bin/sh", Self.image, "-c",
                                         "ldd /usr/local/bin/runner; ls /usr/lib/x86_64-linux-gnu/libcurl.so.4; id -u"])
        #expect(libraries.status == 0, "\(libraries.output)")
        #expect(!libraries.output.contains("not found") && !libraries.output.contains("libswift"), "\(libraries.output)")
        for library in ["libjpeg.so.62", "libpng16.so.16", "libyaml-0.so.2", "libcurl.so.4"] {
            #expect(libraries.output.contains(library), "\(library) in \(libraries.output)")
        }
        #expect(libraries.output.hasSuffix("10001\n"), "\(libraries.output)")
        let version = try Self.podman(["run", "--rm", "--network=none", Self.image, "--version"])
        #expect(version.status == 0 && version.output.hasPrefix("runner \(RunnerVersion.current)"), "\(version.output)")
    }

    /// `podman stop` (as Airflow does when it kills a docker task) sends SIGTERM to
    /// the runner, the container's first process: it cancels the run at once and
    /// leaves nothing half-written.
    @Test func stoppingTheContainerCancelsTheRunAndLeavesNothing() throws {
        try Self.requireImage()
        let work = try volume()
        defer { try? FileManager.default.removeItem(at: work) }
        let name = "pipeline-stop-test-\(getpid())"
        let output = work.appendingPathComponent("podman.out").path
        defer { _ = try? Self.podman(["rm", "--force", name]) }
        let run = try Self.startPodman(["run", "--name", name, "--network=none", "-v", "\(work.path):/work", Self.image,
                                        "/pipelines/poisson.yaml", "--set", "params.size=60000", "--run-id", "stopped"], output: output)
        // Until the sink is writing (its temporary file is there).
        let clock = ContinuousClock(), deadline = clock.now + .seconds(60)
        while clock.now < deadline, !files(below: work).contains(where: { $0.hasPrefix("out/") }) { Thread.sleep(forTimeInterval: 0.05) }
        #expect(clock.now < deadline, "the sink never started writing")
        let begin = clock.now
        let stop = try Self.podman(["stop", "--time", "20", name])
        #expect(stop.status == 0, "\(stop.output)")
        run.waitUntilExit()
        #expect(clock.now - begin < .seconds(10), "SIGTERM was not acted on: the run ended \(clock.now - begin) after it")
        #expect(run.terminationStatus == 143)
        let logs = try String(contentsOfFile: output, encoding: .utf8)
        #expect(logs.contains("interrupted by SIGTERM; run stopped cancelled"), "\(logs)")
        try FileManager.default.removeItem(atPath: output)
        // No file, and no directory the sink made for it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: work.path).isEmpty, "\(files(below: work))")
    }

    /// The podman service answering the Docker API on a socket in `directory`.
    func dockerService(in directory: URL) throws -> (PythonFixture, String) {
        // The service inherits this process's environment.
        if let configuration = Self.environment["CONTAINERS_CONF"] { setenv("CONTAINERS_CONF", configuration, 0) }
        let service = try PythonFixture(script: "podman_service.py", arguments: [directory.appendingPathComponent("podman.sock").path])
        let line = try #require(try JSONSerialization.jsonObject(with: Data(service.firstLine.utf8)) as? [String: String])
        let socket = try #require(line["socket"], "\(service.firstLine)")
        return (service, socket)
    }

    /// A new directory with the podman service on a socket in it, and `work` in it
    /// for /work, writable by the image's user.
    func dockerSetup() throws -> (directory: URL, service: PythonFixture, socket: String, work: URL) {
        try Self.requireImage()
        let directory = try temporaryDirectory()
        let (service, socket) = try dockerService(in: directory)
        let work = directory.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        #expect(chown(work.path, 10001, 10001) == 0)
        return (directory, service, socket, work)
    }

    @Test func theDockerExportRunsEveryStageInTheImageOnAirflowAndMatchesAPlainRun() throws {
        let (directory, service, socket, work) = try dockerSetup()
        defer { try? FileManager.default.removeItem(at: directory) }
        defer { withExtendedLifetime(service) {} }
        let export = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "dags/poisson.py", "--operator", "docker",
                                            "--image", Self.image, "--docker-url", socket, "--network", "none",
                                            "--mount", "work:/work", "--artifact-store", "store"], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let containers = { () throws -> Set<String> in
            let list = try Self.podman(["ps", "--all", "--format", "{{.ID}}"])
            #expect(list.status == 0, "\(list.output)")
            return Set(list.output.split(separator: "\n").map(String.init))
        }
        let before = try containers()
        let run = try AirflowExportTests.runDAG("poisson-grid", in: directory, conf: "{\"seed\": 7}")
        #expect(run.exit == 0 && run.state == "success", "\(run)")
        #expect(run.tasks == ["generate": "success", "normalize": "success", "encode": "success", "store": "success"])
        let runID = try #require(run.run_id)
        // Each task ran in the image: the store holds what each stored, as its user.
        for stage in ["generate", "normalize", "encode", "store"] {
            let manifest = work.appendingPathComponent("store/\(runID)/\(stage)/manifest.json").path
            #expect(FileManager.default.fileExists(atPath: manifest), "\(stage)")
            #expect(try FileManager.default.attributesOfItem(atPath: manifest)[.ownerAccountID] as? Int == 10001)
        }
        let viaAirflow = try Data(contentsOf: work.appendingPathComponent("out/poisson-grid-images/\(runID)/poisson_grid_2048x2048.jpg"))
        #expect(viaAirflow == (try plainRun(seed: 7)))
        // No container is left behind.
        #expect(try containers().subtracting(before).isEmpty)
    }

    /// A pipeline mounted into the containers (not baked in), reading a variable the
    /// worker passes on; a stage that fails fails its task and those downstream.
    @Test func aMountedPipelineGetsTheWorkersVariablesAndAFailingStageFailsItsTask() throws {
        let (directory, service, socket, work) = try dockerSetup()
        defer { try? FileManager.default.removeItem(at: directory) }
        defer { withExtendedLifetime(service) {} }
        let pipelines = directory.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        try """
            name: labelled
            stages:
              generate: {type: poisson, with: {width: 32, height: 32, lambda: 3}}
              encode: {type: png, input: generate}
              store: {type: filesystem, input: encode, with: {path: "out/${env.PIPELINE_LABEL}/{run_id}.png"}}
              broken: {type: exec, input: generate, with: {command: [sh, -c, "echo forced failure >&2; exit 3"], output: Grid<UInt8>}}
              after: {type: png, input: broken}
            """.write(to: pipelines.appendingPathComponent("labelled.yaml"), atomically: true, encoding: .utf8)
        let export = try RunnerProcess.run(["export", "airflow", "pipelines/labelled.yaml", "-o", "dags/labelled.py", "--operator", "docker",
                                            "--image", Self.image, "--docker-url", socket, "--network", "none",
                                            "--mount", "work:/work", "--mount", "pipelines:/mounted:ro",
                                            "--pipeline-path", "/mounted/labelled.yaml", "--artifact-store", "/work/store"],
                                           in: directory, environment: ["PIPELINE_LABEL": "at-export"])
        #expect(export.status == 0, "\(export.stderr)")
        let dag = try String(contentsOf: directory.appendingPathComponent("dags/labelled.py"), encoding: .utf8)
        #expect(dag.contains("\"PIPELINE_LABEL\"]") && !dag.contains("at-export"), "\(dag)")
        let run = try AirflowExportTests.runDAG("labelled", in: directory, conf: "{}", environment: "PIPELINE_LABEL=from-the-worker")
        #expect(run.state == "failed", "\(run)")
        #expect(run.tasks == ["generate": "success", "encode": "success", "store": "success", "broken": "failed", "after": "upstream_failed"])
        let runID = try #require(run.run_id)
        let png = work.appendingPathComponent("out/from-the-worker/\(runID).png")
        #expect(FileManager.default.fileExists(atPath: png.path), "\(files(below: work))")
    }

    /// A sweep exported for docker: the items' task group runs each item's stages in
    /// containers, each instance with its item as RUNNER_ITEM; every item's image is a
    /// plain run's with its values.
    @Test func aSweepRunsAsAMappedTaskGroupOfContainers() throws {
        let (directory, service, socket, work) = try dockerSetup()
        defer { try? FileManager.default.removeItem(at: directory) }
        defer { withExtendedLifetime(service) {} }
        let pipelines = directory.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        let text = """
            name: swept
            params: {lambda: 3}
            matrix:
              lambda: [1, 4]
            stages:
              generate: {type: poisson, with: {width: 32, height: 32, lambda: "${lambda}"}}
              encode: {type: png, input: generate}
              store: {type: filesystem, input: encode, with: {path: "out/{run_id}/l${lambda}.png"}}
            """
        try text.write(to: pipelines.appendingPathComponent("swept.yaml"), atomically: true, encoding: .utf8)
        let export = try RunnerProcess.run(["export", "airflow", "pipelines/swept.yaml", "-o", "dags/swept.py", "--operator", "docker",
                                            "--image", Self.image, "--docker-url", socket, "--network", "none",
                                            "--mount", "work:/work", "--mount", "pipelines:/mounted:ro",
                                            "--pipeline-path", "/mounted/swept.yaml", "--artifact-store", "/work/store"], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let run = try AirflowExportTests.runDAG("swept", in: directory, conf: "{\"seed\": 5}")
        #expect(run.exit == 0 && run.state == "success", "\(run)")
        var expected: [String: String] = [:]
        for stage in ["generate", "encode", "store"] {
            for index in 0..<2 { expected["items.\(stage)[\(index)]"] = "success" }
        }
        #expect(run.tasks == expected)
        let runID = try #require(run.run_id)
        let plain = try SweepTests.write(text.replacingOccurrences(of: "matrix:\n  lambda: [1, 4]\n", with: ""), in: directory, as: "plain.yaml")
        for (index, lambda) in ["1", "4"].enumerated() {
            let alone = try RunnerProcess.run([plain, "--run-id", "p\(index)", "--seed", "5", "--set", "params.lambda=\(lambda)"], in: directory)
            #expect(alone.status == 0, "\(alone.stderr)")
            let inContainer = try Data(contentsOf: work.appendingPathComponent("out/\(runID).\(index)/l\(lambda).png"))
            #expect(inContainer == (try Data(contentsOf: directory.appendingPathComponent("out/p\(index)/l\(lambda).png"))), "item \(index)")
        }
    }
}
