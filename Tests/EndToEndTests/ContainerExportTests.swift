import Foundation
import Framework
import Testing
import TestFixtures

/// `runner export airflow --operator docker|kubernetes` without a container engine:
/// what the DAG says, what is refused, and the Kubernetes pods as Airflow's
/// cncf.kubernetes provider builds them (no cluster). The docker DAG running on
/// Airflow against a real engine is in ContainerTests.
@Suite struct ContainerExportTests {
    static let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    @Test(arguments: [
        (["--operator", "bash", "--image", "x"], "--image is for --operator docker or kubernetes"),
        (["--mount", "/a:/b"], "--mount is for --operator docker or kubernetes"),
        (["--operator", "docker"], "--operator docker needs --image"),
        (["--operator", "kubernetes", "--image", ""], "--operator kubernetes needs --image"),
        (["--operator", "docker", "--image", "a b"], "an image reference cannot"),
        (["--operator", "kubernetes", "--image", "x", "--pass-env", "AWS_ACCESS_KEY_ID"], "put credentials in a Kubernetes Secret and give --secret NAME"),
        (["--operator", "docker", "--image", "x", "--secret", "aws"], "--secret is for --operator kubernetes"),
        (["--operator", "docker", "--image", "x", "--memory", "1G"], "for docker give --memory-limit"),
        (["--operator", "kubernetes", "--image", "x", "--network", "none"], "--network is for --operator docker"),
        (["--operator", "docker", "--image", "x", "--env", "AWS_SECRET_ACCESS_KEY=abc"], "--env AWS_SECRET_ACCESS_KEY: it looks like a credential"),
        (["--operator", "kubernetes", "--image", "x", "--env", "DB_PASSWORD=abc"], "put it in a Kubernetes Secret"),
        (["--operator", "docker", "--image", "x", "--env", "RUNNER_SEED=1"], "--env RUNNER_SEED: the DAG sets it"),
        (["--operator", "docker", "--image", "x", "--env", "1X=y"], "is not NAME=VALUE"),
        (["--operator", "docker", "--image", "x", "--pass-env", "A-B"], "--pass-env 'A-B' is not a variable name"),
        (["--operator", "docker", "--image", "x", "--mount", "data"], "--mount 'data' is not HOST-DIR:PATH[:ro]"),
        (["--operator", "docker", "--image", "x", "--mount", "data:work"], "the path in the container, 'work', must be absolute"),
        (["--operator", "docker", "--image", "x", "--mount", "a:/data", "--mount", "b:/data/"], "/data is mounted twice"),
        (["--operator", "kubernetes", "--image", "x", "--mount", "Claim_1:/data"], "is not a PersistentVolumeClaim's name"),
        (["--operator", "kubernetes", "--image", "x", "--namespace", "Prod"], "--namespace 'Prod' is not a Kubernetes namespace"),
        (["--operator", "kubernetes", "--image", "x", "--secret", "a/b"], "--secret 'a/b' is not a Kubernetes name"),
        (["--operator", "kubernetes", "--image", "x", "--image-pull-secret", "A"], "--image-pull-secret 'A' is not a Kubernetes name"),
        (["--operator", "kubernetes", "--image", "x", "--docker-conn-id", "ecr"], "--docker-conn-id is for --operator docker"),
        (["--operator", "docker", "--image", "x", "--image-pull-secret", "login"], "--image-pull-secret is for --operator kubernetes"),
        (["--operator", "docker", "--image", "x", "--pull", "never"], "--pull never is not something the Docker provider can do"),
        (["--operator", "docker", "--image", "x", "--cpus", "0"], "--cpus must be a number from 0.002 to 256 for docker"),
        (["--operator", "kubernetes", "--image", "x", "--cpus", "nan"], "--cpus must be a number from 0.001 to 1024 for kubernetes"),
        (["--operator", "kubernetes", "--image", "x", "--memory", "lots"], "--memory must be a size"),
        (["--operator", "docker", "--image", "x", "--memory-limit", "0"], "--memory-limit must be a size"),
        (["--operator", "docker", "--image", "x", "--workdir", "work"], "--workdir 'work' is a path in the container; give it absolute"),
        (["--operator", "podman", "--image", "x"], "'podman'"),
        (["--operator", "docker", "--image", "x", "--pass-env", "RUNNER_RUN_ID"], "--pass-env RUNNER_RUN_ID: the DAG sets it"),
        (["--operator", "docker", "--image", "x", "--cpus", "0.001"], "--cpus must be a number from 0.002 to 256 for docker"),
        (["--operator", "docker", "--image", "x", "--cpus", "300"], "--cpus must be a number from 0.002 to 256 for docker"),
        (["--operator", "kubernetes", "--image", "x", "--cpus", "0x10"], "--cpus must be a number from 0.001 to 1024 for kubernetes"),
        (["--operator", "kubernetes", "--image", "x", "--memory", "1M"], "--memory 1M is less than the runner alone needs"),
        (["--operator", "docker", "--image", "x", "--memory-limit", "1"], "--memory-limit 1 is less than the runner alone needs"),
        (["--operator", "kubernetes", "--image", "x", "--memory", "2Gi", "--memory-limit", "1G"], "--memory 2Gi is above --memory-limit 1G"),
        (["--operator", "kubernetes", "--image", "x", "--workdir", "/data"], "--workdir is for --operator docker"),
        (["--operator", "docker", "--image", "Team/Runner"], "is not an image reference"),
        (["--operator", "docker", "--image", "UPPER/Bad::ref@@"], "has a digest that is not ALGORITHM:HEX"),
        (["--operator", "docker", "--image", "runner:"], "has a tag that is not"),
        (["--operator", "docker", "--image", "x", "--docker-url", "not a url"], "is not a Docker API address"),
        (["--operator", "docker", "--image", "x", "--runner", "runner"], "--runner 'runner' is a path in the image; give it absolute"),
        (["--operator", "docker", "--image", "x", "--env", "DATABASE_URL=postgres://u:pw@db/x"], "--env DATABASE_URL: it looks like a credential"),
        (["--operator", "docker", "--image", "x", "--env", "GITHUB_PAT=abc"], "--env GITHUB_PAT: it looks like a credential"),
        (["--operator", "docker", "--image", "x", "--mount", "/srv:/"], "would hide the whole image"),
        (["--schedule", "not a cron"], "--schedule 'not a cron' has 3 fields; a cron expression has 5"),
        (["--schedule", "@dailyy"], "--schedule '@dailyy' is not a preset Airflow knows"),
        (["--schedule", "*/0 * * * *"], "has the step '0' in its minute field"),
        (["--schedule", "61 * * * *"], "has '61' in its minute field (0-59)"),
        (["--schedule", "0 0 * FOO *"], "has 'FOO' in its month field (1-12 or JAN-DEC)"),
        (["--dag-id", String(repeating: "a", count: 251)], "has 251 characters; Airflow's hold at most 250"),
    ])
    func badContainerOptionsAreRefusedBeforeADAGIsWritten(arguments: [String], message: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "dag.py", "--artifact-store", "s3://bucket-name/runs"] + arguments,
                                           in: directory)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(files(below: directory).isEmpty, "\(files(below: directory))")
    }

    /// A directory store must be on a volume every task mounts, writable: each task's
    /// container is new, and the next task reads what the last one stored. So must a
    /// filesystem sink's file, and no volume may hide the runner.
    @Test(arguments: [
        (["--operator", "docker", "--artifact-store", "/data/store"], "--artifact-store /data/store is in the container and no writable --mount holds it"),
        (["--operator", "docker", "--artifact-store", "store", "--mount", "/srv/data:/data"], "--artifact-store /work/store is in the container"),
        (["--operator", "docker", "--artifact-store", "/data/store", "--mount", "/srv/data:/data:ro"], "no writable --mount holds it"),
        (["--operator", "kubernetes", "--artifact-store", "/data/store", "--mount", "claim:/data2"], "--mount CLAIM:/data/store (a ReadWriteMany claim)"),
        (["--operator", "docker", "--artifact-store", "file:///work/store"], "--artifact-store /work/store is in the container"),
        (["--operator", "docker", "--artifact-store", "/work/store", "--mount", "/srv/w:/work", "--mount", "/srv/s:/work/store:ro"],
         "--artifact-store /work/store is in the container and no writable --mount holds it"),
        (["--operator", "docker", "--artifact-store", "/usr/local/store", "--mount", "/srv/w:/usr/local"], "hides the runner (/usr/local/bin/runner)"),
        (["--operator", "docker", "--artifact-store", "/data/store", "--mount", "/srv/d:/data"],
         "stage 'store' writes out/poisson-grid-images/{run_id}/poisson_grid_2048x2048.jpg (in /work/out/poisson-grid-images in the container), "
            + "which no writable --mount holds"),
        (["--operator", "kubernetes", "--artifact-store", "s3://bucket-name/x"], "give --mount HOST-DIR:/work/out/poisson-grid-images (CLAIM:"),
    ])
    func whatNoVolumeHoldsIsRefused(arguments: [String], message: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "dag.py", "--image", "x"] + arguments, in: directory)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("error: ") && result.stderr.contains(message) && result.stderr.contains("no DAG was written"), "\(result.stderr)")
        #expect(files(below: directory).isEmpty)
    }

    @Test func theDockerDAGRunsTheImageWithTheRunsSettingsInItsEnvironment() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let arguments = ["export", "airflow", Self.pipeline, "--operator", "docker", "--image", "registry.example.com/runner:1.0",
                         "--mount", "data:/work", "--artifact-store", "store", "--profile", "png", "--set", "params.size=64",
                         "--network", "none", "--docker-url", "unix:///run/podman/podman.sock", "--cpus", "2", "--memory-limit", "1G",
                         "--docker-conn-id", "ecr_registry"]
        // Credentials in the exporting shell never reach the file.
        let secret = ["AWS_ACCESS_KEY_ID": "AKIAEXPORTTEST", "AWS_SECRET_ACCESS_KEY": "never-in-the-dag"]
        let first = try RunnerProcess.run(arguments + ["-o", "a.py"], in: directory, environment: secret)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("note: the tasks read the pipeline at /pipelines/poisson.yaml in the image"), "\(first.stderr)")
        #expect(try RunnerProcess.run(arguments + ["-o", "b.py"], in: directory).status == 0)
        let text = try String(contentsOf: directory.appendingPathComponent("a.py"), encoding: .utf8)
        #expect(text == (try String(contentsOf: directory.appendingPathComponent("b.py"), encoding: .utf8)))
        #expect(!text.contains("AKIAEXPORTTEST") && !text.contains("never-in-the-dag"))
        for line in [
            "from airflow.providers.docker.operators.docker import DockerOperator",
            "IMAGE = \"registry.example.com/runner:1.0\"",
            "RUNNER = \"/usr/local/bin/runner\"",
            "PIPELINE = \"/pipelines/poisson.yaml\"",
            // Relative to the container's working directory, not the exporting shell's.
            "ARTIFACT_STORE = \"/work/store\"",
            "ARGUMENTS = [\"--profile\", \"png\", \"--set\", \"params.size=64\"]",
            "    Mount(target=literal(\"/work\"), source=literal(\"\(directory.path)/data\"), type=\"bind\", read_only=False),",
            // The AWS variables (the pipeline reads ${env.OUTPUT_S3_BUCKET} only in its s3
            // profile, not used here).
            "PASS_ENV = [\"AWS_ACCESS_KEY_ID\", \"AWS_SECRET_ACCESS_KEY\", \"AWS_SESSION_TOKEN\", \"AWS_REGION\", \"AWS_DEFAULT_REGION\", "
                + "\"AWS_ENDPOINT_URL\", \"AWS_ENDPOINT_URL_S3\"]",
            "    \"RUNNER_RUN_ID\": \"{{ run_id }}\",",
            "    \"RUNNER_SEED\": \"{{ dag_run.conf.get('seed', '') }}\",",
            "        image=\"{{ dag_run.conf.get('image') or params.image }}\",",
            "        command=literal([PIPELINE, \"--only\", \"encode\", \"--no-stage-retries\", *ARGUMENTS]),",
            "        private_environment=passed_environment(),",
            "        docker_url=\"unix:///run/podman/podman.sock\",",
            "        docker_conn_id=literal(\"ecr_registry\"),",
            "        network_mode=\"none\",",
            "        cpus=2.0,",
            "        mem_limit=1073741824,",
            "        do_xcom_push=False,",
            "    task_encode >> task_store",
        ] {
            #expect(text.contains(line + "\n"), "no line '\(line)' in\n\(text)")
        }
        // --pass-env replaces the default list.
        let chosen = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "c.py", "--operator", "docker", "--image", "x",
                                            "--artifact-store", "s3://bucket-name/runs", "--pass-env", "MY_TOKEN", "--mount", "out:/work"],
                                           in: directory)
        #expect(chosen.status == 0, "\(chosen.stderr)")
        let chosenText = try String(contentsOf: directory.appendingPathComponent("c.py"), encoding: .utf8)
        #expect(chosenText.contains("PASS_ENV = [\"MY_TOKEN\"]\n"), "\(chosenText)")
        // With the s3 profile the pipeline reads ${env.OUTPUT_S3_BUCKET}: the tasks get it too.
        let s3 = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "d.py", "--operator", "docker", "--image", "x",
                                        "--artifact-store", "s3://bucket-name/runs", "--profile", "s3"], in: directory,
                                       environment: ["OUTPUT_S3_BUCKET": "bucket-name"])
        #expect(s3.status == 0, "\(s3.stderr)")
        let s3Text = try String(contentsOf: directory.appendingPathComponent("d.py"), encoding: .utf8)
        // The AWS variables come from the connection aws_default, not the worker's environment.
        #expect(s3Text.contains("PASS_ENV = [\"OUTPUT_S3_BUCKET\"]\n") && s3Text.contains("MOUNTS = [\n]\n"), "\(s3Text)")
        #expect(s3Text.contains("    \"AWS_ACCESS_KEY_ID\": \"{% set c = conn.get('aws_default') %}{{ ((c.login) or '') if c else '' }}\",\n"),
                "\(s3Text)")
        // Without a connection, the worker's AWS variables are passed, as before.
        let passed = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "e.py", "--operator", "docker", "--image", "x",
                                            "--artifact-store", "s3://bucket-name/runs", "--profile", "s3", "--aws-conn-id", ""], in: directory,
                                           environment: ["OUTPUT_S3_BUCKET": "bucket-name"])
        #expect(passed.status == 0, "\(passed.stderr)")
        let passedText = try String(contentsOf: directory.appendingPathComponent("e.py"), encoding: .utf8)
        #expect(passedText.contains("\"AWS_ENDPOINT_URL_S3\", \"OUTPUT_S3_BUCKET\"]\n") && !passedText.contains("conn.get("), "\(passedText)")
        let bad = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "f.py", "--artifact-store", "s3://bucket-name/runs",
                                         "--aws-conn-id", "a'b"], in: directory)
        #expect(bad.status == 2 && bad.stderr.contains("--aws-conn-id 'a'b' must be letters, digits"), "\(bad.stderr)")
    }

    /// The Kubernetes DAG imports in Airflow with the cncf.kubernetes provider, and
    /// each task's pod, as the provider builds it for a run, names the image, the
    /// runner's command and arguments, the run's environment, the volumes, the
    /// Secret and the resources (memory from the plan's estimate for its stage).
    @Test func theKubernetesDAGImportsAndItsPodsCarryTheImageCommandAndEnvironment() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let export = try RunnerProcess.run(["export", "airflow", Self.pipeline, "-o", "dags/k.py", "--operator", "kubernetes",
                                            "--image", "registry.example.com/runner:1.0", "--pull", "always", "--namespace", "imaging",
                                            "--secret", "aws-credentials", "--service-account", "pipeline-runner", "--image-pull-secret", "registry-login",
                                            "--mount", "pipeline-data:/work", "--artifact-store", "/work/store", "--cpus", "0.5",
                                            "--env", "GREETING={{ not jinja }}", "--pipeline-path", "/data/pipelines {{ x }}/poisson.yaml",
                                            "--set", "params.size=1024", "--dag-id", "poisson-k8s"], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        #expect(!export.stderr.contains("note:"), "\(export.stderr)")
        let python = AirflowExportTests.airflowPython
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw PythonFixture.StartError(description: "\(python) not found: run scripts/test, which installs Airflow")
        }
        let script = RunnerProcess.packageRoot.appendingPathComponent("Tests/Fixtures/airflow_pods.py").path
        let output = try RunnerProcess.shell("cd '\(directory.path)' && AIRFLOW_HOME='\(directory.path)/home' '\(python)' '\(script)' dags poisson-k8s "
                                             + "'manual__2026-11-30T10:00:00+00:00' '{\"seed\": 42, \"image\": \"registry.example.com/runner:1.1\", "
                                             + "\"artifact_store\": \"s3://other-bucket/{{ x }}\"}' 2>/dev/null | tail -1")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        #expect((json["import_errors"] as? [String: Any])?.isEmpty == true, "\(json["import_errors"] ?? "")")
        let pods = try #require(json["pods"] as? [String: [String: Any]])
        #expect(Set(pods.keys) == ["generate", "normalize", "encode", "store"])
        // The memory a task holds: the runner's own, and twice each input and its
        // output, as read from and written to the store: the 1024x1024 samples as
        // bytes, then normalised to Float32; then an encoded image, smaller.
        let base = StreamingLayout.baseBytes, size = 1024.0 * 1024.0
        let full: [String: Double] = ["generate": 2 * size, "normalize": 2 * size + 8 * size]
        for (task, pod) in pods {
            let metadata = try #require(pod["metadata"] as? [String: Any])
            #expect(metadata["namespace"] as? String == "imaging")
            #expect((metadata["name"] as? String)?.hasPrefix("poisson-k8s-\(task)-") == true, "\(metadata)")
            let spec = try #require(pod["spec"] as? [String: Any])
            #expect(spec["serviceAccountName"] as? String == "pipeline-runner")
            #expect(spec["imagePullSecrets"] as? [[String: String]] == [["name": "registry-login"]], "\(spec["imagePullSecrets"] ?? "")")
            #expect((spec["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
            let volumes = try #require(spec["volumes"] as? [[String: Any]])
            #expect((volumes.first?["persistentVolumeClaim"] as? [String: Any])?["claimName"] as? String == "pipeline-data")
            let container = try #require((spec["containers"] as? [[String: Any]])?.first)
            // dag_run.conf's image overrides the exported one.
            #expect(container["image"] as? String == "registry.example.com/runner:1.1")
            #expect(container["imagePullPolicy"] as? String == "Always")
            #expect(container["command"] as? [String] == ["/usr/local/bin/runner"])
            #expect(container["args"] as? [String] == ["/data/pipelines {{ x }}/poisson.yaml", "--only", task, "--no-stage-retries",
                                                        "--set", "params.size=1024"])
            let env = try #require(container["env"] as? [[String: String]])
            #expect(env == [["name": "RUNNER_RUN_ID", "value": "manual__2026-11-30T10:00:00+00:00"],
                            ["name": "RUNNER_ARTIFACT_STORE", "value": "s3://other-bucket/{{ x }}"],
                            ["name": "RUNNER_SEED", "value": "42"],
                            ["name": "GREETING", "value": "{{ not jinja }}"]], "\(env)")
            let envFrom = try #require(container["envFrom"] as? [[String: Any]])
            #expect((envFrom.first?["secretRef"] as? [String: Any])?["name"] as? String == "aws-credentials")
            let mounts = try #require(container["volumeMounts"] as? [[String: Any]])
            #expect(mounts.first?["mountPath"] as? String == "/work")
            let requests = try #require((container["resources"] as? [String: Any])?["requests"] as? [String: String])
            #expect(requests["cpu"] == "500m")
            #expect(requests["memory"]?.hasSuffix("Mi") == true, "\(requests)")
            let memory = try #require(requests["memory"].flatMap { Double($0.dropLast(2)) }, "\(requests)")
            if let full = full[task] {
                #expect(memory == ((base + full) * 1.1 / 1_048_576).rounded(.up), "\(task): \(requests)")
            } else {
                #expect(memory > base * 1.1 / 1_048_576 && memory < (base + 8 * size + 2 * 4 * size) * 1.1 / 1_048_576, "\(task): \(requests)")
            }
        }
    }

    /// Each stage's retries and timeout become its task's, whatever the operator.
    @Test(arguments: ["docker", "kubernetes"])
    func retriesAndTimeoutsAreTheTasks(operator: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            name: policy
            stages:
              generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}, retries: {count: 2, delay: 5s, factor: 2, max_delay: 1m}, timeout: 90s}
              normalize: {type: normalize, input: generate}
            """.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let export = try RunnerProcess.run(["export", "airflow", "p.yaml", "-o", "p.py", "--operator", `operator`, "--image", "x",
                                            "--artifact-store", "s3://bucket-name/runs"], in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let text = try String(contentsOf: directory.appendingPathComponent("p.py"), encoding: .utf8)
        let generate = try #require(text.components(separatedBy: "    task_generate = ").last?.components(separatedBy: "    )\n").first)
        for line in ["retries=2,", "retry_delay=datetime.timedelta(milliseconds=5000),", "retry_exponential_backoff=True,",
                     "max_retry_delay=datetime.timedelta(milliseconds=60000),", "execution_timeout=datetime.timedelta(milliseconds=90000),",
                     "skip_on_exit_code=None,"] {
            #expect(generate.contains("        " + line + "\n"), "\(line) in \(generate)")
        }
        #expect(text.contains("    task_generate >> task_normalize\n"))
        #expect(text.contains("default_args={\"owner\": \"airflow\", \"retries\": 0},"))
    }

    /// Stage ids that differ only in '-' and '_' get tasks of their own, each with
    /// its own dependencies.
    @Test(arguments: ["bash", "docker"])
    func stagesWhoseIdsLookAlikeKeepTheirOwnTasks(operator: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            name: alike
            stages:
              a-b: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
              a_b: {type: poisson, with: {width: 8, height: 8, lambda: 5}}
              n: {type: normalize, input: a-b}
              m: {type: normalize, input: a_b}
            """.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        var arguments = ["export", "airflow", "p.yaml", "-o", "dags/alike.py", "--artifact-store", "s3://bucket-name/runs"]
        if `operator` == "docker" { arguments += ["--operator", "docker", "--image", "x"] }
        let export = try RunnerProcess.run(arguments, in: directory)
        #expect(export.status == 0, "\(export.stderr)")
        let text = try String(contentsOf: directory.appendingPathComponent("dags/alike.py"), encoding: .utf8)
        for line in ["    task_a_b = ", "    task_a_b_2 = ", "        task_id=\"a-b\",", "        task_id=\"a_b\",",
                     "    task_a_b >> task_n\n", "    task_a_b_2 >> task_m\n"] {
            #expect(text.contains(line), "no '\(line)' in\n\(text)")
        }
        // As Airflow sees it.
        let printed = try AirflowExportTests().inspectDAG(directory.appendingPathComponent("dags/alike.py"), """
            print(json.dumps({t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}))
            """)
        #expect(printed == "{\"a-b\": [], \"a_b\": [], \"n\": [\"a-b\"], \"m\": [\"a_b\"]}", "\(printed)")
    }

    @Test func theDAGNeverReplacesThePipelineFile() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = try String(contentsOfFile: Self.pipeline, encoding: .utf8)
        try original.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(["export", "airflow", "p.yaml", "-o", "./p.yaml", "--artifact-store", "store"], in: directory)
        #expect(result.status == 2 && result.stderr.contains("-o ./p.yaml is the pipeline file itself"), "\(result.stderr)")
        #expect(try String(contentsOf: directory.appendingPathComponent("p.yaml"), encoding: .utf8) == original)
    }

    /// Pods see nothing of the worker's environment: a pipeline that reads a variable
    /// gets a note saying the pods need it, unless --env gives it.
    @Test func pipelinesReadingTheEnvironmentGetANoteForPods() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let base = ["export", "airflow", Self.pipeline, "-o", "k.py", "--operator", "kubernetes", "--image", "x", "--profile", "s3",
                    "--artifact-store", "s3://bucket-name/runs"]
        let bare = try RunnerProcess.run(base, in: directory, environment: ["OUTPUT_S3_BUCKET": "bucket-name"])
        #expect(bare.status == 0, "\(bare.stderr)")
        #expect(bare.stderr.contains("note: the pipeline reads ${env.OUTPUT_S3_BUCKET}: each pod needs it"), "\(bare.stderr)")
        let given = try RunnerProcess.run(base + ["--env", "OUTPUT_S3_BUCKET=bucket-name"], in: directory, environment: ["OUTPUT_S3_BUCKET": "bucket-name"])
        #expect(given.status == 0 && !given.stderr.contains("${env."), "\(given.stderr)")
    }

    // MARK: the environment gives what the command line leaves out

    @Test func runnerVariablesStandForTheirOptionsAndTheCommandLineWins() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let small = ["--set", "params.size=64"]
        let byOptions = try RunnerProcess.run([Self.pipeline, "--seed", "11", "--run-id", "options"] + small, in: directory)
        #expect(byOptions.status == 0, "\(byOptions.stderr)")
        let byEnvironment = try RunnerProcess.run([Self.pipeline] + small, in: directory,
                                                  environment: ["RUNNER_SEED": "11", "RUNNER_RUN_ID": "environment", "RUNNER_ARTIFACT_STORE": "store"])
        #expect(byEnvironment.status == 0, "\(byEnvironment.stderr)")
        let image = { (run: String) in try Data(contentsOf: directory.appendingPathComponent("out/poisson-grid-images/\(run)/poisson_grid_64x64.jpg")) }
        #expect(try image("options") == image("environment"))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("store/environment/encode/manifest.json").path))
        // Options win; an empty variable is unset.
        let mixed = try RunnerProcess.run([Self.pipeline, "--seed", "11", "--run-id", "mixed"] + small, in: directory,
                                          environment: ["RUNNER_SEED": "12", "RUNNER_RUN_ID": "ignored", "RUNNER_ARTIFACT_STORE": ""])
        #expect(mixed.status == 0, "\(mixed.stderr)")
        #expect(try image("mixed") == image("options"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/poisson-grid-images/ignored").path))
        // --only reads its run id from the environment too; a seed from there that
        // disagrees with the run's is named as the variable.
        let only = try RunnerProcess.run([Self.pipeline, "--only", "encode"] + small, in: directory,
                                         environment: ["RUNNER_RUN_ID": "environment", "RUNNER_ARTIFACT_STORE": "store"])
        #expect(only.status == 0, "\(only.stderr)")
        let otherSeed = try RunnerProcess.run([Self.pipeline, "--only", "encode"] + small, in: directory,
                                              environment: ["RUNNER_RUN_ID": "environment", "RUNNER_ARTIFACT_STORE": "store", "RUNNER_SEED": "12"])
        #expect(otherSeed.status == 2 && otherSeed.stderr.contains("made with seed 11; unset RUNNER_SEED (it gives --seed 12)"), "\(otherSeed.stderr)")
        // Airflow allows '~' in run ids.
        let tilde = try RunnerProcess.run([Self.pipeline, "--run-id", "manual__a~b"] + small, in: directory)
        #expect(tilde.status == 0, "\(tilde.stderr)")
    }

    @Test(arguments: [
        (["RUNNER_SEED": "abc"], "RUNNER_SEED (for --seed) must be a whole number from 0 to 18446744073709551615, got 'abc'"),
        (["RUNNER_RUN_ID": "a/b"], "RUNNER_RUN_ID (for --run-id) 'a/b'"),
        (["RUNNER_ARTIFACT_STORE": "store\u{1}x"], "RUNNER_ARTIFACT_STORE (for --artifact-store) 'store\\u{01}x' has a control character"),
        (["RUNNER_ARTIFACT_STORE": "s3://"], "RUNNER_ARTIFACT_STORE=s3:// (for --artifact-store): artifact store bucket ''"),
    ])
    func aBadRunnerVariableIsNamedInTheError(environment: [String: String], message: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run([Self.pipeline, "--set", "params.size=8"], in: directory, environment: environment)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(files(below: directory).isEmpty)
    }
}
