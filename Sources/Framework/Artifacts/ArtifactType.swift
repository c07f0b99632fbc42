/// The static type of an artifact, as the planner sees it on an edge of the graph.
///
/// Types are values, so extension packages can declare their own
/// (`ArtifactType(name: "Report", traits: [.bytes])`). Ports accept types through a
/// `TypeRequirement`, which can name types or ask for a trait.
public struct ArtifactType: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The name shown to users: `Grid<UInt8>`, `EncodedImage`.
    public var name: String
    /// Capabilities a port can require without naming every type.
    public var traits: Set<ArtifactTrait>

    public init(name: String, traits: Set<ArtifactTrait> = []) {
        self.name = name
        self.traits = traits
    }

    public var description: String { name }

    public static func < (lhs: ArtifactType, rhs: ArtifactType) -> Bool { lhs.name < rhs.name }

    public static func grid(_ element: ElementType) -> ArtifactType {
        ArtifactType(name: "Grid<\(element.swiftName)>", traits: [.grid])
    }

    /// Every grid type, in element order.
    public static let allGrids: [ArtifactType] = ElementType.allCases.map(grid)

    public static let encodedImage = ArtifactType(name: "EncodedImage", traits: [.bytes])
    public static let storedObject = ArtifactType(name: "StoredObject", traits: [])
}

/// A capability of an artifact type.
public struct ArtifactTrait: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    /// How messages name the artifacts that have this trait: "a bytes artifact (EncodedImage, ...)".
    public var phrase: String

    public init(_ name: String, phrase: String? = nil) {
        self.name = name
        self.phrase = phrase ?? "any artifact with trait '\(name)'"
    }

    public var description: String { name }

    public static func == (lhs: ArtifactTrait, rhs: ArtifactTrait) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }

    /// The artifact is a sequence of bytes with a media type (`BytesArtifact`): sinks store it.
    public static let bytes = ArtifactTrait("bytes", phrase: "a bytes artifact (such as EncodedImage)")
    /// The artifact is a `Grid`.
    public static let grid = ArtifactTrait("grid", phrase: "a grid")
}

/// What an input port accepts.
public struct TypeRequirement: Sendable, Hashable, CustomStringConvertible {
    public var types: [ArtifactType]
    public var traits: [ArtifactTrait]

    public init(types: [ArtifactType] = [], traits: [ArtifactTrait] = []) {
        self.types = types
        self.traits = traits
    }

    public static func oneOf(_ types: ArtifactType...) -> TypeRequirement {
        TypeRequirement(types: types)
    }

    public static func oneOf(_ types: [ArtifactType]) -> TypeRequirement {
        TypeRequirement(types: types)
    }

    public static func having(_ trait: ArtifactTrait) -> TypeRequirement {
        TypeRequirement(traits: [trait])
    }

    public func accepts(_ type: ArtifactType) -> Bool {
        types.contains(type) || traits.contains { type.traits.contains($0) }
    }

    public var description: String {
        var parts = types.map(\.name)
        parts += traits.map(\.phrase)
        switch parts.count {
        case 0: return "nothing"
        case 1: return parts[0]
        default: return parts.dropLast().joined(separator: ", ") + " or " + parts.last!
        }
    }
}
