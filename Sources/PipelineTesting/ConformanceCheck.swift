/// One requirement of `Stage` that `StageConformance` checks.
///
/// A struct rather than an enum, so that checks can be added without breaking code
/// that switches over them.
public struct ConformanceCheck: Hashable, Sendable, CustomStringConvertible {
    public let name: String

    public init(_ name: String) {
        self.name = name
    }

    public var description: String { name }

    /// The stage runs on the sample inputs. Always checked: every other check needs
    /// a successful first run.
    public static let runs = ConformanceCheck("runs")
    /// Every returned artifact has the type the spec declares for the parameters and
    /// input types (as the planner resolves it).
    public static let outputType = ConformanceCheck("output type")
    /// A second run of the same instance on the same inputs succeeds and, for a
    /// deterministic stage, returns an equal artifact.
    public static let runsAgain = ConformanceCheck("runs again")
    /// No run modifies an input artifact (its elements or bytes, compared with a copy
    /// taken before the first run).
    public static let inputsUnchanged = ConformanceCheck("inputs unchanged")
    /// Cancelled mid-run, the stage ends, returning or throwing `CancellationError`,
    /// within the bound.
    public static let cancellation = ConformanceCheck("cancellation")
    /// A failed or cancelled run leaves no file in its temporary directory, no new file in the output
    /// directory and no temporary file (`.NAME.tmp-*`) next to outputs.
    public static let cleanup = ConformanceCheck("cleanup after failure")

    /// Every check, `runs` included.
    public static let all: Set<ConformanceCheck> = [.runs, .outputType, .runsAgain, .inputsUnchanged, .cancellation, .cleanup]
}
