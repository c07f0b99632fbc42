import ArgumentParser
import Foundation
import Framework
import Stages

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a pipeline to another orchestrator.",
        subcommands: [AirflowCommand.self])
}

struct AirflowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airflow",
        abstract: "Write an Apache Airflow 3 DAG file: one task per stage, run with --only against an artifact store.",
        discussion: """
            --operator bash (the default) runs the runner installed on the workers; docker runs each task in a \
            container of --image (Docker provider), kubernetes in a pod (cncf.kubernetes provider). In a container \
            the pipeline is read from /pipelines/FILE's name (the image bakes in the repository's pipelines/; mount \
            another there or give --pipeline-path) and relative paths land in /work. A directory artifact store must \
            be on a volume every task mounts (--mount), else each task's outputs vanish with its container; or use \
            s3://. Credentials are never written into the DAG: docker tasks get --pass-env variables from the \
            worker's environment when they start, pods get --secret Kubernetes Secrets.
            """)

    @OptionGroup var pipeline: PipelineOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("The DAG file to write, e.g. dags/poisson.py.", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("The artifact store the tasks share: a directory (made absolute) or s3://bucket/prefix (kept as it is).", valueName: "dir-or-uri"))
    var artifactStore: String

    @Option(name: .customLong("operator"), help: ArgumentHelp("How each task runs: bash (the runner on the workers), docker (a container per task) or kubernetes (a pod per task).", valueName: "operator"))
    var taskOperator: AirflowExport.Operator = .bash

    @Option(help: ArgumentHelp("The runner's container image (docker, kubernetes), e.g. registry.example.com/pipeline-runner:1.0.", valueName: "image"))
    var image: String?

    @Option(help: ArgumentHelp("When to pull the image: always, missing or never (docker: always or missing). Default: the engine's.", valueName: "policy"))
    var pull: AirflowExport.PullPolicy?

    @Option(help: ArgumentHelp("A volume for every task: HOST-DIR:PATH (docker, a bind mount) or CLAIM:PATH (kubernetes, a PersistentVolumeClaim); add :ro for read-only. Repeatable.", valueName: "source:path"))
    var mount: [String] = []

    @Option(name: .customLong("pass-env"), help: ArgumentHelp("A variable of the worker's environment each container gets when its task starts (docker). Repeatable; default: the AWS credential, region and endpoint variables, and those the pipeline reads with ${env.NAME}.", valueName: "name"))
    var passEnvironment: [String] = []

    @Option(help: ArgumentHelp("A Kubernetes Secret whose keys become every pod's environment (kubernetes). Repeatable.", valueName: "name"))
    var secret: [String] = []

    @Option(name: .customLong("env"), help: ArgumentHelp("A fixed variable for every container, written into the DAG: not for credentials. Repeatable.", valueName: "name=value"))
    var environment: [String] = []

    @Option(help: ArgumentHelp("The pods' Kubernetes namespace; default: the connection's.", valueName: "namespace"))
    var namespace: String?

    @Option(help: ArgumentHelp("The pods' Kubernetes service account (for credentials bound to it, such as IRSA).", valueName: "name"))
    var serviceAccount: String?

    @Option(help: ArgumentHelp("The Docker API the docker tasks use, e.g. unix:///run/podman/podman.sock; default: DOCKER_HOST on the worker.", valueName: "url"))
    var dockerURL: String?

    @Option(name: .customLong("docker-conn-id"), help: ArgumentHelp("The Airflow connection holding the registry's login (docker): the tasks log in with it before pulling the image.", valueName: "id"))
    var dockerConnection: String?

    @Option(help: ArgumentHelp("A Kubernetes Secret with the registry's login (type kubernetes.io/dockerconfigjson) to pull the image with (kubernetes). Repeatable.", valueName: "name"))
    var imagePullSecret: [String] = []

    @Option(name: .customLong("aws-conn-id"), help: ArgumentHelp(
        "The Airflow connection the tasks take their AWS key, secret, session token, region and endpoint from when they start "
            + "(never written into the DAG); '' for none. Default: aws_default when the pipeline has an s3 stage or an s3:// store.",
        valueName: "id"))
    var awsConnectionID: String?

    @Option(help: ArgumentHelp("The containers' network (docker network_mode), e.g. none or host.", valueName: "mode"))
    var network: String?

    @Option(help: ArgumentHelp("CPUs each task asks for (docker: CPU shares; kubernetes: a request).", valueName: "cpus"))
    var cpus: String?

    @Option(help: ArgumentHelp("Memory each pod requests (kubernetes): a size such as 512M; default: the plan's estimate for the stage.", valueName: "size"))
    var memory: String?

    @Option(help: ArgumentHelp("A hard memory limit for each task's container, such as 2G; default: none.", valueName: "size"))
    var memoryLimit: String?

    @Option(help: "The runner executable on the Airflow workers, or in the image; default: this runner's real path, or /usr/local/bin/runner in the image.")
    var runner: String?

    @Option(help: ArgumentHelp("The pipeline file's path on the Airflow workers; default: FILE made absolute.", valueName: "path"))
    var pipelinePath: String?

    @Option(help: ArgumentHelp("The DAG's schedule: a cron expression or a preset such as @daily; default: none (triggered runs only).", valueName: "schedule"))
    var schedule: String?

    @Option(help: ArgumentHelp("The owner in the DAG's default_args.", valueName: "name"))
    var owner: String = "airflow"

    @Option(help: "The DAG id; default: the pipeline's name.")
    var dagID: String?

    @Option(help: "The tasks' working directory; default: the current directory, or the image's (/work) in a container.")
    var workdir: String?

    func validate() throws {
        let values = [("--output", output), ("--artifact-store", artifactStore), ("--workdir", workdir ?? ""), ("--runner", runner ?? ""),
                      ("--pipeline-path", pipelinePath ?? ""), ("--schedule", schedule ?? ""), ("--owner", owner), ("--image", image ?? ""),
                      ("--docker-url", dockerURL ?? ""), ("--network", network ?? ""),
                      ("--docker-conn-id", dockerConnection ?? "")]
            + mount.map { ("--mount", $0) } + environment.map { ("--env", $0) }
        for (option, value) in values {
            if let offset = FilePaths.controlCharacterOffset(in: value) {
                throw ValidationError("\(option) '\(FilePaths.printable(value))' has a control character at offset \(offset); it cannot hold one")
            }
        }
        if let schedule, schedule.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--schedule is empty; leave it out for a DAG without a schedule")
        }
        if let schedule, let problem = AirflowExport.scheduleProblem(schedule) {
            throw ValidationError("--schedule '\(FilePaths.printable(schedule))' \(problem)")
        }
        try validateContainerOptions()
    }

    /// The container options: each only with the operators it means something to,
    /// every value checked before a DAG is written.
    func validateContainerOptions() throws {
        let given: [(option: String, used: Bool, operators: Set<AirflowExport.Operator>)] = [
            ("--image", image != nil, [.docker, .kubernetes]), ("--pull", pull != nil, [.docker, .kubernetes]),
            ("--mount", !mount.isEmpty, [.docker, .kubernetes]), ("--env", !environment.isEmpty, [.docker, .kubernetes]),
            ("--cpus", cpus != nil, [.docker, .kubernetes]), ("--memory-limit", memoryLimit != nil, [.docker, .kubernetes]),
            ("--pass-env", !passEnvironment.isEmpty, [.docker]), ("--docker-url", dockerURL != nil, [.docker]), ("--network", network != nil, [.docker]),
            ("--docker-conn-id", dockerConnection != nil, [.docker]), ("--image-pull-secret", !imagePullSecret.isEmpty, [.kubernetes]),
            ("--secret", !secret.isEmpty, [.kubernetes]), ("--namespace", namespace != nil, [.kubernetes]),
            ("--service-account", serviceAccount != nil, [.kubernetes]), ("--memory", memory != nil, [.kubernetes]),
        ]
        for option in given where option.used && !option.operators.contains(taskOperator) {
            switch taskOperator {
            case .bash:
                throw ValidationError("\(option.option) is for --operator docker or kubernetes; bash tasks run the runner installed on the workers")
            case .docker where option.option == "--memory":
                throw ValidationError("--memory is a Kubernetes request; for docker give --memory-limit")
            case .docker:
                throw ValidationError("\(option.option) is for --operator kubernetes")
            case .kubernetes where option.option == "--pass-env":
                throw ValidationError("--pass-env is for --operator docker: a pod does not see the worker's environment; "
                    + "put credentials in a Kubernetes Secret and give --secret NAME (or bind them to --service-account)")
            case .kubernetes:
                throw ValidationError("\(option.option) is for --operator docker")
            }
        }
        guard taskOperator != .bash else { return }
        guard let image, !image.isEmpty else {
            throw ValidationError("--operator \(taskOperator.rawValue) needs --image: the runner's image the tasks run, such as scripts/image builds")
        }
        if image.contains(where: { $0.isWhitespace }) {
            throw ValidationError("--image '\(FilePaths.printable(image))' has a space; an image reference cannot")
        }
        if taskOperator == .docker && pull == .never {
            throw ValidationError("--pull never is not something the Docker provider can do (it pulls a missing image); give always or missing")
        }
        var targets: Set<String> = []
        for text in mount {
            let parsed = try Self.parseMount(text, taskOperator: taskOperator)
            guard targets.insert(parsed.target).inserted else {
                throw ValidationError("--mount '\(FilePaths.printable(text))': \(parsed.target) is mounted twice")
            }
        }
        for name in passEnvironment {
            guard EnvironmentNames.isValid(name) else {
                throw ValidationError("--pass-env '\(FilePaths.printable(name))' is not a variable name (letters, digits and '_', not starting with a digit)")
            }
            if RunCommand.environmentOptions.contains(where: { $0.0 == name }) {
                throw ValidationError("--pass-env \(name): the DAG sets it for every task (from Airflow's run id, the store and dag_run.conf)")
            }
        }
        if let problem = Self.imageReferenceProblem(image) {
            throw ValidationError("--image '\(FilePaths.printable(image))' \(problem)")
        }
        if let dockerURL, !["unix://", "tcp://", "http://", "https://", "ssh://", "npipe://"].contains(where: { dockerURL.hasPrefix($0) && dockerURL.count > $0.count }) {
            throw ValidationError("--docker-url '\(FilePaths.printable(dockerURL))' is not a Docker API address: unix:///path/to.sock, tcp://host:port or ssh://user@host")
        }
        if let runner, !runner.hasPrefix("/") {
            throw ValidationError("--runner '\(FilePaths.printable(runner))' is a path in the image; give it absolute")
        }
        if let pipelinePath, !pipelinePath.hasPrefix("/") {
            throw ValidationError("--pipeline-path '\(FilePaths.printable(pipelinePath))' is a path in the image; give it absolute")
        }
        if taskOperator == .kubernetes, workdir != nil {
            throw ValidationError("--workdir is for --operator docker: a pod runs in the image's working directory (/work), where relative paths land")
        }
        for text in environment {
            let (name, value) = try Self.parseEnvironment(text)
            if EnvironmentNames.isCredential(name) || EnvironmentNames.holdsCredential(value) {
                throw ValidationError("--env \(name): it looks like a credential (its name, or a password in a URL), and --env values are written into the DAG; "
                    + (taskOperator == .docker ? "give --pass-env \(name) to hand it over from the worker's environment" : "put it in a Kubernetes Secret and give --secret NAME"))
            }
        }
        for (option, names) in [("--secret", secret), ("--image-pull-secret", imagePullSecret)] {
            for name in names where !KubernetesNames.isSubdomain(name) {
                throw ValidationError("\(option) '\(FilePaths.printable(name))' is not a Kubernetes name (lower-case letters, digits, '-' and '.')")
            }
        }
        if let dockerConnection, dockerConnection.isEmpty || dockerConnection.contains(where: { $0.isWhitespace }) {
            throw ValidationError("--docker-conn-id '\(FilePaths.printable(dockerConnection))' is not an Airflow connection id")
        }
        if let namespace, !KubernetesNames.isLabel(namespace) {
            throw ValidationError("--namespace '\(FilePaths.printable(namespace))' is not a Kubernetes namespace (at most 63 of a-z, 0-9 and '-')")
        }
        if let serviceAccount, !KubernetesNames.isSubdomain(serviceAccount) {
            throw ValidationError("--service-account '\(FilePaths.printable(serviceAccount))' is not a Kubernetes name (lower-case letters, digits, '-' and '.')")
        }
        if let cpus {
            // Docker takes CPU shares (cpus x 1024) from 2 to 262144; Kubernetes millicores.
            let range: ClosedRange<Double> = taskOperator == .docker ? 0.002...256 : 0.001...1024
            let decimal = !cpus.isEmpty && cpus.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") } && cpus.filter { $0 == "." }.count <= 1
            guard decimal, let value = Double(cpus), range.contains(value) else {
                throw ValidationError("--cpus must be a number from \(taskOperator == .docker ? "0.002" : "0.001") to \(Int(range.upperBound)) "
                    + "for \(taskOperator.rawValue), such as 0.5 or 2, got '\(FilePaths.printable(cpus))'")
            }
        }
        for (option, size) in [("--memory", memory), ("--memory-limit", memoryLimit)] {
            guard let size else { continue }
            guard let bytes = MemorySize.parse(size) else {
                throw ValidationError("\(option) must be a size from 32M to 1 EiB, such as 512M, 512Mi, 2G or 1073741824, got '\(FilePaths.printable(size))'")
            }
            if bytes < Self.smallestMemory {
                throw ValidationError("\(option) \(size) is less than the runner alone needs; give at least 32M")
            }
        }
        if let memory, let memoryLimit, let request = MemorySize.parse(memory), let limit = MemorySize.parse(memoryLimit), request > limit {
            throw ValidationError("--memory \(memory) is above --memory-limit \(memoryLimit); Kubernetes refuses a pod that requests more than its limit")
        }
        if let workdir, !workdir.hasPrefix("/") {
            throw ValidationError("--workdir '\(FilePaths.printable(workdir))' is a path in the container; give it absolute")
        }
    }

    /// The least memory a container may be given: the runner alone needs about 24 MiB.
    static let smallestMemory: Double = 32 * 1_048_576

    /// Why `reference` is not an image reference (`[host[:port]/]path[:tag][@digest]`,
    /// the path in lower case), or nil.
    static func imageReferenceProblem(_ reference: String) -> String? {
        var rest = Substring(reference)
        if let at = rest.firstIndex(of: "@") {
            let digest = rest[rest.index(after: at)...]
            let parts = digest.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].count >= 32, parts[1].allSatisfy(\.isHexDigit) else {
                return "has a digest that is not ALGORITHM:HEX (such as sha256:...)"
            }
            rest = rest[..<at]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard var last = components.popLast() else { return "is empty" }
        if let colon = last.lastIndex(of: ":") {
            let tag = last[last.index(after: colon)...]
            guard !tag.isEmpty, tag.count <= 128, tag.first != "." && tag.first != "-",
                  tag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
                return "has a tag that is not letters, digits, '_', '.' and '-' (at most 128)"
            }
            last = last[..<colon]
        }
        components.append(last)
        // A first component with a '.' or ':' (or localhost) is a registry host.
        if components.count > 1, let host = components.first, host.contains(".") || host.contains(":") || host == "localhost" {
            guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) }) else {
                return "has a registry host '\(host)' that is not a host name and port"
            }
            components.removeFirst()
        }
        for component in components {
            let valid = !component.isEmpty && component.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || "._-".contains($0)) }
                && component.first!.isASCII && (component.first!.isLowercase || component.first!.isNumber)
                && component.last!.isASCII && (component.last!.isLowercase || component.last!.isNumber)
            guard valid else { return "is not an image reference: its name is lower-case letters, digits and '.', '_' or '-' between them, such as registry.example.com/team/runner:1.0" }
        }
        return nil
    }

    /// `SOURCE:TARGET[:ro]`: a host directory (docker; made absolute) or a claim
    /// (kubernetes), and an absolute path in the container.
    static func parseMount(_ text: String, taskOperator: AirflowExport.Operator, cwd: String = "/") throws -> AirflowExport.Mount {
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var readOnly = false
        if parts.count == 3, parts[2] == "ro" || parts[2] == "rw" {
            readOnly = parts.removeLast() == "ro"
        }
        let form = taskOperator == .docker ? "HOST-DIR:PATH[:ro]" : "CLAIM:PATH[:ro]"
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ValidationError("--mount '\(FilePaths.printable(text))' is not \(form)")
        }
        guard parts[1].hasPrefix("/") else {
            throw ValidationError("--mount '\(FilePaths.printable(text))': the path in the container, '\(FilePaths.printable(parts[1]))', must be absolute")
        }
        let target = FilePaths.absolute(parts[1])
        if target == "/" {
            throw ValidationError("--mount '\(FilePaths.printable(text))' would hide the whole image; mount a directory such as /work or /data")
        }
        if taskOperator == .kubernetes {
            guard KubernetesNames.isSubdomain(parts[0]) else {
                throw ValidationError("--mount '\(FilePaths.printable(text))': '\(FilePaths.printable(parts[0]))' is not a PersistentVolumeClaim's name "
                    + "(lower-case letters, digits, '-' and '.')")
            }
            return AirflowExport.Mount(source: parts[0], target: target, readOnly: readOnly)
        }
        return AirflowExport.Mount(source: FilePaths.absolute(parts[0], relativeTo: cwd), target: target, readOnly: readOnly)
    }

    /// `NAME=VALUE`.
    static func parseEnvironment(_ text: String) throws -> (name: String, value: String) {
        guard let equals = text.firstIndex(of: "="), EnvironmentNames.isValid(String(text[..<equals])) else {
            throw ValidationError("--env '\(FilePaths.printable(text))' is not NAME=VALUE with a variable name (letters, digits and '_')")
        }
        let name = String(text[..<equals])
        if RunCommand.environmentOptions.contains(where: { $0.0 == name }) {
            throw ValidationError("--env \(name): the DAG sets it for every task (from Airflow's run id, the store and dag_run.conf)")
        }
        return (name, String(text[text.index(after: equals)...]))
    }

    /// The path of the running executable: argv[0] made absolute when it names a
    /// path, else (found through PATH) the file /proc/self/exe points at.
    static func currentExecutable(relativeTo cwd: String) -> String {
        let argument = CommandLine.arguments[0]
        if argument.contains("/") { return FilePaths.absolute(argument, relativeTo: cwd) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if count > 0 {
            return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return FilePaths.absolute(argument, relativeTo: cwd)
    }

    /// A plan's graph: its stages' ids, types, inputs and `after`s, in order.
    static func shape(of plan: Plan) -> [String] {
        plan.stages.map { stage in
            ([stage.id, stage.typeName] + stage.inputs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + ["after"] + stage.after)
                .joined(separator: "\u{0}")
        }
    }

    /// What the tasks of every item of a sweep (or of the one plan) need: the largest
    /// memory per task and the item it comes from, every variable read, every
    /// directory a sink writes (with the item's run-time {param}s filled) and whether
    /// any item uploads. A matrix may change each of them, but not the graph.
    struct TaskNeeds {
        var shape: [String]?
        var taskMemory: [String: Double] = [:]
        var memoryItem: [String: Matrix.Item] = [:]
        var environmentNames: [String] = []
        var sinks: [(stage: PlannedStage, path: String, item: Matrix.Item?)] = []
        var sinkKeys: Set<String> = []
        var usesS3 = false

        mutating func add(_ plan: Plan, ofItems items: Int) throws {
            let item = items > 1 ? plan.item : nil
            let planShape = AirflowCommand.shape(of: plan)
            if let shape, shape != planShape, let item {
                FileHandle.standardError.write(Data(("error: matrix item \(item.index) (\(Console.printable(item.label))) has another graph than item 0 "
                    + "(its stages, their types or their inputs differ), and an exported sweep maps one graph over its items: sweep values "
                    + "that keep the graph, or export the items as pipelines of their own; no DAG was written\n").utf8))
                throw ExitCode(RunnerMain.ExitStatus.invalid)
            }
            shape = shape ?? planShape
            for (id, bytes) in AirflowExport.taskMemory(plan) where bytes > taskMemory[id] ?? 0 {
                taskMemory[id] = bytes
                memoryItem[id] = item
            }
            for name in plan.environmentNames where !environmentNames.contains(name) { environmentNames.append(name) }
            for stage in plan.stages where stage.typeName == "filesystem" {
                guard let path = plan.accessParameters(of: stage).optionalString("path"),
                      sinkKeys.insert(stage.id + "\u{0}" + path).inserted else { continue }
                sinks.append((stage, path, item))
            }
            usesS3 = usesS3 || plan.stages.contains { $0.typeName == "s3" }
        }
    }

    /// The AWS variables a docker task gets by default: credentials, region, endpoint.
    static let awsVariables = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                               "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]

    func run() async throws {
        // A matrix: the items' graph, each stage a task mapped over the items. Every item's
        // needs count, not only the first's (the planner hands each item's plan over once).
        var needs = TaskNeeds()
        let sweep = try pipeline.sweep(check: { itemPlan, items in try needs.add(itemPlan, ofItems: items) })
        let plan = try sweep?.first ?? pipeline.plan()
        if sweep == nil { try needs.add(plan, ofItems: 1) }
        let (taskMemory, memoryItem, environmentNames, sinks, usesS3Stage) =
            (needs.taskMemory, needs.memoryItem, needs.environmentNames, needs.sinks, needs.usesS3)
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ path: String) -> String { FilePaths.absolute(path, relativeTo: cwd) }
        let inContainer = taskOperator != .bash
        let containerWorkdir = workdir ?? "/work"
        func refuse(_ message: String) -> ExitCode {
            FileHandle.standardError.write(Data("error: \(Console.printable(message)); no DAG was written\n".utf8))
            return ExitCode(RunnerMain.ExitStatus.invalid)
        }
        if FilePaths.sameFile(output, pipeline.file) {
            throw refuse("-o \(output) is the pipeline file itself; write the DAG somewhere else, such as dags/\(plan.name).py")
        }
        let scheme = ArtifactStoreRegistry.scheme(of: artifactStore)
        // The tasks will open the store: one they would refuse is refused here, before
        // a DAG whose every task fails is written. Opening checks the location only;
        // a directory in a container is checked against the volumes instead.
        if scheme != nil || !inContainer {
            do {
                _ = try ArtifactStoreRegistry.builtin.open(artifactStore)
            } catch let error as ArtifactStoreError {
                throw refuse("--artifact-store: \(error.message)")
            }
        }
        // A directory in a container is below its working directory when relative.
        var store = artifactStore
        var storeDirectory: String?
        if scheme == nil {
            store = inContainer ? FilePaths.absolute(artifactStore, relativeTo: containerWorkdir) : absolute(artifactStore)
            storeDirectory = store
        } else if scheme == "file" {
            storeDirectory = try? FileURI.path(of: artifactStore)
        }
        let mounts = try mount.map { try Self.parseMount($0, taskOperator: taskOperator, cwd: cwd) }
        if inContainer {
            // The volume that holds a path: the innermost mount above it.
            func volume(holding path: String) -> AirflowExport.Mount? {
                mounts.filter { FilePaths.isWithin(path, directory: $0.target) }.max { $0.target.count < $1.target.count }
            }
            let executable = runner ?? "/usr/local/bin/runner"
            if let hiding = mounts.first(where: { FilePaths.isWithin(executable, directory: $0.target) }) {
                throw refuse("--mount \(hiding.source):\(hiding.target) hides the runner (\(executable)) in the image; mount the volume elsewhere, such as /work or /data")
            }
            if let storeDirectory, volume(holding: storeDirectory).map({ !$0.readOnly }) != true {
                let example = taskOperator == .docker ? "--mount HOST-DIR:\(storeDirectory)" : "--mount CLAIM:\(storeDirectory) (a ReadWriteMany claim)"
                throw refuse("--artifact-store \(storeDirectory) is in the container and no writable --mount holds it: each task runs in a container "
                    + "of its own, so the next task would not find this one's outputs; give \(example), or an s3:// store")
            }
            // What a filesystem sink writes must outlive its container, too.
            for (stage, template, item) in sinks {
                guard let directory = try? FilesystemStage.fixedDirectory(of: template, relativeTo: containerWorkdir) else { continue }
                if volume(holding: directory).map({ !$0.readOnly }) != true {
                    throw refuse((item.map { "matrix item \($0.index) (\($0.label)): " } ?? "")
                        + "stage '\(stage.id)' writes \(template) (in \(directory) in the container), which no writable --mount holds: "
                        + "the file would vanish with its container; give --mount HOST-DIR:\(directory)"
                        + (taskOperator == .kubernetes ? " (CLAIM:\(directory) for pods)" : "") + ", or store it with an s3 stage")
                }
            }
        }
        var extra: [String] = []
        for profile in pipeline.profiles { extra += ["--profile", profile] }
        for assignment in pipeline.overrides { extra += ["--set", assignment] }
        let dagID = dagID ?? plan.name
        guard !dagID.isEmpty, dagID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
            throw ValidationError("DAG id '\(FilePaths.printable(dagID))' must be letters, digits, '_', '.' or '-'; give one with --dag-id")
        }
        guard dagID.count <= AirflowExport.maximumIDLength else {
            throw ValidationError("DAG id '\(dagID.prefix(40))...' has \(dagID.count) characters; Airflow's hold at most \(AirflowExport.maximumIDLength): give a shorter one with --dag-id")
        }
        if let problem = AirflowExport.problem(with: plan) {
            throw ValidationError(problem)
        }
        let executable = runner ?? (inContainer ? "/usr/local/bin/runner" : Self.currentExecutable(relativeTo: cwd))
        let pipelineFile = pipelinePath ?? (inContainer ? "/pipelines/" + FilePaths.split(absolute(pipeline.file)).name : absolute(pipeline.file))
        var container: AirflowExport.ContainerSettings?
        // What the pipeline file reads with ${env.NAME}: the tasks load it again, in the container.
        let references = environmentNames.filter { name in
            !Self.awsVariables.contains(name) && !RunCommand.environmentOptions.contains { $0.0 == name }
        }
        // AWS credentials from an Airflow connection, where Airflow users keep them.
        let usesS3 = scheme == "s3" || usesS3Stage
        let awsConnection = (awsConnectionID ?? (usesS3 ? "aws_default" : "")).isEmpty ? nil : (awsConnectionID ?? "aws_default")
        if let awsConnection, !awsConnection.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) {
            throw refuse("--aws-conn-id '\(awsConnection)' must be letters, digits, '_', '.' or '-'")
        }
        if inContainer, let image {
            var settings = AirflowExport.ContainerSettings(image: image, pullPolicy: pull, mounts: mounts)
            if taskOperator == .docker {
                // The connection gives the AWS variables; the worker's own are passed otherwise.
                settings.passEnvironment = passEnvironment.isEmpty ? (awsConnection == nil ? Self.awsVariables : []) + references : passEnvironment
            }
            settings.secrets = secret
            settings.environment = try environment.map { try Self.parseEnvironment($0) }
            settings.namespace = namespace
            settings.serviceAccount = serviceAccount
            settings.dockerURL = dockerURL
            settings.dockerConnection = dockerConnection
            settings.imagePullSecrets = imagePullSecret
            settings.network = network
            settings.workingDirectory = workdir
            settings.cpus = cpus.flatMap(Double.init)
            settings.memoryLimit = memoryLimit.flatMap(MemorySize.parse)
            for stage in plan.stages {
                guard let limit = settings.memoryLimit, let need = taskMemory[stage.id], need > limit else { continue }
                throw refuse((memoryItem[stage.id].map { "matrix item \($0.index) (\($0.label)): " } ?? "") + "stage '\(stage.id)' is estimated to need \(ByteCountFormatting.string(need)) in its task, above --memory-limit "
                    + "\(memoryLimit ?? ""): its container would be killed; raise the limit")
            }
            if taskOperator == .kubernetes {
                for stage in plan.stages {
                    // A tenth above the estimate: it counts the data, not the allocator's slack.
                    if var bytes = memory.flatMap(MemorySize.parse) ?? taskMemory[stage.id].map({ $0 * 1.1 }) {
                        // Never above the limit (the estimate is below it, checked above).
                        if let limit = settings.memoryLimit { bytes = min(bytes, limit) }
                        settings.memoryRequests[stage.id] = bytes
                    }
                }
            }
            container = settings
        }
        var settings = AirflowExport.Settings(
            dagID: dagID, runner: executable, pipeline: pipelineFile, artifactStore: store,
            workingDirectory: inContainer ? containerWorkdir : absolute(workdir ?? cwd), extraArguments: extra, schedule: schedule,
            owner: owner, taskOperator: taskOperator, container: container)
        settings.items = sweep?.count
        settings.awsConnectionID = awsConnection
        let dag = AirflowExport.render(plan, settings: settings)
        try AtomicFile.write(Array(dag.utf8), to: output, overwrite: true)
        let given = Set(environment.compactMap { try? Self.parseEnvironment($0).name })
        let missing = references.filter { !given.contains($0) }
        if taskOperator == .kubernetes, !missing.isEmpty {
            FileHandle.standardError.write(Data(("note: the pipeline reads \(missing.map { "${env.\($0)}" }.joined(separator: ", ")): "
                + "each pod needs \(missing.count == 1 ? "it" : "them") (a --secret holding \(missing.count == 1 ? "it" : "them"), "
                + "or --env NAME=VALUE)\n").utf8))
        }
        if inContainer && pipelinePath == nil {
            FileHandle.standardError.write(Data(("note: the tasks read the pipeline at \(Console.printable(pipelineFile)) in the image "
                + "(the Containerfile bakes in pipelines/); mount it there or give --pipeline-path\n").utf8))
        }
        if let sweep, sweep.count > 1024 {
            FileHandle.standardError.write(Data(("note: each task maps \(sweep.count) items; Airflow maps at most [core] max_map_length "
                + "(1024 unless configured): raise it (AIRFLOW__CORE__MAX_MAP_LENGTH) on the scheduler\n").utf8))
        }
        print(output)
    }
}

extension AirflowExport.Operator: ExpressibleByArgument {}
extension AirflowExport.PullPolicy: ExpressibleByArgument {}
