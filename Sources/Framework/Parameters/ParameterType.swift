/// The type of a stage parameter, used to convert and check YAML values.
public indirect enum ParameterType: Sendable, Hashable, CustomStringConvertible {
    /// A whole number (`95`, `2048`).
    case integer
    /// A number (`3.0`, `1e6`, `3`).
    case number
    /// `true` or `false`.
    case boolean
    /// Any text.
    case string
    /// Text with run-time placeholders such as `{run_id}`, filled when the stage runs.
    case template
    /// One of a fixed set of words.
    case choice([String])
    /// A list of values of one type, optionally of a fixed length.
    case list(ParameterType, count: Int? = nil)
    /// A mapping of names to text (`{key: value, ...}`).
    case mapping

    public var description: String {
        switch self {
        case .integer: "integer"
        case .number: "number"
        case .boolean: "boolean"
        case .string: "string"
        case .template: "template"
        case .choice(let words): "one of " + words.map { "'\($0)'" }.joined(separator: ", ")
        case .list(let element, let count):
            count.map { "list of \($0) \(element)s" } ?? "list of \(element)s"
        case .mapping: "mapping of names to strings"
        }
    }

    /// The short name used in JSON listings.
    public var name: String {
        switch self {
        case .integer: "integer"
        case .number: "number"
        case .boolean: "boolean"
        case .string: "string"
        case .template: "template"
        case .choice: "choice"
        case .list: "list"
        case .mapping: "mapping"
        }
    }
}

/// An allowed numeric interval; either end may be open, inclusive or exclusive.
public struct NumericRange: Sendable, Hashable, CustomStringConvertible {
    public var lower: Double?
    public var lowerInclusive: Bool
    public var upper: Double?
    public var upperInclusive: Bool

    public init(lower: Double?, lowerInclusive: Bool = true, upper: Double?, upperInclusive: Bool = true) {
        self.lower = lower
        self.lowerInclusive = lowerInclusive
        self.upper = upper
        self.upperInclusive = upperInclusive
    }

    /// `lower...upper`, both included.
    public static func closed(_ lower: Double, _ upper: Double) -> NumericRange {
        NumericRange(lower: lower, upper: upper)
    }

    /// `>= lower`.
    public static func atLeast(_ lower: Double) -> NumericRange {
        NumericRange(lower: lower, upper: nil)
    }

    /// `> lower`.
    public static func greaterThan(_ lower: Double) -> NumericRange {
        NumericRange(lower: lower, lowerInclusive: false, upper: nil)
    }

    public func contains(_ value: Double) -> Bool {
        guard !value.isNaN else { return false }
        if let lower {
            if lowerInclusive ? value < lower : value <= lower { return false }
        }
        if let upper {
            if upperInclusive ? value > upper : value >= upper { return false }
        }
        return true
    }

    public var description: String {
        func show(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
        }
        switch (lower, upper) {
        case let (lower?, upper?) where lowerInclusive && upperInclusive: return "\(show(lower))...\(show(upper))"
        case let (lower?, upper?):
            return "\(lowerInclusive ? ">=" : ">") \(show(lower)) and \(upperInclusive ? "<=" : "<") \(show(upper))"
        case let (lower?, nil): return "\(lowerInclusive ? ">=" : ">") \(show(lower))"
        case let (nil, upper?): return "\(upperInclusive ? "<=" : "<") \(show(upper))"
        case (nil, nil): return "any"
        }
    }
}
