/// A value that flows along an edge of the pipeline graph.
///
/// Artifacts are reference types, passed by reference from producer to consumers and
/// never copied by the framework; the executor drops its reference when the last
/// consumer has finished. They must be immutable once a stage has returned them.
public protocol Artifact: AnyObject, Sendable {
    /// The artifact's type, which must equal the type its stage declared.
    var artifactType: ArtifactType { get }
    /// A summary for the run report.
    func summary() -> ArtifactSummary
    /// The part of the summary that costs nothing to compute (no scan, no hash), for
    /// the progress line.
    func briefSummary() -> ArtifactSummary
    /// Values this artifact offers to path and key templates: `width`, `height`, `format`.
    var templateValues: [String: String] { get }
    /// The artifact as a grid, when it is one. The same as `as? any AnyGrid`, without
    /// the runtime's first-time search of every conformance in the process (about a
    /// tenth of a millisecond per artifact type).
    var asGrid: (any AnyGrid)? { get }
}

extension Artifact {
    public var templateValues: [String: String] { [:] }
    public var asGrid: (any AnyGrid)? { nil }
    public func briefSummary() -> ArtifactSummary { summary() }
}

/// An artifact that is a sequence of bytes a sink can store as is.
public protocol BytesArtifact: Artifact {
    var bytes: SharedBytes { get }
    /// The IANA media type, e.g. `image/jpeg`.
    var mediaType: String { get }
    /// SHA-256 of `bytes`, lower-case hex. Implementations should compute it once.
    var sha256: String { get }
}

extension BytesArtifact {
    public var sha256: String { bytes.withUnsafeBytes { SHA256Digest.hex(of: $0) } }
}

/// What the run report says about an artifact.
public struct ArtifactSummary: Sendable, Hashable, Codable {
    public var type: String
    public var width: Int?
    public var height: Int?
    public var elementType: String?
    /// How a grid is held when not as plain elements: "dictionary" (byte indices into
    /// a table; `byteCount` is still the decoded size).
    public var encoding: String?
    public var min: Double?
    public var max: Double?
    public var format: String?
    public var mediaType: String?
    public var byteCount: Int?
    public var sha256: String?
    public var uri: String?
    public var etag: String?
    public var versionID: String?
    /// True when the artifact streamed to its consumer a band at a time and was never
    /// held whole.
    public var streamed: Bool?
    /// A grid's histogram and preview, when the run gathered them (a report was asked for).
    public var digest: GridDigest?

    public init(type: ArtifactType) {
        self.type = type.name
    }

    enum CodingKeys: String, CodingKey {
        case type, width, height, elementType = "element_type", encoding, min, max, format, mediaType = "media_type"
        case byteCount = "byte_count", sha256, uri, etag, versionID = "version_id", streamed, digest
    }

    /// A short human description: `Grid<UInt8> 2048x2048`, `EncodedImage jpeg 3.0 MB`.
    public var shortDescription: String {
        var parts = [type]
        if let format { parts.append(format) }
        if let width, let height { parts.append("\(width)x\(height)") }
        if let byteCount { parts.append(ByteCountFormatting.string(byteCount)) }
        if let encoding { parts.append("(\(encoding)-encoded)") }
        if let uri { parts.append(uri) }
        return parts.joined(separator: " ")
    }
}

/// Byte counts for people: `812 B`, `3.0 MB`.
public enum ByteCountFormatting {
    public static func string(_ count: Int) -> String {
        string(Double(count))
    }

    /// A size given as a Double, so that sizes computed from outside data (which may
    /// exceed Int) are shown as what they are, never wrapped.
    public static func string(_ count: Double) -> String {
        guard count.isFinite, count >= 0 else { return "an invalid size" }
        let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
        var value = count
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        if value >= 1000 { return "more than 1000 YB" }
        return unit == 0 ? "\(Int(count)) B" : String(format1: value) + " " + units[unit]
    }
}

extension String {
    /// One decimal place, without Foundation.
    init(format1 value: Double) {
        let tenths = (value * 10).rounded()
        self = "\(Int(tenths) / 10).\(Int(tenths) % 10)"
    }
}
