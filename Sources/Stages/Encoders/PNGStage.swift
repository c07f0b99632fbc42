import Framework

/// `png`: a grayscale PNG with libpng, 8 or 16 bits per sample.
public struct PNGStage: Stage {
    public static let spec = StageSpec(
        name: "png",
        summary: "Encode a grid as a grayscale PNG (8 or 16 bit).",
        discussion: """
            Grid<UInt8> is written as 8-bit, Grid<UInt16> as 16-bit, both without change \
            (Grid<UInt8> with bit_depth 16 is scaled by 257, so 255 becomes 65535). \
            Grid<Float32> in [0, 1] is scaled to the bit depth: round(v * 255) or round(v * 65535), \
            clamped, NaN as 0. Rows are encoded a band at a time, so a cancelled run or a \
            timeout stops the encoder within milliseconds, even at compression 9. On noise-like \
            data, filter none with the rle strategy is as small as the defaults of other tools \
            and much faster.
            """,
        parameters: [
            ParameterSpec("bit_depth", .choice(["auto", "8", "16"]), default: .string("auto"),
                          doc: "bits per sample; auto is 16 for Grid<UInt16>, else 8"),
            ParameterSpec("compression", .integer, default: .integer(6), range: .closed(0, 9), doc: "zlib compression level, 0 (none) to 9"),
            ParameterSpec("filter", .choice(PNGCodec.Filter.allCases.map(\.rawValue)), default: .string("none"),
                          doc: "PNG row filter; 'all' lets libpng choose per row"),
            ParameterSpec("strategy", .choice(PNGCodec.Strategy.allCases.map(\.rawValue)), default: .string("rle"),
                          doc: "zlib strategy: default, filtered, huffman, rle or fixed"),
        ],
        inputs: [InputPort(accepts: .oneOf(.grid(.float32), .grid(.uint8), .grid(.uint16)),
                           doc: "the image: unit-range floats, 8-bit or 16-bit samples")],
        output: .computed([.encodedImage], description: "EncodedImage") { context in
            if context.inputTypes[InputPort.defaultName] == .grid(.uint16), context.parameters.string("bit_depth") == "8" {
                throw ParameterError("bit_depth", "is 8, which cannot hold Grid<UInt16> samples without loss",
                                     help: "use bit_depth: 16 (or auto), or normalize the grid first")
            }
            return .encodedImage
        })

    let bitDepth: String
    let options: PNGCodec.Options

    public init(parameters: Parameters) throws {
        bitDepth = parameters.string("bit_depth")
        options = PNGCodec.Options(
            bitDepth: bitDepth == "16" ? 16 : 8, compressionLevel: parameters.int("compression"),
            filter: PNGCodec.Filter(rawValue: parameters.string("filter"))!,
            strategy: PNGCodec.Strategy(rawValue: parameters.string("strategy"))!)
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try context.checkCancellation()
        var options = options
        let bytes: SharedBytes
        let width: Int, height: Int
        switch inputs.input {
        case let grid as Grid<UInt16>:
            if bitDepth == "auto" { options.bitDepth = 16 }
            bytes = try await PNGCodec.encodeGray(grid, options: options, progress: { context.reportProgress($0) })
            (width, height) = (grid.width, grid.height)
        case let grid as Grid<UInt8>:
            bytes = try await PNGCodec.encodeGray(grid, options: options, progress: { context.reportProgress($0) })
            (width, height) = (grid.width, grid.height)
        case let grid as Grid<Float>:
            bytes = try await PNGCodec.encodeGray(grid, options: options, progress: { context.reportProgress($0) })
            (width, height) = (grid.width, grid.height)
        default:
            throw StageFailure("input is not Grid<Float32>, Grid<UInt8> or Grid<UInt16>", retryable: false)
        }
        return EncodedImage(bytes: bytes, format: "png", mediaType: "image/png", width: width, height: height)
    }
}

extension PNGStage: StreamingStage {
    public static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: true, output: true, replayable: true)
    }

    public static func estimate(parameters: Parameters, input: ArtifactEstimate?, bandRows: Int, bandBuffers: Int) -> StreamingEstimate {
        guard let input, let width = input.width, let height = input.height else { return StreamingEstimate(output: nil, streamingBytes: 0) }
        let depth: Double = parameters.string("bit_depth") == "16" || (parameters.string("bit_depth") == "auto" && input.elementType == .uint16) ? 2 : 1
        // Deflate never grows data by more than a few bytes per 16 KiB block.
        let output = ArtifactEstimate(width: width, height: height, byteCount: Double(width) * Double(height) * depth * 1.01 + Double(height) + 1024)
        // Chunks in flight, libpng's output buffer, zlib's state and a piece of converted samples.
        return StreamingEstimate(output: output, streamingBytes: Double(bandBuffers) * Double(ByteStreamWriter.defaultChunkSize) + Double(1 << 20))
    }

    public func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let input = try io.requireGridInput(), output = try io.requireBytesOutput()
        let info = try input.start()
        var options = options
        if bitDepth == "auto" && info.elementType == .uint16 { options.bitDepth = 16 }
        try output.begin(EncodedStreamInfo(format: "png", mediaType: "image/png", width: info.width, height: info.height))
        let writer = try io.bytesWriter()
        try PNGCodec.stream(input, info: info, options: options, to: writer, cancel: io.cancel,
                            progress: RowProgress(total: info.height, report: { context.reportProgress($0) }))
        return nil
    }
}
