internal import CPNG
import Framework

/// One libpng encoder through CPNG's incremental API: begin with the size and
/// options, write rows of 8-bit or (native-endian) 16-bit samples in any number of
/// calls, finish. Freed on deinit whatever state it is in, so that abandoning it (an
/// error, a cancellation) leaks nothing.
final class PNGEncoder {
    private let encoder: OpaquePointer

    /// Starts a width x height image. Sizes and options libpng refuses throw its message.
    /// `outputCapacity` is the output buffer's first size (0: the raw samples' size);
    /// one that streams its output with `drain` needs little.
    init(options: PNGCodec.Options, width: Int, height: Int, outputCapacity: Int = 0) throws {
        let cOptions = CPNG_EncodeOptions(bit_depth: Int32(clamping: options.bitDepth), compression_level: Int32(clamping: options.compressionLevel),
                                          filters: PNGCodec.filterMask(options.filter), strategy: options.strategy.zlibValue,
                                          output_capacity: max(0, outputCapacity))
        guard let encoder = CPNG_encoder_begin(cOptions, Int32(clamping: width), Int32(clamping: height)) else {
            throw CodecError(library: "libpng", message: "out of memory for the encoder")
        }
        self.encoder = encoder
        try check(CPNG_encoder_failed(encoder) == 0 ? 0 : -1)
    }

    deinit {
        CPNG_encoder_destroy(encoder)
    }

    /// Compresses `count` rows of samples, `stride` bytes apart.
    func write(_ rows: UnsafeRawPointer, stride: Int, count: Int) throws {
        try check(CPNG_encoder_write_rows(encoder, rows, stride, Int32(clamping: count)))
    }

    /// Gives `body` the output written since the last drain (valid during the call).
    func drain(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var output: UnsafePointer<UInt8>?
        var size = 0
        try check(CPNG_encoder_drain(encoder, &output, &size))
        if let output, size > 0 { try body(UnsafeRawBufferPointer(start: output, count: size)) }
    }

    /// The PNG, once every row was written; the encoder's buffer becomes the bytes
    /// without a copy.
    func finish() throws -> SharedBytes {
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        try check(CPNG_encoder_finish(encoder, &output, &size))
        return SharedBytes(takingOwnershipOf: output!, count: size) { CPNG_free($0) }
    }

    /// The one place where the shim's status becomes a Swift error.
    private func check(_ status: Int32) throws {
        guard status == 0 else {
            throw CodecError(library: "libpng", message: String(cString: CPNG_encoder_message(encoder)))
        }
    }
}
