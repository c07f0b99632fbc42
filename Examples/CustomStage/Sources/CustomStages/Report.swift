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

    /// A report holding `bytes`, which must be a JSON object (`ReportError` otherwise).
    public init(json bytes: SharedBytes) throws {
        let object = try? JSONSerialization.jsonObject(with: bytes.withUnsafeBytes { Data($0) })
        guard object is [String: Any] else {
            throw ReportError(message: "not a JSON object (\(bytes.count) bytes)")
        }
        self.bytes = bytes
    }

    /// How an artifact store keeps a report: its JSON as `artifact.json`. Registered
    /// with this package's stage types (`CustomStages.registry()`), so runs with
    /// `--artifact-store` can store and resume pipelines that make reports.
    public static let codec = ArtifactCodec(Report.type, as: Report.self, encode: { report in
        ArtifactCodec.Encoded(data: report.bytes.withUnsafeBytes { Data($0) }, fileExtension: "json", format: "json",
                              mediaType: report.mediaType)
    }, decode: { data, _ in
        try Report(json: SharedBytes(data))
    })

    public func summary() -> ArtifactSummary {
        var summary = ArtifactSummary(type: artifactType)
        summary.mediaType = mediaType
        summary.byteCount = bytes.count
        summary.sha256 = sha256
        return summary
    }

    public var templateValues: [String: String] { ["format": "json"] }
}

/// Bytes that cannot be a report.
public struct ReportError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
