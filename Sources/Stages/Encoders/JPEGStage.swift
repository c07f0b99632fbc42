import Framework

/// `jpeg`: an 8-bit grayscale JPEG with libjpeg-turbo.
public struct JPEGStage: Stage {
    public static let spec = StageSpec(
        name: "jpeg",
        summary: "Encode a grid as an 8-bit grayscale JPEG.",
        discussion: """
            Grid<UInt8> is encoded as is. Grid<Float32> must be in [0, 1]; each value v becomes \
            round(v * 255), values outside [0, 1] are clamped and NaN becomes 0. Conversion happens \
            a band of rows at a time inside the encoder, without a copy of the image. With restart \
            markers (the default), horizontal strips are encoded on several cores and joined at the \
            markers; the bytes are the same whatever --jobs is. A cancelled run or a timeout stops \
            the encoder within milliseconds. Grayscale has no chroma, so there is no subsampling \
            to choose.
            """,
        parameters: [
            ParameterSpec("quality", .integer, default: .integer(95), range: .closed(1, 100), doc: "JPEG quality, 1 (smallest) to 100 (best)"),
            ParameterSpec("progressive", .boolean, default: .boolean(false), doc: "write a progressive JPEG"),
            ParameterSpec("optimize", .boolean, default: .boolean(false), doc: "compute optimal Huffman tables (smaller file, slower)"),
            ParameterSpec("restart_rows", .integer, default: .integer(2), range: .closed(0, 65535),
                          doc: "a restart marker every this many rows of 8x8 blocks, so strips encode in parallel; 0 for none (one core)"),
        ],
        inputs: [InputPort(accepts: .oneOf(.grid(.float32), .grid(.uint8)), doc: "the image: unit-range floats or 8-bit samples")],
        output: .fixed(.encodedImage),
        // 2: restart_rows defaults to 2 (16 pixel rows), not 8: streamed strips a quarter
        // the size (less memory, as fast or faster), for 2 bytes a marker.
        version: 2)

    public let options: JPEGCodec.Options

    public init(parameters: Parameters) throws {
        options = JPEGCodec.Options(quality: parameters.int("quality"), progressive: parameters.bool("progressive"),
                                    optimize: parameters.bool("optimize"), restartRows: parameters.int("restart_rows"))
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try context.checkCancellation()
        let bytes: SharedBytes
        let width: Int, height: Int
        switch inputs.input {
        case let grid as Grid<Float>:
            bytes = try await JPEGCodec.encodeGray(grid, options: options, workers: context.concurrency, progress: { context.reportProgress($0) })
            (width, height) = (grid.width, grid.height)
        case let grid as Grid<UInt8>:
            bytes = try await JPEGCodec.encodeGray(grid, options: options, workers: context.concurrency, progress: { context.reportProgress($0) })
            (width, height) = (grid.width, grid.height)
        default:
            throw StageFailure("input is not Grid<Float32> or Grid<UInt8>", retryable: false)
        }
        return EncodedImage(bytes: bytes, format: "jpeg", mediaType: "image/jpeg", width: width, height: height)
    }
}

extension JPEGStage: StreamingStage {
    public static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: true, output: true, replayable: true)
    }

    public static func estimate(parameters: Parameters, input: ArtifactEstimate?, bandRows: Int, bandBuffers: Int) -> StreamingEstimate {
        guard let input, let width = input.width, let height = input.height else { return StreamingEstimate(output: nil, streamingBytes: 0) }
        // At most about a byte a pixel at quality 100 on noise; far less on most images.
        let output = ArtifactEstimate(width: width, height: height, byteCount: Double(width) * Double(height))
        let restartRows = parameters.int("restart_rows")
        let workers = Double(max(1, bandBuffers - 2))
        let chunks = Double(bandBuffers) * Double(ByteStreamWriter.defaultChunkSize)
        guard restartRows > 0, !parameters.bool("progressive"), !parameters.bool("optimize") else {
            // One encoder; progressive and optimized ones keep every coefficient (2 bytes a sample).
            let coefficients = parameters.bool("progressive") || parameters.bool("optimize") ? 2 * Double(width) * Double(height) : 0
            return StreamingEstimate(output: output, streamingBytes: chunks + coefficients + 16 * Double(width))
        }
        let intervalRows = min(restartRows, 65_535 / ((width + 7) / 8)) * 8
        let strip = Double(JPEGCodec.stripRows(width: width, intervalRows: intervalRows)) * Double(width)
        // Strips of samples being gathered and encoded, and encoded strips waiting their turn.
        return StreamingEstimate(output: output, streamingBytes: chunks + (workers + 1) * strip + (2 * workers - 1) * strip + 4 * 65_536)
    }

    public func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let input = try io.requireGridInput(), output = try io.requireBytesOutput()
        let info = try input.start()
        try output.begin(EncodedStreamInfo(format: "jpeg", mediaType: "image/jpeg", width: info.width, height: info.height))
        let writer = try io.bytesWriter()
        try JPEGCodec.stream(input, info: info, options: options, workers: context.concurrency, io: io, to: writer,
                             progress: RowProgress(total: info.height, report: { context.reportProgress($0) }))
        return nil
    }
}
