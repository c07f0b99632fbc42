/// A position in a pipeline file or in a command-line override, 1-based.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    /// The file path as given by the user, or a pseudo-file such as `--set[1]`.
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column, counted in Unicode scalars (as libyaml counts).
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// This location moved `count` characters to the right on the same line.
    public func advanced(by count: Int) -> SourceLocation {
        SourceLocation(file: file, line: line, column: column + count)
    }

    public var description: String { "\(file):\(line):\(column)" }
}
