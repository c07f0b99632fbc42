import Foundation
import Framework

/// The content of an artifact as a header and raw memory, to tell whether an input
/// changed during a run and whether two outputs are equal, byte for byte.
///
/// - Grids: type and shape, then the elements' memory. Without `decoding`, a
///   dictionary-encoded grid is read as it is held (its indices and table), so that
///   looking at an input does not materialise it.
/// - Bytes artifacts: type and media type, then the bytes (not the artifact's cached
///   `sha256`, which would hide a change made after it was computed).
/// - Anything else: type and summary; with `ignoringLocation`, without `uri`, `etag`
///   and `versionID`, which say where a stored object went rather than what it holds.
///
/// Comparing memory directly (a copy taken before, `memcmp` after) costs a fraction of
/// hashing it, which matters for 64 MB grids compared after every run of a debug build.
enum ArtifactContent {
    /// A copy of an artifact's content.
    struct Snapshot {
        let header: String
        let parts: [[UInt8]]
    }

    static func snapshot(_ artifact: any Artifact, decoding: Bool = false) -> Snapshot {
        withContent(artifact, decoding: decoding, ignoringLocation: false) { header, parts in
            Snapshot(header: header, parts: parts.map { Array($0) })
        }
    }

    /// How `artifact`'s content now differs from `snapshot`; nil when it does not.
    static func change(of artifact: any Artifact, since snapshot: Snapshot) -> String? {
        withContent(artifact, decoding: false, ignoringLocation: false) { header, parts in
            if header != snapshot.header { return "it was \(snapshot.header), it is \(header)" }
            for (before, after) in zip(snapshot.parts, parts) {
                let difference = before.withUnsafeBytes { firstDifference($0, after) }
                if let difference { return difference }
            }
            return nil
        }
    }

    /// How `second`'s content differs from `first`'s; nil when they are equal. Two
    /// grids held the same way (both dictionary-encoded, say) are first compared as
    /// held, which spares decoding them when they are equal.
    static func difference(between first: any Artifact, and second: any Artifact) -> String? {
        let sameAsHeld = withContent(first, decoding: false, ignoringLocation: true) { firstHeader, firstParts in
            withContent(second, decoding: false, ignoringLocation: true) { secondHeader, secondParts in
                firstHeader == secondHeader && firstParts.count == secondParts.count
                    && zip(firstParts, secondParts).allSatisfy { firstDifference($0, $1) == nil }
            }
        }
        if sameAsHeld { return nil }
        return withContent(first, decoding: true, ignoringLocation: true) { firstHeader, firstParts in
            withContent(second, decoding: true, ignoringLocation: true) { secondHeader, secondParts in
                if firstHeader != secondHeader { return "first \(firstHeader), then \(secondHeader)" }
                for (a, b) in zip(firstParts, secondParts) {
                    if let difference = firstDifference(a, b) { return "\(firstHeader): \(difference)" }
                }
                return nil
            }
        }
    }

    /// A new artifact with the same content, with none of the original's caches (a
    /// grid's value range, decoded elements; an image's digest), so that a run on it
    /// costs what a first run costs. Grids and encoded images are copied; other
    /// artifacts are returned as they are.
    static func freshCopy(_ artifact: any Artifact) -> any Artifact {
        switch artifact {
        case let grid as Grid<UInt8>: return copy(grid)
        case let grid as Grid<UInt16>: return copy(grid)
        case let grid as Grid<UInt32>: return copy(grid)
        case let grid as Grid<Float>: return copy(grid)
        case let grid as Grid<Double>: return copy(grid)
        case let image as EncodedImage:
            return image.bytes.withUnsafeBytes {
                EncodedImage(bytes: SharedBytes($0), format: image.format, mediaType: image.mediaType, width: image.width, height: image.height)
            }
        default:
            return artifact
        }
    }

    private static func copy<Element: GridElement>(_ grid: Grid<Element>) -> Grid<Element> {
        if let encoding = grid.dictionaryEncoding {
            return Grid(indices: copy(encoding.indices), table: encoding.table)
        }
        // The size was valid for the original, so this cannot throw.
        return try! Grid<Element>(width: grid.width, height: grid.height) { output in
            grid.withUnsafeBufferPointer { _ = output.initialize(fromContentsOf: $0) }
        }
    }

    /// `Grid<UInt8> 4096x4096 16.8 MB`, `EncodedImage png 4096x4096 12.6 MB`: for messages.
    static func label(_ artifact: any Artifact) -> String {
        artifact.briefSummary().shortDescription
    }

    /// "byte 17 of 65536 changed from 0x3c to 0xa1", or nil when equal.
    private static func firstDifference(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> String? {
        guard a.count == b.count else { return "\(a.count) bytes, then \(b.count)" }
        guard a.count > 0, memcmp(a.baseAddress!, b.baseAddress!, a.count) != 0 else { return nil }
        // Find the first differing 64 KiB block with memcmp, then the byte within it.
        let block = 1 << 16
        var start = 0
        while start < a.count {
            let length = min(block, a.count - start)
            if memcmp(a.baseAddress! + start, b.baseAddress! + start, length) != 0 {
                for offset in start..<(start + length) where a[offset] != b[offset] {
                    return "byte \(offset) of \(a.count) changed from \(hex(a[offset])) to \(hex(b[offset]))"
                }
            }
            start += length
        }
        return nil
    }

    private static func hex(_ byte: UInt8) -> String {
        "0x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
    }

    /// Calls `body` with the artifact's header and memory; the buffers are valid only
    /// inside `body`.
    static func withContent<R>(
        _ artifact: any Artifact, decoding: Bool, ignoringLocation: Bool,
        _ body: (String, [UnsafeRawBufferPointer]) -> R
    ) -> R {
        switch artifact {
        case let grid as Grid<UInt8>: return withGrid(grid, decoding: decoding, body)
        case let grid as Grid<UInt16>: return withGrid(grid, decoding: decoding, body)
        case let grid as Grid<UInt32>: return withGrid(grid, decoding: decoding, body)
        case let grid as Grid<Float>: return withGrid(grid, decoding: decoding, body)
        case let grid as Grid<Double>: return withGrid(grid, decoding: decoding, body)
        case let bytes as any BytesArtifact:
            return bytes.bytes.withUnsafeBytes { body("\(bytes.artifactType) \(bytes.mediaType)", [$0]) }
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
            return body("\(artifact.artifactType) \(json)", [])
        }
    }

    private static func withGrid<Element: GridElement, R>(
        _ grid: Grid<Element>, decoding: Bool, _ body: (String, [UnsafeRawBufferPointer]) -> R
    ) -> R {
        let shape = "\(grid.artifactType) \(grid.width)x\(grid.height)"
        if !decoding, let encoding = grid.dictionaryEncoding {
            return encoding.indices.withUnsafeBufferPointer { indices in
                encoding.table.withUnsafeBytes { table in
                    body(shape + " (dictionary-encoded)", [UnsafeRawBufferPointer(indices), table])
                }
            }
        }
        return grid.withUnsafeBufferPointer { body(shape, [UnsafeRawBufferPointer($0)]) }
    }
}
