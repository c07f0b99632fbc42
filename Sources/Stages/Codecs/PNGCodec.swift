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

    public static func encodeGray(_ grid: Grid<UInt8>, options: Options) throws -> SharedBytes {
        try grid.withUnsafeBufferPointer { try encode(UnsafeRawPointer($0.baseAddress), CPNG_PIXELS_U8, grid.width, grid.height, options) }
    }

    public static func encodeGray(_ grid: Grid<UInt16>, options: Options) throws -> SharedBytes {
        guard options.bitDepth == 16 else {
            throw CodecError(library: "libpng", message: "16-bit samples need bit depth 16, not \(options.bitDepth)")
        }
        return try grid.withUnsafeBufferPointer { try encode(UnsafeRawPointer($0.baseAddress), CPNG_PIXELS_U16, grid.width, grid.height, options) }
    }

    /// Unit-range floats scaled to the bit depth: round(v * (2^depth - 1)), clamped, NaN as 0.
    /// A dictionary-encoded grid is read through its table, whose 256 entries are
    /// converted the same way, and is not decoded.
    public static func encodeGray(_ grid: Grid<Float>, options: Options) throws -> SharedBytes {
        if let encoding = grid.dictionaryEncoding {
            return try encoding.table.withUnsafeBufferPointer { table in
                try encoding.indices.withUnsafeBufferPointer {
                    try encode(UnsafeRawPointer($0.baseAddress), CPNG_PIXELS_U8_TABLE, grid.width, grid.height, options, table: table.baseAddress)
                }
            }
        }
        return try grid.withUnsafeBufferPointer { try encode(UnsafeRawPointer($0.baseAddress), CPNG_PIXELS_F32, grid.width, grid.height, options) }
    }

    private static func filterMask(_ filter: Filter) -> Int32 {
        switch filter {
        case .none: CPNG_filter_none()
        case .sub: CPNG_filter_sub()
        case .up: CPNG_filter_up()
        case .average: CPNG_filter_avg()
        case .paeth: CPNG_filter_paeth()
        case .all: CPNG_filter_all()
        }
    }

    private static func encode(_ pixels: UnsafeRawPointer?, _ kind: CPNG_PixelKind, _ width: Int, _ height: Int, _ options: Options,
                               table: UnsafePointer<Float>? = nil) throws -> SharedBytes {
        guard width >= 1, height >= 1, width <= Int(Int32.max), height <= Int(Int32.max) else {
            throw CodecError(library: "libpng", message: "cannot encode a \(width)x\(height) image")
        }
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: Int(CPNG_MESSAGE_MAX))
        let cOptions = CPNG_EncodeOptions(bit_depth: Int32(options.bitDepth), compression_level: Int32(options.compressionLevel),
                                          filters: filterMask(options.filter), strategy: options.strategy.zlibValue, table: table)
        let status = CPNG_encode_gray(pixels, kind, Int32(width), Int32(height), cOptions, &output, &size, &message, message.count)
        guard status == 0, let output else {
            throw CodecError(library: "libpng", message: String(cString: message))
        }
        // The encoder's buffer becomes the artifact's bytes: no copy.
        return SharedBytes(takingOwnershipOf: output, count: size) { CPNG_free($0) }
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
            throw CodecError(library: "libpng", message: String(cString: message))
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
