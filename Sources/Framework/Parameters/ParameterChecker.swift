/// Converts YAML values to typed parameter values and checks them against their spec.
enum ParameterChecker {
    /// A conversion problem: the message says what was expected, `help` what to do.
    struct Problem: Error {
        var message: String
        var help: String?
        var location: SourceLocation
        /// The node whose value is wrong (an item, for a list): its `${...}`
        /// substitutions say where the value came from.
        var node: SourceLocation
        /// The problem is with the value as a whole (its type, range or choice), not
        /// with one place in it (a placeholder, a control character).
        var wholeValue: Bool
    }

    /// Converts `node` to a value of `spec.type` and checks range and choices.
    /// `templateNames` are the placeholders a template parameter may use.
    static func convert(_ node: YAMLNode, for spec: ParameterSpec, templateNames: Set<String>) -> Result<ParameterValue, Problem> {
        convert(node, type: spec.type, spec: spec, templateNames: templateNames)
    }

    private static func convert(
        _ node: YAMLNode, type: ParameterType, spec: ParameterSpec, templateNames: Set<String>
    ) -> Result<ParameterValue, Problem> {
        func fail(_ message: String, help: String? = nil, at location: SourceLocation? = nil) -> Result<ParameterValue, Problem> {
            .failure(Problem(message: message, help: help, location: location ?? node.location, node: node.location,
                             wholeValue: location == nil))
        }
        if case .list(let element, let count) = type {
            if node.items == nil, spec.acceptsSingleItem, node.scalar != nil, count == nil || count == 1 {
                return convert(node, type: element, spec: spec, templateNames: templateNames).map { .list([$0]) }
            }
            guard let items = node.items else {
                return fail("must be a list of \(element)s, got \(node.kindName)", help: "write it as [a, b]")
            }
            if let count, items.count != count {
                return fail("must be a list of \(count) \(element)s, got \(items.count)")
            }
            var values: [ParameterValue] = []
            for item in items {
                switch convert(item, type: element, spec: spec, templateNames: templateNames) {
                case .success(let value): values.append(value)
                case .failure(let problem): return .failure(problem)
                }
            }
            return .success(.list(values))
        }
        if case .mapping = type {
            guard let pairs = node.pairs else {
                return fail("must be a mapping of names to strings, got \(node.kindName)", help: "write it as {name: value}")
            }
            var values: [String: String] = [:]
            for pair in pairs {
                guard let text = pair.value.scalar else {
                    return fail("entry '\(pair.name)' must be a string, got \(pair.value.kindName)", at: pair.value.location)
                }
                values[pair.name] = text
            }
            return .success(.mapping(values))
        }
        guard let text = node.scalar else {
            return fail("must be \(article(type)), got \(node.kindName)")
        }
        let value: ParameterValue
        switch type {
        case .integer:
            guard let parsed = parseInteger(text) else {
                // A whole number too large for 64 bits is out of range, not "not an integer".
                if let double = Double(text.replacingUnderscores()), double == double.rounded() {
                    return fail("is out of range: integers go from \(Int.min) to \(Int.max), got '\(text)'")
                }
                return fail("must be an integer, got '\(text)'")
            }
            value = .integer(parsed)
        case .number:
            guard let parsed = Double(text.replacingUnderscores()), !text.isEmpty else {
                return fail("must be a number, got '\(text)'")
            }
            guard parsed.isFinite else {
                return fail("must be a finite number, got '\(text)'")
            }
            value = .number(parsed)
        case .boolean:
            switch text.lowercased() {
            case "true", "yes", "on": value = .boolean(true)
            case "false", "no", "off": value = .boolean(false)
            default: return fail("must be true or false, got '\(text)'")
            }
        case .string:
            value = .string(text)
        case .template:
            // Paths and keys: a NUL or other control character is never meant.
            if let offset = FilePaths.controlCharacterOffset(in: text) {
                let scalar = Array(text.unicodeScalars)[offset]
                return fail("has a control character (\(scalar.escaped(asASCII: true))) at offset \(offset)",
                            help: "paths and keys cannot hold control characters; remove it",
                            at: scalarLocation(node, offset: offset))
            }
            do {
                for placeholder in try Template.placeholders(in: text) where !templateNames.contains(placeholder.name) {
                    let help = Suggestions.didYouMean(placeholder.name, in: templateNames)
                        ?? "known placeholders: " + templateNames.sorted().map { "{\($0)}" }.joined(separator: ", ")
                    return fail("uses unknown placeholder '{\(placeholder.name)}'", help: help,
                                at: scalarLocation(node, offset: placeholder.offset))
                }
            } catch {
                return fail("is not a valid template: \(error.message)", at: scalarLocation(node, offset: error.offset))
            }
            value = .string(text)
        case .choice(let words):
            guard words.contains(text) else {
                return fail("must be one of \(words.quotedList()), got '\(text)'", help: Suggestions.didYouMean(text, in: words))
            }
            value = .string(text)
        case .list, .mapping:
            fatalError("handled above")
        }
        if let problem = problem(with: value, for: spec, checkType: false) {
            return fail(problem)
        }
        return .success(value)
    }

    /// Checks an already typed value (a default) against the spec; nil when fine.
    static func problem(with value: ParameterValue, for spec: ParameterSpec, checkType: Bool = true) -> String? {
        if checkType {
            switch (spec.type, value) {
            case (.integer, .integer), (.number, .integer), (.number, .number), (.boolean, .boolean),
                 (.string, .string), (.template, .string), (.list, .list), (.mapping, .mapping):
                break
            case (.choice(let words), .string(let word)):
                if !words.contains(word) { return "must be one of \(words.quotedList()), got '\(word)'" }
            default:
                return "must be \(article(spec.type)), got '\(value)'"
            }
        }
        if let range = spec.range {
            let numbers: [Double]
            if case .list(let items) = value { numbers = items.compactMap(\.numericValue) } else { numbers = value.numericValue.map { [$0] } ?? [] }
            for number in numbers where !range.contains(number) {
                return "must be \(range), got \(value)"
            }
        }
        return nil
    }

    static func parseInteger(_ text: String) -> Int? {
        let cleaned = text.replacingUnderscores()
        if let value = Int(cleaned) { return value }
        // 1e6 and 2048.0 are integers to a user.
        if let double = Double(cleaned), double.isFinite, double == double.rounded(), abs(double) < 9.0e18 {
            return Int(double)
        }
        return nil
    }

    static func article(_ type: ParameterType) -> String {
        switch type {
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "true or false"
        case .string, .template: "a string"
        case .choice(let words): "one of \(words.quotedList())"
        case .list(let element, _): "a list of \(element)s"
        case .mapping: "a mapping of names to strings"
        }
    }

    /// The position of the scalar character at `offset`, exact for single-line plain
    /// and simply quoted scalars, the scalar's start otherwise.
    static func scalarLocation(_ node: YAMLNode, offset: Int) -> SourceLocation {
        guard case .scalar(let text, let style) = node.content, !text.contains("\n") else { return node.location }
        switch style {
        case .plain: return node.location.advanced(by: offset)
        case .singleQuoted where !text.contains("'"): return node.location.advanced(by: offset + 1)
        case .doubleQuoted where !text.contains("\\") && !text.contains("\""): return node.location.advanced(by: offset + 1)
        default: return node.location
        }
    }
}

extension String {
    func replacingUnderscores() -> String {
        contains("_") ? String(filter { $0 != "_" }) : self
    }
}
