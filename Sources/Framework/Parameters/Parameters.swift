/// The checked parameters of one stage instance, with defaults applied.
///
/// The planner guarantees that every required parameter is present with its declared
/// type, so the typed accessors do not throw; asking for a parameter the stage did
/// not declare is a programming error in the stage.
public struct Parameters: Sendable, Hashable {
    public private(set) var values: [String: ParameterValue]

    public init(_ values: [String: ParameterValue] = [:]) {
        self.values = values
    }

    public subscript(name: String) -> ParameterValue? {
        get { values[name] }
        set { values[name] = newValue }
    }

    public func int(_ name: String) -> Int {
        guard case .integer(let value)? = values[name] else { missing(name, "integer") }
        return value
    }

    public func optionalInt(_ name: String) -> Int? {
        if case .integer(let value)? = values[name] { return value }
        return nil
    }

    public func double(_ name: String) -> Double {
        guard let value = values[name]?.numericValue else { missing(name, "number") }
        return value
    }

    public func bool(_ name: String) -> Bool {
        guard case .boolean(let value)? = values[name] else { missing(name, "boolean") }
        return value
    }

    public func string(_ name: String) -> String {
        guard case .string(let value)? = values[name] else { missing(name, "string") }
        return value
    }

    public func optionalString(_ name: String) -> String? {
        if case .string(let value)? = values[name] { return value }
        return nil
    }

    public func mapping(_ name: String) -> [String: String]? {
        if case .mapping(let values)? = values[name] { return values }
        return nil
    }

    public func doubles(_ name: String) -> [Double]? {
        guard case .list(let items)? = values[name] else { return nil }
        return items.compactMap(\.numericValue)
    }

    private func missing(_ name: String, _ type: String) -> Never {
        preconditionFailure("stage asked for \(type) parameter '\(name)', which its spec does not declare with that type")
    }
}
