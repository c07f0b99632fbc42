/// A YAML node with its position, as read from a pipeline file.
///
/// Aliases are resolved into copies of their anchored node (with the alias's
/// location), so consumers never see them.
public struct YAMLNode: Sendable, Hashable {
    public enum ScalarStyle: Sendable, Hashable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    public enum Content: Sendable, Hashable {
        case scalar(String, ScalarStyle)
        case mapping([YAMLPair])
        case sequence([YAMLNode])
    }

    public var content: Content
    public var location: SourceLocation

    public init(_ content: Content, at location: SourceLocation) {
        self.content = content
        self.location = location
    }

    public static func scalar(_ text: String, at location: SourceLocation, style: ScalarStyle = .plain) -> YAMLNode {
        YAMLNode(.scalar(text, style), at: location)
    }

    /// The text of a scalar node, `nil` for collections.
    public var scalar: String? {
        if case .scalar(let text, _) = content { return text }
        return nil
    }

    public var pairs: [YAMLPair]? {
        if case .mapping(let pairs) = content { return pairs }
        return nil
    }

    public var items: [YAMLNode]? {
        if case .sequence(let items) = content { return items }
        return nil
    }

    /// A plain scalar spelled as YAML's null (`~`, `null`, or nothing).
    public var isNull: Bool {
        if case .scalar(let text, .plain) = content {
            return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
        }
        return false
    }

    /// What a user would call this node in a message.
    public var kindName: String {
        switch content {
        case .scalar: isNull ? "null" : "a scalar"
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    /// The value for a scalar key of a mapping.
    public subscript(key: String) -> YAMLNode? {
        pairs?.first { $0.key.scalar == key }?.value
    }
}

/// One `key: value` entry of a mapping, keeping the key's own location.
public struct YAMLPair: Sendable, Hashable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }

    /// The key's text; mapping keys are always scalars in a parsed pipeline file.
    public var name: String { key.scalar ?? "" }
}
