import Foundation
import Framework

/// A streamed grid's bands as 8- or 16-bit samples, converted by the rule of
/// `SampleConversion` into a buffer reused from piece to piece; bands that need no
/// conversion are read in place.
final class BandSamples {
    private enum Source {
        case bytes, words, floats
        /// Byte indices and the table converted to samples of the depth.
        case indexed(table: UnsafeMutableRawPointer)
    }

    let info: GridStreamInfo
    let depth: Int
    /// The most rows one piece holds: about 128 K samples, so that a piece converts
    /// in cache and cancellation between pieces is quick.
    let pieceRows: Int
    private let source: Source
    private let buffer: UnsafeMutableRawPointer?

    /// Bytes from one row's start to the next's.
    var stride: Int { info.width * depth / 8 }

    /// Samples of `depth` bits from the grid `info` describes: `Grid<UInt8>`,
    /// `Grid<UInt16>` (16 bits only), `Grid<Float>` dense or dictionary-encoded.
    init(_ info: GridStreamInfo, depth: Int, library: String) throws {
        precondition(depth == 8 || depth == 16, "samples are 8 or 16 bits")
        self.info = info
        self.depth = depth
        pieceRows = SampleBands.defaultBandRows(width: info.width)
        let converts: Bool
        if let table = info.table {
            let converted = UnsafeMutableRawPointer.allocate(byteCount: 256 * depth / 8, alignment: 16)
            for (index, value) in table.prefix(256).enumerated() {
                if depth == 8 {
                    converted.storeBytes(of: SampleConversion.byte(value), toByteOffset: index, as: UInt8.self)
                } else {
                    converted.storeBytes(of: SampleConversion.word(value), toByteOffset: 2 * index, as: UInt16.self)
                }
            }
            source = .indexed(table: converted)
            converts = true
        } else {
            switch info.elementType {
            case .uint8:
                source = .bytes
                converts = depth == 16
            case .uint16 where depth == 16:
                source = .words
                converts = false
            case .uint16:
                throw CodecError(library: library, message: "16-bit samples need bit depth 16, not \(depth)")
            case .float32:
                source = .floats
                converts = true
            default:
                throw CodecError(library: library, message: "cannot encode Grid<\(info.elementType.swiftName)>")
            }
        }
        buffer = converts ? UnsafeMutableRawPointer.allocate(byteCount: max(1, pieceRows * info.width * depth / 8), alignment: 16) : nil
    }

    deinit {
        buffer?.deallocate()
        if case .indexed(let table) = source { table.deallocate() }
    }

    /// Gives `body` rows `rows` of `band` (all of its rows by default) as samples, a
    /// piece of at most `pieceRows` rows at a time: a pointer to `count` rows `stride`
    /// bytes apart, valid during the call.
    func pieces(of band: GridBand, rows: Range<Int>? = nil, _ body: (UnsafeRawPointer, Int) throws -> Void) rethrows {
        let rows = rows ?? band.rows
        let width = info.width
        var row = rows.lowerBound
        while row < rows.upperBound {
            let end = min(rows.upperBound, row + pieceRows)
            let offset = (row - band.rows.lowerBound) * width
            let count = (end - row) * width
            let base = UnsafeRawPointer(band.pointer)
            let samples: UnsafeRawPointer
            switch (source, depth) {
            case (.bytes, 8):
                samples = base + offset
            case (.words, _):
                samples = base + 2 * offset
            case (.bytes, _):
                SampleConversion.widen(base.assumingMemoryBound(to: UInt8.self) + offset,
                                       to: buffer!.assumingMemoryBound(to: UInt16.self), count: count)
                samples = UnsafeRawPointer(buffer!)
            case (.floats, 8):
                SampleConversion.convert(base.assumingMemoryBound(to: Float.self) + offset,
                                         to: buffer!.assumingMemoryBound(to: UInt8.self), count: count)
                samples = UnsafeRawPointer(buffer!)
            case (.floats, _):
                SampleConversion.convert(base.assumingMemoryBound(to: Float.self) + offset,
                                         to: buffer!.assumingMemoryBound(to: UInt16.self), count: count)
                samples = UnsafeRawPointer(buffer!)
            case (.indexed(let table), 8):
                SampleConversion.lookUp(base.assumingMemoryBound(to: UInt8.self) + offset, in: table.assumingMemoryBound(to: UInt8.self),
                                        to: buffer!.assumingMemoryBound(to: UInt8.self), count: count)
                samples = UnsafeRawPointer(buffer!)
            case (.indexed(let table), _):
                SampleConversion.lookUp(base.assumingMemoryBound(to: UInt8.self) + offset, in: table.assumingMemoryBound(to: UInt16.self),
                                        to: buffer!.assumingMemoryBound(to: UInt16.self), count: count)
                samples = UnsafeRawPointer(buffer!)
            }
            try body(samples, end - row)
            row = end
        }
    }
}

extension BandSamples {
    /// Feeds every band of `input` to one encoder a piece at a time (`write(samples,
    /// stride, rows)`), passing what it has compressed so far on to `writer` after each
    /// piece (`drain`), and releasing each band once fed.
    func feed(_ input: GridStream, cancel: CancelFlag, progress: RowProgress?, to writer: ByteStreamWriter,
              write: (UnsafeRawPointer, Int, Int) throws -> Void,
              drain: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        while let band = try input.next() {
            defer { band.release() }
            try pieces(of: band) { pointer, count in
                if cancel.isSet() { throw CancellationError() }
                try write(pointer, stride, count)
                try drain { try writer.write($0) }
            }
            progress?.add(band.rows.count)
            writer.fraction = Double(band.rows.upperBound) / Double(info.height)
        }
    }
}

extension PNGCodec {
    /// Encodes a streamed grid into a streamed PNG: rows go to libpng a band at a
    /// time and the compressed bytes leave after each band. The bytes are those of
    /// `encodeGray` for the same grid and options.
    static func stream(_ input: GridStream, info: GridStreamInfo, options: Options, to writer: ByteStreamWriter, cancel: CancelFlag,
                       progress: RowProgress?) throws {
        guard info.width >= 1, info.height >= 1, info.width <= Int(Int32.max), info.height <= Int(Int32.max) else {
            throw CodecError(library: "libpng", message: "cannot encode a \(info.width)x\(info.height) image")
        }
        let samples = try BandSamples(info, depth: options.bitDepth, library: "libpng")
        let encoder = try PNGEncoder(options: options, width: info.width, height: info.height, outputCapacity: ByteStreamWriter.defaultChunkSize)
        try samples.feed(input, cancel: cancel, progress: progress, to: writer, write: encoder.write, drain: encoder.drain)
        let tail = try encoder.finish()
        try tail.withUnsafeBytes { try writer.write($0) }
        try writer.finish()
    }
}

extension JPEGCodec {
    /// Encodes a streamed grid into a streamed JPEG whose bytes are those of
    /// `encodeGray` for the same grid and options, whatever `workers` is.
    ///
    /// With restart markers, rows are gathered into strips of whole restart intervals
    /// (converted to 8-bit samples on the way), which `workers` threads encode at once
    /// while later rows are still arriving; the strips leave in order, joined at the
    /// markers, while later ones are encoded. Progressive and optimized images, and
    /// those without restart markers, go through one encoder a band at a time.
    /// Memory: `workers + 1` strips of samples, and at most `2 x workers - 1` encoded
    /// strips (those being encoded, and those waiting for their turn).
    static func stream(_ input: GridStream, info: GridStreamInfo, options: Options, workers: Int, io: StreamIO,
                       to writer: ByteStreamWriter, progress: RowProgress?) throws {
        try checkSize(width: info.width, height: info.height)
        var capped = options
        capped.restartRows = min(options.restartRows, 65_535 / ((info.width + 7) / 8))
        let options = capped
        let intervalRows = options.restartRows * 8
        let samples = try BandSamples(info, depth: 8, library: "libjpeg")
        guard !options.progressive, !options.optimize, intervalRows > 0, workers > 1 else {
            let encoder = try JPEGEncoder(options: options, width: info.width, height: info.height, cancel: io.cancel, outputCapacity: ByteStreamWriter.defaultChunkSize)
            try samples.feed(input, cancel: io.cancel, progress: progress, to: writer, write: encoder.write, drain: encoder.drain)
            let tail = try encoder.finish()
            try tail.withUnsafeBytes { try writer.write($0) }
            try writer.finish()
            return
        }
        try StripEncoder(info: info, options: options, intervalRows: intervalRows, workers: workers, io: io, writer: writer)
            .run(input, samples: samples, progress: progress)
    }

    static func stripRows(width: Int, intervalRows: Int) -> Int {
        // About 512 K samples a strip: enough to make an encoder's setup negligible,
        // few enough that strips of a small image still spread over the workers.
        intervalRows * max(1, (1 << 19) / max(1, intervalRows * width))
    }
}

/// The strips of a streamed JPEG: gathered on the stage's thread, encoded on worker
/// threads, joined in order on a thread of their own.
private final class StripEncoder: @unchecked Sendable {
    let info: GridStreamInfo
    let options: JPEGCodec.Options
    let intervalRows: Int
    let stripRows: Int
    let strips: Int
    let workers: Int
    let io: StreamIO
    let writer: ByteStreamWriter
    let stripPool: BufferPool
    /// Full strips waiting for a worker, by index.
    let jobs: BandQueue<(index: Int, lease: BandLease)>
    private let condition = NSCondition()
    private var done: [Int: EncoderOutput] = [:]
    private var nextToJoin = 0
    private var failure: (any Error)?

    init(info: GridStreamInfo, options: JPEGCodec.Options, intervalRows: Int, workers: Int, io: StreamIO, writer: ByteStreamWriter) {
        self.info = info
        self.options = options
        self.intervalRows = intervalRows
        stripRows = JPEGCodec.stripRows(width: info.width, intervalRows: intervalRows)
        strips = (info.height + stripRows - 1) / stripRows
        self.workers = max(1, min(workers, strips))
        self.io = io
        self.writer = writer
        stripPool = io.pool(bufferSize: stripRows * info.width, count: self.workers + 1,
                            purpose: "a JPEG strip of \(stripRows) rows of \(info.width) samples", output: false)
        jobs = BandQueue(capacity: self.workers + 1)
    }

    /// Stops every thread of the encoder, and the stage's streams, with `error`.
    func stop(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        condition.broadcast()
        condition.unlock()
        jobs.fail(error)
        io.stop(error)
    }

    func run(_ input: GridStream, samples: BandSamples, progress: RowProgress?) throws {
        let group = DispatchGroup()
        func spawn(_ body: @escaping @Sendable () throws -> Void) {
            group.enter()
            let thread = Thread { [self] in
                do { try body() } catch { stop(error) }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        for _ in 0..<workers { spawn { [self] in try work() } }
        spawn { [self] in try join() }
        do {
            try gather(input, samples: samples, progress: progress)
        } catch {
            stop(error)
        }
        group.wait()
        condition.lock()
        let failure = failure
        condition.unlock()
        if let failure { throw failure }
    }

    /// Copies incoming rows, as 8-bit samples, into strip buffers, and queues each
    /// strip for the workers once full.
    private func gather(_ input: GridStream, samples: BandSamples, progress: RowProgress?) throws {
        var strip = 0
        var lease: BandLease?
        var filled = 0  // rows of the current strip
        while let band = try input.next() {
            defer { band.release() }
            try samples.pieces(of: band) { pointer, count in
                try io.checkCancellation()
                var copied = 0
                while copied < count {
                    if lease == nil {
                        lease = try stripPool.take()
                        filled = 0
                    }
                    let rowsInStrip = min(stripRows, info.height - strip * stripRows)
                    let take = min(count - copied, rowsInStrip - filled)
                    (lease!.pointer + filled * info.width).copyMemory(from: pointer + copied * info.width, byteCount: take * info.width)
                    filled += take
                    copied += take
                    if filled == rowsInStrip {
                        try jobs.push((strip, lease!))
                        lease = nil
                        strip += 1
                    }
                }
            }
            progress?.add(band.rows.count)
        }
        guard strip == strips else {
            throw CodecError(library: "libjpeg", message: "the stream ended after \(strip * stripRows + filled) of \(info.height) rows")
        }
        jobs.finish()
    }

    /// Encodes strips as they come, each with an encoder of its own.
    private func work() throws {
        while let (index, lease) = try jobs.pop() {
            defer { lease.release() }
            let rows = min(stripRows, info.height - index * stripRows)
            let encoder = try JPEGEncoder(options: options, width: info.width, height: rows, cancel: io.cancel,
                                          outputCapacity: 65_536 + rows * info.width)
            var row = 0
            while row < rows {
                try io.checkCancellation()
                let count = min(rows - row, 256)
                try encoder.write(lease.pointer + row * info.width, stride: info.width, count: count)
                row += count
            }
            let output = try encoder.finish()
            condition.lock()
            // Hold back while the joiner is far behind (a slow consumer): encoded strips
            // waiting for their turn stay bounded. The strip the joiner needs next is
            // never held back.
            while failure == nil && index > nextToJoin && done.count >= max(1, workers - 1) { condition.wait() }
            done[index] = output
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Writes the strips in order: the first one's headers with the full height and
    /// its data, then each later one's data with its restart markers renumbered, then
    /// the end-of-image marker.
    private func join() throws {
        let intervalsPerStrip = stripRows / intervalRows
        for index in 0..<strips {
            condition.lock()
            while done[index] == nil && failure == nil { condition.wait() }
            if let failure {
                condition.unlock()
                throw failure
            }
            let strip = done.removeValue(forKey: index)!
            nextToJoin = index + 1
            writer.fraction = Double(index + 1) / Double(strips)
            condition.broadcast()
            condition.unlock()
            try strip.withUnsafeMutableBytes { bytes in
                guard bytes.count > 4, bytes[bytes.count - 2] == 0xFF, bytes[bytes.count - 1] == 0xD9 else {
                    throw CodecError(library: "libjpeg", message: "strip \(index) does not end with EOI")
                }
                let scanStart = try RestartJoin.entropyStart(UnsafeRawBufferPointer(bytes))
                if index == 0 {
                    try RestartJoin.setHeight(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<scanStart]), info.height)
                    try writer.write(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 2)]))
                } else {
                    try RestartJoin.appendRenumbered(UnsafeRawBufferPointer(bytes), from: scanStart, firstInterval: index * intervalsPerStrip) {
                        try writer.write($0)
                    }
                }
            }
        }
        var end: [UInt8] = [0xFF, 0xD9]
        try end.withUnsafeMutableBytes { try writer.write(UnsafeRawBufferPointer($0)) }
        try writer.finish()
    }
}
