/// The kinds of artifact store a runner knows, by URI scheme: `--artifact-store`
/// is opened through one of these, never by matching prefixes.
///
/// A value built from an explicit list, like `StageRegistry`. `standard` knows plain
/// paths and `file://`; the `Stages` module adds `s3://` (`ArtifactStoreRegistry.builtin`),
/// and a program that embeds the framework can add its own with `adding(_:)`.
public struct ArtifactStoreRegistry: Sendable {
    /// One URI scheme and how to open a store of it.
    public struct Scheme: Sendable {
        /// The scheme without `://`, lower-case: `s3`.
        public var name: String
        /// What a location looks like, for messages: `s3://bucket/prefix`.
        public var example: String
        /// Opens the store at a location of this scheme (the whole text, scheme included).
        public var open: @Sendable (_ location: String) throws -> any ArtifactStore

        public init(name: String, example: String, open: @escaping @Sendable (_ location: String) throws -> any ArtifactStore) {
            self.name = name.lowercased()
            self.example = example
            self.open = open
        }
    }

    /// Registered schemes, in registration order.
    public private(set) var schemes: [Scheme]

    /// A registry of `schemes`; a later scheme of the same name replaces an earlier one.
    public init(_ schemes: [Scheme]) {
        self.schemes = []
        for scheme in schemes { add(scheme) }
    }

    /// This registry with `scheme` added (or replacing the one of its name).
    public func adding(_ scheme: Scheme) -> ArtifactStoreRegistry {
        var copy = self
        copy.add(scheme)
        return copy
    }

    private mutating func add(_ scheme: Scheme) {
        schemes.removeAll { $0.name == scheme.name }
        schemes.append(scheme)
    }

    /// `file://` URIs and plain paths: a directory (`FileArtifactStore`).
    public static let file = Scheme(name: "file", example: "file:///path/to/dir") { location in
        try FileArtifactStore.open(try FileURI.path(of: location))
    }

    /// Plain paths and `file://`.
    public static let standard = ArtifactStoreRegistry([file])

    /// The scheme of `location` (`s3` in `s3://b/p`), or nil for a plain path: text
    /// before `://` made of a letter then letters, digits, `+ - .`.
    public static func scheme(of location: String) -> String? {
        guard let separator = location.range(of: "://") else { return nil }
        let scheme = location[..<separator.lowerBound]
        guard let first = scheme.first, first.isASCII, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else { return nil }
        return scheme.lowercased()
    }

    /// Opens the store at `location`: a plain path is a directory (the `file` scheme),
    /// anything else goes to its scheme. An unknown scheme is an `ArtifactStoreError`
    /// with the code `.invalidLocation` that lists the known ones.
    public func open(_ location: String) throws -> any ArtifactStore {
        guard !location.isEmpty else {
            throw ArtifactStoreError(message: "the artifact store location is empty; give a directory path or a URI such as "
                + (schemes.first?.example ?? "file:///path/to/dir"), code: .invalidLocation)
        }
        // `file:/x` or `s3:bucket` is a URI with its `//` missing, not a directory
        // named `file:`: say so rather than create one.
        if Self.scheme(of: location) == nil, let colon = location.firstIndex(of: ":"),
           let known = schemes.first(where: { $0.name == location[..<colon].lowercased() }) {
            throw ArtifactStoreError(message: "artifact store '\(FilePaths.printable(location))' looks like a \(known.name) URI without its '//'; "
                + "write it as \(known.example), or ./\(FilePaths.printable(location)) for a directory of that name", code: .invalidLocation)
        }
        let name = Self.scheme(of: location) ?? "file"
        guard let scheme = schemes.first(where: { $0.name == name }) else {
            var known = schemes.map { "\($0.name):// (\($0.example))" }.joined(separator: ", ")
            if known.isEmpty { known = "none" }
            if schemes.contains(where: { $0.name == "file" }) { known += ", or a plain directory path" }
            let shown = FilePaths.printable(location)
            throw ArtifactStoreError(message: "artifact store '\(shown)' has the unknown scheme '\(FilePaths.printable(name))://'; known: \(known)",
                                     code: .invalidLocation)
        }
        return try scheme.open(location)
    }
}
