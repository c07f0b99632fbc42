/// One problem found while loading or checking a pipeline.
///
/// Messages are short, lower-case, name the offending thing in quotes, and say what
/// to do where that is known (`help`).
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error
        case warning
    }

    public var severity: Severity
    public var message: String
    /// Where the problem is; `nil` for problems that have no place in a file
    /// (an unknown `--profile`, say).
    public var location: SourceLocation?
    /// A suggestion: "did you mean 'jpeg'?", "add `input: <stage>`".
    public var help: String?

    public init(_ severity: Severity = .error, _ message: String, at location: SourceLocation?, help: String? = nil) {
        self.severity = severity
        self.message = message
        self.location = location
        self.help = help
    }

    public static func error(_ message: String, at location: SourceLocation?, help: String? = nil) -> Diagnostic {
        Diagnostic(.error, message, at: location, help: help)
    }

    /// `file:line:col: error: message`, without snippet.
    public var description: String {
        let prefix = location.map { "\($0): " } ?? ""
        return "\(prefix)\(severity.rawValue): \(message)"
    }
}

/// Thrown when a pipeline cannot run: carries every problem found, in source order,
/// and the texts needed to show each with its source line.
public struct PipelineValidationError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public var sources: SourceTexts

    public init(_ diagnostics: [Diagnostic], sources: SourceTexts = SourceTexts()) {
        self.diagnostics = diagnostics
        self.sources = sources
    }

    public var description: String { DiagnosticRenderer(sources: sources).render(diagnostics) }
}

/// The texts diagnostics point into, by file name.
public struct SourceTexts: Sendable {
    private var lines: [String: [Substring]] = [:]

    public init() {}

    public mutating func add(file: String, text: String) {
        lines[file] = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The text of a 1-based line, without its line break.
    public func line(_ number: Int, of file: String) -> String? {
        guard let fileLines = lines[file], number >= 1, number <= fileLines.count else { return nil }
        var text = String(fileLines[number - 1])
        if text.hasSuffix("\r") { text.removeLast() }
        return text
    }
}

/// Renders diagnostics as `file:line:col: error: message`, the source line, a caret
/// under the column, and the help line.
public struct DiagnosticRenderer: Sendable {
    public var sources: SourceTexts

    public init(sources: SourceTexts) {
        self.sources = sources
    }

    public func render(_ diagnostics: [Diagnostic]) -> String {
        diagnostics.map(render).joined(separator: "\n")
    }

    public func render(_ diagnostic: Diagnostic) -> String {
        var out = diagnostic.description
        if let location = diagnostic.location, let text = sources.line(location.line, of: location.file) {
            let gutter = String(repeating: " ", count: String(location.line).count)
            let scalars = Array(text.unicodeScalars)
            // Keep tabs so the caret lines up with the source line as a terminal shows it.
            let pad = scalars.prefix(max(0, location.column - 1)).map { $0 == "\t" ? "\t" : " " }.joined()
            out += "\n\(gutter) |\n\(location.line) | \(text)\n\(gutter) | \(pad)^"
        }
        if let help = diagnostic.help {
            out += "\n  help: \(help)"
        }
        return out
    }
}
