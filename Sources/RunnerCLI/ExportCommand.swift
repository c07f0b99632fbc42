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

    @Option(help: "The artifact store directory the tasks share (absolute, or made absolute).")
    var artifactStore: String

    @Option(help: "The runner executable on the Airflow workers; default: this runner.")
    var runner: String?

    @Option(help: "The DAG id; default: the pipeline's name.")
    var dagID: String?

    @Option(help: "The tasks' working directory; default: the current directory.")
    var workdir: String?

    func validate() throws {
        for (option, value) in [("--output", output), ("--artifact-store", artifactStore), ("--workdir", workdir ?? "")] {
            if let offset = FilePaths.controlCharacterOffset(in: value) {
                throw ValidationError("\(option) '\(FilePaths.printable(value))' has a control character at offset \(offset); paths cannot hold one")
            }
        }
    }

    func run() async throws {
        let plan = try pipeline.plan()
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ path: String) -> String { FilePaths.absolute(path, relativeTo: cwd) }
        var extra: [String] = []
        for profile in pipeline.profiles { extra += ["--profile", profile] }
        for assignment in pipeline.overrides { extra += ["--set", assignment] }
        let dagID = dagID ?? plan.name
        guard !dagID.isEmpty, dagID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
            throw ValidationError("DAG id '\(dagID)' must be letters, digits, '_', '.' or '-'; give one with --dag-id")
        }
        let executable = runner ?? absolute(CommandLine.arguments[0].contains("/") ? CommandLine.arguments[0] : "runner")
        let settings = AirflowExport.Settings(
            dagID: dagID, runner: executable, pipeline: absolute(pipeline.file), artifactStore: absolute(artifactStore),
            workingDirectory: absolute(workdir ?? cwd), extraArguments: extra)
        let text = AirflowExport.render(plan, settings: settings)
        try AtomicFile.write(Array(text.utf8), to: output, overwrite: true)
        print(output)
    }
}
