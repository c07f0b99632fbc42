/// A parameter value after it was checked against its `ParameterSpec`.
public enum ParameterValue: Sendable, Hashable, CustomStringConvertible {
    case integer(Int)
    case number(Double)
    case boolean(Bool)
    case string(String)
    case list([ParameterValue])
    /// Names to text, e.g. object metadata.
    case mapping([String: String])

    public var description: String {
        switch self {
        case .integer(let value): String(value)
        case .number(let value): String(value)
        case .boolean(let value): String(value)
        case .string(let value): value
        case .list(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .mapping(let values): "{" + values.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }

    /// The value as a Double, for integers and numbers.
    public var numericValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }

    /// A JSON-compatible rendering for reports.
    public var jsonValue: JSONValue {
        switch self {
        case .integer(let value): .integer(value)
        case .number(let value): .number(value)
        case .boolean(let value): .boolean(value)
        case .string(let value): .string(value)
        case .list(let values): .array(values.map(\.jsonValue))
        case .mapping(let values): .object(values.mapValues { .string($0) })
        }
    }
}
