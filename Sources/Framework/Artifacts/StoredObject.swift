/// A reference to bytes a sink has stored: a file or an object in a bucket.
public final class StoredObject: Artifact {
    /// `file:///abs/path` or `s3://bucket/key`.
    public let uri: String
    public let byteCount: Int
    /// SHA-256 of the stored bytes, lower-case hex.
    public let sha256: String
    public let mediaType: String?
    /// The ETag the store returned, where it has one.
    public let etag: String?
    /// The version the store gave the object, where versioning is on.
    public let versionID: String?

    public init(uri: String, byteCount: Int, sha256: String, mediaType: String? = nil, etag: String? = nil, versionID: String? = nil) {
        self.uri = uri
        self.byteCount = byteCount
        self.sha256 = sha256
        self.mediaType = mediaType
        self.etag = etag
        self.versionID = versionID
    }

    public var artifactType: ArtifactType { .storedObject }

    /// `file://` + an absolute path, percent-encoded where a URI path needs it.
    public static func fileURI(_ absolutePath: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/!$&'()*+,;=:@".utf8)
        var uri = "file://"
        for byte in absolutePath.utf8 {
            if allowed.contains(byte) {
                uri.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                uri += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return uri
    }

    public func summary() -> ArtifactSummary {
        var summary = ArtifactSummary(type: artifactType)
        summary.uri = uri
        summary.byteCount = byteCount
        summary.sha256 = sha256
        summary.mediaType = mediaType
        summary.etag = etag
        summary.versionID = versionID
        return summary
    }
}
