import Foundation
import Framework

/// `exec`: runs an external program on files, for stages written in Python, shell,
/// C or anything else.
public struct ExecStage: Stage {
    static let outputTypes: [ArtifactType] = ArtifactType.allGrids + [.encodedImage]

    public static let spec = StageSpec(
        name: "exec",
        summary: "Run an external program on the stage's inputs, as files.",
        discussion: """
            File contract. Each input artifact is written to a private temporary directory: a grid as \
            inputs/NAME.npy (NumPy .npy version 1.0, little-endian, C order, shape (height, width), dtype \
            uint8, uint16, uint32, float32 or float64), an encoded image as inputs/NAME.jpeg (or .png, ...) \
            with its bytes as they are. NAME is the input port: 'input' for 'input: stage', the keys of \
            'inputs: {NAME: stage}' otherwise. The program writes its result to the output path: output.npy \
            for a grid, output.jpeg or output.png for an encoded image. Paths reach the program in its \
            arguments, as {inputs.NAME} and {output} (also {run_id}, {stage}, {date} and pipeline params), and \
            in the environment: PIPELINE_INPUT_NAME (upper case), PIPELINE_OUTPUT, PIPELINE_RUN_ID, \
            PIPELINE_STAGE. Working directory: the directory of the pipeline file, so a program or \
            argument named relative to the file (command: [python3, double.py, ...] with double.py next to \
            the YAML) is found wherever the runner is started; a relative workdir is resolved against that \
            directory too (a pipeline that did not come from a file uses the runner's working directory). \
            Input and output paths are absolute. The command is run directly, without a shell, unless shell is true (then it is one \
            string for /bin/sh -c, and every value filled into it, paths and params alike, is single-quoted \
            for the shell: only the pipeline's own text is shell syntax). Environment: the runner's, without \
            credentials (AWS_* keys and tokens, and variables whose names contain TOKEN, SECRET, PASSWORD, \
            CREDENTIAL, API_KEY, ACCESS_KEY, PRIVATE_KEY or CONNECTION_STRING, or have PAT, AUTH or PASS as a \
            word) unless pass_env names them, plus env. Its stderr \
            (and stdout) go to the stage's log lines, each cut at 4 KiB. Exit status 0 means \
            success; then the output file must exist and match 'output': a .npy whose dtype is the declared \
            element type, or an image that decodes in the declared format. A non-zero exit fails the stage \
            with the last lines of stderr (at most 20 lines, 4 KiB). The stage ends when the program exits: \
            what is left of its process group, and its descendants that left the group, are killed then. On \
            timeout or cancellation they get SIGTERM, then SIGKILL after 2 s. The temporary directory is \
            removed in every case.
            """,
        parameters: [
            ParameterSpec("command", .list(.string),
                          doc: "program and arguments, e.g. [python3, stage.py, '{inputs.input}', '{output}']; with shell: true, one string")
                .acceptingSingleItem(),
            ParameterSpec("output", .choice(outputTypes.map(\.name)), doc: "the artifact type the program writes"),
            ParameterSpec("output_format", .choice(["jpeg", "png"]), optional: true, doc: "the image format; required when output is EncodedImage"),
            ParameterSpec("shell", .boolean, default: .boolean(false), doc: "run command (one string) with /bin/sh -c"),
            ParameterSpec("env", .mapping, optional: true, doc: "extra environment variables"),
            ParameterSpec("pass_env", .list(.string), optional: true,
                          doc: "names of the runner's credential variables to pass on (AWS keys, tokens, secrets are withheld otherwise)"),
            ParameterSpec("workdir", .string, optional: true, doc: "working directory, relative to the pipeline file's directory; default that directory"),
            ParameterSpec("timeout", .string, optional: true, doc: "how long before the process group is killed: 30s, 500ms, 5m, or seconds"),
        ],
        additionalInputs: TypeRequirement(types: ArtifactType.allGrids, traits: [.bytes]),
        output: .computed(outputTypes, description: "the type given in 'output'") { context in
            // The command's placeholders are known once the ports are: check them here.
            let known = context.templateNames.union(["output"]).union(context.inputTypes.keys.map { "inputs.\($0)" })
            // In a shell command only the pipeline's own text may be syntax: a param's
            // value must come in through {name}, which is quoted, not ${name}.
            if context.parameters.bool("shell"), let names = context.interpolatedParams["command"], let name = names.first {
                throw ParameterError("command", "with shell: true puts param '\(name)' in with '${\(name)}', which the shell would read as syntax",
                                     help: "write '{\(name)}' instead: values filled in at run time are quoted for the shell")
            }
            if case .list(let items)? = context.parameters["command"] {
                for argument in items.map(\.description) {
                    for placeholder in (try? Template.placeholders(in: argument)) ?? [] where !known.contains(placeholder.name) {
                        throw ParameterError("command", "uses unknown placeholder '{\(placeholder.name)}'",
                                             help: Suggestions.didYouMean(placeholder.name, in: known)
                                                ?? "known: " + known.sorted().map { "{\($0)}" }.joined(separator: ", "))
                    }
                }
            }
            return ExecStage.outputTypes.first { $0.name == context.parameters.string("output") }!
        })

    let command: [String]
    let outputType: ArtifactType
    let outputFormat: String?
    let shell: Bool
    let environment: [String: String]
    let passEnvironment: Set<String>
    let workdir: String?
    let timeout: Double?

    public init(parameters: Parameters) throws {
        guard case .list(let items)? = parameters["command"] else { throw ParameterError("command", "must be a list of strings") }
        command = items.map(\.description)
        outputType = Self.outputTypes.first { $0.name == parameters.string("output") }!
        outputFormat = parameters.optionalString("output_format")
        shell = parameters.bool("shell")
        environment = parameters.mapping("env") ?? [:]
        if case .list(let names)? = parameters["pass_env"] {
            passEnvironment = Set(names.map(\.description))
        } else {
            passEnvironment = []
        }
        workdir = parameters.optionalString("workdir")
        if let workdir, let offset = FilePaths.controlCharacterOffset(in: workdir) {
            throw ParameterError("workdir", "'\(FilePaths.printable(workdir))' has a control character at offset \(offset)")
        }
        if let text = parameters.optionalString("timeout") {
            guard let duration = Duration.parse(text), duration > .zero else {
                throw ParameterError("timeout", "must be a positive duration like 30s, 500ms or 5m, got '\(text)'")
            }
            timeout = duration.seconds
        } else {
            timeout = nil
        }
        if command.isEmpty { throw ParameterError("command", "must name a program") }
        if shell && command.count != 1 {
            throw ParameterError("command", "with shell: true must be one string for /bin/sh -c, got a list of \(command.count) words",
                                 help: "write the whole command line as one string: command: 'cp {inputs.input} {output}'; "
                                     + "or leave out shell: true to run the list's words without a shell")
        }
        if outputType == .encodedImage && outputFormat == nil {
            throw ParameterError("output_format", "is needed when output is EncodedImage", help: "add 'output_format: jpeg' or 'png'")
        }
        for argument in command {
            do {
                _ = try Template.placeholders(in: argument)
            } catch {
                throw ParameterError("command", "argument '\(argument)' is not a valid template: \(error.message)")
            }
        }
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        // Absolute: the program runs in the pipeline's directory, not in this one.
        let directory = FilePaths.absolute(try Self.makeTemporaryDirectory(in: context.temporaryDirectory))
        let registration = Cleanup.registerTemporary(directory)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            Cleanup.unregister(registration)
        }
        var values = context.templateValues
        var variables = Self.programEnvironment(ProcessInfo.processInfo.environment, passing: passEnvironment)
            .merging(environment) { _, new in new }
        try FilePaths.createDirectories(directory + "/inputs")
        for (port, artifact) in inputs.artifacts.sorted(by: { $0.key < $1.key }) {
            let path: String
            switch artifact {
            case let grid as any AnyGrid:
                path = "\(directory)/inputs/\(port).npy"
                try await Blocking.run { try NPY.write(grid, to: path) }
            case let bytes as any BytesArtifact:
                let suffix = (bytes as? EncodedImage)?.format ?? "bin"
                path = "\(directory)/inputs/\(port).\(suffix)"
                let shared = bytes.bytes
                try await Blocking.run { try shared.withUnsafeBytes { try AtomicFile.write($0, to: path, overwrite: true) } }
            default:
                throw StageFailure("input '\(port)' is \(artifact.artifactType), which has no file form", retryable: false)
            }
            values["inputs.\(port)"] = path
            variables["PIPELINE_INPUT_\(port.uppercased())"] = path
        }
        let outputPath = "\(directory)/output." + (outputType == .encodedImage ? outputFormat! : "npy")
        values["output"] = outputPath
        variables["PIPELINE_OUTPUT"] = outputPath
        variables["PIPELINE_RUN_ID"] = context.runID
        variables["PIPELINE_STAGE"] = context.stageID
        // With a shell, only the pipeline's own text is shell syntax: every value put
        // into it (paths, run id, params) is quoted, so it stays one word.
        let arguments = try command.map {
            try Template.expand($0, values: shell ? values.mapValues(Self.shellQuoted) : values, pathSafe: false)
        }
        let argv = shell ? ["/bin/sh", "-c", arguments[0]] : arguments

        try context.checkCancellation()
        let logger = context.logger
        let child = ChildProcess(arguments: argv, environment: variables, directory: Self.workingDirectory(workdir, context: context),
                                 timeout: timeout)
        let outcome = try await Blocking.run { cancel in
            try child.run(cancel: cancel) { line, fromStderr in
                if fromStderr { logger.info("\(line)") } else { logger.debug("\(line)") }
            }
        }
        if outcome.cancelled || Task.isCancelled { throw CancellationError() }
        let name = shell ? "sh -c" : arguments[0]
        let tail = RecentLines.quote(outcome.lastErrorLines.suffix(RecentLines.maxLines))
        let stderrPart = tail.isEmpty ? "" : "; last lines of its stderr:\n" + tail
        if outcome.timedOut {
            throw StageFailure("'\(name)' timed out after \(Duration.milliseconds(Int64((timeout ?? 0) * 1000)).humanDescription); its process group was killed\(stderrPart)",
                               code: .timeout)
        }
        if let signal = outcome.signal {
            throw StageFailure("'\(name)' was killed by signal \(signal)\(stderrPart)", code: .childFailed)
        }
        // POSIX shells exit 127 when a command is not found and 126 when it is found
        // but cannot be run: the status says it, whatever language the shell speaks.
        if shell && outcome.status == 127 {
            throw StageFailure("'sh -c' exited with status 127, which the shell gives when it cannot find a command: check the spelling "
                + "of each command in '\(arguments[0])' and that its directory is on PATH\(stderrPart)", retryable: false, code: .childFailed)
        }
        if shell && outcome.status == 126 {
            throw StageFailure("'sh -c' exited with status 126, which the shell gives when it cannot run a command: check that each program "
                + "'\(arguments[0])' runs is executable (chmod +x) and is a binary or a script with a #! line\(stderrPart)", retryable: false, code: .childFailed)
        }
        guard outcome.status == 0 else {
            throw StageFailure("'\(name)' exited with status \(outcome.status)\(stderrPart)", code: .childFailed)
        }
        return try readOutput(outputPath, name: name)
    }

    /// Where the program runs: `workdir` resolved against the pipeline file's
    /// directory (the runner's working directory for a pipeline that came from no
    /// file), or that directory itself when `workdir` is not given.
    static func workingDirectory(_ workdir: String?, context: StageContext) -> String {
        let base = context.pipelineDirectory ?? FilePaths.currentDirectory()
        guard let workdir, !workdir.isEmpty else { return base }
        return workdir.hasPrefix("/") ? workdir : base + "/" + workdir
    }

    /// `value` as one word for /bin/sh: in single quotes, each `'` written as `'\''`.
    static func shellQuoted(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The environment a program gets: the runner's, less credentials (AWS keys and
    /// session tokens, and any variable whose name says token, secret or password),
    /// except those named in `passing`.
    static func programEnvironment(_ environment: [String: String], passing: Set<String>) -> [String: String] {
        environment.filter { name, _ in passing.contains(name) || !isCredential(name) }
    }

    static func isCredential(_ name: String) -> Bool {
        name.uppercased() == ProcessTable.markerVariable || EnvironmentNames.isCredential(name)
    }

    /// Reads and checks the program's output against the declared type.
    func readOutput(_ path: String, name: String) throws -> any Artifact {
        guard access(path, F_OK) == 0 else {
            throw StageFailure("'\(name)' exited with status 0 but did not write its output \(FilePaths.split(path).name) "
                + "(the path is in {output} and $PIPELINE_OUTPUT)", retryable: false, code: .childFailed)
        }
        if outputType == .encodedImage {
            let bytes: SharedBytes
            do {
                bytes = try FileContents.read(path)
            } catch {
                throw StageFailure("cannot read its output: \(ErrorDescription.readable(error))", retryable: false, code: .io)
            }
            do {
                let (width, height): (Int, Int)
                if outputFormat == "png" {
                    let image = try PNGCodec.decode(bytes)
                    (width, height) = (image.width, image.height)
                } else {
                    let image = try JPEGCodec.decode(bytes)
                    (width, height) = (image.width, image.height)
                }
                return EncodedImage(bytes: bytes, format: outputFormat!, mediaType: "image/\(outputFormat!)", width: width, height: height)
            } catch {
                throw StageFailure("output is not a valid \(outputFormat!) image: \(error)", retryable: false, code: .invalidData)
            }
        }
        let grid: any AnyGrid
        do {
            grid = try NPY.read(contentsOf: path, name: "output.npy")
        } catch {
            throw PipelineError(error).with(retryable: false)
        }
        guard grid.artifactType == outputType else {
            throw StageFailure("output.npy holds \(grid.elementType.rawValue) (\(grid.artifactType)), but the stage declares \(outputType)",
                               retryable: false, code: .invalidData)
        }
        return grid
    }

    static func makeTemporaryDirectory(in base: String) throws -> String {
        var template = Array("\(base)/pipeline-exec-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SystemError("create a temporary directory in", path: base)
        }
        return String(cString: made)
    }
}
