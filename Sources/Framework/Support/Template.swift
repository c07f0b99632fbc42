/// Run-time templates in paths and keys: `out/{run_id}/grid_{width}x{height}.{format}`.
///
/// `{name}` is replaced by a value; `{{` and `}}` stand for literal braces. Values put
/// into a path must not be able to leave the directory the template names, so a value
/// containing `/`, a backslash or a control character, or equal to `.` or `..` or
/// empty, is refused.
public enum Template {
    /// The placeholders the framework fills for every stage.
    public static let builtinNames: Set<String> = ["run_id", "stage", "date", "width", "height", "format"]

    public struct Placeholder: Hashable, Sendable {
        public var name: String
        /// Offset, in Unicode scalars, of the `{` in the template.
        public var offset: Int
    }

    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { message }
    }

    /// The placeholders of a template, in order.
    public static func placeholders(in template: String) throws(SyntaxError) -> [Placeholder] {
        var result: [Placeholder] = []
        try scan(template) { placeholder in result.append(placeholder) } literal: { _ in }
        return result
    }

    /// Fills a template. Unknown names are errors, and so are values that could leave
    /// a directory, unless `pathSafe` is false (for command arguments, say).
    public static func expand(_ template: String, values: [String: String], pathSafe: Bool = true) throws -> String {
        var output = ""
        var failure: (any Error)?
        try scan(template) { placeholder in
            guard failure == nil else { return }
            guard let value = values[placeholder.name] else {
                failure = StageFailure("template '\(template)' uses '{\(placeholder.name)}', which has no value here; known: "
                    + values.keys.sorted().joined(separator: ", "), retryable: false, code: .invalidParameter)
                return
            }
            if pathSafe, let problem = pathSafetyProblem(value) {
                failure = StageFailure("value '\(escaped(value))' for '{\(placeholder.name)}' in '\(template)' \(problem)", retryable: false,
                                       code: .invalidParameter)
                return
            }
            output += value
        } literal: { text in
            output += text
        }
        if let failure { throw failure }
        return output
    }

    /// `template` with the placeholders that `values` names (with a value that can go
    /// into a path) filled in and the others kept, braces in the filled text doubled:
    /// what the template is once only what a run alone knows (`{run_id}`) is left.
    /// A template that does not parse comes back as it is.
    public static func filling(_ template: String, values: [String: String]) -> String {
        func braced(_ text: String) -> String {
            text.replacingOccurrences(of: "{", with: "{{").replacingOccurrences(of: "}", with: "}}")
        }
        var output = ""
        do {
            try scan(template) { placeholder in
                if let value = values[placeholder.name], pathSafetyProblem(value) == nil {
                    output += braced(value)
                } else {
                    output += "{\(placeholder.name)}"
                }
            } literal: { output += braced($0) }
        } catch {
            return template
        }
        return output
    }

    /// Why a value cannot go into a path, or nil when it can.
    public static func pathSafetyProblem(_ value: String) -> String? {
        if value.isEmpty { return "is empty" }
        if value == "." || value == ".." { return "would name a directory outside the target" }
        if value.contains("/") || value.contains("\\") { return "contains a path separator" }
        if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "contains a control character"
        }
        return nil
    }

    static func escaped(_ value: String) -> String {
        value.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
    }

    private static func scan(
        _ template: String, placeholder: (Placeholder) -> Void, literal: (String) -> Void
    ) throws(SyntaxError) {
        let scalars = Array(template.unicodeScalars)
        var index = 0
        var text = String.UnicodeScalarView()
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "{" {
                if index + 1 < scalars.count && scalars[index + 1] == "{" {
                    text.append("{")
                    index += 2
                    continue
                }
                guard let close = scalars[(index + 1)...].firstIndex(of: "}") else {
                    throw SyntaxError(message: "'{' at offset \(index) is never closed; write '{{' for a literal brace", offset: index)
                }
                let name = String(String.UnicodeScalarView(scalars[(index + 1)..<close]))
                guard !name.isEmpty, name.unicodeScalars.allSatisfy({ $0 == "_" || $0 == "." || $0.properties.isAlphabetic || ("0"..."9").contains($0) }) else {
                    throw SyntaxError(message: "'{\(name)}' is not a placeholder name; write '{{' for a literal brace", offset: index)
                }
                literal(String(text))
                text = String.UnicodeScalarView()
                placeholder(Placeholder(name: name, offset: index))
                index = close + 1
            } else if scalar == "}" {
                guard index + 1 < scalars.count && scalars[index + 1] == "}" else {
                    throw SyntaxError(message: "'}' at offset \(index) closes nothing; write '}}' for a literal brace", offset: index)
                }
                text.append("}")
                index += 2
            } else {
                text.append(scalar)
                index += 1
            }
        }
        literal(String(text))
    }
}
