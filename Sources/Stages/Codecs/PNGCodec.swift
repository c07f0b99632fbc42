internal import CPNG
import Framework

/// libpng (with zlib) through the CPNG shim, which owns the setjmp error handling.
public enum PNGCodec {
    public enum Filter: String, Sendable, CaseIterable {
        case none, sub, up, average, paeth, all
    }

    /// zlib's compression strategies.
    public enum Strategy: String, Sendable, CaseIterable {
        case `default`, filtered, huffman, rle, fixed

        var zlibValue: Int32 {
            switch self {
            case .default: 0   // Z_DEFAULT_STRATEGY
            case .filtered: 1  // Z_FILTERED
            case .huffman: 2   // Z_HUFFMAN_ONLY
            case .rle: 3       // Z_RLE
            case .fixed: 4     // Z_FIXED
            }
        }
    }

    public struct Options: Sendable, Hashable {
        public var bitDepth: Int
        public var compressionLevel: Int
        public var filter: Filter
        public var strategy: Strategy

        public init(bitDepth: Int = 8, compressionLevel: Int = 6, filter: Filter = .none, strategy: Strategy = .rle) {
            self.bitDepth = bitDepth
            self.compressionLevel = compressionLevel
            self.filter = filter
            self.strategy = strategy
        }
    }

    /// Encodes 8-bit samples on the calling thread: read in place at bit depth 8,
    /// scaled by 257 at 16 (so 255 becomes 65535).
    public static func encodeGray(_ grid: Grid<UInt8>, options: Options) throws -> SharedBytes {
        try encode(grid, options: options)
    }

    /// Encodes 16-bit samples, read in place, on the calling thread; needs bit depth 16.
    public static func encodeGray(_ grid: Grid<UInt16>, options: Options) throws -> SharedBytes {
        try encode(grid, options: options)
    }

    /// Encodes unit-range floats on the calling thread, scaled to the bit depth:
    /// round(v * (2^depth - 1)), clamped, NaN as 0 (`SampleConversion`). A
    /// dictionary-encoded grid is read through its table, whose 256 entries are
    /// converted the same way, and is not decoded.
    public static func encodeGray(_ grid: Grid<Float>, options: Options) throws -> SharedBytes {
        try encode(grid, options: options)
    }

    /// Encodes a `Grid<UInt8>`, `Grid<UInt16>` or `Grid<Float>` as the functions above
    /// do, on a thread of its own, off the cooperative pool. Rows are fed to libpng in
    /// bands; cancelling the calling task stops the encoder at its next band (within
    /// milliseconds, even at compression level 9) with `CancellationError`. `progress`
    /// receives the fraction of rows written, at most once per percent.
    public static func encodeGray<Element: GridElement>(_ grid: Grid<Element>, options: Options,
                                                       progress: @escaping @Sendable (Double) -> Void) async throws -> SharedBytes {
        try await Blocking.run { cancel in
            try encode(grid, options: options, cancel: cancel, progress: RowProgress(total: grid.height, report: progress))
        }
    }

    static func filterMask(_ filter: Filter) -> Int32 {
        switch filter {
        case .none: CPNG_filter_none()
        case .sub: CPNG_filter_sub()
        case .up: CPNG_filter_up()
        case .average: CPNG_filter_avg()
        case .paeth: CPNG_filter_paeth()
        case .all: CPNG_filter_all()
        }
    }

    /// Encodes `grid` with one libpng encoder, `bandRows` rows at a time (by default
    /// `SampleBands.defaultBandRows`), checking `cancel` before each band.
    static func encode<Element: GridElement>(_ grid: Grid<Element>, options: Options, bandRows: Int? = nil,
                                             cancel: CancelFlag? = nil, progress: RowProgress? = nil) throws -> SharedBytes {
        guard grid.width >= 1, grid.height >= 1, grid.width <= Int(Int32.max), grid.height <= Int(Int32.max) else {
            throw CodecError(library: "libpng", message: "cannot encode a \(grid.width)x\(grid.height) image")
        }
        guard options.bitDepth == 8 || options.bitDepth == 16 else {
            throw CodecError(library: "libpng", message: "bit depth must be 8 or 16, not \(options.bitDepth)")
        }
        let bandRows = bandRows ?? SampleBands.defaultBandRows(width: grid.width)
        return try SampleBands.with(grid, depth: options.bitDepth, bandRows: bandRows, library: "libpng") { bands in
            let encoder = try PNGEncoder(options: options, width: grid.width, height: grid.height)
            try bands.feed(0..<grid.height, cancel: cancel, progress: progress) { samples, count in
                try encoder.write(samples, stride: bands.stride, count: count)
            }
            return try encoder.finish()
        }
    }

    /// A decoded image: samples as stored (8-bit, or 16-bit native-endian), `channels` per pixel.
    public struct Image: Sendable {
        public var width: Int
        public var height: Int
        public var bitDepth: Int
        public var channels: Int
        public var samples8: [UInt8]
        public var samples16: [UInt16]
    }

    public static func decode(_ bytes: [UInt8]) throws -> Image {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    public static func decode(_ bytes: SharedBytes) throws -> Image {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    public static func decode(_ buffer: UnsafeRawBufferPointer) throws -> Image {
        var width: Int32 = 0, height: Int32 = 0, depth: Int32 = 0, channels: Int32 = 0
        var pixels: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(CPNG_MESSAGE_MAX))
        let status = CPNG_decode(buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count,
                                 &width, &height, &depth, &channels, &pixels, &size, &message, message.count)
        guard status == 0, let pixels else {
            throw CodecError(library: "libpng", message: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { CPNG_free(pixels) }
        var image = Image(width: Int(width), height: Int(height), bitDepth: Int(depth), channels: Int(channels), samples8: [], samples16: [])
        if depth == 16 {
            image.samples16 = UnsafeRawPointer(pixels).withMemoryRebound(to: UInt16.self, capacity: size / 2) {
                Array(UnsafeBufferPointer(start: $0, count: size / 2))
            }
        } else {
            image.samples8 = Array(UnsafeBufferPointer(start: pixels, count: size))
        }
        return image
    }
}
