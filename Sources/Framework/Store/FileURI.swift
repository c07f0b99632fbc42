import Foundation

/// `file://` URIs and the paths they name.
public enum FileURI {
    /// The path a `file:///abs/path` URI names (percent-decoded; `file://localhost/`
    /// too), or `location` itself when it is not a `file://` URI. A URI naming another
    /// host, or a relative path, is an `ArtifactStoreError` (`.invalidLocation`).
    public static func path(of location: String) throws -> String {
        guard location.lowercased().hasPrefix("file://") else { return location }
        var rest = location.dropFirst("file://".count)
        if rest.lowercased().hasPrefix("localhost/") { rest = rest.dropFirst("localhost".count) }
        guard rest.hasPrefix("/") else {
            throw ArtifactStoreError(
                message: "'\(FilePaths.printable(location))' is not a local file URI: use file:///absolute/path, or a plain (relative) path",
                code: .invalidLocation)
        }
        guard let path = String(rest).removingPercentEncoding, !path.contains("\0") else {
            throw ArtifactStoreError(message: "'\(FilePaths.printable(location))' has a broken %-escape", code: .invalidLocation)
        }
        return path
    }
}
