import Foundation
import Framework
import Stages
import Testing
import TestFixtures

/// Sweeps: a pipeline with a `matrix` run by the runner as many items in one process.
@Suite struct SweepTests {
    /// The reference chain at 48², each item writing to a file named by its values.
    static func pipeline(matrix: String?, path: String = "out/{run_id}/l${lambda}.png") -> String {
        """
        name: sweep
        params:
          size: 48
          lambda: 3.0
        \(matrix.map { "matrix:\n" + $0 } ?? "")
        stages:
          generate:
            type: poisson
            with: {width: "${size}", height: "${size}", lambda: "${lambda}"}
          normalize: {type: normalize, input: generate}
          encode: {type: png, input: normalize}
          store:
            type: filesystem
            input: encode
            with: {path: "\(path)"}
        """
    }

    static func write(_ text: String, in directory: URL, as name: String = "sweep.yaml") throws -> String {
        let file = directory.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    static func report(_ name: String, in directory: URL) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func items(_ report: [String: Any]) -> [[String: Any]] {
        (report["items"] as? [[String: Any]]) ?? []
    }

    /// Every item's image is the one a plain run with the item's values and seed makes.
    @Test func everyItemEqualsAPlainRunOfItsValues() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  lambda: [0.5, 3, 30]\n  seed: {range: [5, 7]}"), in: directory)
        let plainFile = try Self.write(Self.pipeline(matrix: nil), in: directory, as: "plain.yaml")
        let sweep = try RunnerProcess.run([file, "--run-id", "s", "--jobs", "2", "--report", "s.json"], in: directory)
        #expect(sweep.status == 0, "\(sweep.stderr)")
        let report = try Self.report("s.json", in: directory)
        #expect(report["kind"] as? String == "sweep" && report["succeeded"] as? Int == 6 && report["failed"] as? Int == 0)
        let items = Self.items(report)
        #expect(items.count == 6)
        for item in items {
            let values = try #require(item["values"] as? [String: String])
            let (lambda, seed, index) = (values["lambda"]!, values["seed"]!, item["index"] as! Int)
            #expect(item["run_id"] as? String == "s.\(index)" && item["seed"] as? Int == Int(seed)! && item["status"] as? String == "succeeded")
            let plain = try RunnerProcess.run([plainFile, "--run-id", "p\(index)", "--seed", seed, "--set", "params.lambda=\(lambda)"], in: directory)
            #expect(plain.status == 0, "\(plain.stderr)")
            let swept = try Data(contentsOf: directory.appendingPathComponent("out/s.\(index)/l\(lambda).png"))
            let alone = try Data(contentsOf: directory.appendingPathComponent("out/p\(index)/l\(lambda).png"))
            #expect(swept == alone, "item \(index) (lambda \(lambda), seed \(seed))")
            #expect(sweep.stdout.contains("out/s.\(index)/l\(lambda).png"))
        }
    }

    /// An item whose sink finds another file where it would write fails; the others
    /// finish, and the sweep exits 1. With --fail-fast nothing starts after it.
    @Test func aFailingItemLeavesTheOthersCompleteAndTheExitCodeIsOne() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  lambda: [1, 2, 3]", path: "out/l${lambda}.png"), in: directory)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("out"), withIntermediateDirectories: true)
        try Data("not this".utf8).write(to: directory.appendingPathComponent("out/l1.png"))
        let result = try RunnerProcess.run([file, "--run-id", "f", "--jobs", "1", "--report", "f.json", "--log-format", "json"], in: directory)
        #expect(result.status == 1, "\(result.stderr)")
        let items = Self.items(try Self.report("f.json", in: directory))
        #expect(items.map { $0["status"] as? String } == ["failed", "succeeded", "succeeded"])
        #expect(items[0]["error_code"] as? String == "output_exists" && items[0]["stage"] as? String == "store")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/l3.png").path))
        // One item_finished event per item, and the sweep's end.
        let events = result.stderr.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(events.filter { $0["event"] as? String == "item_finished" }.count == 3)
        #expect(events.contains { $0["event"] as? String == "sweep_finished" && $0["failed"] as? Int == 1 && $0["succeeded"] as? Int == 2 })

        try FileManager.default.removeItem(at: directory.appendingPathComponent("out/l2.png"))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("out/l3.png"))
        let fast = try RunnerProcess.run([file, "--run-id", "g", "--jobs", "1", "--fail-fast", "--report", "g.json"], in: directory)
        #expect(fast.status == 1)
        #expect(Self.items(try Self.report("g.json", in: directory)).map { $0["status"] as? String } == ["failed", "not_run", "not_run"])
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/l2.png").path))
    }

    /// --resume runs again only the items that failed: the others' stages are reused
    /// from the artifact store.
    @Test func resumeRerunsOnlyWhatFailed() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  lambda: [1, 2]", path: "out/l${lambda}.png"), in: directory)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("out"), withIntermediateDirectories: true)
        try Data("not this".utf8).write(to: directory.appendingPathComponent("out/l2.png"))
        let first = try RunnerProcess.run([file, "--run-id", "r", "--artifact-store", "store", "--report", "1.json"], in: directory)
        #expect(first.status == 1, "\(first.stderr)")
        try FileManager.default.removeItem(at: directory.appendingPathComponent("out/l2.png"))
        let again = try RunnerProcess.run([file, "--resume", "r", "--artifact-store", "store", "--report", "2.json"], in: directory)
        #expect(again.status == 0, "\(again.stderr)")
        let items = Self.items(try Self.report("2.json", in: directory))
        #expect(items.map { $0["status"] as? String } == ["succeeded", "succeeded"])
        #expect(items[0]["reused"] as? Int == 4, "item 0 ran again: \(items[0])")
        #expect(items[1]["reused"] as? Int == 3, "item 1 should reuse all but its sink: \(items[1])")
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/l2.png").path))
        // A sweep the store does not hold is refused.
        let unknown = try RunnerProcess.run([file, "--resume", "nope", "--artifact-store", "store"], in: directory)
        #expect(unknown.status == 2 && unknown.stderr.contains("no run 'nope'"), "\(unknown.stderr)")
    }

    /// `--seed` is refused when every item has a seed of its own (it would be ignored),
    /// as a `--set` of a swept param is; it applies to the items without one.
    @Test func aSeedEveryItemOverridesIsRefused() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  seed: [1, 2]"), in: directory)
        let refused = try RunnerProcess.run([file, "--seed", "5"], in: directory)
        #expect(refused.status == 2, "\(refused.stderr)")
        #expect(refused.stderr.contains("--seed 5: every item of the matrix of") && refused.stderr.contains("nothing was run"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out").path))
        let mixed = try Self.write(Self.pipeline(matrix: "  lambda: [1, 2]\n  include: [{lambda: 1, seed: 9}]"), in: directory, as: "mixed.yaml")
        let ran = try RunnerProcess.run([mixed, "--seed", "5", "--run-id", "m", "--report", "m.json"], in: directory)
        #expect(ran.status == 0, "\(ran.stderr)")
        #expect(Self.items(try Self.report("m.json", in: directory)).map { $0["seed"] as? Int } == [9, 5])
    }

    /// Items keep their run ids when the matrix grows past a power of ten (ids are not
    /// padded), so a resumed sweep of 12 items reuses the first 9 items' work.
    @Test func aResumedSweepThatGrewReusesItsItems() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let small = try Self.write(Self.pipeline(matrix: "  seed: {range: [0, 9]}", path: "out/{run_id}.png"), in: directory)
        let first = try RunnerProcess.run([small, "--run-id", "g", "--artifact-store", "store"], in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        let large = try Self.write(Self.pipeline(matrix: "  seed: {range: [0, 12]}", path: "out/{run_id}.png"), in: directory, as: "large.yaml")
        let again = try RunnerProcess.run([large, "--resume", "g", "--artifact-store", "store", "--report", "g.json"], in: directory)
        #expect(again.status == 0, "\(again.stderr)")
        let items = Self.items(try Self.report("g.json", in: directory))
        #expect(items.map { $0["run_id"] as? String } == (0..<12).map { "g.\($0)" })
        #expect(items.prefix(9).allSatisfy { $0["reused"] as? Int == 4 }, "\(items.prefix(9).map { $0["reused"] ?? "-" })")
        #expect(items.suffix(3).allSatisfy { $0["reused"] == nil })
    }

    /// `runner validate` checks every item; a problem only some items have names them.
    @Test func validateNamesTheItemsThatFail() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  lambda: [3, -1, 2]"), in: directory)
        let result = try RunnerProcess.run(["validate", file], in: directory)
        #expect(result.status == 2)
        #expect(result.stderr.contains("matrix item 1 (lambda=-1): "), "\(result.stderr)")
        #expect(result.stderr.contains("1 problem in"), "\(result.stderr)")
        // A mistake each item makes with its own value: the first 20, then a count.
        let many = try Self.write(Self.pipeline(matrix: "  lambda: {range: [-5000, 5]}"), in: directory, as: "many.yaml")
        let manyResult = try RunnerProcess.run(["validate", many], in: directory)
        #expect(manyResult.status == 2)
        #expect(manyResult.stderr.components(separatedBy: "error: ").count - 1 == 20, "\(manyResult.stderr.prefix(2000))")
        #expect(manyResult.stderr.contains("\n... and 4981 more problems like these, not shown: fix these and check again\n5001 problems in "),
                "\(manyResult.stderr.suffix(600))")
        #expect(manyResult.stderr.utf8.count < 20_000)
        let good = try Self.write(Self.pipeline(matrix: "  lambda: [3, 2]\n  size: {range: [8, 40, 8]}"), in: directory, as: "good.yaml")
        let ok = try RunnerProcess.run(["validate", good], in: directory)
        #expect(ok.status == 0 && ok.stdout.contains("ok, 4 stages: generate, normalize, encode, store; a matrix of 8 items"), "\(ok.stdout)\(ok.stderr)")
    }

    /// Each item's access is checked before anything runs, not only the first item's:
    /// an item whose sink cannot write (its directory is a file) stops the run before
    /// any item starts, and the error names the item; `validate --check-access` too.
    @Test func everyItemsAccessIsCheckedBeforeAnythingRuns() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  place: [a, b, c]", path: "${place}/{run_id}.png")
            .replacingOccurrences(of: "params:\n", with: "params:\n  place: a\n"), in: directory)
        try Data("a file, not a directory".utf8).write(to: directory.appendingPathComponent("b"))
        let run = try RunnerProcess.run([file, "--run-id", "x", "--log-format", "json"], in: directory)
        #expect(run.status == 1, "\(run.stderr)")
        #expect(run.stderr.contains("matrix item 1 (place=b): stage 'store' (filesystem) cannot run: '\(directory.path)/b' is not a directory"),
                "\(run.stderr)")
        #expect(run.stderr.contains("\"event\":\"access_check_failed\"") && run.stderr.contains("\"item\":1"), "\(run.stderr)")
        #expect(!run.stderr.contains("sweep_started"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("a").path), "item 0 ran")
        let validate = try RunnerProcess.run(["validate", "--check-access", file], in: directory)
        #expect(validate.status == 1, "\(validate.stdout)\(validate.stderr)")
        #expect(validate.stderr.contains("error: matrix item 1 (place=b): stage 'store' (filesystem) cannot run"), "\(validate.stderr)")
        #expect(validate.stderr.contains("is valid, but 1 of its items' stages cannot run"), "\(validate.stderr)")
        // The same with {place}, filled at run time: the check fills it too.
        let later = try Self.write(Self.pipeline(matrix: "  place: [a, b, c]", path: "{place}/{run_id}.png")
            .replacingOccurrences(of: "params:\n", with: "params:\n  place: a\n"), in: directory, as: "later.yaml")
        let runLater = try RunnerProcess.run([later, "--run-id", "l"], in: directory)
        #expect(runLater.status == 1 && runLater.stderr.contains("matrix item 1 (place=b): stage 'store' (filesystem) cannot run: '\(directory.path)/b' is not a directory"),
                "\(runLater.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("a").path), "item 0 ran")
        // Item 0's problem names it too, and a link to nothing is refused as well.
        try FileManager.default.removeItem(at: directory.appendingPathComponent("b"))
        try Data("a file".utf8).write(to: directory.appendingPathComponent("a"))
        try FileManager.default.createSymbolicLink(atPath: directory.appendingPathComponent("c").path, withDestinationPath: "nowhere")
        let zero = try RunnerProcess.run([file, "--run-id", "z"], in: directory)
        #expect(zero.status == 1 && zero.stderr.contains("error: matrix item 0 (place=a): stage 'store' (filesystem) cannot run: '\(directory.path)/a' is not a directory"),
                "\(zero.stderr)")
        #expect(zero.stderr.contains("matrix item 2 (place=c): stage 'store' (filesystem) cannot run: '\(directory.path)/c' is a symbolic link to 'nowhere', which does not exist"),
                "\(zero.stderr)")
        try FileManager.default.removeItem(at: directory.appendingPathComponent("a"))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("c"))
        // Without the file in the way, every item runs.
        let ok = try RunnerProcess.run([file, "--run-id", "y"], in: directory)
        #expect(ok.status == 0, "\(ok.stderr)")
        for place in ["a", "b", "c"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("\(place)").path), "\(place)")
        }
    }

    /// The graph is the items' graph; the page lists the items, failed first; what
    /// does not apply to a sweep (one stage alone) says so; container tasks are mapped.
    @Test func otherCommandsAndOptionsWithAMatrix() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  lambda: [1, 2]", path: "out/l${lambda}.png"), in: directory)
        let graph = try RunnerProcess.run(["graph", file], in: directory)
        #expect(graph.status == 0 && graph.stdout.contains("generate") && graph.stdout.contains("store"), "\(graph.stderr)")
        let only = try RunnerProcess.run([file, "--only", "encode", "--run-id", "x", "--artifact-store", "store"], in: directory)
        #expect(only.status == 2 && only.stderr.contains("--only runs one stage of one run"), "\(only.stderr)")
        // Container tasks are mapped too: the item reaches the runner as RUNNER_ITEM.
        for (operatorName, mapped, class_) in [("docker", "environment", "DockerOperator"), ("kubernetes", "env_vars", "KubernetesPodOperator")] {
            let export = try RunnerProcess.run(["export", "airflow", file, "-o", "dags/\(operatorName).py", "--artifact-store", "/work/store",
                                                "--operator", operatorName, "--image", "x", "--mount", operatorName == "docker" ? "/srv:/work" : "claim:/work",
                                                "--pipeline-path", "/work/sweep.yaml"], in: directory)
            #expect(export.status == 0, "\(export.stderr)")
            let dag = try String(contentsOf: directory.appendingPathComponent("dags/\(operatorName).py"), encoding: .utf8)
            #expect(dag.contains("ITEMS = [str(item) for item in range(2)]")
                    && dag.contains("store = \(class_)(") && dag.contains("\(mapped)=dict(ENV, RUNNER_ITEM=item),") && dag.contains("items.expand(item=ITEMS)"),
                    "\(dag)")
            // Each stage a task in the items' mapped task group.
            let tasks = try AirflowExportTests().inspectDAG(directory.appendingPathComponent("dags/\(operatorName).py"),
                "print(json.dumps(sorted([t.task_id, t.get_closest_mapped_task_group() is not None] for t in dag.tasks)))")
            #expect(tasks == "[[\"items.encode\", true], [\"items.generate\", true], [\"items.normalize\", true], [\"items.store\", true]]",
                    "\(operatorName): \(tasks)")
        }
        // RUNNER_ITEM is --item, as the containers get it.
        let viaVariable = try RunnerProcess.run([file, "--run-id", "e"], in: directory, environment: ["RUNNER_ITEM": "0"])
        #expect(viaVariable.status == 0 && viaVariable.stdout.contains("out/l1.png"), "\(viaVariable.stdout)\(viaVariable.stderr)")
        let badVariable = try RunnerProcess.run([file], in: directory, environment: ["RUNNER_ITEM": "x"])
        #expect(badVariable.status == 2 && badVariable.stderr.contains("RUNNER_ITEM (for --item) must be a whole number"), "\(badVariable.stderr)")
        try FileManager.default.removeItem(at: directory.appendingPathComponent("out/l1.png"))
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("out"), withIntermediateDirectories: true)
        try Data("not this".utf8).write(to: directory.appendingPathComponent("out/l2.png"))
        let run = try RunnerProcess.run([file, "--run-id", "h", "--report-html", "h.html", "--report", "h.json"], in: directory)
        #expect(run.status == 1)
        // The saved JSON becomes the same table with `runner report`; a sweep's report is
        // not compared.
        let rendered = try RunnerProcess.run(["report", "h.json", "-o", "again.html"], in: directory)
        #expect(rendered.status == 0, "\(rendered.stderr)")
        let again = try String(contentsOf: directory.appendingPathComponent("again.html"), encoding: .utf8)
        #expect(again.contains("<tr class=\"failed\"><td>1</td><td>2</td>") && again.contains("2: 1 succeeded, 1 failed, 0 cancelled, 0 not run"))
        let compared = try RunnerProcess.run(["report", "h.json", "-o", "c.html", "--compare", "h.json"], in: directory)
        #expect(compared.status == 2 && compared.stderr.contains("'h.json' and 'h.json' are sweeps' reports; --compare takes two runs' reports"), "\(compared.stderr)")
        let html = try String(contentsOf: directory.appendingPathComponent("h.html"), encoding: .utf8)
        let failed = try #require(html.range(of: "<tr class=\"failed\"><td>1</td><td>2</td>"), "\(html)")
        let succeeded = try #require(html.range(of: "<tr class=\"succeeded\"><td>0</td><td>1</td>"))
        #expect(failed.lowerBound < succeeded.lowerBound)
        #expect(html.contains("store: ") && html.contains("2: 1 succeeded, 1 failed, 0 cancelled, 0 not run"))
        // The failure is told once (the stage's error), then the item's line names the stage.
        #expect(run.stderr.contains("error: item 1 (lambda=2) failed at stage 'store'\n"), "\(run.stderr)")
        #expect(run.stderr.components(separatedBy: "already exists").count == 2 && !run.stderr.contains("run h.1 failed after"), "\(run.stderr)")
        #expect(run.stderr.contains("sweep h: 1 of 2 items succeeded, 1 failed"), "\(run.stderr)")
    }

    /// Memory follows --jobs, not the number of items: a sweep of 1,500 items peaks
    /// within a few MiB of one of 50 (each item leaves only its line in the report).
    @Test func memoryDoesNotGrowWithTheItems() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var peaks: [Double] = []
        for count in [50, 1500] {
            let file = try Self.write(Self.pipeline(matrix: "  seed: {range: [0, \(count)]}").replacingOccurrences(of: "size: 48", with: "size: 16"),
                                      in: directory, as: "m\(count).yaml")
            let result = try RunnerProcess.run([file, "--run-id", "m\(count)", "--jobs", "2", "--report", "m\(count).json"], in: directory)
            #expect(result.status == 0, "\(result.stderr)")
            let report = try Self.report("m\(count).json", in: directory)
            #expect(Self.items(report).count == count)
            peaks.append(try #require(report["measured_peak_bytes"] as? Double))
        }
        #expect(peaks[1] - peaks[0] < 6 * 1_048_576, "peak \(peaks[0] / 1_048_576) MiB with 50 items, \(peaks[1] / 1_048_576) MiB with 1500")
    }

    /// Exported for Airflow, each stage is one task mapped over the items; on real
    /// Airflow 3.3.2 every instance succeeds, and each item's image is a plain run's.
    @Test func aSweepRunsOnAirflowAsMappedTasks() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  lambda: [1, 3, 5]\n  seed: [7]"), in: directory)
        let plainFile = try Self.write(Self.pipeline(matrix: nil), in: directory, as: "plain.yaml")
        let export = try RunnerProcess.run(["export", "airflow", file, "-o", "dags/sweep.py", "--artifact-store", "store",
                                            "--runner", RunnerProcess.executable.path], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let dag = try String(contentsOf: directory.appendingPathComponent("dags/sweep.py"), encoding: .utf8)
        #expect(dag.contains("ITEMS = [str(item) for item in range(3)]"))
        #expect(dag.contains("@task_group(group_id=\"items\")") && dag.contains("generate = BashOperator(") && dag.contains("env=dict(ENV, PIPELINE_ITEM=item),")
                && dag.contains("items.expand(item=ITEMS)"), "\(dag)")
        let run = try AirflowExportTests.runDAG("sweep", in: directory, conf: "{}")
        #expect(run.exit == 0 && run.state == "success", "\(run)")
        var expected: [String: String] = [:]
        for stage in ["generate", "normalize", "encode", "store"] {
            for index in 0..<3 { expected["items.\(stage)[\(index)]"] = "success" }
        }
        #expect(run.tasks == expected)
        let runID = try #require(run.run_id)
        for (index, lambda) in ["1", "3", "5"].enumerated() {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("store/\(runID).\(index)/store/manifest.json").path))
            let plain = try RunnerProcess.run([plainFile, "--run-id", "p\(index)", "--seed", "7", "--set", "params.lambda=\(lambda)"], in: directory)
            #expect(plain.status == 0, "\(plain.stderr)")
            let viaAirflow = try Data(contentsOf: directory.appendingPathComponent("out/\(runID).\(index)/l\(lambda).png"))
            let alone = try Data(contentsOf: directory.appendingPathComponent("out/p\(index)/l\(lambda).png"))
            #expect(viaAirflow == alone, "item \(index)")
        }
    }

    /// The export checks every item, not only the first: a matrix that changes the graph
    /// is refused, a container's memory limit holds the largest item, and every item's
    /// sink directory must be on a volume.
    @Test func theExportChecksEveryItem() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let formats = try Self.write(Self.pipeline(matrix: "  format: [png, jpeg]").replacingOccurrences(of: "{type: png, input: normalize}",
            with: "{type: \"${format}\", input: normalize}").replacingOccurrences(of: "params:\n", with: "params:\n  format: png\n"),
            in: directory, as: "formats.yaml")
        let graph = try RunnerProcess.run(["export", "airflow", formats, "-o", "f.py", "--artifact-store", "store"], in: directory)
        #expect(graph.status == 2 && graph.stderr.contains("matrix item 1 (format=jpeg) has another graph than item 0"), "\(graph.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("f.py").path))

        let sizes = try Self.write(Self.pipeline(matrix: "  size: [64, 8192]", path: "/work/out/{run_id}.png"), in: directory, as: "sizes.yaml")
        let docker = ["--operator", "docker", "--image", "x", "--artifact-store", "s3://bucket-name/runs", "--mount", "\(directory.path):/work"]
        let memory = try RunnerProcess.run(["export", "airflow", sizes, "-o", "m.py", "--memory-limit", "100M"] + docker, in: directory)
        #expect(memory.status == 2 && memory.stderr.contains("matrix item 1 (size=8192): stage '") && memory.stderr.contains("above --memory-limit 100M"),
                "\(memory.stderr)")
        let fits = try RunnerProcess.run(["export", "airflow", sizes, "-o", "m.py", "--memory-limit", "1G"] + docker, in: directory)
        #expect(fits.status == 0, "\(fits.stderr)")

        let places = try Self.write(Self.pipeline(matrix: "  place: [work, tmp]", path: "/${place}/out/{run_id}.png")
            .replacingOccurrences(of: "params:\n", with: "params:\n  place: work\n"), in: directory, as: "places.yaml")
        // A run-time {place} is filled per item for the check, too.
        let laterPlaces = try Self.write(Self.pipeline(matrix: "  place: [work, tmp]", path: "/{place}/out/{run_id}.png")
            .replacingOccurrences(of: "params:\n", with: "params:\n  place: work\n"), in: directory, as: "later.yaml")
        let laterVolume = try RunnerProcess.run(["export", "airflow", laterPlaces, "-o", "p.py"] + docker, in: directory)
        #expect(laterVolume.status == 2 && laterVolume.stderr.contains("matrix item 1 (place=tmp): stage 'store' writes /tmp/out/{run_id}.png"),
                "\(laterVolume.stderr)")
        let volume = try RunnerProcess.run(["export", "airflow", places, "-o", "p.py"] + docker, in: directory)
        #expect(volume.status == 2 && volume.stderr.contains("matrix item 1 (place=tmp): stage 'store' writes /tmp/out/{run_id}.png"),
                "\(volume.stderr)")
    }

    /// On Airflow, an item's tasks wait for that item's upstream tasks only: item 1's
    /// sink fails (its file is there), so its `copy` (after the sink) does not run, and
    /// items 0 and 2 run to the end, as a sweep in one process leaves the others.
    @Test func aFailedItemOnAirflowLeavesTheOthers() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = Self.pipeline(matrix: "  lambda: [1, 3, 5]", path: "out/l${lambda}.png")
            + "\n  copy:\n    type: filesystem\n    input: encode\n    after: [store]\n    with: {path: \"out/{run_id}/copy-l${lambda}.png\"}\n"
        let file = try Self.write(text, in: directory)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("out"), withIntermediateDirectories: true)
        try Data("not this".utf8).write(to: directory.appendingPathComponent("out/l3.png"))
        let export = try RunnerProcess.run(["export", "airflow", file, "-o", "dags/sweep.py", "--artifact-store", "store",
                                            "--runner", RunnerProcess.executable.path], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let run = try AirflowExportTests.runDAG("sweep", in: directory, conf: "{}")
        #expect(run.state == "failed", "\(run)")
        for stage in ["generate", "normalize", "encode"] {
            for index in 0..<3 { #expect(run.tasks["items.\(stage)[\(index)]"] == "success", "\(stage)[\(index)]: \(run.tasks)") }
        }
        #expect(run.tasks["items.store[1]"] == "failed" && run.tasks["items.copy[1]"] == "upstream_failed", "\(run.tasks)")
        for index in [0, 2] {
            #expect(run.tasks["items.store[\(index)]"] == "success" && run.tasks["items.copy[\(index)]"] == "success", "\(run.tasks)")
        }
        let runID = try #require(run.run_id)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/\(runID).2/copy-l5.png").path))
    }

    /// `--item K` runs one item as the sweep would: the run RUN_ID.K, with its seed.
    @Test func oneItemRunsAsTheSweepRunsIt() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  lambda: [1, 3]\n  seed: [4]"), in: directory)
        let sweep = try RunnerProcess.run([file, "--run-id", "w"], in: directory)
        #expect(sweep.status == 0, "\(sweep.stderr)")
        let one = try RunnerProcess.run([file, "--run-id", "v", "--item", "1"], in: directory)
        #expect(one.status == 0 && one.stdout.contains("out/v.1/l3.png"), "\(one.stdout)\(one.stderr)")
        #expect(try Data(contentsOf: directory.appendingPathComponent("out/v.1/l3.png")) == Data(contentsOf: directory.appendingPathComponent("out/w.1/l3.png")))
        let outside = try RunnerProcess.run([file, "--item", "2"], in: directory)
        #expect(outside.status == 2 && outside.stderr.contains("has items 0 to 1"), "\(outside.stderr)")
        let plain = try Self.write(Self.pipeline(matrix: nil), in: directory, as: "plain.yaml")
        let none = try RunnerProcess.run([plain, "--item", "0"], in: directory)
        #expect(none.status == 2 && none.stderr.contains("has no matrix"), "\(none.stderr)")
        // --item plans its item alone (a task of an exported sweep of thousands): another
        // item's problem does not stop it, and its own problem names it.
        let mixed = try Self.write(Self.pipeline(matrix: "  lambda: [2, -1]"), in: directory, as: "mixed.yaml")
        let good = try RunnerProcess.run([mixed, "--run-id", "x", "--item", "0"], in: directory)
        #expect(good.status == 0 && good.stdout.contains("out/x.0/l2.png"), "\(good.stdout)\(good.stderr)")
        // An item with its own seed refuses another (the exported DAG's conf seed, say).
        let seeded = try RunnerProcess.run([file, "--item", "1", "--seed", "9"], in: directory)
        #expect(seeded.status == 2 && seeded.stderr.contains("--seed 9: matrix item 1 (lambda=3 seed=4) has its own seed, 4"), "\(seeded.stderr)")
        let bad = try RunnerProcess.run([mixed, "--item", "1"], in: directory)
        #expect(bad.status == 2 && bad.stderr.contains("matrix item 1 (lambda=-1): parameter 'lambda'"), "\(bad.stderr)")
    }

    /// An S3 pipeline exported for Airflow takes its credentials, region and endpoint
    /// from the Airflow connection `aws_default` (defined here by AIRFLOW_CONN_AWS_DEFAULT,
    /// pointing at moto): the object is a plain run's image, and the secret is neither
    /// in the DAG file nor in Airflow's logs.
    @Test func credentialsComeFromTheAirflowConnection() throws {
        let s3 = try LocalS3.shared()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let key = "airflow-conn/\(UUID().uuidString)/{run_id}.png"
        let uploading = Self.pipeline(matrix: nil).replacingOccurrences(
            of: "    type: filesystem\n    input: encode\n    with: {path: \"out/{run_id}/l${lambda}.png\"}",
            with: "    type: s3\n    input: encode\n    with: {bucket: pipeline-tests, key: \"\(key)\"}")
        #expect(uploading.contains("type: s3"))
        let file = try Self.write(uploading, in: directory, as: "upload.yaml")
        let plainFile = try Self.write(Self.pipeline(matrix: nil), in: directory, as: "plain.yaml")
        let export = try RunnerProcess.run(["export", "airflow", file, "-o", "dags/upload.py", "--artifact-store", "store",
                                            "--runner", RunnerProcess.executable.path], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let dag = try String(contentsOf: directory.appendingPathComponent("dags/upload.py"), encoding: .utf8)
        #expect(dag.contains("\"PIPELINE_AWS_SECRET_ACCESS_KEY\": \"{% set c = conn.get('aws_default') %}{{ ((c.password) or '') if c else '' }}\""),
                "\(dag)")
        let connection = "{\"conn_type\": \"aws\", \"login\": \"\(s3.accessKey)\", \"password\": \"\(s3.secretKey)\", "
            + "\"extra\": {\"region_name\": \"us-east-1\", \"endpoint_url\": \"\(s3.endpoint)\"}}"
        let run = try AirflowExportTests.runDAG("sweep", in: directory, conf: "{\"seed\": 7}",
                                                environment: "AWS_EC2_METADATA_DISABLED=true AIRFLOW_CONN_AWS_DEFAULT='\(connection)'")
        #expect(run.exit == 0 && run.state == "success", "\(run)")
        let runID = try #require(run.run_id)
        let client = S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: "us-east-1", pathStyle: true),
                              credentials: AWSCredentialChain(environment: AWSEnvironment(variables: [
                                  "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_EC2_METADATA_DISABLED": "true",
                                  "HOME": "/nonexistent",
                              ])))
        let object = try client.send("GetObject", method: "GET", bucket: "pipeline-tests", key: key.replacingOccurrences(of: "{run_id}", with: runID),
                                     session: CurlSession()).body
        let plain = try RunnerProcess.run([plainFile, "--run-id", "plain", "--seed", "7"], in: directory)
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(object == [UInt8](try Data(contentsOf: directory.appendingPathComponent("out/plain/l3.0.png"))))
        // The secret: not in the DAG, not in any log Airflow wrote.
        #expect(!dag.contains(s3.secretKey))
        let logs = try RunnerProcess.shell("grep -rl -F -- '\(s3.secretKey)' '\(directory.path)/airflow-home' --include='*.log' || true")
        #expect(logs.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "the secret is in \(logs)")
        let logCount = try RunnerProcess.shell("find '\(directory.path)/airflow-home' -name '*.log' | wc -l")
        #expect((Int(logCount.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0)
        // Without the connection, the same DAG uses the worker's own AWS variables: the
        // connection's empty values do not hide them.
        let worker = "AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID='\(s3.accessKey)' AWS_SECRET_ACCESS_KEY='\(s3.secretKey)' "
            + "AWS_REGION=us-east-1 AWS_ENDPOINT_URL='\(s3.endpoint)'"
        let second = try AirflowExportTests.runDAG("sweep", in: directory, conf: "{\"seed\": 7}", environment: worker)
        #expect(second.exit == 0 && second.state == "success", "\(second)")
        let secondID = try #require(second.run_id)
        let again = try client.send("GetObject", method: "GET", bucket: "pipeline-tests", key: key.replacingOccurrences(of: "{run_id}", with: secondID),
                                    session: CurlSession()).body
        #expect(again == object)
    }

    /// `--profile` and `--set` apply to every item; an item's values fill `{param}` at
    /// run time as well as `${param}` when the file is read.
    @Test func profilesSetsAndRunTimeTemplatesApplyToEveryItem() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = Self.pipeline(matrix: "  lambda: [1, 2]", path: "out/{run_id}/l{lambda}-${size}.png") + "\nprofiles:\n  big:\n    params: {size: 32}\n"
        let file = try Self.write(text, in: directory)
        let profiled = try RunnerProcess.run([file, "--run-id", "p", "--profile", "big"], in: directory)
        #expect(profiled.status == 0, "\(profiled.stderr)")
        let set = try RunnerProcess.run([file, "--run-id", "s", "--set", "params.size=24"], in: directory)
        #expect(set.status == 0, "\(set.stderr)")
        for path in ["out/p.0/l1-32.png", "out/p.1/l2-32.png", "out/s.0/l1-24.png", "out/s.1/l2-24.png"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(path).path), "\(path)")
        }
    }

    /// The items in flight share the memory limit: a limit one item fits in, but not
    /// two, refuses a sweep with two at once and runs it with one.
    @Test func theItemsInFlightShareTheMemoryLimit() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try Self.write(Self.pipeline(matrix: "  seed: [1, 2, 3]").replacingOccurrences(of: "size: 48", with: "size: 2048"), in: directory)
        let two = try RunnerProcess.run([file, "--no-stream", "--memory-limit", "44M", "--jobs", "2"], in: directory)
        #expect(two.status == 2 && two.stderr.contains("error: matrix item 0 (seed=1): the run needs about")
                && two.stderr.contains("--memory-limit 44M shared by 2 items at once"), "\(two.stderr)")
        let one = try RunnerProcess.run([file, "--no-stream", "--memory-limit", "44M", "--jobs", "1", "--run-id", "one"], in: directory)
        #expect(one.status == 0, "\(one.stderr)")
        let alone = try RunnerProcess.run([file, "--no-stream", "--memory-limit", "44M", "--item", "2", "--run-id", "alone"], in: directory)
        #expect(alone.status == 0, "\(alone.stderr)")
        // The process's own memory counts once, not once per item: four small items in
        // flight fit in 60M (each was refused a quarter of it, less than the process needs).
        let small = try Self.write(Self.pipeline(matrix: "  seed: [1, 2, 3, 4]"), in: directory, as: "small.yaml")
        let four = try RunnerProcess.run([small, "--memory-limit", "60M", "--jobs", "4", "--run-id", "four"], in: directory)
        #expect(four.status == 0, "\(four.stderr)")
    }
}

/// A sweep and a signal: timed, so run in the serial phase of scripts/test.
@Suite struct SweepSignalTests {
    /// A sweep interrupted by SIGINT has printed the URI of every item that succeeded
    /// (as each ended), and its report counts them. The signal comes after planning
    /// (about 3 s in a debug build) and well before the end (about 13 s).
    @Test func anInterruptedSweepHasPrintedWhatItStored() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = try SweepTests.write(SweepTests.pipeline(matrix: "  seed: {range: [0, 5000]}", path: "out/{run_id}.png"), in: directory)
        let result = try RunnerProcess.run([file, "--run-id", "i", "--jobs", "1", "--report", "i.json"], in: directory,
                                           signals: [(SIGINT, after: .seconds(8))], timeSignalsFromHandler: true)
        #expect(result.status == 130, "\(result.stderr)")
        let report = try SweepTests.report("i.json", in: directory)
        let succeeded = try #require(report["succeeded"] as? Int)
        #expect(succeeded > 0 && report["status"] as? String == "cancelled")
        let printed = result.stdout.split(separator: "\n")
        #expect(printed.count == succeeded, "\(printed.count) URIs for \(succeeded) items")
        for item in SweepTests.items(report) where item["status"] as? String == "succeeded" {
            let uri = try #require((item["outputs"] as? [[String: Any]])?.first?["uri"] as? String)
            #expect(printed.contains(Substring(uri)), "\(uri)")
        }
    }
}
