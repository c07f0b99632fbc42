internal import CJPEG
import Foundation
import Framework

/// An error reported by an image library, with its own message.
public struct CodecError: Error, Sendable, CustomStringConvertible {
    public var library: String
    public var message: String

    public var description: String { "\(library): \(message)" }
}

/// libjpeg-turbo through the CJPEG shim, which owns the setjmp error handling.
public enum JPEGCodec {
    public struct Options: Sendable, Hashable {
        public var quality: Int
        public var progressive: Bool
        public var optimize: Bool
        /// A restart marker every this many MCU rows (8 pixel rows); 0 for none.
        public var restartRows: Int

        public init(quality: Int = 95, progressive: Bool = false, optimize: Bool = false, restartRows: Int = 0) {
            self.quality = quality
            self.progressive = progressive
            self.optimize = optimize
            self.restartRows = restartRows
        }
    }

    /// Encodes 8-bit gray samples, read in place, on the calling thread.
    public static func encodeGray(_ grid: Grid<UInt8>, options: Options) throws -> SharedBytes {
        try encodeStrip(grid, rows: 0..<grid.height, options: options).shared()
    }

    /// Encodes unit-range floats on the calling thread, converted a band of rows at a
    /// time as round(v * 255), clamped to 0...255, NaN as 0 (`SampleConversion`); no
    /// full-size intermediate copy. A dictionary-encoded grid is read through its table,
    /// each of whose 256 entries is converted the same way.
    public static func encodeGray(_ grid: Grid<Float>, options: Options) throws -> SharedBytes {
        try encodeStrip(grid, rows: 0..<grid.height, options: options).shared()
    }

    /// Encodes on threads of its own, off the cooperative pool, on up to `workers`
    /// cores: horizontal strips, each a multiple of `options.restartRows` MCU rows, are
    /// encoded at once and joined at restart markers. The result is byte for byte what
    /// one encoder writes with the same restart interval, whatever `workers` is.
    /// Progressive and optimized encodings, whose coding depends on the whole image,
    /// and `restartRows == 0` use one core.
    ///
    /// Rows are fed to libjpeg in bands; cancelling the calling task stops every strip
    /// at its next band (within milliseconds) with `CancellationError`. `progress`
    /// receives the fraction of rows written, at most once per percent.
    public static func encodeGray<Element: GridElement>(_ grid: Grid<Element>, options: Options, workers: Int,
                                                       progress: @escaping @Sendable (Double) -> Void = { _ in }) async throws -> SharedBytes {
        try await Blocking.run { cancel in
            try encodeStrips(grid, options: options, workers: workers, cancel: cancel, progress: RowProgress(total: grid.height, report: progress))
        }
    }

    /// What `encodeGray(_:options:workers:progress:)` does on its thread: the strips on
    /// threads of their own, each checking `cancel` before every band.
    static func encodeStrips<Element: GridElement>(_ grid: Grid<Element>, options: Options, workers: Int,
                                                   cancel: CancelFlag?, progress: RowProgress?) throws -> SharedBytes {
        try checkSize(width: grid.width, height: grid.height)
        // libjpeg caps a restart interval at 65535 MCUs (8x8 blocks here): keep the
        // interval below that, so that markers fall where the strips join. Depends on
        // the width only, so the bytes still do not depend on `workers`.
        var capped = options
        capped.restartRows = min(options.restartRows, 65_535 / ((grid.width + 7) / 8))
        let options = capped
        let intervalRows = options.restartRows * 8
        let intervals = intervalRows > 0 ? (grid.height + intervalRows - 1) / intervalRows : 1
        let strips = options.progressive || options.optimize || intervalRows == 0 ? 1 : max(1, min(workers, intervals))
        guard strips > 1 else {
            return try encodeStrip(grid, rows: 0..<grid.height, options: options, cancel: cancel, progress: progress).shared()
        }
        let intervalsPerStrip = (intervals + strips - 1) / strips
        let rowsPerStrip = intervalsPerStrip * intervalRows
        let stripRanges = stride(from: 0, to: grid.height, by: rowsPerStrip).map { $0..<min($0 + rowsPerStrip, grid.height) }
        let results = StripResults(count: stripRanges.count)
        Blocking.parallel(stripRanges.count) { strip in
            results.set(strip, Result { try encodeStrip(grid, rows: stripRanges[strip], options: options, cancel: cancel, progress: progress) })
        }
        if let cancel, cancel.isSet() { throw CancellationError() }
        return try RestartJoin.join(try results.outputs(), height: grid.height, intervalsPerStrip: intervalsPerStrip)
    }

    static func checkSize(width: Int, height: Int) throws {
        guard width >= 1, height >= 1, width <= 65_500, height <= 65_500 else {
            throw CodecError(library: "libjpeg", message: "JPEG images are 1 to 65500 pixels on a side; got \(width)x\(height)")
        }
    }

    /// Encodes rows `rows` of `grid` with one libjpeg encoder, `bandRows` rows at a time
    /// (by default `SampleBands.defaultBandRows`), checking `cancel` before each band.
    static func encodeStrip<Element: GridElement>(_ grid: Grid<Element>, rows: Range<Int>, options: Options, bandRows: Int? = nil,
                                                  cancel: CancelFlag? = nil, progress: RowProgress? = nil) throws -> EncoderOutput {
        try checkSize(width: grid.width, height: rows.count)
        let bandRows = bandRows ?? SampleBands.defaultBandRows(width: grid.width)
        return try SampleBands.with(grid, depth: 8, bandRows: bandRows, library: "libjpeg") { bands in
            let encoder = try JPEGEncoder(options: options, width: grid.width, height: rows.count, cancel: cancel)
            try bands.feed(rows, cancel: cancel, progress: progress) { samples, count in
                try encoder.write(samples, stride: bands.stride, count: count)
            }
            return try encoder.finish()
        }
    }

    /// Each strip's outcome, set from the strips' threads.
    private final class StripResults: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [Result<EncoderOutput, any Error>?]

        init(count: Int) {
            results = Array(repeating: nil, count: count)
        }

        func set(_ index: Int, _ result: Result<EncoderOutput, any Error>) {
            lock.lock(); results[index] = result; lock.unlock()
        }

        /// The strips' outputs in order, or the first strip's error.
        func outputs() throws -> [EncoderOutput] {
            lock.lock(); defer { lock.unlock() }
            return try results.map { try $0!.get() }
        }
    }

    /// A decoded image: 8-bit samples, `components` per pixel, row-major.
    public struct Image: Sendable {
        public var width: Int
        public var height: Int
        public var components: Int
        public var pixels: [UInt8]
    }

    /// Decodes a JPEG. A truncated or corrupt file is an error (libjpeg only warns).
    public static func decode(_ bytes: [UInt8]) throws -> Image {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    public static func decode(_ bytes: SharedBytes) throws -> Image {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    public static func decode(_ buffer: UnsafeRawBufferPointer) throws -> Image {
        var width: Int32 = 0, height: Int32 = 0, components: Int32 = 0
        var pixels: UnsafeMutablePointer<UInt8>?
        var message = [CChar](repeating: 0, count: Int(CJPEG_MESSAGE_MAX))
        let status = CJPEG_decode(buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count,
                                  &width, &height, &components, &pixels, &message, message.count)
        guard status == 0, let pixels else {
            throw CodecError(library: "libjpeg", message: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { CJPEG_free(pixels) }
        let count = Int(width) * Int(height) * Int(components)
        return Image(width: Int(width), height: Int(height), components: Int(components),
                     pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }
}

/// libjpeg's output buffer (malloc'd), owned until it becomes an artifact's bytes
/// (without a copy) or is freed.
final class EncoderOutput: @unchecked Sendable {
    private var pointer: UnsafeMutablePointer<UInt8>?
    let count: Int

    init(_ pointer: UnsafeMutablePointer<UInt8>, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    deinit {
        if let pointer { CJPEG_free(pointer) }
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer!, count: count))
    }

    func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer!, count: count))
    }

    /// The buffer, which the caller now owns (to free with `free`).
    func take() -> UnsafeMutablePointer<UInt8> {
        defer { pointer = nil }
        return pointer!
    }

    /// The bytes as an artifact's, without a copy.
    func shared() -> SharedBytes {
        SharedBytes(takingOwnershipOf: take(), count: count) { CJPEG_free($0) }
    }
}

/// Joins JPEG strips encoded with the same tables and restart interval into one
/// image: the first strip's headers with the full height, then each strip's
/// entropy-coded data, with restart markers renumbered to run on across strips.
enum RestartJoin {
    /// Takes the strips' buffers: the first one grows into the result (for a large
    /// buffer `realloc` remaps its pages instead of copying them), the others are
    /// copied after it and freed with their `EncoderOutput`.
    static func join(_ strips: [EncoderOutput], height: Int, intervalsPerStrip: Int) throws -> SharedBytes {
        // Check every strip before taking any buffer, so that nothing below throws.
        var scanStarts: [Int] = []
        for (index, strip) in strips.enumerated() {
            try strip.withUnsafeBytes { bytes in
                guard bytes.count > 4, bytes[bytes.count - 2] == 0xFF, bytes[bytes.count - 1] == 0xD9 else {
                    throw CodecError(library: "libjpeg", message: "strip \(index) does not end with EOI")
                }
                scanStarts.append(try entropyStart(bytes))
            }
        }
        try strips[0].withUnsafeMutableBytes { bytes in
            try setHeight(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<scanStarts[0]]), height)
        }
        let capacity = strips.reduce(2) { $0 + $1.count + 2 }
        // The first strip's headers and data stay where they are: its restart markers
        // are already numbered from 0. Only its EOI goes.
        let first = strips[0].take()
        guard let grown = realloc(first, capacity) else {
            free(first)
            throw CodecError(library: "libjpeg", message: "out of memory joining \(strips.count) strips of \(capacity) bytes")
        }
        let output = UnsafeMutableRawBufferPointer(start: grown, count: capacity)
        var length = strips[0].count - 2
        func append(_ source: UnsafeRawBufferPointer) {
            UnsafeMutableRawBufferPointer(rebasing: output[length..<(length + source.count)]).copyMemory(from: source)
            length += source.count
        }
        func append(_ a: UInt8, _ b: UInt8) {
            output[length] = a
            output[length + 1] = b
            length += 2
        }
        do {
            for (index, strip) in strips.enumerated().dropFirst() {
                try strip.withUnsafeBytes { bytes in
                    try appendRenumbered(bytes, from: scanStarts[index], firstInterval: index * intervalsPerStrip) { append($0) }
                }
            }
        } catch {
            free(grown)  // cannot happen: `append` does not throw
            throw error
        }
        append(0xFF, 0xD9)
        return SharedBytes(takingOwnershipOf: grown, count: length) { free($0) }
    }

    /// Gives `emit` what a strip after the first adds to the joined image: a restart
    /// marker, then its entropy-coded data (from `scanStart` to before its EOI) with
    /// its restart markers renumbered to run on from `firstInterval`. 0xFF in the data
    /// is always followed by 0x00 (stuffing) or an RSTn marker; the runs between 0xFF
    /// bytes are passed whole.
    static func appendRenumbered(_ bytes: UnsafeRawBufferPointer, from scanStart: Int, firstInterval: Int,
                                 _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        func marker(_ interval: Int) throws {
            try withUnsafeBytes(of: (UInt8(0xFF), UInt8(0xD0 + interval % 8))) { try emit($0) }
        }
        try marker(firstInterval - 1)
        let base = bytes.baseAddress!
        let end = bytes.count - 2
        var runStart = scanStart  // the data not yet emitted starts here
        var position = scanStart
        while position < end {
            guard let found = memchr(base + position, 0xFF, end - position) else { break }
            let next = base.distance(to: UnsafeRawPointer(found))
            guard next + 1 < end else { break }
            let code = bytes[next + 1]
            if code >= 0xD0 && code <= 0xD7 {
                if next > runStart { try emit(UnsafeRawBufferPointer(rebasing: bytes[runStart..<next])) }
                try marker(firstInterval + Int(code - 0xD0))
                runStart = next + 2
            }
            position = next + 2
        }
        if end > runStart { try emit(UnsafeRawBufferPointer(rebasing: bytes[runStart..<end])) }
    }

    /// The offset just past the SOS segment, where entropy-coded data begins.
    static func entropyStart(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        var position = 2  // after SOI
        while position + 4 <= bytes.count {
            guard bytes[position] == 0xFF else { break }
            let marker = bytes[position + 1]
            let length = Int(bytes[position + 2]) << 8 | Int(bytes[position + 3])
            if marker == 0xDA { return position + 2 + length }
            position += 2 + length
        }
        throw CodecError(library: "libjpeg", message: "no start-of-scan segment in strip")
    }

    /// Writes the image height into the first SOFn segment.
    static func setHeight(_ headers: UnsafeMutableRawBufferPointer, _ height: Int) throws {
        var position = 2
        while position + 9 <= headers.count {
            let marker = headers[position + 1]
            let length = Int(headers[position + 2]) << 8 | Int(headers[position + 3])
            if marker >= 0xC0 && marker <= 0xC2 {
                headers[position + 5] = UInt8(height >> 8)
                headers[position + 6] = UInt8(height & 0xFF)
                return
            }
            position += 2 + length
        }
        throw CodecError(library: "libjpeg", message: "no frame header in strip")
    }
}
