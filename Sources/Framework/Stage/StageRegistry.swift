/// The stage types a runner knows, by name.
///
/// A registry is a value built from an explicit list; registration checks each
/// description and reports every problem at once instead of crashing. A program that
/// embeds the framework builds its own (`try StageRegistry(BuiltinStages.all + [MyStage])`).
///
/// A registry also carries the artifact codecs (`codecs`) through which runs with an
/// artifact store persist stage outputs: the framework's own, plus those a package
/// registers for its own artifact types.
public struct StageRegistry: Sendable {
    private var byName: [String: StageType] = [:]
    /// Registered types, in registration order.
    public private(set) var types: [StageType] = []
    /// How each artifact type is stored (`ArtifactCodecs.builtin` and the registered ones);
    /// the planner puts them on the plan (`Plan.codecs`).
    public private(set) var codecs: ArtifactCodecs = .builtin

    /// A registry of `types`, with the built-in codecs and `codecs`.
    public init(_ types: [StageType] = [], codecs: [ArtifactCodec] = []) throws(RegistrationError) {
        try register(types)
        self.codecs = try self.codecs.adding(codecs)
    }

    /// A registry holding these types and codecs and the given ones. A codec for a
    /// type that already has one is a `RegistrationError`.
    public func adding(_ more: [StageType], codecs: [ArtifactCodec] = []) throws(RegistrationError) -> StageRegistry {
        var copy = self
        try copy.register(more)
        copy.codecs = try copy.codecs.adding(codecs)
        return copy
    }

    public mutating func register(_ more: [StageType]) throws(RegistrationError) {
        var problems: [String] = []
        var accepted: [StageType] = []
        for type in more {
            var typeProblems = Self.problems(in: type.spec)
            if byName[type.name] != nil || accepted.contains(where: { $0.name == type.name }) {
                typeProblems.append("stage type '\(type.name)' is registered twice")
            }
            if typeProblems.isEmpty {
                accepted.append(type)
            }
            problems += typeProblems
        }
        guard problems.isEmpty else { throw RegistrationError(problems: problems) }
        for type in accepted {
            byName[type.name] = type
            types.append(type)
        }
    }

    public subscript(name: String) -> StageType? {
        byName[name]
    }

    /// Names in alphabetical order.
    public var names: [String] { byName.keys.sorted() }


    static func problems(in spec: StageSpec) -> [String] {
        var problems: [String] = []
        let label = "stage type '\(spec.name)'"
        if !Names.isTypeName(spec.name) {
            problems.append("\(label): name must be snake_case or kebab-case (lower-case letters, digits, '_' or '-')")
        }
        if spec.summary.allSatisfy(\.isWhitespace) {
            problems.append("\(label): summary is missing")
        }
        if spec.version < 1 {
            problems.append("\(label): version is \(spec.version); versions start at 1")
        }
        var seenParameters: Set<String> = []
        for parameter in spec.parameters {
            if !Names.isIdentifier(parameter.name) {
                problems.append("\(label): parameter name '\(parameter.name)' must be snake_case")
            }
            if !seenParameters.insert(parameter.name).inserted {
                problems.append("\(label): parameter '\(parameter.name)' is declared twice")
            }
            if parameter.doc.allSatisfy(\.isWhitespace) {
                problems.append("\(label): parameter '\(parameter.name)' has no doc")
            }
            if let value = parameter.defaultValue {
                if let problem = ParameterChecker.problem(with: value, for: parameter) {
                    problems.append("\(label): default of parameter '\(parameter.name)' \(problem)")
                }
            }
        }
        var seenPorts: Set<String> = []
        for port in spec.inputs {
            if !Names.isIdentifier(port.name) {
                problems.append("\(label): port name '\(port.name)' must be snake_case")
            }
            if !seenPorts.insert(port.name).inserted {
                problems.append("\(label): input port '\(port.name)' is declared twice")
            }
            if port.doc.allSatisfy(\.isWhitespace) {
                problems.append("\(label): input port '\(port.name)' has no doc")
            }
            if port.accepts.types.isEmpty && port.accepts.traits.isEmpty {
                problems.append("\(label): input port '\(port.name)' accepts no artifact type")
            }
        }
        if spec.output.possibleTypes.isEmpty {
            problems.append("\(label): output declares no possible type")
        }
        return problems
    }
}

/// Every problem found while registering stage types.
public struct RegistrationError: Error, Sendable, CustomStringConvertible {
    public var problems: [String]
    public var description: String {
        "invalid stage registration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
