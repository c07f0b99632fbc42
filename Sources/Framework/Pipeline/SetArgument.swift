/// One `--set KEY=VALUE` argument: the key path it names and the value it gives,
/// with positions in the argument's pseudo-file (`--set[1]`, `--set[2]`, ...).
struct SetArgument {
    /// The argument as typed, for messages: `--set params.size=abc` (control
    /// characters escaped, a long value shortened).
    let display: String
    /// `params.size` as `["params", "size"]`.
    let path: [String]
    let value: YAMLNode
    let valueLocation: SourceLocation
    private let file: String
    private let assignment: String

    /// Longest argument shown whole in a message.
    static let displayLimit = 80

    /// Parses `assignment`, the `index`th `--set`; nil after reporting a problem.
    init?(_ assignment: String, index: Int, sources: inout SourceTexts, diagnostics: inout [Diagnostic]) {
        let file = "--set[\(index)]"
        sources.add(file: file, text: assignment)
        let start = SourceLocation(file: file, line: 1, column: 1)
        guard let equals = assignment.firstIndex(of: "=") else {
            diagnostics.append(.error("--set expects KEY=VALUE, got '\(Template.escaped(assignment))'", at: start,
                                      help: "for example --set params.size=1024 or --set stages.encode.with.quality=80"))
            return nil
        }
        let key = assignment[..<equals]
        let path = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let first = path.first, ["name", "params", "stages"].contains(first), !path.contains("") else {
            diagnostics.append(.error(
                "--set key '\(Template.escaped(String(key)))' must start with 'params.', 'stages.' or be 'name'", at: start,
                help: "for example --set params.size=1024 or --set stages.encode.with.quality=80"))
            return nil
        }
        let valueText = String(assignment[assignment.index(after: equals)...])
        let valueLocation = SourceLocation(file: file, line: 1, column: key.unicodeScalars.count + 2)
        var value = YAMLNode.scalar(valueText, at: valueLocation)
        if valueText.hasPrefix("[") {
            // The value is parsed on its own: what it says about line 1 is shifted by the
            // key's width, so positions point into the whole argument.
            let shift = valueLocation.column - 1
            let parsed = YAMLParser.parse(valueText, file: file)
            diagnostics += parsed.diagnostics.map { diagnostic in
                var moved = diagnostic
                moved.location = diagnostic.location.map { Self.shifted($0, by: shift) }
                return moved
            }
            guard let node = parsed.root, parsed.diagnostics.isEmpty else { return nil }
            value = Self.shifted(node, by: shift)
        }
        self.display = Self.display(assignment)
        self.path = path
        self.value = value
        self.valueLocation = valueLocation
        self.file = file
        self.assignment = assignment
    }

    /// Where `path[component]` starts in the argument.
    func location(ofComponent component: Int) -> SourceLocation {
        let column = path.prefix(component).reduce(1) { $0 + $1.unicodeScalars.count + 1 }
        return SourceLocation(file: file, line: 1, column: column)
    }

    /// What a message says about where a value came from.
    var setting: CommandLineSetting {
        CommandLineSetting(argument: display, valueLocation: valueLocation)
    }

    static func display(_ assignment: String) -> String {
        let scalars = Array(assignment.unicodeScalars)
        let shown = scalars.count > displayLimit
            ? String(String.UnicodeScalarView(scalars.prefix(displayLimit - 3))) + "..."
            : assignment
        return "--set " + Template.escaped(shown)
    }

    private static func shifted(_ location: SourceLocation, by shift: Int) -> SourceLocation {
        location.line == 1 ? location.advanced(by: shift) : location
    }

    private static func shifted(_ node: YAMLNode, by shift: Int) -> YAMLNode {
        var result = node
        result.location = shifted(node.location, by: shift)
        switch node.content {
        case .scalar:
            break
        case .sequence(let items):
            result.content = .sequence(items.map { shifted($0, by: shift) })
        case .mapping(let pairs):
            result.content = .mapping(pairs.map { YAMLPair(key: shifted($0.key, by: shift), value: shifted($0.value, by: shift)) })
        }
        return result
    }
}

/// A pipeline param whose value came from a `--set` argument: problems with the value
/// are blamed on the argument, not on the `${name}` in the file that used it.
public struct CommandLineSetting: Sendable, Hashable {
    /// The argument as typed: `--set params.size=abc`.
    public var argument: String
    /// Where the value starts in the argument's pseudo-file (`--set[1]`).
    public var valueLocation: SourceLocation
}

extension Overlay {
    /// Applies `--set` assignments in order, after the profiles.
    ///
    /// `--set params.X=...` must name a param the file (or an applied profile) declares,
    /// or one the file uses with a default (`${X:-default}`). `--set stages.ID...` for an
    /// id the pipeline lacks adds a stage only when a `--set` also gives it a `type`;
    /// otherwise it is a mistyped id, reported with a did-you-mean and dropped, so no
    /// knock-on errors follow.
    ///
    /// - Returns: the edited root, and the params given values on the command line.
    static func apply(
        assignments: [String], to root: YAMLNode, sources: inout SourceTexts, diagnostics: inout [Diagnostic]
    ) -> (root: YAMLNode, params: [String: CommandLineSetting]) {
        var root = root
        var params: [String: CommandLineSetting] = [:]
        var addedStages: [(id: String, argument: SetArgument)] = []
        var defaultedParams: Set<String>?
        for (index, assignment) in assignments.enumerated() {
            guard let argument = SetArgument(assignment, index: index + 1, sources: &sources, diagnostics: &diagnostics) else { continue }
            if argument.path.count >= 2, argument.path[0] == "params" {
                let name = argument.path[1]
                let declared = Set(root["params"]?.pairs?.map(\.name) ?? [])
                if !declared.contains(name) {
                    let known = declared.union(defaultedParams ?? { () -> Set<String> in
                        let names = Interpolator.namesWithDefaults(in: root)
                        defaultedParams = names
                        return names
                    }())
                    if !known.contains(name) {
                        diagnostics.append(.error(
                            "\(argument.display): the pipeline declares no param '\(Template.escaped(name))'",
                            at: argument.location(ofComponent: 1),
                            help: Suggestions.didYouMean(name, in: known)
                                ?? (known.isEmpty ? "this pipeline has no 'params:'; declare it there first"
                                                  : "declared params: " + known.sorted().quotedList())))
                        continue
                    }
                }
                if argument.path.count == 2 { params[name] = argument.setting }
            }
            if argument.path.count >= 2, argument.path[0] == "stages" {
                let id = argument.path[1]
                if root["stages"]?[id] == nil && !addedStages.contains(where: { $0.id == id }) {
                    addedStages.append((id, argument))
                }
            }
            root = setValue(argument.value, at: argument.path[...], in: root, argument: argument, diagnostics: &diagnostics) ?? root
        }

        // A stage that `--set` created without a type is a mistyped stage id.
        guard !addedStages.isEmpty, let stages = root["stages"], stages.pairs != nil else { return (root, params) }
        let added = Set(addedStages.map(\.id))
        let existing = (stages.pairs ?? []).filter { !added.contains($0.name) }
        var editor = MappingEditor(stages)
        for (id, argument) in addedStages where editor[id]?["type"] == nil {
            diagnostics.append(.error(
                "\(argument.display): the pipeline has no stage '\(Template.escaped(id))'", at: argument.location(ofComponent: 1),
                help: stageSuggestion(for: id, in: existing)))
            editor.remove(id)
        }
        return (root.setting("stages", to: editor.node, keyAt: stages.location), params)
    }

    /// Help for a `--set` naming stage `id`, which the pipeline lacks: a stage whose
    /// id is close, else one whose type is (`jpg` is likely the `jpeg` stage), else how
    /// to add a stage.
    private static func stageSuggestion(for id: String, in stages: [YAMLPair]) -> String {
        if let suggestion = Suggestions.didYouMean(id, in: stages.map(\.name)) { return suggestion }
        let types = stages.compactMap { $0.value["type"]?.scalar }
        if let type = Suggestions.closest(to: id, in: types), let stage = stages.first(where: { $0.value["type"]?.scalar == type }) {
            return "did you mean '\(stage.name)'? (its type is '\(type)')"
        }
        let add = "to add a stage, give it a type too: --set stages.\(Template.escaped(id)).type=TYPE"
        guard !stages.isEmpty, stages.count <= 20 else { return add }
        return "stages: " + stages.map(\.name).quotedList() + "; " + add
    }

    private static func setValue(
        _ value: YAMLNode, at path: ArraySlice<String>, in node: YAMLNode, argument: SetArgument, diagnostics: inout [Diagnostic]
    ) -> YAMLNode? {
        guard let key = path.first else { return value }
        let keyLocation = argument.location(ofComponent: path.startIndex)
        guard node.pairs != nil || node.isNull else {
            diagnostics.append(.error("\(argument.display): '\(Template.escaped(key))' is below a value that is \(node.kindName), not a mapping",
                                      at: keyLocation))
            return nil
        }
        let container = node.isNull ? YAMLNode(.mapping([]), at: keyLocation) : node
        let child = container[key] ?? YAMLNode(.mapping([]), at: keyLocation)
        guard let updated = setValue(value, at: path.dropFirst(), in: child, argument: argument, diagnostics: &diagnostics) else {
            return nil
        }
        return container.setting(key, to: updated, keyAt: keyLocation)
    }
}
