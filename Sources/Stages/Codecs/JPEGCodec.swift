internal import CJPEG
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

        public init(quality: Int = 95, progressive: Bool = false, optimize: Bool = false) {
            self.quality = quality
            self.progressive = progressive
            self.optimize = optimize
        }
    }

    /// Encodes 8-bit gray samples, read in place.
    public static func encodeGray(_ grid: Grid<UInt8>, options: Options) throws -> SharedBytes {
        try grid.withUnsafeBufferPointer { buffer in
            try encode(UnsafeRawPointer(buffer.baseAddress), kind: CJPEG_PIXELS_U8, width: grid.width, height: grid.height, options: options)
        }
    }

    /// Encodes unit-range floats, converted row by row as round(v * 255), clamped to
    /// 0...255, NaN as 0; no full-size intermediate copy.
    public static func encodeGray(_ grid: Grid<Float>, options: Options) throws -> SharedBytes {
        try grid.withUnsafeBufferPointer { buffer in
            try encode(UnsafeRawPointer(buffer.baseAddress), kind: CJPEG_PIXELS_F32, width: grid.width, height: grid.height, options: options)
        }
    }

    private static func encode(_ pixels: UnsafeRawPointer?, kind: CJPEG_PixelKind, width: Int, height: Int, options: Options) throws -> SharedBytes {
        guard width >= 1, height >= 1, width <= 65_500, height <= 65_500 else {
            throw CodecError(library: "libjpeg", message: "JPEG images are 1 to 65500 pixels on a side; got \(width)x\(height)")
        }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: Int(CJPEG_MESSAGE_MAX))
        let options = CJPEG_EncodeOptions(quality: Int32(options.quality), progressive: options.progressive ? 1 : 0,
                                          optimize: options.optimize ? 1 : 0)
        let status = CJPEG_encode_gray(pixels, kind, Int32(width), Int32(height), width, options, &output, &size, &message, message.count)
        guard status == 0, let output else {
            throw CodecError(library: "libjpeg", message: String(cString: message))
        }
        // The encoder's buffer becomes the artifact's bytes: no copy.
        return SharedBytes(takingOwnershipOf: output, count: Int(size)) { CJPEG_free($0) }
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
            throw CodecError(library: "libjpeg", message: String(cString: message))
        }
        defer { CJPEG_free(pixels) }
        let count = Int(width) * Int(height) * Int(components)
        return Image(width: Int(width), height: Int(height), components: Int(components),
                     pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }
}
