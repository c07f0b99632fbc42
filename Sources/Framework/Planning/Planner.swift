/// Checks a pipeline document against a registry and builds a `Plan`.
///
/// Every problem is collected and reported at once, each with its position: unknown
/// stage types, missing, unknown, mistyped or out-of-range parameters, inputs that
/// name no stage, cycles, and edges whose artifact type the consumer does not accept.
public struct Planner: Sendable {
    public var registry: StageRegistry

    public init(registry: StageRegistry) {
        self.registry = registry
    }

    /// Loads, checks and plans in one go: the path `validate` and `run` share.
    public func plan(contentsOf path: String, loader: PipelineLoader) -> Result<Plan, PipelineValidationError> {
        let loaded = loader.load(contentsOf: path)
        return plan(loaded)
    }

    public func plan(_ loaded: PipelineLoader.Result) -> Result<Plan, PipelineValidationError> {
        guard let document = loaded.document else {
            return .failure(PipelineValidationError(loaded.diagnostics, sources: loaded.sources))
        }
        var diagnostics = loaded.diagnostics
        let plan = plan(document, diagnostics: &diagnostics)
        if let plan, !diagnostics.contains(where: { $0.severity == .error }) {
            return .success(plan)
        }
        return .failure(PipelineValidationError(Self.sorted(diagnostics), sources: loaded.sources))
    }

    /// Diagnostics in file order; those without a location first.
    static func sorted(_ diagnostics: [Diagnostic]) -> [Diagnostic] {
        var seen: Set<Diagnostic> = []
        let unique = diagnostics.filter { seen.insert($0).inserted }  // one problem found twice is shown once
        return unique.enumerated().sorted { a, b in
            switch (a.element.location, b.element.location) {
            case (nil, nil): return a.offset < b.offset
            case (nil, _): return true
            case (_, nil): return false
            case let (l?, r?):
                if l.file != r.file { return a.offset < b.offset }
                return (l.line, l.column, a.offset) < (r.line, r.column, b.offset)
            }
        }.map(\.element)
    }

    private struct Partial {
        var declaration: StageDeclaration
        var type: StageType?
        var parameters: Parameters?
        var instance: (any Stage)?
        var inputs: [String: String] = [:]
        var inputLocations: [String: SourceLocation] = [:]
        var outputType: ArtifactType?
    }

    /// Checks `document`; returns a plan when nothing is wrong with it.
    public func plan(_ document: PipelineDocument, diagnostics: inout [Diagnostic]) -> Plan? {
        let ids = StageIDs(document.stages.map(\.id))
        let templateNames = Template.builtinNames.union(document.params.keys)
        var partials: [String: Partial] = [:]

        for declaration in document.stages {
            var partial = Partial(declaration: declaration)
            defer { partials[declaration.id] = partial }
            guard let typeName = declaration.type else {
                if declaration.keysInDoubt.contains("type") { continue }  // the mistyped key is reported
                diagnostics.append(.error("stage '\(declaration.id)' has no 'type'", at: declaration.location,
                                          help: "add 'type: <name>'; `runner stages` lists the stage types"))
                continue
            }
            guard let type = registry[typeName] else {
                diagnostics.append(.error("unknown stage type '\(typeName)'", at: declaration.typeLocation,
                                          help: Suggestions.didYouMean(typeName, in: registry.names)
                                            ?? "known types: " + registry.names.quotedList()))
                continue
            }
            partial.type = type
            let label = "stage '\(declaration.id)' (\(typeName))"
            partial.parameters = checkParameters(declaration, spec: type.spec, label: label, templateNames: templateNames,
                                                 document: document, diagnostics: &diagnostics)
            checkPathValues(declaration, spec: type.spec, label: label, document: document, diagnostics: &diagnostics)
            connectInputs(declaration, spec: type.spec, label: label, ids: ids, into: &partial, diagnostics: &diagnostics)
            for reference in declaration.after where !ids.contains(reference.stage) {
                diagnostics.append(.error("\(label) runs after '\(reference.stage)', which is not a stage of this pipeline",
                                          at: reference.location, help: ids.suggestion(for: reference.stage)))
            }
            if let parameters = partial.parameters {
                do {
                    partial.instance = try type.make(parameters)
                } catch {
                    diagnostics.append(parameterDiagnostic(error, declaration: declaration, label: label))
                }
            }
        }

        guard let order = dependencyOrder(document, partials: partials, diagnostics: &diagnostics) else { return nil }

        // Types along the edges, in dependency order.
        for id in order {
            guard var partial = partials[id], let type = partial.type, let parameters = partial.parameters else { continue }
            let label = "stage '\(id)' (\(type.name))"
            var inputTypes: [String: ArtifactType] = [:]
            var complete = type.spec.inputs.allSatisfy { partial.inputs[$0.name] != nil }
            for (port, producer) in partial.inputs.sorted(by: { $0.key < $1.key }) {
                guard let accepts = type.spec.requirement(forPort: port) else { complete = false; continue }
                guard let produced = partials[producer]?.outputType else { complete = false; continue }
                if accepts.accepts(produced) {
                    inputTypes[port] = produced
                } else {
                    complete = false
                    let producerType = partials[producer]?.type?.name ?? "?"
                    let portText = partial.inputs.count == 1 ? "" : " on port '\(port)'"
                    diagnostics.append(.error(
                        "\(label) accepts \(accepts)\(portText), but '\(producer)' (\(producerType)) produces \(produced)",
                        at: partial.inputLocations[port] ?? partial.declaration.location,
                        help: conversionHint(from: produced, to: accepts)))
                }
            }
            guard complete else { continue }
            do {
                var context = OutputContext(parameters: parameters, inputTypes: inputTypes)
                context.templateNames = templateNames
                for pair in partial.declaration.parameters {
                    let names = Self.nodes(in: pair.value).flatMap { document.substitutions[$0.location] ?? [] }.map(\.name)
                    if !names.isEmpty { context.interpolatedParams[pair.name] = names }
                }
                partial.outputType = try type.spec.output.resolve(context)
            } catch {
                diagnostics.append(parameterDiagnostic(error, declaration: partial.declaration, label: label))
            }
            partials[id] = partial
        }

        guard !diagnostics.contains(where: { $0.severity == .error }) else { return nil }
        let stages = order.compactMap { id -> PlannedStage? in
            guard let partial = partials[id], let type = partial.type, let instance = partial.instance,
                  let parameters = partial.parameters, let outputType = partial.outputType else { return nil }
            return PlannedStage(id: id, type: type, instance: instance, parameters: parameters, inputs: partial.inputs,
                                after: partial.declaration.after.map(\.stage), outputType: outputType,
                                retry: partial.declaration.retry, timeout: partial.declaration.timeout)
        }
        var plan = Plan(name: document.name, file: document.file, params: document.params, stages: stages, codecs: registry.codecs)
        plan.environmentNames = document.environmentNames
        return plan
    }

    private func conversionHint(from produced: ArtifactType, to accepts: TypeRequirement) -> String? {
        if produced.traits.contains(.grid), accepts.types.contains(.grid(.float32)) {
            return "put a 'normalize' stage between them to get Grid<Float32>"
        }
        if produced.traits.contains(.grid), accepts.traits.contains(.bytes) {
            return "encode the grid first: put a 'jpeg' or 'png' stage between them"
        }
        return nil
    }

    /// A problem the stage found (in `init` or its output resolver). It may be about
    /// how the file combines values (`${tag}` in a shell command), so it stays at the
    /// file's position even when a value came from `--set`.
    private func parameterDiagnostic(_ error: any Error, declaration: StageDeclaration, label: String) -> Diagnostic {
        if let error = error as? ParameterError {
            let pair = error.parameter.flatMap { name in declaration.parameters.first { $0.name == name } }
            let what = error.parameter.map { "parameter '\($0)' of \(label)" } ?? label
            return .error("\(what) \(error.message)", at: pair?.value.location ?? declaration.parametersLocation ?? declaration.location,
                          help: error.help)
        }
        return .error("\(label): \(error)", at: declaration.parametersLocation ?? declaration.location)
    }

    /// The `--set` argument that gave a param `${name}` put into the value at
    /// `location`, and that substitution; nil when no part came from the command line.
    private func commandLineOrigin(
        of location: SourceLocation, in document: PipelineDocument
    ) -> (setting: CommandLineSetting, used: ParamSubstitution)? {
        for used in document.substitutions[location] ?? [] {
            if let setting = document.paramsFromCommandLine[used.name] { return (setting, used) }
        }
        return nil
    }

    /// Whether a value put into a template could be what is wrong at one place in it:
    /// a placeholder brace or a control character. Otherwise such a problem is the
    /// file's own text, and stays at the file's position.
    private static func canCauseProblemsInPlace(_ value: String) -> Bool {
        value.unicodeScalars.contains { $0 == "{" || $0 == "}" || $0.properties.generalCategory == .control }
    }

    /// Help for a problem blamed on a `--set`: where the file uses the value.
    private static func usedAt(_ used: ParamSubstitution) -> String {
        "the file puts it into this parameter with ${\(used.name)} at \(used.location)"
    }

    private func checkParameters(
        _ declaration: StageDeclaration, spec: StageSpec, label: String, templateNames: Set<String>,
        document: PipelineDocument, diagnostics: inout [Diagnostic]
    ) -> Parameters? {
        var values: [String: ParameterValue] = [:]
        var ok = true
        for pair in declaration.parameters {
            if document.unresolvedValues.contains(pair.value.location) {
                ok = false  // its `${...}` problem is reported already
                continue
            }
            guard let parameter = spec.parameter(pair.name) else {
                ok = false
                let names = spec.parameters.map(\.name)
                diagnostics.append(.error("unknown parameter '\(pair.name)' for \(label)", at: pair.key.location,
                                          help: Suggestions.didYouMean(pair.name, in: names)
                                            ?? (names.isEmpty ? "'\(spec.name)' takes no parameters" : "parameters: " + names.quotedList())))
                continue
            }
            if pair.value.isNull {
                if parameter.isRequired {
                    ok = false
                    diagnostics.append(.error("parameter '\(pair.name)' of \(label) needs a value", at: pair.value.location,
                                              help: "\(pair.name): \(parameter.type) — \(parameter.doc)"))
                }
                continue
            }
            switch ParameterChecker.convert(pair.value, for: parameter, templateNames: templateNames) {
            case .success(let value):
                values[pair.name] = value
            case .failure(let problem):
                ok = false
                let message = "parameter '\(pair.name)' of \(label) \(problem.message)"
                if let origin = commandLineOrigin(of: problem.node, in: document),
                   problem.wholeValue || Self.canCauseProblemsInPlace(origin.used.value) {
                    // The value is the argument's: blame the argument, not the file's `${...}`.
                    diagnostics.append(.error("\(origin.setting.argument): \(message)", at: origin.setting.valueLocation,
                                              help: problem.help ?? Self.usedAt(origin.used)))
                    continue
                }
                let origin = document.substitutions[problem.node].map { used in
                    used.map { "'\($0.value)' comes from ${\($0.name)}" }.joined(separator: ", ")
                }
                diagnostics.append(.error(message, at: problem.location, help: problem.help ?? origin))
            }
        }
        for parameter in spec.parameters where values[parameter.name] == nil {
            if let value = parameter.defaultValue {
                values[parameter.name] = value
            } else if parameter.isRequired && !declaration.parameters.contains(where: { $0.name == parameter.name }) {
                ok = false
                if declaration.keysInDoubt.contains("with") { continue }  // its mistyped or misplaced 'with' is reported
                diagnostics.append(.error("\(label) is missing required parameter '\(parameter.name)'",
                                          at: declaration.parametersLocation ?? declaration.location,
                                          help: "add '\(parameter.name): <\(parameter.type)>' under 'with:' (\(parameter.doc))"))
            }
        }
        return ok ? Parameters(values) : nil
    }

    /// `node` and every node inside it.
    static func nodes(in node: YAMLNode) -> [YAMLNode] {
        switch node.content {
        case .scalar: [node]
        case .sequence(let items): [node] + items.flatMap { nodes(in: $0) }
        case .mapping(let pairs): [node] + pairs.flatMap { nodes(in: $0.value) }
        }
    }

    /// Pipeline params put into a template (a path or key) by `${name}` must stay one
    /// path component: no '/', no '..', no control characters. (`${env.NAME}` may
    /// name a directory: the environment is the operator's.)
    private func checkPathValues(
        _ declaration: StageDeclaration, spec: StageSpec, label: String, document: PipelineDocument, diagnostics: inout [Diagnostic]
    ) {
        for pair in declaration.parameters where spec.parameter(pair.name)?.type == .template {
            // `{name}` placeholders are filled at run time, but a pipeline param's value
            // is known now: check it now rather than fail midway through a run.
            if case .scalar(let text, _) = pair.value.content, let placeholders = try? Template.placeholders(in: text) {
                for placeholder in placeholders {
                    guard let value = document.params[placeholder.name], let problem = Template.pathSafetyProblem(value) else { continue }
                    diagnostics.append(.error(
                        "parameter '\(pair.name)' of \(label) puts param '\(placeholder.name)' = '\(Template.escaped(value))' into a path, which \(problem)",
                        at: ParameterChecker.scalarLocation(pair.value, offset: placeholder.offset),
                        help: "a param put into a path must be a single path component without control characters"))
                }
            }
            for substitution in document.substitutions[pair.value.location] ?? [] {
                if let problem = Template.pathSafetyProblem(substitution.value) {
                    let message = "parameter '\(pair.name)' of \(label) gets '\(Template.escaped(substitution.value))' from '${\(substitution.name)}', which \(problem)"
                    let help = "a param put into a path must be a single path component; to choose a directory, use ${env.NAME}"
                    // The value is the argument's: blame the argument, not the file's `${...}`.
                    if let setting = document.paramsFromCommandLine[substitution.name] {
                        diagnostics.append(.error("\(setting.argument): \(message)", at: setting.valueLocation, help: help))
                    } else {
                        diagnostics.append(.error(message, at: substitution.location, help: help))
                    }
                }
            }
        }
    }

    private func connectInputs(
        _ declaration: StageDeclaration, spec: StageSpec, label: String, ids: StageIDs, into partial: inout Partial,
        diagnostics: inout [Diagnostic]
    ) {
        let portNames = spec.inputs.map(\.name)
        for reference in declaration.inputs {
            let port: String
            if let named = reference.port {
                guard portNames.contains(named) || (spec.additionalInputs != nil && Names.isIdentifier(named)) else {
                    diagnostics.append(.error(
                        spec.inputs.isEmpty ? "\(label) takes no input" : "\(label) has no input port '\(named)'",
                        at: reference.portLocation ?? reference.location,
                        help: Suggestions.didYouMean(named, in: portNames) ?? (portNames.isEmpty ? nil : "ports: " + portNames.quotedList())))
                    continue
                }
                port = named
            } else if spec.inputs.isEmpty && spec.additionalInputs != nil {
                port = InputPort.defaultName
            } else {
                guard let only = spec.inputs.first else {
                    diagnostics.append(.error("\(label) takes no input", at: reference.location,
                                              help: "remove 'input:'; '\(spec.name)' is a source stage"))
                    continue
                }
                guard spec.inputs.count == 1 else {
                    diagnostics.append(.error("\(label) has several input ports (\(portNames.quotedList())); 'input:' cannot say which",
                                              at: reference.location, help: "use 'inputs: {\(only.name): \(reference.producer), ...}'"))
                    continue
                }
                port = only.name
            }
            guard ids.contains(reference.producer) else {
                diagnostics.append(.error("\(label) takes input from '\(reference.producer)', which is not a stage of this pipeline",
                                          at: reference.location,
                                          help: ids.suggestion(for: reference.producer) ?? ids.listing))
                continue
            }
            if partial.inputs[port] != nil {
                diagnostics.append(.error("\(label): input port '\(port)' is connected twice", at: reference.location))
                continue
            }
            partial.inputs[port] = reference.producer
            partial.inputLocations[port] = reference.location
        }
        // A mistyped or misplaced 'input:' is reported already; its absence is no news.
        guard declaration.keysInDoubt.isDisjoint(with: ["input", "inputs"]) else { return }
        for port in spec.inputs where partial.inputs[port.name] == nil && !declaration.inputs.contains(where: { ($0.port ?? port.name) == port.name }) {
            let hint = spec.inputs.count == 1
                ? "add 'input: <stage>' (it accepts \(port.accepts))"
                : "add '\(port.name): <stage>' under 'inputs:' (it accepts \(port.accepts))"
            diagnostics.append(.error("\(label) needs an input on port '\(port.name)'", at: declaration.location, help: hint))
        }
    }

    /// Topological order of all stages (Kahn's algorithm, ties in file order: of the
    /// stages ready at each step the first in the file comes first); nil after
    /// reporting a cycle. O((stages + edges) log stages).
    private func dependencyOrder(_ document: PipelineDocument, partials: [String: Partial], diagnostics: inout [Diagnostic]) -> [String]? {
        let ids = document.stages.map(\.id)
        var position: [String: Int] = [:]
        position.reserveCapacity(ids.count)
        for (index, id) in ids.enumerated() where position[id] == nil { position[id] = index }
        // Each stage's distinct producers (by position), with where each is named first.
        var dependencies: [[(stage: Int, location: SourceLocation)]] = Array(repeating: [], count: ids.count)
        var dependents: [[Int]] = Array(repeating: [], count: ids.count)
        var remaining = Array(repeating: 0, count: ids.count)
        for (index, declaration) in document.stages.enumerated() {
            var seen: Set<Int> = []
            let references = declaration.inputs.map { ($0.producer, $0.location) } + declaration.after.map { ($0.stage, $0.location) }
            for (name, location) in references {
                guard let producer = position[name] else { continue }
                dependencies[index].append((producer, location))
                if seen.insert(producer).inserted {
                    dependents[producer].append(index)
                    remaining[index] += 1
                }
            }
        }
        var ready = MinHeap()
        for index in ids.indices where remaining[index] == 0 { ready.push(index) }
        var order: [String] = []
        order.reserveCapacity(ids.count)
        var done = Array(repeating: false, count: ids.count)
        while let next = ready.pop() {
            order.append(ids[next])
            done[next] = true
            for dependent in dependents[next] {
                remaining[dependent] -= 1
                if remaining[dependent] == 0 { ready.push(dependent) }
            }
        }
        guard order.count < ids.count else { return order }

        // Find one cycle among the stages left: walk dependencies until a stage repeats.
        // Every stage left waits for at least one other stage left.
        var path: [Int] = []
        var onPath: [Int: Int] = [:]
        var current = done.firstIndex(of: false)!
        while onPath[current] == nil {
            onPath[current] = path.count
            path.append(current)
            current = dependencies[current].first { !done[$0.stage] }!.stage
        }
        let cycle = path[onPath[current]!...].map { ids[$0] }
        let first = cycle[0]
        let closing = cycle.count > 1 ? cycle[1] : first
        let location = dependencies[position[first]!].first { ids[$0.stage] == closing }?.location ?? partials[first]?.declaration.location
        let shown = (cycle + [first]).reversed().joined(separator: " -> ")
        diagnostics.append(.error("dependency cycle: \(shown)", at: location,
                                  help: "a pipeline is a DAG; remove one of these inputs or 'after' entries"))
        return nil
    }
}

/// A binary min-heap of stage positions: Kahn's ready set, smallest (earliest in the
/// file) first.
private struct MinHeap {
    private var items: [Int] = []

    mutating func push(_ item: Int) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Int? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count, items[left] < items[smallest] { smallest = left }
            if right < items.count, items[right] < items[smallest] { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

/// The stage ids of a document, for the checks that look names up: membership in
/// constant time, and "did you mean" suggestions whose total cost stays linear in the
/// number of stages however many references are wrong.
private final class StageIDs {
    let ordered: [String]
    private let members: Set<String>
    /// Suggestions computed so far; each compares the word with every id.
    private var suggestionsMade = 0
    /// Past this many, a pipeline with thousands of wrong references gets no more
    /// suggestions rather than a quadratic validation.
    static let suggestionLimit = 50

    init(_ ordered: [String]) {
        self.ordered = ordered
        members = Set(ordered)
    }

    func contains(_ id: String) -> Bool { members.contains(id) }

    func suggestion(for word: String) -> String? {
        guard ordered.count <= 1_000 || suggestionsMade < Self.suggestionLimit else { return nil }
        suggestionsMade += 1
        return Suggestions.didYouMean(word, in: ordered)
    }

    /// "stages: 'a', 'b' and 'c'", or their count when there are too many to list.
    var listing: String {
        ordered.count <= 20 ? "stages: " + ordered.quotedList() : "the pipeline has \(ordered.count) stages"
    }
}
