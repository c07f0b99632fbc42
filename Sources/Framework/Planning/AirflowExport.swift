import Foundation

/// A plan as an Apache Airflow 3 DAG file: one task per stage running `runner FILE
/// --only STAGE --no-stage-retries` against a shared artifact store, with the
/// pipeline's edges as task dependencies and each stage's `retries` and `timeout` as
/// the task's. A task is a BashOperator (the runner on the workers, given the run id
/// and store as options), a DockerOperator or a KubernetesPodOperator (the runner's
/// image, given them as RUNNER_RUN_ID, RUNNER_ARTIFACT_STORE and RUNNER_SEED).
///
/// The output depends only on its inputs (same plan and settings, same bytes).
/// Every fixed string Airflow would render (the `bash_command`, the containers'
/// arguments, the fixed environment values, paths) is wrapped in `literal()`, so
/// braces are not read as Jinja nor a `.yaml` or `.sh` ending as a template file;
/// the runner path (bash) or image (containers), artifact store and seed can be
/// overridden per run with `dag_run.conf` (`{"runner" or "image": ..., "artifact_store":
/// ..., "seed": ...}`), and their rendered values are not rendered again.
public enum AirflowExport {
    /// How each task runs its stage.
    public enum Operator: String, CaseIterable, Sendable {
        /// BashOperator: the runner installed on every worker.
        case bash
        /// DockerOperator (Docker provider): a container of the image per task, on
        /// the worker's Docker engine (or any engine with the Docker API, podman's too).
        case docker
        /// KubernetesPodOperator (cncf.kubernetes provider): a pod of the image per task.
        case kubernetes
    }

    /// When the container engine pulls the image (podman's words).
    public enum PullPolicy: String, CaseIterable, Sendable {
        case always, missing, never

        /// Kubernetes's name for it.
        var kubernetes: String {
            switch self {
            case .always: "Always"
            case .missing: "IfNotPresent"
            case .never: "Never"
            }
        }
    }

    /// A volume in each task's container: for `docker`, a directory of the Docker
    /// host bound at `target`; for `kubernetes`, a PersistentVolumeClaim mounted there.
    public struct Mount: Sendable, Hashable {
        public var source: String
        public var target: String
        public var readOnly: Bool

        public init(source: String, target: String, readOnly: Bool = false) {
            self.source = source
            self.target = target
            self.readOnly = readOnly
        }
    }

    /// What the `docker` and `kubernetes` operators need beyond the bash export's settings.
    public struct ContainerSettings: Sendable {
        /// The image every task runs, e.g. `registry.example.com/pipeline-runner:1.0`.
        public var image: String
        public var pullPolicy: PullPolicy?
        public var mounts: [Mount]
        /// Variables of the worker's environment handed to each container when its
        /// task starts (`docker`): their values are never written into the DAG.
        public var passEnvironment: [String]
        /// Kubernetes Secrets whose keys become each pod's environment variables.
        public var secrets: [String]
        /// Fixed variables for every task, written into the DAG (no credentials).
        public var environment: [(name: String, value: String)]
        /// Kubernetes namespace; `nil`: the connection's, else `default`.
        public var namespace: String?
        public var serviceAccount: String?
        /// The Docker API the `docker` tasks use (`unix:///run/podman/podman.sock`, ...);
        /// `nil`: DOCKER_HOST on the worker, else the Docker default.
        public var dockerURL: String?
        /// The Airflow connection with the registry's login (`docker`): the provider
        /// logs in with it before pulling.
        public var dockerConnection: String?
        /// Secrets of type kubernetes.io/dockerconfigjson the kubelet pulls the image with.
        public var imagePullSecrets: [String] = []
        /// The containers' network (`docker`'s network_mode), e.g. `none` or `host`.
        public var network: String?
        /// The working directory in the container; `nil`: the image's (/work).
        public var workingDirectory: String?
        /// CPUs each task asks for (`docker`: relative CPU shares; `kubernetes`: a request).
        public var cpus: Double?
        /// Memory each task asks for (`kubernetes` requests), by stage id: the
        /// export fills it from the plan's estimates unless one value is given for all.
        public var memoryRequests: [String: Double]
        /// A hard memory limit for every task's container, if any.
        public var memoryLimit: Double?

        public init(image: String, pullPolicy: PullPolicy? = nil, mounts: [Mount] = [], passEnvironment: [String] = [],
                    secrets: [String] = [], environment: [(name: String, value: String)] = [], namespace: String? = nil,
                    serviceAccount: String? = nil, dockerURL: String? = nil, network: String? = nil,
                    workingDirectory: String? = nil, cpus: Double? = nil, memoryRequests: [String: Double] = [:],
                    memoryLimit: Double? = nil) {
            self.image = image
            self.pullPolicy = pullPolicy
            self.mounts = mounts
            self.passEnvironment = passEnvironment
            self.secrets = secrets
            self.environment = environment
            self.namespace = namespace
            self.serviceAccount = serviceAccount
            self.dockerURL = dockerURL
            self.network = network
            self.workingDirectory = workingDirectory
            self.cpus = cpus
            self.memoryRequests = memoryRequests
            self.memoryLimit = memoryLimit
        }
    }

    public struct Settings: Sendable {
        public var dagID: String
        /// Absolute path of the runner executable on the Airflow workers, or in the image.
        public var runner: String
        /// Absolute path of the pipeline file on the Airflow workers, or in the image.
        public var pipeline: String
        /// An absolute directory, or a URI such as `s3://bucket/prefix`, as given.
        public var artifactStore: String
        /// Working directory of the bash tasks (relative output paths land there).
        public var workingDirectory: String
        /// Extra runner arguments, e.g. `--profile s3` or `--set ...`, given to every task.
        public var extraArguments: [String]
        /// The DAG's `schedule` (a cron expression, `@daily`, ...); `nil` writes
        /// `schedule=None`: runs are triggered.
        public var schedule: String?
        /// The `owner` in the DAG's `default_args`.
        public var owner: String
        /// Who wrote the file, for the header and `doc_md` (e.g. "runner 0.11.0").
        public var generator: String
        public var taskOperator: Operator
        /// For `docker` and `kubernetes`.
        public var container: ContainerSettings?
        /// A sweep's item count (its matrix): each stage is one task mapped over the
        /// items (a task group mapped over them), item K running `--item K`.
        public var items: Int?
        /// The Airflow connection the tasks take their AWS credentials, region and
        /// endpoint from, through templates rendered when each task starts: nothing
        /// secret is in the DAG, and Airflow masks the connection's secrets in its logs.
        public var awsConnectionID: String?

        public init(dagID: String, runner: String, pipeline: String, artifactStore: String, workingDirectory: String,
                    extraArguments: [String] = [], schedule: String? = nil, owner: String = "airflow",
                    generator: String = "runner \(RunnerVersion.current)", taskOperator: Operator = .bash,
                    container: ContainerSettings? = nil) {
            self.dagID = dagID
            self.runner = runner
            self.pipeline = pipeline
            self.artifactStore = artifactStore
            self.workingDirectory = workingDirectory
            self.extraArguments = extraArguments
            self.schedule = schedule
            self.owner = owner
            self.generator = generator
            self.taskOperator = taskOperator
            self.container = container
        }
    }

    /// Airflow task ids must match `^[\w.-]+$`; stage ids already do.
    static func taskID(_ stage: String) -> String {
        String(stage.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" ? $0 : "_" })
    }

    /// A Python string literal.
    static func python(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\x%02x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    /// A shell word, single-quoted.
    static func shell(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// What the DAG's `doc_md` says. It never ends in `.md`, which Airflow would
    /// read as the name of a file.
    static func documentation(_ plan: Plan, settings: Settings) -> String {
        let place = switch settings.taskOperator {
        case .bash: ""
        case .docker: ", each in a container of \(settings.container?.image ?? "")"
        case .kubernetes: ", each in a pod of \(settings.container?.image ?? "")"
        }
        return "Pipeline '\(plan.name)' (\(settings.pipeline)), one task per stage\(place): \(plan.stages.map(\.id).joined(separator: ", ")). "
            + "Exported by \(settings.generator) with `runner export airflow`.\n"
    }

    public static func render(_ plan: Plan, settings: Settings) -> String {
        let container = settings.container ?? ContainerSettings(image: "")
        var lines: [String] = [
            "# Generated by `runner export airflow` (\(settings.generator)) from \(FilePaths.printable(plan.file)); do not edit, export again.",
        ]
        switch settings.taskOperator {
        case .bash:
            lines += [
                "# Each task runs one stage: runner FILE --only STAGE --no-stage-retries --run-id <run id> --artifact-store DIR.",
                "# Override per run with dag_run.conf: {\"runner\": ..., \"artifact_store\": ..., \"seed\": ...}.",
                "import datetime",
                "",
                "from airflow.providers.standard.operators.bash import BashOperator",
                "from airflow.sdk import DAG, literal",
                "",
                "RUNNER = \(python(settings.runner))",
                "PIPELINE = \(python(settings.pipeline))",
                "ARTIFACT_STORE = \(python(settings.artifactStore))",
                "WORKDIR = \(python(settings.workingDirectory))",
                "",
                "ENV = {",
                "    \"PIPELINE_RUNNER\": \"{{ dag_run.conf.get('runner') or params.runner }}\",",
                "    \"PIPELINE_STORE\": \"{{ dag_run.conf.get('artifact_store') or params.artifact_store }}\",",
                "    \"PIPELINE_SEED\": \"{{ dag_run.conf.get('seed', '') }}\",",
                "    \"PIPELINE_RUN_ID\": \"{{ run_id }}\",",
                "    \"PIPELINE_FILE\": literal(PIPELINE),",
            ] + awsConnectionEnvironment(settings) + [
                "}",
            ]
        case .docker, .kubernetes:
            let docker = settings.taskOperator == .docker
            lines += [
                "# Each task runs one stage in a \(docker ? "container" : "pod") of IMAGE: RUNNER PIPELINE --only STAGE --no-stage-retries,",
                "# with RUNNER_RUN_ID (Airflow's run id), RUNNER_ARTIFACT_STORE and RUNNER_SEED in its environment.",
                "# Override per run with dag_run.conf: {\"image\": ..., \"artifact_store\": ..., \"seed\": ...}.",
                "import datetime",
            ]
            if docker {
                if !container.passEnvironment.isEmpty { lines.append("import os") }
                lines += [
                    "",
                    "from airflow.providers.docker.operators.docker import DockerOperator",
                    "from airflow.sdk import DAG, literal",
                    "from docker.types import Mount",
                ]
            } else {
                lines += [
                    "",
                    "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
                    "from airflow.sdk import DAG, literal",
                    "from kubernetes.client import models as k8s",
                ]
            }
            lines += [
                "",
                "IMAGE = \(python(container.image))",
                "RUNNER = \(python(settings.runner))",
                "PIPELINE = \(python(settings.pipeline))",
                "ARTIFACT_STORE = \(python(settings.artifactStore))",
                "ARGUMENTS = [\(settings.extraArguments.map(python).joined(separator: ", "))]",
            ]
            if docker {
                lines.append("MOUNTS = [")
                for mount in container.mounts {
                    lines.append("    Mount(target=literal(\(python(mount.target))), source=literal(\(python(mount.source))), "
                                 + "type=\"bind\", read_only=\(mount.readOnly ? "True" : "False")),")
                }
                lines.append("]")
                if !container.passEnvironment.isEmpty {
                    lines += [
                        "# Variables of the worker's environment each container gets when its task starts",
                        "# (credentials among them): their values are never written into this file.",
                        "PASS_ENV = [\(container.passEnvironment.map(python).joined(separator: ", "))]",
                        "",
                        "",
                        "def passed_environment():",
                        "    return {name: os.environ[name] for name in PASS_ENV if name in os.environ}",
                        "",
                    ]
                }
            } else {
                lines.append("VOLUMES = [")
                for (index, mount) in container.mounts.enumerated() {
                    lines.append("    k8s.V1Volume(name=\"volume-\(index)\", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource("
                                 + "claim_name=literal(\(python(mount.source))), read_only=\(mount.readOnly ? "True" : "False"))),")
                }
                lines += ["]", "VOLUME_MOUNTS = ["]
                for (index, mount) in container.mounts.enumerated() {
                    lines.append("    k8s.V1VolumeMount(name=\"volume-\(index)\", mount_path=\(python(mount.target)), read_only=\(mount.readOnly ? "True" : "False")),")
                }
                lines += ["]", "# Each Secret's keys become environment variables of every pod.", "ENV_FROM = ["]
                for secret in container.secrets {
                    lines.append("    k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=\(python(secret)))),")
                }
                lines.append("]")
            }
            lines += [
                "",
                "ENV = {",
                "    \"RUNNER_RUN_ID\": \"{{ run_id }}\",",
                "    \"RUNNER_ARTIFACT_STORE\": \"{{ dag_run.conf.get('artifact_store') or params.artifact_store }}\",",
                "    \"RUNNER_SEED\": \"{{ dag_run.conf.get('seed', '') }}\",",
            ]
            lines += container.environment.map { "    \(python($0.name)): literal(\(python($0.value)))," }
            lines += awsConnectionEnvironment(settings)
            lines.append("}")
        }
        let params = settings.taskOperator == .bash ? "{\"runner\": RUNNER, \"artifact_store\": ARTIFACT_STORE}"
            : "{\"image\": IMAGE, \"artifact_store\": ARTIFACT_STORE}"
        let header: [String?] = [
            "",
            "with DAG(",
            "    dag_id=\(python(settings.dagID)),",
            "    schedule=\(settings.schedule.map(python) ?? "None"),",
            "    default_args={\"owner\": \(python(settings.owner)), \"retries\": 0},",
            "    doc_md=\(python(documentation(plan, settings: settings))),",
            "    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),",
            "    catchup=False,",
            settings.schedule == "@continuous" ? "    max_active_runs=1," : nil,
            "    params=\(params),",
            "    tags=[\"pipeline-framework\"],",
            ") as dag:",
        ]
        lines += header.compactMap { $0 }
        if settings.items != nil, let at = lines.firstIndex(of: "from airflow.sdk import DAG, literal") {
            lines[at] = "from airflow.sdk import DAG, literal, task_group"
        }
        let variables = variableNames(plan)
        // A sweep: the stages of one item form a task group mapped over the items, so
        // that each item's tasks wait for that item's upstream tasks only (a failed item
        // leaves the others running, as in a sweep run in one process). Every stage is
        // still one mapped task; an item's number is all that differs, in the
        // environment each instance gets.
        let indent = settings.items == nil ? "    " : "        "
        let itemVariable = settings.taskOperator == .bash ? "PIPELINE_ITEM" : "RUNNER_ITEM"
        if let items = settings.items {
            lines += [
                "    # Item K of the matrix runs as the run RUN_ID.K (Airflow's run id, a dot, K).",
                "    ITEMS = [str(item) for item in range(\(items))]",
                "",
                "    @task_group(group_id=\(python(Self.itemGroup)))",
                "    def items(item):",
            ]
        }
        // Each operator's environment argument: the item's in a sweep.
        let environmentArgument = switch settings.taskOperator {
        case .bash: "env"
        case .docker: "environment"
        case .kubernetes: "env_vars"
        }
        for stage in plan.stages {
            let (operatorName, arguments) = switch settings.taskOperator {
            case .bash: ("BashOperator", bashArguments(stage, settings: settings))
            case .docker: ("DockerOperator", dockerArguments(stage, settings: settings, container: container))
            case .kubernetes: ("KubernetesPodOperator", kubernetesArguments(stage, settings: settings, container: container))
            }
            let given = settings.items == nil ? arguments
                : arguments.map { $0 == "\(environmentArgument)=ENV" ? "\(environmentArgument)=dict(ENV, \(itemVariable)=item)" : $0 }
            lines.append("\(indent)\(variables[stage.id]!) = \(operatorName)(")
            lines += (given + policyArguments(stage)).map { "\(indent)    \($0)," }
            lines.append("\(indent))")
        }
        lines.append("")
        for stage in plan.stages {
            for dependency in stage.dependencies {
                lines.append("\(indent)\(variables[dependency]!) >> \(variables[stage.id]!)")
            }
        }
        if settings.items != nil {
            lines += ["", "    items.expand(item=ITEMS)"]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The AWS variables from `settings.awsConnectionID`'s connection, as templates the
    /// task renders when it starts; empty when the connection does not give one, or
    /// does not exist (an empty value counts as unset for the runner). A bash task gets
    /// them as `PIPELINE_AWS_*`, and its command prefers them to the worker's own
    /// (`awsFromConnection`); a container gets them as they are.
    static func awsConnectionEnvironment(_ settings: Settings) -> [String] {
        guard let id = settings.awsConnectionID else { return [] }
        let prefix = settings.taskOperator == .bash ? "PIPELINE_" : ""
        // The id is letters, digits, '_', '.' and '-' (checked): safe in a Jinja string.
        func value(_ expression: String) -> String {
            python("{% set c = conn.get('\(id)') %}{{ ((\(expression)) or '') if c else '' }}")
        }
        return ["    # From the Airflow connection \(python(id)) when the task starts: nothing secret in this file."]
            + awsConnectionFields.map { name, expression in "    \(python(prefix + name)): \(value(expression)),"  }
    }

    /// Each AWS variable and where the connection keeps it.
    static let awsConnectionFields: [(String, String)] = [
        ("AWS_ACCESS_KEY_ID", "c.login"), ("AWS_SECRET_ACCESS_KEY", "c.password"),
        ("AWS_SESSION_TOKEN", "c.extra_dejson.get('aws_session_token')"), ("AWS_REGION", "c.extra_dejson.get('region_name')"),
        ("AWS_ENDPOINT_URL", "c.extra_dejson.get('endpoint_url')"),
    ]

    /// A bash task's first commands with a connection: the connection's key, secret and
    /// token together when it has a key, else the worker's own; its region and endpoint
    /// each when it has one, else the worker's.
    static let awsFromConnection = "if [ -n \"$PIPELINE_AWS_ACCESS_KEY_ID\" ]; then export AWS_ACCESS_KEY_ID=\"$PIPELINE_AWS_ACCESS_KEY_ID\" "
        + "AWS_SECRET_ACCESS_KEY=\"$PIPELINE_AWS_SECRET_ACCESS_KEY\" AWS_SESSION_TOKEN=\"$PIPELINE_AWS_SESSION_TOKEN\"; fi; "
        + "export AWS_REGION=\"${PIPELINE_AWS_REGION:-${AWS_REGION:-}}\" AWS_ENDPOINT_URL=\"${PIPELINE_AWS_ENDPOINT_URL:-${AWS_ENDPOINT_URL:-}}\"; "

    /// Airflow retries the task (retries, retry_delay), so the runner does not retry
    /// the stage within it: one attempt per try, and the stage's timeout is each
    /// try's execution_timeout.
    static func policyArguments(_ stage: PlannedStage) -> [String] {
        var arguments = [
            "retries=\(stage.retry.count)",
            "retry_delay=datetime.timedelta(milliseconds=\(Int(stage.retry.delay.seconds * 1000)))",
        ]
        if stage.retry.count > 0 && stage.retry.factor > 1 {
            arguments.append("retry_exponential_backoff=True")
            arguments.append("max_retry_delay=datetime.timedelta(milliseconds=\(Int(stage.retry.maxDelay.seconds * 1000)))")
        }
        if let timeout = stage.timeout {
            arguments.append("execution_timeout=datetime.timedelta(milliseconds=\(Int(timeout.seconds * 1000)))")
        }
        return arguments
    }

    static func bashArguments(_ stage: PlannedStage, settings: Settings) -> [String] {
        let extra = settings.extraArguments.map(shell).joined(separator: " ")
        let command = (settings.awsConnectionID != nil ? awsFromConnection : "")
            + "\"$PIPELINE_RUNNER\" \"$PIPELINE_FILE\" --only \(shell(stage.id)) --no-stage-retries --run-id \"$PIPELINE_RUN_ID\" "
            + "--artifact-store \"$PIPELINE_STORE\" ${PIPELINE_SEED:+--seed \"$PIPELINE_SEED\"}"
            + (settings.items != nil ? " --item \"$PIPELINE_ITEM\"" : "") + (extra.isEmpty ? "" : " " + extra)
        return [
            "task_id=\(python(taskID(stage.id)))",
            "bash_command=literal(\(python(command)))",
            "env=ENV",
            "append_env=True",
            "cwd=literal(WORKDIR)",
            "skip_on_exit_code=None",
        ]
    }

    /// The runner's arguments in a container: fixed strings, kept from Jinja (and
    /// from being read as template files, as a `.yaml` or `.sh` ending would be).
    static func containerCommand(_ stage: PlannedStage) -> String {
        "literal([PIPELINE, \"--only\", \(python(stage.id)), \"--no-stage-retries\", *ARGUMENTS])"
    }

    static func dockerArguments(_ stage: PlannedStage, settings: Settings, container: ContainerSettings) -> [String] {
        var arguments = [
            "task_id=\(python(taskID(stage.id)))",
            "image=\"{{ dag_run.conf.get('image') or params.image }}\"",
            "entrypoint=[RUNNER]",
            "command=\(containerCommand(stage))",
            "environment=ENV",
        ]
        if !container.passEnvironment.isEmpty { arguments.append("private_environment=passed_environment()") }
        if let url = container.dockerURL { arguments.append("docker_url=\(python(url))") }
        if let connection = container.dockerConnection { arguments.append("docker_conn_id=literal(\(python(connection)))") }
        arguments += [
            "mounts=MOUNTS",
            // The provider's own temporary directory mount is not needed: TMPDIR is the container's.
            "mount_tmp_dir=False",
            // The task's log has the container's output; no stopped container stays behind.
            "auto_remove=\"force\"",
            // Nothing for XCom: outputs go through the artifact store.
            "do_xcom_push=False",
            "force_pull=\(container.pullPolicy == .always ? "True" : "False")",
        ]
        if let network = container.network { arguments.append("network_mode=\(python(network))") }
        if let workdir = container.workingDirectory { arguments.append("working_dir=\(python(workdir))") }
        if let cpus = container.cpus { arguments.append("cpus=\(decimal(cpus))") }
        if let limit = container.memoryLimit { arguments.append("mem_limit=\(Int(limit.rounded(.up)))") }
        arguments.append("skip_on_exit_code=None")
        return arguments
    }

    static func kubernetesArguments(_ stage: PlannedStage, settings: Settings, container: ContainerSettings) -> [String] {
        var arguments = [
            "task_id=\(python(taskID(stage.id)))",
            "name=\(python(podName(dagID: settings.dagID, stage: stage.id)))",
        ]
        if let namespace = container.namespace { arguments.append("namespace=\(python(namespace))") }
        arguments += [
            "image=\"{{ dag_run.conf.get('image') or params.image }}\"",
        ]
        if let policy = container.pullPolicy { arguments.append("image_pull_policy=\(python(policy.kubernetes))") }
        if !container.imagePullSecrets.isEmpty {
            let references = container.imagePullSecrets.map { "k8s.V1LocalObjectReference(name=\(python($0)))" }
            arguments.append("image_pull_secrets=[\(references.joined(separator: ", "))]")
        }
        arguments += [
            "cmds=literal([RUNNER])",
            "arguments=\(containerCommand(stage))",
            "env_vars=ENV",
            "env_from=ENV_FROM",
            "volumes=VOLUMES",
            "volume_mounts=VOLUME_MOUNTS",
        ]
        if let account = container.serviceAccount { arguments.append("service_account_name=\(python(account))") }
        var requests: [String] = []
        if let cpus = container.cpus { requests.append("\"cpu\": \(python(kubernetesCPU(cpus)))") }
        if let memory = container.memoryRequests[stage.id] { requests.append("\"memory\": \(python(kubernetesMemory(memory)))") }
        let limits = container.memoryLimit.map { "{\"memory\": \(python(kubernetesMemory($0)))}" } ?? "None"
        if !requests.isEmpty || container.memoryLimit != nil {
            arguments.append("container_resources=k8s.V1ResourceRequirements(requests={\(requests.joined(separator: ", "))}, limits=\(limits))")
        }
        // The image's user (uid and gid 10001), never root; volumes are made writable for its group.
        arguments.append("security_context=k8s.V1PodSecurityContext(run_as_non_root=True, fs_group=10001)")
        arguments.append("container_security_context=k8s.V1SecurityContext(allow_privilege_escalation=False)")
        arguments += [
            "get_logs=True",
            "on_finish_action=\"delete_pod\"",
            "skip_on_exit_code=None",
        ]
        return arguments
    }

    /// A pod name: a DNS label made of the DAG id and the stage id (Airflow adds a
    /// random suffix).
    static func podName(dagID: String, stage: String) -> String {
        let raw = (dagID + "-" + stage).lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" }
        var name = String(raw.prefix(50))
        while name.hasSuffix("-") { name.removeLast() }
        while name.hasPrefix("-") { name.removeFirst() }
        return name.isEmpty ? "stage" : name
    }

    /// Memory as a Kubernetes quantity, in whole MiB rounded up.
    static func kubernetesMemory(_ bytes: Double) -> String {
        "\(Int((bytes / 1_048_576).rounded(.up)))Mi"
    }

    /// CPUs as a Kubernetes quantity, in whole millicores rounded up.
    static func kubernetesCPU(_ cpus: Double) -> String {
        let millis = Int((cpus * 1000).rounded(.up))
        return millis % 1000 == 0 ? "\(millis / 1000)" : "\(millis)m"
    }

    static func decimal(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) + ".0" : String(value)
    }

    /// The memory a task running each stage alone holds, at its peak: the runner's own,
    /// and for each input and for its output twice its full size (a grid at its
    /// element type's width, as the store writes it): a task reads each input from the
    /// artifact store (the stored bytes and the artifact both held for a moment) and
    /// writes its output there (the artifact and its encoded bytes). For the reference
    /// job's `--only` tasks at 2048 and 8192 square it is 4-41% above the measured
    /// peak (the request adds a tenth). No value for a stage whose output or an
    /// input's size cannot be known before the run. One layout of the plan serves all.
    public static func taskMemory(_ plan: Plan) -> [String: Double] {
        let whole = StreamingLayout.whole(plan)
        var memory: [String: Double] = [:]
        stages: for stage in plan.stages {
            var bytes = StreamingLayout.baseBytes
            for member in [stage.id] + stage.inputs.values.sorted() {
                guard !whole.unknownSizes.contains(member) else { continue stages }
                // A stage with nothing to hold (a sink's StoredObject) counts for nothing.
                guard let estimate = whole.estimates[member] else { continue }
                if let width = estimate.width, let height = estimate.height, let type = estimate.elementType {
                    bytes += 2 * Double(width) * Double(height) * Double(type.byteWidth)
                } else {
                    bytes += 2 * estimate.byteCount
                }
            }
            memory[stage.id] = bytes
        }
        return memory
    }

    /// A Python variable for each stage's task: `task_` and the id with `-` as `_`,
    /// numbered when two ids would give the same name (`a-b` and `a_b`).
    static func variableNames(_ plan: Plan) -> [String: String] {
        var names: [String: String] = [:]
        var taken: Set<String> = []
        for stage in plan.stages {
            let base = "task_" + String(stage.id.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
            var name = base
            var number = 2
            while taken.contains(name) {
                name = "\(base)_\(number)"
                number += 1
            }
            taken.insert(name)
            names[stage.id] = name
        }
        return names
    }

    /// Airflow's longest DAG or task id.
    public static let maximumIDLength = 250
    /// The task group of a sweep's items: its tasks' ids are `items.STAGE`.
    static let itemGroup = "items"

    /// Why the plan cannot become a DAG, or nil: a stage id too long for a task id.
    public static func problem(with plan: Plan) -> String? {
        for stage in plan.stages where taskID(stage.id).count > maximumIDLength - itemGroup.count - 1 {
            return "stage '\(stage.id.prefix(40))...' has an id of \(stage.id.count) characters; Airflow's task ids hold at most \(maximumIDLength) characters, and those of a sweep's start with '\(itemGroup).'"
        }
        return nil
    }

    /// Why `schedule` is not one Airflow takes, or nil: a preset (`@daily`, ...) or a
    /// cron expression of five fields (minute, hour, day of month, month, day of
    /// week), each `*`, `?`, numbers or names in range, ranges, steps and lists.
    public static func scheduleProblem(_ schedule: String) -> String? {
        let presets = ["@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"]
        if schedule.hasPrefix("@") {
            return presets.contains(schedule) ? nil : "is not a preset Airflow knows (\(presets.joined(separator: ", ")))"
        }
        let fields = schedule.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 5 else {
            return "has \(fields.count) field\(fields.count == 1 ? "" : "s"); a cron expression has 5: minute hour day-of-month month day-of-week"
        }
        let months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        let days = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
        let specs: [(name: String, range: ClosedRange<Int>, names: [String], offset: Int)] = [
            ("minute", 0...59, [], 0), ("hour", 0...23, [], 0), ("day of month", 1...31, [], 0),
            ("month", 1...12, months, 1), ("day of week", 0...7, days, 0),
        ]
        for (field, spec) in zip(fields, specs) {
            func value(_ text: Substring) -> Int? {
                if let number = Int(text), spec.range.contains(number) { return number }
                return spec.names.firstIndex(of: text.uppercased()).map { $0 + spec.offset }
            }
            for item in field.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = item.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count <= 2 else { return "has '\(item)' in its \(spec.name) field" }
                if parts.count == 2 {
                    guard let step = Int(parts[1]), step > 0, step <= spec.range.upperBound else {
                        return "has the step '\(parts[1])' in its \(spec.name) field; a step is a whole number from 1 to \(spec.range.upperBound)"
                    }
                }
                let base = parts[0]
                if base == "*" || (base == "?" && (spec.name == "day of month" || spec.name == "day of week")) { continue }
                let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, let low = value(bounds[0]), bounds.count == 1 || value(bounds[1]).map({ $0 >= low }) == true else {
                    return "has '\(item)' in its \(spec.name) field (\(spec.range.lowerBound)-\(spec.range.upperBound)"
                        + (spec.names.isEmpty ? "" : " or \(spec.names.first!)-\(spec.names.last!)") + ")"
                }
            }
        }
        return nil
    }
}
