/// The declaration of one stage parameter: the same data parses, checks and
/// documents it.
///
/// A parameter with no default is required, unless it is declared `optional` or
/// is the stage's seed (see `seed(doc:)`), which the runner derives from the run
/// seed when the pipeline gives none.
public struct ParameterSpec: Sendable, Hashable {
    public var name: String
    public var type: ParameterType
    public var defaultValue: ParameterValue?
    public var range: NumericRange?
    public var doc: String
    /// Absent values are allowed and stay absent (no default).
    public var isOptional: Bool
    /// This is the stage's random seed: absent values are derived from the run
    /// seed and the stage id, so `--seed` reproduces a whole run.
    public var isSeed: Bool
    /// For a list parameter: a single value (`command: "sh script"`) is taken as a
    /// list of that one item.
    public var acceptsSingleItem: Bool = false

    public init(
        _ name: String, _ type: ParameterType, default defaultValue: ParameterValue? = nil,
        range: NumericRange? = nil, optional: Bool = false, doc: String
    ) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.range = range
        self.doc = doc
        self.isOptional = optional
        self.isSeed = false
    }

    /// A `seed` parameter: an integer from 0 to 2^63-1, derived from the run seed
    /// when absent.
    public static func seed(doc: String = "random seed; when absent, derived from the run seed and the stage id") -> ParameterSpec {
        var spec = ParameterSpec("seed", .integer, range: .closed(0, Double(Int.max)), optional: true, doc: doc)
        spec.isSeed = true
        return spec
    }

    public var isRequired: Bool { defaultValue == nil && !isOptional && !isSeed }

    /// This spec, taking a single value as a one-item list (`acceptsSingleItem`).
    public func acceptingSingleItem() -> ParameterSpec {
        var copy = self
        copy.acceptsSingleItem = true
        return copy
    }
}
