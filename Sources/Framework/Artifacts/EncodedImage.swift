import Foundation
internal import Crypto

/// An encoded image file held in memory: the bytes a sink writes as they are.
public final class EncodedImage: BytesArtifact {
    public let bytes: SharedBytes
    /// The short format name used in templates (`{format}`) and file extensions: `jpeg`, `png`.
    public let format: String
    public let mediaType: String
    public let width: Int
    public let height: Int
    private let digest = OnceCache<String>()

    public init(bytes: SharedBytes, format: String, mediaType: String, width: Int, height: Int) {
        self.bytes = bytes
        self.format = format
        self.mediaType = mediaType
        self.width = width
        self.height = height
    }

    /// An image holding a copy of `bytes`; for tests and small data.
    public convenience init(bytes: [UInt8], format: String, mediaType: String, width: Int, height: Int) {
        self.init(bytes: SharedBytes(bytes), format: format, mediaType: mediaType, width: width, height: height)
    }

    public var artifactType: ArtifactType { .encodedImage }

    public func briefSummary() -> ArtifactSummary {
        var summary = ArtifactSummary(type: artifactType)
        summary.width = width
        summary.height = height
        summary.format = format
        summary.mediaType = mediaType
        summary.byteCount = bytes.count
        return summary
    }

    public func summary() -> ArtifactSummary {
        var summary = briefSummary()
        summary.sha256 = sha256
        return summary
    }

    public var templateValues: [String: String] {
        ["width": String(width), "height": String(height), "format": format]
    }

    /// Computed once, on first use.
    public var sha256: String {
        digest.value { bytes.withUnsafeBytes { SHA256Digest.hex(of: $0) } }
    }
}

/// SHA-256 as lower-case hex, the one place the framework hashes bytes.
public enum SHA256Digest {
    public static func hex(of bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { hex(of: $0) }
    }

    public static func hex(of buffer: UnsafeRawBufferPointer) -> String {
        hex(digest: SHA256.hash(data: buffer))
    }

    /// A finished digest as lower-case hex.
    static func hex(digest: some Sequence<UInt8>) -> String {
        digest.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
