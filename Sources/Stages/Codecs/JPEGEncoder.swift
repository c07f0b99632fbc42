internal import CJPEG
import Framework

/// One libjpeg encoder through CJPEG's incremental API: begin with the size and
/// options, write rows of 8-bit samples in any number of calls, finish. Freed on
/// deinit whatever state it is in, so that abandoning it (an error, a cancellation)
/// leaks nothing.
final class JPEGEncoder {
    private let encoder: OpaquePointer
    /// Polled by libjpeg inside its long passes too (those `finish` runs for
    /// progressive and optimized images); kept alive for as long as the encoder.
    private let cancel: CancelFlag?

    /// Starts a width x height image. Sizes and options libjpeg refuses throw its
    /// message; once `cancel` is set, the next call or libjpeg pass throws
    /// `CancellationError`.
    /// `outputCapacity` is the output buffer's first size (0: a byte per pixel); one
    /// that streams its output with `drain` needs little.
    init(options: JPEGCodec.Options, width: Int, height: Int, cancel: CancelFlag? = nil, outputCapacity: Int = 0) throws {
        let cOptions = CJPEG_EncodeOptions(quality: Int32(clamping: options.quality), progressive: options.progressive ? 1 : 0,
                                           optimize: options.optimize ? 1 : 0, restart_rows: Int32(clamping: options.restartRows),
                                           output_capacity: max(0, outputCapacity))
        guard let encoder = CJPEG_encoder_begin(cOptions, Int32(clamping: width), Int32(clamping: height)) else {
            throw CodecError(library: "libjpeg", message: "out of memory for the encoder")
        }
        self.encoder = encoder
        self.cancel = cancel
        if let cancel {
            CJPEG_encoder_set_poll(encoder, { context in
                Unmanaged<CancelFlag>.fromOpaque(context!).takeUnretainedValue().isSet() ? 1 : 0
            }, Unmanaged.passUnretained(cancel).toOpaque())
        }
        try check(CJPEG_encoder_failed(encoder) == 0 ? 0 : -1)
    }

    deinit {
        CJPEG_encoder_destroy(encoder)
    }

    /// Compresses `count` rows of bytes, `stride` bytes apart.
    func write(_ rows: UnsafeRawPointer, stride: Int, count: Int) throws {
        try check(CJPEG_encoder_write_rows(encoder, rows.assumingMemoryBound(to: UInt8.self), stride, Int32(clamping: count)))
    }

    /// Gives `body` the output written since the last drain (valid during the call).
    func drain(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var output: UnsafePointer<UInt8>?
        var size = 0
        try check(CJPEG_encoder_drain(encoder, &output, &size))
        if let output, size > 0 { try body(UnsafeRawBufferPointer(start: output, count: size)) }
    }

    /// The JPEG, once every row was written.
    func finish() throws -> EncoderOutput {
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        try check(CJPEG_encoder_finish(encoder, &output, &size))
        return EncoderOutput(output!, count: size)
    }

    /// The one place where the shim's status becomes a Swift error.
    private func check(_ status: Int32) throws {
        guard status == 0 else {
            if let cancel, cancel.isSet() { throw CancellationError() }
            throw CodecError(library: "libjpeg", message: String(cString: CJPEG_encoder_message(encoder)))
        }
    }
}
