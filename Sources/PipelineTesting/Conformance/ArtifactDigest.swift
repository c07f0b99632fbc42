import Foundation
import Framework

/// Content digests of artifacts, to tell whether an input changed during a run and
/// whether two outputs are equal.
enum ArtifactDigest {
    /// The digest of `artifact`'s content.
    ///
    /// - Grids: type, shape and the SHA-256 of the elements' memory. With
    ///   `decoding: false` a dictionary-encoded grid is digested as it is held (its
    ///   indices and table), so digesting an input does not materialise it.
    /// - Bytes artifacts: type, media type and the SHA-256 of the bytes, computed
    ///   afresh (not the artifact's cached `sha256`, which would hide a change).
    /// - Anything else: its summary; with `ignoringLocation`, without `uri`, `etag`
    ///   and `versionID`, which name where a stored object went rather than what it is.
    static func of(_ artifact: any Artifact, decoding: Bool, ignoringLocation: Bool = false) -> String {
        switch artifact {
        case let grid as Grid<UInt8>: return ofGrid(grid, decoding: decoding)
        case let grid as Grid<UInt16>: return ofGrid(grid, decoding: decoding)
        case let grid as Grid<UInt32>: return ofGrid(grid, decoding: decoding)
        case let grid as Grid<Float>: return ofGrid(grid, decoding: decoding)
        case let grid as Grid<Double>: return ofGrid(grid, decoding: decoding)
        case let bytes as any BytesArtifact:
            let hash = bytes.bytes.withUnsafeBytes { SHA256Digest.hex(of: $0) }
            return "\(bytes.artifactType) \(bytes.mediaType) \(bytes.bytes.count) bytes sha256 \(hash)"
        default:
            var summary = artifact.summary()
            if ignoringLocation {
                summary.uri = nil
                summary.etag = nil
                summary.versionID = nil
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let json = (try? encoder.encode(summary)).map { String(decoding: $0, as: UTF8.self) } ?? "\(summary)"
            return "\(artifact.artifactType) \(json)"
        }
    }

    static func ofGrid<Element: GridElement>(_ grid: Grid<Element>, decoding: Bool) -> String {
        if !decoding, let encoding = grid.dictionaryEncoding {
            let table = encoding.table.withUnsafeBytes { SHA256Digest.hex(of: $0) }
            return "\(grid.artifactType) \(grid.width)x\(grid.height) dictionary-encoded, indices \(ofGrid(encoding.indices, decoding: false)), table sha256 \(table)"
        }
        let hash = grid.withUnsafeBufferPointer { SHA256Digest.hex(of: UnsafeRawBufferPointer($0)) }
        return "\(grid.artifactType) \(grid.width)x\(grid.height) sha256 \(hash)"
    }

    /// `Grid<UInt8> 4096x4096`, `EncodedImage png 4096x4096 12.3 MB`: for messages.
    static func label(_ artifact: any Artifact) -> String {
        artifact.briefSummary().shortDescription
    }
}
