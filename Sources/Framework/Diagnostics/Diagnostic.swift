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

    /// `file:line:col: error: message`, without snippet. Control characters in the
    /// file name and the message (which quote what the user wrote) are escaped, so
    /// they never reach a terminal raw.
    public var description: String {
        let prefix = location.map { "\(FilePaths.printable($0.description)): " } ?? ""
        return "\(prefix)\(severity.rawValue): \(FilePaths.printable(message))"
    }
}

/// Thrown when a pipeline cannot run: carries every problem found, in source order,
/// and the texts needed to show each with its source line.
public struct PipelineValidationError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public var sources: SourceTexts
    /// Problems found but not in `diagnostics` (a sweep shows its first ones).
    public var omitted = 0

    public init(_ diagnostics: [Diagnostic], sources: SourceTexts = SourceTexts(), omitted: Int = 0) {
        self.diagnostics = diagnostics
        self.sources = sources
        self.omitted = omitted
    }

    /// How many errors there are, shown or not.
    public var errorCount: Int { diagnostics.filter { $0.severity == .error }.count + omitted }

    public var description: String {
        DiagnosticRenderer(sources: sources).render(diagnostics)
            + (omitted > 0 ? "\n... and \(omitted) more problem\(omitted == 1 ? "" : "s") like these, not shown: fix these and check again" : "")
    }
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
///
/// The source line is echoed safely: control characters other than tabs are escaped
/// (`\u{1B}`), and a line longer than `snippetWidth` scalars is cut to that many
/// around the caret, with `…` where text was left out; the caret stays under the
/// character it points at.
public struct DiagnosticRenderer: Sendable {
    public var sources: SourceTexts
    /// The most scalars of a source line shown around the caret.
    public var snippetWidth: Int

    public init(sources: SourceTexts, snippetWidth: Int = 120) {
        self.sources = sources
        self.snippetWidth = max(snippetWidth, 10)
    }

    public func render(_ diagnostics: [Diagnostic]) -> String {
        diagnostics.map(render).joined(separator: "\n")
    }

    public func render(_ diagnostic: Diagnostic) -> String {
        var out = diagnostic.description
        if let location = diagnostic.location, let text = sources.line(location.line, of: location.file) {
            let gutter = String(repeating: " ", count: String(location.line).count)
            let (shown, pad) = snippet(text, column: location.column)
            out += "\n\(gutter) |\n\(location.line) | \(shown)\n\(gutter) | \(pad)^"
        }
        if let help = diagnostic.help {
            out += "\n  help: \(FilePaths.printable(help))"
        }
        return out
    }

    /// The part of `text` to show and the padding that puts a caret under `column`
    /// (1-based, in scalars; a column past the end points just after the text).
    func snippet(_ text: String, column: Int) -> (shown: String, pad: String) {
        let scalars = Array(text.unicodeScalars)
        let caret = min(max(0, column - 1), scalars.count)
        var start = 0
        var end = scalars.count
        if scalars.count > snippetWidth {
            start = max(0, caret - snippetWidth / 2)
            end = min(scalars.count, start + snippetWidth)
            start = max(0, end - snippetWidth)
        }
        var shown = start > 0 ? "…" : ""
        var pad = start > 0 ? " " : ""
        for index in start..<end {
            let scalar = scalars[index]
            // Keep tabs so the caret lines up with the source line as a terminal shows it.
            let piece = scalar == "\t" || scalar.properties.generalCategory != .control
                ? String(scalar) : scalar.escaped(asASCII: true)
            shown += piece
            if index < caret {
                pad += scalar == "\t" ? "\t" : String(repeating: " ", count: piece.unicodeScalars.count)
            }
        }
        if end < scalars.count { shown += "…" }
        return (shown, pad)
    }
}
