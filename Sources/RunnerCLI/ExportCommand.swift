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
        abstract: "Write an Apache Airflow 3 DAG file: one task per stage, run with --only against an artifact store.")

    @OptionGroup var pipeline: PipelineOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("The DAG file to write, e.g. dags/poisson.py.", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("The artifact store the tasks share: a directory (made absolute) or s3://bucket/prefix (kept as it is).", valueName: "dir-or-uri"))
    var artifactStore: String

    @Option(help: "The runner executable on the Airflow workers; default: this runner's real path.")
    var runner: String?

    @Option(help: ArgumentHelp("The pipeline file's path on the Airflow workers; default: FILE made absolute.", valueName: "path"))
    var pipelinePath: String?

    @Option(help: ArgumentHelp("The DAG's schedule: a cron expression or a preset such as @daily; default: none (triggered runs only).", valueName: "schedule"))
    var schedule: String?

    @Option(help: ArgumentHelp("The owner in the DAG's default_args.", valueName: "name"))
    var owner: String = "airflow"

    @Option(help: "The DAG id; default: the pipeline's name.")
    var dagID: String?

    @Option(help: "The tasks' working directory; default: the current directory.")
    var workdir: String?

    func validate() throws {
        let values = [("--output", output), ("--artifact-store", artifactStore), ("--workdir", workdir ?? ""), ("--runner", runner ?? ""),
                      ("--pipeline-path", pipelinePath ?? ""), ("--schedule", schedule ?? ""), ("--owner", owner)]
        for (option, value) in values {
            if let offset = FilePaths.controlCharacterOffset(in: value) {
                throw ValidationError("\(option) '\(FilePaths.printable(value))' has a control character at offset \(offset); it cannot hold one")
            }
        }
        if let schedule, schedule.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--schedule is empty; leave it out for a DAG without a schedule")
        }
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

    func run() async throws {
        let plan = try pipeline.plan()
        // The tasks will open the store: one they would refuse is refused here, before
        // a DAG whose every task fails is written. Opening checks the location only.
        do {
            _ = try ArtifactStoreRegistry.builtin.open(artifactStore)
        } catch let error as ArtifactStoreError {
            FileHandle.standardError.write(Data("error: --artifact-store: \(Console.printable(error.message)); no DAG was written\n".utf8))
            throw ExitCode(RunnerMain.ExitStatus.invalid)
        }
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ path: String) -> String { FilePaths.absolute(path, relativeTo: cwd) }
        var extra: [String] = []
        for profile in pipeline.profiles { extra += ["--profile", profile] }
        for assignment in pipeline.overrides { extra += ["--set", assignment] }
        let dagID = dagID ?? plan.name
        guard !dagID.isEmpty, dagID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
            throw ValidationError("DAG id '\(FilePaths.printable(dagID))' must be letters, digits, '_', '.' or '-'; give one with --dag-id")
        }
        let executable = runner ?? Self.currentExecutable(relativeTo: cwd)
        let settings = AirflowExport.Settings(
            dagID: dagID, runner: executable, pipeline: pipelinePath ?? absolute(pipeline.file),
            artifactStore: ArtifactStoreRegistry.scheme(of: artifactStore) != nil ? artifactStore : absolute(artifactStore),
            workingDirectory: absolute(workdir ?? cwd), extraArguments: extra, schedule: schedule, owner: owner)
        let text = AirflowExport.render(plan, settings: settings)
        try AtomicFile.write(Array(text.utf8), to: output, overwrite: true)
        print(output)
    }
}
