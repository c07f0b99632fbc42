import ArgumentParser
import Foundation
import Framework
import Stages

/// The `runner` command line, as a library: a package that adds its own stage types
/// builds its own runner with `await RunnerMain.main(registry: myRegistry)`.
///
/// Exit codes: 0 success; 1 a stage failed; 2 invalid pipeline or usage; 130 and 143
/// when interrupted by SIGINT or SIGTERM.
public enum RunnerMain {
    public enum ExitStatus {
        public static let success: Int32 = 0
        public static let stageFailed: Int32 = 1
        public static let invalid: Int32 = 2
    }

    /// Parses `arguments` (default: the process's), runs the command with `registry`
    /// (default: the built-in stages) and exits.
    ///
    /// As a process's entry point it owns the process's signals: SIGINT and SIGTERM
    /// are handled from the first instruction (see `SignalWatcher`), and no child
    /// process outlives it.
    public static func main(registry custom: StageRegistry? = nil, arguments: [String]? = nil) async -> Never {
        SignalWatcher.shared.install()
        let registry: StageRegistry
        do {
            registry = try custom ?? BuiltinStages.registry()
        } catch {
            FileHandle.standardError.write(Data("runner: \(Console.printable(ErrorDescription.readable(error)))\n".utf8))
            exit(ExitStatus.invalid)
        }
        let code = await run(registry: registry, arguments: arguments ?? Array(CommandLine.arguments.dropFirst()))
        Cleanup.killOrphans()
        exit(code)
    }

    /// Runs one command and returns its exit code instead of exiting.
    public static func run(registry: StageRegistry, arguments: [String]) async -> Int32 {
        if arguments == ["--version"] {
            print(VersionReport.text(), terminator: "")
            return ExitStatus.success
        }
        // Known before parsing, so that even a message about the arguments is JSON.
        let json = wantsJSON(arguments)
        SignalWatcher.shared.jsonMessages = json
        do {
            var command = try RunnerCommand.parseAsRoot(arguments)
            try await RunnerContext.$registry.withValue(registry) {
                try await RunnerContext.$arguments.withValue(arguments) {
                    if var asyncCommand = command as? any AsyncParsableCommand {
                        try await asyncCommand.run()
                    } else {
                        try command.run()
                    }
                }
            }
            return ExitStatus.success
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch {
            let code = RunnerCommand.exitCode(for: error)
            let message = RunnerCommand.fullMessage(for: error)
            if code == .success {
                print(message)
                return ExitStatus.success
            }
            // The message may quote what was typed (an unknown option, a bad value):
            // escape control characters before they reach the terminal. Errors start
            // with "error:", as everywhere else, and say what is wrong without the
            // whole usage text (`runner --help` has it).
            let short = RunnerCommand.message(for: error)
            if json {
                Console(format: .json, level: .info).log(.error, short, ["event": .string("usage_error")])
            } else if !short.isEmpty {
                FileHandle.standardError.write(Data("error: \(Console.printable(short))\n  help: runner --help lists the commands and options\n".utf8))
            } else if !message.isEmpty {
                FileHandle.standardError.write(Data((Console.printable(message) + "\n").utf8))
            }
            // ArgumentParser's usage errors (64) share the code of invalid pipelines.
            return code == .validationFailure ? ExitStatus.invalid : code.rawValue
        }
    }
}

/// Whether `arguments` ask for JSON messages (`--log-format json` or `=json`).
func wantsJSON(_ arguments: [String]) -> Bool {
    for (index, argument) in arguments.enumerated() {
        if argument == "--log-format=json" { return true }
        if argument == "--log-format", index + 1 < arguments.count, arguments[index + 1] == "json" { return true }
    }
    return false
}

/// Values the commands need that the argument parser cannot carry.
enum RunnerContext {
    @TaskLocal static var registry = StageRegistry.empty
    /// The arguments the command was parsed from (for the report).
    @TaskLocal static var arguments: [String] = []
}

extension StageRegistry {
    static let empty: StageRegistry = try! StageRegistry([])
}

struct RunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runner",
        abstract: "Run a pipeline of typed stages declared in YAML.",
        discussion: """
            `runner PIPELINE.yaml` checks the whole pipeline, then runs it. Exit codes: 0 success, \
            1 a stage failed, 2 invalid pipeline or usage, 130/143 interrupted (SIGINT/SIGTERM). \
            `runner --version` prints the runner's version and its libraries'.
            """,
        subcommands: [RunCommand.self, ValidateCommand.self, StagesCommand.self, GraphCommand.self, ExportCommand.self, ReportCommand.self],
        defaultSubcommand: RunCommand.self)
}

/// Options every command that reads a pipeline takes.
/// `--memory-limit`, `--band-rows` and `--no-stream`: how a run streams and how much
/// memory it may plan for.
struct StreamingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Refuse to run when the plan's estimated peak memory is above this: bytes, or a number with K, M, G or T (powers of 1024). "
            + "Default: the process's limit (physical memory, ulimit, cgroup) less a margin.", valueName: "size"))
    var memoryLimit: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Rows per band of streamed grids (default: about 1 MiB of rows).", valueName: "rows"))
    var bandRows: String?

    @Flag(help: "Hold every artifact whole instead of streaming bands between stages.")
    var noStream = false

    @Flag(help: "Stream every edge that can stream, however small its data (by default data under 8 MiB is held whole).")
    var stream = false

    /// Data below this is held whole.
    var minimumBytes: Double { stream ? 0 : StreamingLayout.defaultMinimumBytes }

    /// The layout a run of `plan` without a store would have with these options.
    func layout(_ plan: Plan) -> StreamingLayout {
        StreamingLayout.layout(plan, streaming: !noStream, bandRows: bandRows.flatMap { Int($0) },
                               jobs: ProcessInfo.processInfo.activeProcessorCount, minimumBytes: minimumBytes)
    }

    func validate() throws {
        if stream && noStream {
            throw ValidationError("--stream and --no-stream cannot be used together")
        }
        if let memoryLimit, MemorySize.parse(memoryLimit) == nil {
            throw ValidationError("--memory-limit must be a size from 1 byte to 1 EiB, such as 512M, 2G or 1073741824, got '\(FilePaths.printable(memoryLimit))'")
        }
        if let bandRows, Int(bandRows).map({ $0 >= 1 && $0 <= 1 << 20 }) != true {
            throw ValidationError("--band-rows must be a whole number from 1 to \(1 << 20), got '\(FilePaths.printable(bandRows))'")
        }
    }

    /// The limit and what set it.
    var limit: (bytes: Double, description: String) {
        if let memoryLimit, let bytes = MemorySize.parse(memoryLimit) { return (bytes, "--memory-limit \(memoryLimit)") }
        return StreamingLayout.defaultMemoryLimit()
    }

    /// Prints the layout with `-v` and refuses a plan that cannot fit (exit 2). A sweep's
    /// item shares the limit with the other items in flight (`sharedBy`): the process's
    /// own memory once, the rest in equal parts. `limit` is this options' `limit`, read
    /// once by a caller that checks many plans.
    func check(_ layout: StreamingLayout, of plan: Plan, console: Console, sharedBy: Int = 1,
               limit: (bytes: Double, description: String)? = nil) throws {
        for line in layout.describe(plan) { console.log(.debug, line, ["event": .string("plan_memory")]) }
        var (bytes, description) = limit ?? self.limit
        if sharedBy > 1 {
            let base = StreamingLayout.baseBytes
            bytes = base + max(0, bytes - base) / Double(sharedBy)
            description += " shared by \(sharedBy) items at once"
        }
        if let problem = layout.memoryProblem(plan, limit: bytes, limitDescription: description) {
            console.log(.error, (plan.item.map { "matrix item \($0.index) (\($0.label)): " } ?? "") + problem + "; nothing was run\n  help: let the stage stream (see 'runner stages'), make the image smaller, "
                + "or raise --memory-limit", ["event": .string("memory_limit"), "error_code": .string(PipelineError.Code.invalidParameter.rawValue)])
            throw ExitCode(RunnerMain.ExitStatus.invalid)
        }
    }
}

/// Sizes as `--memory-limit` takes them: bytes, or a number with K, M, G or T
/// (optionally followed by "iB" or "B"), powers of 1024.
enum MemorySize {
    static func parse(_ text: String) -> Double? {
        var digits = text.trimmingCharacters(in: .whitespaces).uppercased()
        // 512M, 512MB, 512MiB, and Kubernetes's 512Mi.
        for suffix in ["IB", "B", "I"] where digits.hasSuffix(suffix) && digits.count > suffix.count
            && (suffix != "I" || "KMGT".contains(digits.dropLast().last!)) {
            digits.removeLast(suffix.count)
            break
        }
        let units: [Character: Double] = ["K": 1024, "M": 1_048_576, "G": 1_073_741_824, "T": 1_099_511_627_776]
        var scale = 1.0
        if let last = digits.last, let unit = units[last] {
            scale = unit
            digits.removeLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isNumber || $0 == "." }), let value = Double(digits), value.isFinite, value > 0,
              value * scale <= 0x1p60 else { return nil }  // at most 1 EiB
        return value * scale
    }
}

struct PipelineOptions: ParsableArguments {
    @Argument(help: "The pipeline file.")
    var file: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a value: params.NAME=V or stages.ID.with.PARAM=V.", valueName: "key=value"))
    var overrides: [String] = []

    @Option(name: .customLong("profile"), help: ArgumentHelp("Apply a profile from the file's 'profiles' (repeatable).", valueName: "name"))
    var profiles: [String] = []

    var loader: PipelineLoader {
        PipelineLoader(profiles: profiles, overrides: overrides)
    }

    /// Loads and plans the pipeline, or prints every problem and throws exit code 2:
    /// with their source lines, or through `console` when it writes JSON (one
    /// `pipeline_invalid` object per problem, with its file, line and column).
    func plan(console: Console? = nil) throws -> Plan {
        let planner = Planner(registry: RunnerContext.registry)
        switch planner.plan(contentsOf: file, loader: loader) {
        case .success(let plan):
            return plan
        case .failure(let error):
            try fail(error, console: console)
        }
    }

    /// The plan of every item of the file's `matrix`, or nil when it has none; its
    /// problems as `plan` prints them.
    func sweep(console: Console? = nil, only: Int? = nil, check: (Plan, _ items: Int) throws -> Void = { _, _ in }) throws -> SweepPlan? {
        switch try Planner(registry: RunnerContext.registry).sweep(contentsOf: file, loader: loader, only: only, check: check) {
        case .success(let sweep):
            return sweep
        case .failure(let error):
            try fail(error, console: console)
        }
    }

    private func fail(_ error: PipelineValidationError, console: Console?) throws -> Never {
        if let console, console.format == .json {
            for diagnostic in error.diagnostics {
                var fields: [String: JSONValue] = ["event": .string("pipeline_invalid"), "severity": .string(diagnostic.severity.rawValue)]
                if let location = diagnostic.location {
                    fields["file"] = .string(location.file)
                    fields["line"] = .integer(location.line)
                    fields["column"] = .integer(location.column)
                }
                if let help = diagnostic.help { fields["help"] = .string(help) }
                console.log(diagnostic.severity == .error ? .error : .warning, diagnostic.message, fields)
            }
            if error.omitted > 0 {
                console.log(.error, "and \(error.omitted) more problems like these, not shown",
                            ["event": .string("pipeline_invalid"), "severity": .string("error"), "omitted": .integer(error.omitted)])
            }
            throw ExitCode(RunnerMain.ExitStatus.invalid)
        }
        let count = error.errorCount
        let summary = "\(count) problem\(count == 1 ? "" : "s") in \(FilePaths.printable(file)); nothing was run"
        FileHandle.standardError.write(Data((error.description + "\n" + summary + "\n").utf8))
        throw ExitCode(RunnerMain.ExitStatus.invalid)
    }
}

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check a pipeline without running it; print every problem with its position.")

    @OptionGroup var pipeline: PipelineOptions

    @Flag(help: "Also check what the stages need from outside: credentials, endpoints, buckets (one cheap request each), directories.")
    var checkAccess = false

    @OptionGroup var streaming: StreamingOptions

    @Flag(name: .shortAndLong, help: "Also print which stages stream together and the estimated peak memory.")
    var verbose = false

    func run() async throws {
        // A file with a matrix: every item is checked.
        let console = Console(format: .text, level: verbose ? .debug : .info)
        let streaming = self.streaming
        // As many items as the run would hold at once (one per core by default) share the limit.
        let limit = streaming.limit
        let sweep = try pipeline.sweep(check: { plan, items in
            try streaming.check(streaming.layout(plan), of: plan, console: console,
                                sharedBy: min(items, ProcessInfo.processInfo.activeProcessorCount), limit: limit)
        })
        let plan = try sweep?.first ?? pipeline.plan()
        if sweep == nil {
            try streaming.check(streaming.layout(plan), of: plan, console: console)
        }
        var ok = "\(FilePaths.printable(pipeline.file)): ok, \(plan.stages.count) stage\(plan.stages.count == 1 ? "" : "s"): "
            + plan.stages.map { FilePaths.printable($0.id) }.joined(separator: ", ")
        if let sweep {
            ok += "; a matrix of \(sweep.count) item\(sweep.count == 1 ? "" : "s")"
        }
        guard checkAccess else {
            print(ok)
            return
        }
        // "ok" only when everything checked is: a failed check says so on stderr alone.
        // A sweep's items are checked too, once for what they share.
        let results: [String: Result<AccessReport, AccessCheckFailure>]
        let failures: [String]
        if let sweep {
            let checked = await sweep.checkAccess(depth: .deep)
            (results, failures) = (checked.first, checked.failures.map(\.description))
        } else {
            results = await plan.checkAccess(depth: .deep)
            failures = plan.failures(in: results).map(\.description)
        }
        guard failures.isEmpty else {
            for failure in failures {
                FileHandle.standardError.write(Data("error: \(failure)\n".utf8))
            }
            let count = failures.count
            let what = sweep == nil ? "stage\(count == 1 ? "" : "s") cannot run" : "of its items' stages cannot run"
            FileHandle.standardError.write(Data(("\(FilePaths.printable(pipeline.file)) is valid, but \(count) \(what)\n").utf8))
            throw ExitCode(RunnerMain.ExitStatus.stageFailed)
        }
        print(ok)
        for stage in plan.stages {
            guard case .success(let report)? = results[stage.id], report.checked else { continue }
            print("  \(FilePaths.printable(stage.id)) (\(stage.typeName)): access ok: \(report.summary)")
        }
    }
}

struct GraphCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "Print the pipeline's DAG as Graphviz DOT or Mermaid, artifact types on the edges.")

    @OptionGroup var pipeline: PipelineOptions

    @Option(help: "dot or mermaid.")
    var format: GraphFormat = .dot

    @OptionGroup var streaming: StreamingOptions

    enum GraphFormat: String, ExpressibleByArgument, CaseIterable {
        case dot, mermaid
    }

    func run() async throws {
        // A sweep's items share one graph: its first item's.
        let plan = try pipeline.sweep()?.first ?? pipeline.plan()
        let layout = streaming.layout(plan)
        print(PlanRendering.render(plan, as: format == .dot ? .dot : .mermaid, layout: layout), terminator: "")
    }
}
