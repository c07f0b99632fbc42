import Foundation

/// The output of a stage whose output streamed to its consumer: what the report says
/// of it (its shape, the bytes that passed), without the data.
public final class StreamedOutput: Artifact, @unchecked Sendable {
    public let artifactType: ArtifactType
    private let summaryValue: ArtifactSummary
    public let templateValues: [String: String]

    public init(grid info: GridStreamInfo, statistics: StreamStatistics) {
        artifactType = info.artifactType
        var summary = ArtifactSummary(type: info.artifactType)
        summary.width = info.width
        summary.height = info.height
        summary.elementType = info.elementType.rawValue
        summary.encoding = info.table != nil ? "dictionary" : nil
        // In Double: the product of two sides must not wrap.
        summary.byteCount = Int(min(Double(info.width) * Double(info.height) * Double(info.elementType.byteWidth), Double(Int.max)))
        summary.streamed = true
        summaryValue = summary
        templateValues = ["width": String(info.width), "height": String(info.height)]
    }

    public init(bytes info: EncodedStreamInfo, statistics: StreamStatistics) {
        artifactType = .encodedImage
        var summary = ArtifactSummary(type: .encodedImage)
        summary.width = info.width
        summary.height = info.height
        summary.format = info.format
        summary.mediaType = info.mediaType
        summary.byteCount = statistics.bytes
        summary.streamed = true
        summaryValue = summary
        templateValues = info.templateValues
    }

    public func summary() -> ArtifactSummary { summaryValue }
}

/// Adapters where a streaming stage meets a whole artifact: slicing a whole grid or
/// image into a stream, and materialising a stream into a whole artifact.
public enum StreamAdapters {
    /// Pushes `artifact` (a grid, or a bytes artifact with an image's shape) into
    /// `stream`, a band or chunk at a time, copied into buffers of `io`'s band pool.
    public static func sliceGrid(_ grid: any AnyGrid, into stream: GridStream, io: StreamIO) throws {
        func slice<T: GridElement>(_ grid: Grid<T>) throws {
            let source: Grid<UInt8>?
            let info: GridStreamInfo
            if let encoding = grid.dictionaryEncoding, let table = encoding.table as? [Float] {
                source = encoding.indices
                info = GridStreamInfo(width: grid.width, height: grid.height, elementType: T.elementType, table: table)
            } else {
                try grid.materialize()
                source = nil
                info = GridStreamInfo(width: grid.width, height: grid.height, elementType: T.elementType)
            }
            try stream.begin(info)
            let (pool, rows) = try io.bandPool(rowBytes: info.rowBytes, height: info.height, purpose: "a band of \(grid.width)-wide rows")
            var row = 0
            while row < info.height {
                try io.checkCancellation()
                let end = min(info.height, row + rows)
                let lease = try pool.take()
                let bytes = (end - row) * info.rowBytes
                func copy<E>(_ buffer: UnsafeBufferPointer<E>) {
                    lease.pointer.copyMemory(from: UnsafeRawPointer(buffer.baseAddress!) + row * info.rowBytes, byteCount: bytes)
                }
                if let source { source.withUnsafeBufferPointer(copy) } else { grid.withUnsafeBufferPointer(copy) }
                try stream.push(GridBand(rows: row..<end, lease: lease), byteCount: bytes)
                row = end
            }
            stream.finish()
        }
        switch grid {
        case let grid as Grid<UInt8>: try slice(grid)
        case let grid as Grid<UInt16>: try slice(grid)
        case let grid as Grid<UInt32>: try slice(grid)
        case let grid as Grid<Float>: try slice(grid)
        case let grid as Grid<Double>: try slice(grid)
        default: throw PipelineError("cannot stream \(grid.artifactType)", retryable: false, code: .stageBug)
        }
    }

    public static func sliceBytes(_ artifact: any BytesArtifact, into stream: ByteStream, io: StreamIO) throws {
        let values = artifact.templateValues
        try stream.begin(EncodedStreamInfo(format: values["format"] ?? "", mediaType: artifact.mediaType,
                                           width: values["width"].flatMap { Int($0) } ?? 0, height: values["height"].flatMap { Int($0) } ?? 0))
        let writer = try io.bytesWriter()
        let bytes = artifact.bytes
        var offset = 0
        while offset < bytes.count {
            try io.checkCancellation()
            let end = min(bytes.count, offset + (1 << 20))
            try bytes.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<end])) }
            offset = end
            writer.fraction = Double(offset) / Double(bytes.count)
        }
        try writer.finish()
    }

    /// The whole grid `stream` carries.
    public static func materializeGrid(_ stream: GridStream, cancel: CancelFlag) throws -> any Artifact {
        let info = try stream.start()
        func build<T: GridElement>(_: T.Type) throws -> Grid<T> {
            try Grid<T>(width: info.width, height: info.height) { output in
                try fill(UnsafeMutableRawBufferPointer(output))
            }
        }
        func fill(_ output: UnsafeMutableRawBufferPointer) throws {
            while let band = try stream.next() {
                defer { band.release() }
                if cancel.isSet() { throw CancellationError() }
                let start = band.rows.lowerBound * info.rowBytes
                (output.baseAddress! + start).copyMemory(from: band.pointer, byteCount: band.rows.count * info.rowBytes)
            }
        }
        if let table = info.table {
            return Grid<Float>(indices: try build(UInt8.self), table: table)
        }
        switch info.elementType {
        case .uint8: return try build(UInt8.self)
        case .uint16: return try build(UInt16.self)
        case .uint32: return try build(UInt32.self)
        case .float32: return try build(Float.self)
        case .float64: return try build(Double.self)
        }
    }

    /// The whole image `stream` carries.
    public static func materializeBytes(_ stream: ByteStream, cancel: CancelFlag) throws -> any Artifact {
        let info = try stream.start()
        var capacity = 1 << 20
        var count = 0
        guard var buffer = malloc(capacity) else { throw AllocationError(byteCount: Double(capacity), purpose: "an encoded image") }
        do {
            while let chunk = try stream.next() {
                defer { chunk.release() }
                if cancel.isSet() { throw CancellationError() }
                if count + chunk.count > capacity {
                    while count + chunk.count > capacity { capacity *= 2 }
                    guard let grown = realloc(buffer, capacity) else {
                        throw AllocationError(byteCount: Double(capacity), purpose: "an encoded image")
                    }
                    buffer = grown
                }
                (buffer + count).copyMemory(from: chunk.lease.pointer, byteCount: chunk.count)
                count += chunk.count
            }
        } catch {
            free(buffer)
            throw error
        }
        return EncodedImage(bytes: SharedBytes(takingOwnershipOf: buffer, count: count) { free($0) }, format: info.format,
                            mediaType: info.mediaType, width: info.width, height: info.height)
    }
}
