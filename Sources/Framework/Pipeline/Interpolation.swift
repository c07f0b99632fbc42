import Foundation

/// Load-time interpolation of `${...}` in pipeline values.
///
/// - `${name}` is the pipeline parameter `name`;
/// - `${env.NAME}` is the environment variable `NAME`;
/// - `${name:-default}` and `${env.NAME:-default}` use `default` when the parameter
///   or variable is unset (an empty variable counts as unset, as in the shell);
/// - `$$` is a literal `$`; a `$` not followed by `{` or `$` stays as it is.
struct Interpolator {
    var params: [String: String]
    var environment: [String: String]

    /// Scalars whose interpolation failed (already reported): later checks skip them.
    private(set) var failures: Set<SourceLocation> = []
    /// For each interpolated scalar, the pipeline params put into it (name and value),
    /// so that values put into paths can be checked.
    private(set) var substitutions: [SourceLocation: [ParamSubstitution]] = [:]
    /// The environment variables read, in the order first read.
    private(set) var environmentNames: [String] = []

    /// Interpolates every scalar below `node`; problems go to `diagnostics`.
    mutating func interpolate(_ node: YAMLNode, diagnostics: inout [Diagnostic]) -> YAMLNode {
        var result = node
        switch node.content {
        case .scalar(let text, let style):
            guard text.contains("$") else { return node }
            var used: [ParamSubstitution] = []
            defer { if !used.isEmpty { substitutions[node.location] = used } }
            if let expanded = interpolate(text, in: node, diagnostics: &diagnostics, used: &used) {
                // A value that came out of a variable is data, never YAML null.
                result.content = .scalar(expanded, expanded == text ? style : (style == .plain ? .doubleQuoted : style))
            } else {
                failures.insert(node.location)
            }
        case .mapping(let pairs):
            result.content = .mapping(pairs.map { YAMLPair(key: $0.key, value: interpolate($0.value, diagnostics: &diagnostics)) })
        case .sequence(let items):
            result.content = .sequence(items.map { interpolate($0, diagnostics: &diagnostics) })
        }
        return result
    }

    /// The interpolated text, or nil after reporting a problem.
    mutating func interpolate(_ text: String, in node: YAMLNode, diagnostics: inout [Diagnostic], used: inout [ParamSubstitution]) -> String? {
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        var failed = false
        while index < scalars.count {
            let scalar = scalars[index]
            guard scalar == "$", index + 1 < scalars.count else {
                output.append(scalar)
                index += 1
                continue
            }
            let next = scalars[index + 1]
            if next == "$" {
                output.append("$")
                index += 2
                continue
            }
            guard next == "{" else {
                output.append(scalar)
                index += 1
                continue
            }
            let location = ParameterChecker.scalarLocation(node, offset: index)
            guard let close = scalars[(index + 2)...].firstIndex(of: "}") else {
                diagnostics.append(.error("'${' is never closed", at: location, help: "write '$${' for a literal '${'"))
                return nil
            }
            let body = String(String.UnicodeScalarView(scalars[(index + 2)..<close]))
            if let value = resolve(body, at: location, diagnostics: &diagnostics, used: &used) {
                output.append(contentsOf: value.unicodeScalars)
            } else {
                failed = true
            }
            index = close + 1
        }
        return failed ? nil : String(output)
    }

    private mutating func resolve(
        _ body: String, at location: SourceLocation, diagnostics: inout [Diagnostic], used: inout [ParamSubstitution]
    ) -> String? {
        var name = body
        var fallback: String?
        if let range = body.range(of: ":-") {
            name = String(body[..<range.lowerBound])
            fallback = String(body[range.upperBound...])
        }
        if name.hasPrefix("env.") {
            let variable = String(name.dropFirst(4))
            guard !variable.isEmpty else {
                diagnostics.append(.error("'${\(body)}' names no environment variable", at: location))
                return nil
            }
            if !environmentNames.contains(variable) { environmentNames.append(variable) }
            if let value = environment[variable], !value.isEmpty { return value }
            if let fallback { return fallback }
            diagnostics.append(.error(
                "environment variable '\(variable)' is not set", at: location,
                help: "set it (export \(variable)=...), or give a default: ${env.\(variable):-value}"))
            return nil
        }
        if let value = params[name] {
            used.append(ParamSubstitution(name: name, value: value, location: location))
            return value
        }
        if let fallback { return fallback }
        let help: String
        if Template.builtinNames.contains(name) {
            // `${...}` is filled when the file is loaded; run-time values use `{...}`.
            help = "'\(name)' is known only when the run starts: write the run-time placeholder {\(name)}, without '$'"
        } else {
            help = Suggestions.didYouMean(name, in: params.keys)
                ?? (params.isEmpty ? "declare it under 'params:'" : "declared params: " + params.keys.sorted().quotedList())
        }
        diagnostics.append(.error("undefined parameter '${\(name)}'", at: location, help: help))
        return nil
    }

    /// The param names used with a default (`${name:-default}`) anywhere below `node`:
    /// params a file may leave undeclared and `--set` may still give.
    static func namesWithDefaults(in node: YAMLNode) -> Set<String> {
        switch node.content {
        case .scalar(let text, _):
            guard text.contains("${") else { return [] }
            var names: Set<String> = []
            let scalars = Array(text.unicodeScalars)
            var index = 0
            while index + 1 < scalars.count {
                if scalars[index] == "$" && scalars[index + 1] == "$" {
                    index += 2
                    continue
                }
                guard scalars[index] == "$", scalars[index + 1] == "{",
                      let close = scalars[(index + 2)...].firstIndex(of: "}") else {
                    index += 1
                    continue
                }
                let body = String(String.UnicodeScalarView(scalars[(index + 2)..<close]))
                if let range = body.range(of: ":-"), !body.hasPrefix("env.") {
                    names.insert(String(body[..<range.lowerBound]))
                }
                index = close + 1
            }
            return names
        case .sequence(let items):
            return items.reduce(into: []) { $0.formUnion(namesWithDefaults(in: $1)) }
        case .mapping(let pairs):
            return pairs.reduce(into: []) { $0.formUnion(namesWithDefaults(in: $1.value)) }
        }
    }
}

/// A pipeline param put into a value by `${name}`.
public struct ParamSubstitution: Sendable, Hashable {
    public var name: String
    public var value: String
    /// Where the `${` stands.
    public var location: SourceLocation
}
