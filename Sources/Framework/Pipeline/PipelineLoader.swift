import Foundation

/// Reads a pipeline file: YAML with positions, then profiles, `--set` overrides and
/// `${...}` interpolation, then the file's structure (the keys it may have and their
/// shapes). Stage types and parameters are the planner's business.
///
/// The file's contract:
/// - top level: `name`, `params`, `stages`, `profiles`, `matrix`; nothing else;
/// - `stages` maps a stage id to `type`, `input` or `inputs`, `with`, `after`,
///   `retries`, `timeout`;
/// - `profiles` maps a profile name to `params` and `stages` overlays.
public struct PipelineLoader: Sendable {
    public static let topLevelKeys = ["name", "params", "stages", "profiles", "matrix"]
    public static let stageKeys = ["type", "input", "inputs", "with", "after", "retries", "timeout"]
    public static let profileKeys = ["params", "stages"]

    /// Environment for `${env.NAME}`.
    public var environment: [String: String]
    /// Profiles to apply, in order.
    public var profiles: [String]
    /// `--set` assignments, in order.
    public var overrides: [String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, profiles: [String] = [], overrides: [String] = []) {
        self.environment = environment
        self.profiles = profiles
        self.overrides = overrides
    }

    public struct Result: Sendable {
        /// The document, when it could be read at all; check `diagnostics` too.
        public var document: PipelineDocument?
        public var diagnostics: [Diagnostic]
        public var sources: SourceTexts
    }

    /// Loads a file from disk: as written, or as one item of its `matrix` (the item's
    /// values in place of its params').
    public func load(contentsOf path: String, item: Matrix.Item? = nil) -> Result {
        let bytes: SharedBytes
        do {
            bytes = try FileContents.read(path)
        } catch {
            let reason: String
            switch error {
            case let error as SystemError where error.code == ENOENT: reason = "does not exist"
            case let error as SystemError where error.code == EISDIR: reason = "is a directory"
            case let error as SystemError: reason = "cannot be read: " + error.reason
            default: reason = "cannot be read: " + ErrorDescription.readable(error)
            }
            return Result(document: nil, diagnostics: [.error("pipeline file '\(path)' \(reason)", at: nil)], sources: SourceTexts())
        }
        return load(bytes: bytes.withUnsafeBytes { Array($0.bindMemory(to: UInt8.self)) }, file: path, item: item)
    }

    /// Loads a pipeline from memory; `file` names it in messages. With `item`, one item
    /// of its `matrix`: the item's values replace the params of the same names (after
    /// profiles and `--set`, which may not set a param the matrix sweeps).
    public func load(bytes: [UInt8], file: String, item: Matrix.Item? = nil) -> Result {
        var sources = SourceTexts()
        sources.add(file: file, text: String(decoding: bytes, as: UTF8.self))
        let parsed = YAMLParser.parse(bytes, file: file)
        var diagnostics = parsed.diagnostics
        let start = SourceLocation(file: file, line: 1, column: 1)
        guard var root = parsed.root else {
            if diagnostics.isEmpty {
                diagnostics.append(.error("pipeline file is empty", at: start,
                                          help: "a pipeline needs at least 'stages:'; see pipelines/poisson.yaml"))
            }
            return Result(document: nil, diagnostics: diagnostics, sources: sources)
        }
        guard let topPairs = root.pairs else {
            diagnostics.append(.error("a pipeline file must be a mapping with 'stages:', not \(root.kindName)", at: root.location,
                                      help: "see pipelines/poisson.yaml for the layout"))
            return Result(document: nil, diagnostics: diagnostics, sources: sources)
        }
        for pair in topPairs where !Self.topLevelKeys.contains(pair.name) {
            diagnostics.append(unknownKey(pair, known: Self.topLevelKeys, context: "at the top level"))
        }

        // Profiles: check all, apply the chosen ones in order.
        let fileRoot = root
        let profileNodes = checkProfiles(root["profiles"], diagnostics: &diagnostics)
        for name in profiles {
            guard let profile = profileNodes[name] else {
                let known = profileNodes.keys.sorted()
                diagnostics.append(.error(
                    "unknown profile '\(name)'", at: nil,
                    help: Suggestions.didYouMean(name, in: known)
                        ?? (known.isEmpty ? "this pipeline defines no profiles" : "profiles: " + known.quotedList())))
                continue
            }
            root = Overlay.apply(profile: profile, to: root)
        }
        let applied = Overlay.apply(assignments: overrides, to: root, sources: &sources, diagnostics: &diagnostics)
        root = applied.root
        var paramsFromCommandLine = applied.params

        // The matrix, against the params the file declares (read once: an item's load
        // comes from it); an item's values replace the params'.
        var matrix: Matrix?
        if item == nil, let matrixNode = root["matrix"] {
            let declared = Set((root["params"]?.pairs ?? []).map(\.name))
            matrix = Matrix.read(matrixNode, params: declared, diagnostics: &diagnostics)
            let swept = Set((matrix?.axes.map(\.name) ?? []) + (matrix?.items.flatMap { $0.values.map(\.name) } ?? []))
            for (name, setting) in paramsFromCommandLine.sorted(by: { $0.key < $1.key }) where swept.contains(name) {
                diagnostics.append(.error("\(setting.argument): the matrix sweeps param '\(name)'", at: setting.valueLocation,
                                          help: "leave out --set for it, or take it out of the matrix"))
            }
            // A chosen profile's value for a swept param would be silently replaced too.
            for name in profiles {
                for pair in profileNodes[name]?["params"]?.pairs ?? [] where swept.contains(pair.name) {
                    diagnostics.append(.error("profile '\(name)' sets param '\(pair.name)', which the matrix sweeps", at: pair.key.location,
                                              help: "leave the param out of the profile, or out of the matrix"))
                }
            }
            // So would a stage parameter the file fills from a swept param, set over it.
            func sweptParam(in path: [String]) -> String? {
                var node: YAMLNode? = fileRoot
                for key in path { node = node?[key] }
                guard let text = node?.scalar else { return nil }
                return swept.sorted().first { text.contains("${\($0)}") }
            }
            for assignment in overrides {
                guard let equals = assignment.firstIndex(of: "=") else { continue }
                let path = assignment[..<equals].split(separator: ".").map(String.init)
                guard path.first == "stages", let param = sweptParam(in: path) else { continue }
                diagnostics.append(.error("--set \(assignment): '\(path.joined(separator: "."))' takes '${\(param)}' in the file, which the matrix sweeps",
                                          at: nil, help: "leave out --set for it, or take '\(param)' out of the matrix"))
            }
            for name in profiles {
                for stage in profileNodes[name]?["stages"]?.pairs ?? [] {
                    for pair in stage.value["with"]?.pairs ?? [] {
                        guard let param = sweptParam(in: ["stages", stage.name, "with", pair.name]) else { continue }
                        diagnostics.append(.error("profile '\(name)' sets stages.\(stage.name).with.\(pair.name), which takes '${\(param)}' in the file, "
                                                  + "which the matrix sweeps", at: pair.key.location,
                                                  help: "leave it out of the profile, or take '\(param)' out of the matrix"))
                    }
                }
            }
        }
        if let item {
            let values = item.values.filter { $0.name != Matrix.seedKey }
            if !values.isEmpty, let paramsNode = root["params"] {
                let overlay = YAMLNode(.mapping(values.map { YAMLPair(key: .scalar($0.name, at: $0.node.location), value: $0.node) }),
                                       at: paramsNode.location)
                root = root.setting("params", to: Overlay.merge(paramsNode, overlay), keyAt: paramsNode.location)
            }
        }

        // Params: scalars, which may use the environment and earlier params.
        var interpolator = Interpolator(params: [:], environment: environment)
        if let paramsNode = root["params"], !paramsNode.isNull {
            if let pairs = paramsNode.pairs {
                for pair in pairs {
                    guard Names.isPipelineID(pair.name) else {
                        diagnostics.append(.error("param name '\(pair.name)' must be letters, digits and '_'", at: pair.key.location))
                        continue
                    }
                    guard pair.value.scalar != nil else {
                        diagnostics.append(.error("param '\(pair.name)' must be a scalar, not \(pair.value.kindName)", at: pair.value.location))
                        continue
                    }
                    let value = interpolator.interpolate(pair.value, diagnostics: &diagnostics)
                    interpolator.params[pair.name] = value.scalar
                    // A param made from one that `--set` gave comes from the command line too.
                    if paramsFromCommandLine[pair.name] == nil,
                       let origin = interpolator.substitutions[pair.value.location]?.lazy.compactMap({ paramsFromCommandLine[$0.name] }).first {
                        paramsFromCommandLine[pair.name] = origin
                    }
                }
            } else {
                diagnostics.append(.error("'params' must be a mapping of names to values, not \(paramsNode.kindName)", at: paramsNode.location))
            }
        }

        var name = (file as NSString).lastPathComponent
        if let nameNode = root["name"] {
            let value = interpolator.interpolate(nameNode, diagnostics: &diagnostics)
            if let text = value.scalar, !value.isNull {
                name = text
            } else {
                diagnostics.append(.error("'name' must be a string, not \(nameNode.kindName)", at: nameNode.location))
            }
        }

        var stages: [StageDeclaration] = []
        if let stagesNode = root["stages"], let pairs = stagesNode.pairs, !pairs.isEmpty {
            var seenStages: Set<String> = []
            var above: String?  // the last stage id before this pair
            for (index, pair) in pairs.enumerated() where seenStages.insert(pair.name).inserted {  // a repeated id is reported by the parser
                if isMisplacedStageKey(pair) {
                    // `with:` indented at the level of stage ids: one error here, and the
                    // stage above is not also told that its parameters are missing.
                    diagnostics.append(.error(
                        "'\(pair.name)' is indented as a stage id, so it reads as a stage called '\(pair.name)'",
                        at: pair.key.location,
                        help: above.map { "indent '\(pair.name):' under stage '\($0)', as far as that stage's other keys" }
                            ?? "'\(pair.name):' belongs under a stage id: stages: {ID: {type: ..., \(pair.name): ...}}"))
                    if let above, stages.last?.id == above {
                        stages[stages.count - 1].keysInDoubt.insert(pair.name)
                    }
                    continue
                }
                above = pair.name
                if pair.value.isNull, index + 1 < pairs.count, isMisplacedStageKey(pairs[index + 1]), Names.isPipelineID(pair.name) {
                    // `a:` with all its keys one level too far left: those keys are the
                    // errors; the stage stays, so what refers to it finds it.
                    var stage = StageDeclaration(id: pair.name, location: pair.key.location, inputs: [], parameters: [], after: [], retry: .none)
                    stage.keysInDoubt = Set(Self.stageKeys)
                    stages.append(stage)
                    continue
                }
                let node = interpolator.interpolate(pair.value, diagnostics: &diagnostics)
                if let stage = readStage(id: pair.name, key: pair.key, node: node, diagnostics: &diagnostics) {
                    stages.append(stage)
                }
            }
        } else if let stagesNode = root["stages"] {
            let what = stagesNode.pairs != nil ? "an empty mapping" : stagesNode.kindName
            diagnostics.append(.error("'stages' must map stage ids to stages, not \(what)", at: stagesNode.location,
                                      help: "for example:\n    stages:\n      generate: {type: poisson, with: {width: 64, height: 64, lambda: 3}}"))
        } else {
            diagnostics.append(.error("pipeline has no 'stages'", at: root.location, help: "add a 'stages:' mapping; see pipelines/poisson.yaml"))
        }
        var document = PipelineDocument(file: file, name: name, params: interpolator.params, stages: stages)
        document.matrix = matrix
        document.item = item
        document.unresolvedValues = interpolator.failures
        document.substitutions = interpolator.substitutions
        document.environmentNames = interpolator.environmentNames
        document.paramsFromCommandLine = paramsFromCommandLine
        return Result(document: document, diagnostics: diagnostics, sources: sources)
    }


    private func checkProfiles(_ node: YAMLNode?, diagnostics: inout [Diagnostic]) -> [String: YAMLNode] {
        guard let node, !node.isNull else { return [:] }
        guard let pairs = node.pairs else {
            diagnostics.append(.error("'profiles' must map profile names to overlays, not \(node.kindName)", at: node.location))
            return [:]
        }
        var result: [String: YAMLNode] = [:]
        for pair in pairs {
            guard let keys = pair.value.pairs else {
                diagnostics.append(.error("profile '\(pair.name)' must be a mapping with 'params' and/or 'stages', not \(pair.value.kindName)",
                                          at: pair.value.location))
                continue
            }
            for key in keys where !Self.profileKeys.contains(key.name) {
                diagnostics.append(unknownKey(key, known: Self.profileKeys, context: "in profile '\(pair.name)'"))
            }
            if let stages = pair.value["stages"] {
                if let stagePairs = stages.pairs {
                    for stage in stagePairs where !(stage.value.isNull || stage.value.pairs != nil) {
                        diagnostics.append(.error("profile '\(pair.name)': stage '\(stage.name)' must be a mapping or null, not \(stage.value.kindName)",
                                                  at: stage.value.location))
                    }
                } else {
                    diagnostics.append(.error("profile '\(pair.name)': 'stages' must be a mapping, not \(stages.kindName)", at: stages.location))
                }
            }
            result[pair.name] = pair.value
        }
        return result
    }

    private func unknownKey(_ pair: YAMLPair, known: [String], context: String) -> Diagnostic {
        .error("unknown key '\(pair.name)' \(context)", at: pair.key.location,
               help: Suggestions.didYouMean(pair.name, in: known) ?? "allowed keys: " + known.quotedList())
    }

    /// A stage key (`with`, `input`, ...) written where a stage id goes: its value is
    /// not a stage of its own (a mapping with a `type`), so it lost its indentation.
    private func isMisplacedStageKey(_ pair: YAMLPair) -> Bool {
        Self.stageKeys.contains(pair.name) && pair.value["type"] == nil
    }

    private func readStage(id: String, key: YAMLNode, node: YAMLNode, diagnostics: inout [Diagnostic]) -> StageDeclaration? {
        guard Names.isPipelineID(id) else {
            diagnostics.append(.error("stage id '\(id)' must start with a letter or '_' and hold only letters, digits, '_' and '-'",
                                      at: key.location))
            return nil
        }
        guard let pairs = node.pairs else {
            diagnostics.append(.error("stage '\(id)' must be a mapping with at least 'type', not \(node.kindName)", at: node.location,
                                      help: "for example: \(id): {type: poisson, with: {width: 64, height: 64, lambda: 3}}"))
            return nil
        }
        var stage = StageDeclaration(id: id, location: key.location, inputs: [], parameters: [], after: [], retry: .none)
        var seen: Set<String> = []
        for pair in pairs where seen.insert(pair.name).inserted {  // a duplicate key is reported by the parser
            let value = pair.value
            switch pair.name {
            case "type":
                if let text = value.scalar, !value.isNull {
                    stage.type = text
                    stage.typeLocation = value.location
                } else {
                    diagnostics.append(.error("stage '\(id)': 'type' must be a stage type name, not \(value.kindName)", at: value.location,
                                              help: "`runner stages` lists the stage types"))
                }
            case "input":
                if let text = value.scalar, !value.isNull {
                    stage.inputs.append(.init(port: nil, portLocation: nil, producer: text, location: value.location))
                } else {
                    diagnostics.append(.error("stage '\(id)': 'input' must name one stage, not \(value.kindName)", at: value.location,
                                              help: "for several input ports use 'inputs: {port: stage, ...}'"))
                }
            case "inputs":
                guard let ports = value.pairs else {
                    diagnostics.append(.error("stage '\(id)': 'inputs' must map port names to stage ids, not \(value.kindName)",
                                              at: value.location, help: "for example: inputs: {image: encode}"))
                    continue
                }
                for port in ports {
                    if let producer = port.value.scalar, !port.value.isNull {
                        stage.inputs.append(.init(port: port.name, portLocation: port.key.location, producer: producer, location: port.value.location))
                    } else {
                        diagnostics.append(.error("stage '\(id)': input port '\(port.name)' must name one stage, not \(port.value.kindName)",
                                                  at: port.value.location))
                    }
                }
            case "with":
                if value.isNull { continue }
                guard let parameters = value.pairs else {
                    diagnostics.append(.error("stage '\(id)': 'with' must map parameter names to values, not \(value.kindName)",
                                              at: value.location))
                    continue
                }
                stage.parameters = parameters
                stage.parametersLocation = pair.key.location
            case "after":
                let items = value.items ?? [value]
                for item in items {
                    if let text = item.scalar, !item.isNull {
                        stage.after.append(.init(stage: text, location: item.location))
                    } else {
                        diagnostics.append(.error("stage '\(id)': 'after' must list stage ids", at: item.location))
                    }
                }
            case "retries":
                if let policy = readRetries(value, stage: id, diagnostics: &diagnostics) { stage.retry = policy }
            case "timeout":
                if let text = value.scalar, let duration = Duration.parse(text), duration > .zero {
                    stage.timeout = duration
                } else {
                    diagnostics.append(.error("stage '\(id)': timeout must be a positive duration like 30s, 500ms or 5m, got '\(value.scalar ?? value.kindName)'",
                                              at: value.location))
                }
            default:
                diagnostics.append(unknownKey(pair, known: Self.stageKeys, context: "in stage '\(id)'"))
                if let meant = Suggestions.closest(to: pair.name, in: Self.stageKeys), pairs.allSatisfy({ $0.name != meant }) {
                    stage.keysInDoubt.insert(meant)
                }
            }
        }
        if pairs.contains(where: { $0.name == "input" }), let inputs = pairs.first(where: { $0.name == "inputs" }) {
            diagnostics.append(.error("stage '\(id)' has both 'input' and 'inputs'", at: inputs.key.location,
                                      help: "use 'input: stage' for a single port, 'inputs: {port: stage}' for named ports"))
        }
        return stage
    }

    private func readRetries(_ node: YAMLNode, stage: String, diagnostics: inout [Diagnostic]) -> RetryPolicy? {
        func bad(_ message: String, _ at: YAMLNode) -> RetryPolicy? {
            diagnostics.append(.error("stage '\(stage)': \(message)", at: at.location,
                                      help: "write 'retries: 3' or 'retries: {count: 3, delay: 1s, factor: 2, max_delay: 60s}'"))
            return nil
        }
        if let text = node.scalar {
            guard let count = Int(text), count >= 0, count <= 100 else { return bad("retries must be a count from 0 to 100, got '\(text)'", node) }
            return RetryPolicy(count: count)
        }
        guard let pairs = node.pairs else { return bad("retries must be a count or a mapping, not \(node.kindName)", node) }
        var policy = RetryPolicy(count: 0)
        for pair in pairs {
            let text = pair.value.scalar ?? ""
            switch pair.name {
            case "count":
                guard let count = Int(text), count >= 0, count <= 100 else { return bad("retries.count must be from 0 to 100, got '\(text)'", pair.value) }
                policy.count = count
            case "delay":
                guard let duration = Duration.parse(text) else { return bad("retries.delay must be a duration like 1s, got '\(text)'", pair.value) }
                policy.delay = duration
            case "max_delay":
                guard let duration = Duration.parse(text) else { return bad("retries.max_delay must be a duration like 60s, got '\(text)'", pair.value) }
                policy.maxDelay = duration
            case "factor":
                guard let factor = Double(text), factor >= 1, factor <= 10 else { return bad("retries.factor must be a number from 1 to 10, got '\(text)'", pair.value) }
                policy.factor = factor
            default:
                diagnostics.append(unknownKey(pair, known: ["count", "delay", "factor", "max_delay"], context: "in 'retries' of stage '\(stage)'"))
            }
        }
        return policy
    }
}
