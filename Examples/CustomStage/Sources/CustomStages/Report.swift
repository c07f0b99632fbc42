import Foundation
import Framework

/// A JSON document produced by a stage: an artifact type of this package's own.
/// It has the `bytes` trait, so the built-in sinks (filesystem, s3) can store it.
public final class Report: BytesArtifact {
    public static let type = ArtifactType(name: "Report", traits: [.bytes])

    public let bytes: SharedBytes
    public var mediaType: String { "application/json" }
    public var artifactType: ArtifactType { Self.type }

    /// A report holding `object` as pretty, key-sorted JSON.
    public init(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        bytes = SharedBytes(data + Data("\n".utf8))
    }

    public func summary() -> ArtifactSummary {
        var summary = ArtifactSummary(type: artifactType)
        summary.mediaType = mediaType
        summary.byteCount = bytes.count
        summary.sha256 = sha256
        return summary
    }

    public var templateValues: [String: String] { ["format": "json"] }
}
