import Framework

/// `normalize`: maps a numeric grid to `Grid<Float32>` in [0, 1].
///
/// - min-max (default): (x - min) / (max - min), min and max found in one pass. A
///   constant grid (max == min) maps to all zeros. NaN elements are ignored when
///   finding the range and stay NaN.
/// - fixed range (`range: [lo, hi]`): (x - lo) / (hi - lo), clamped to [0, 1], so
///   images of different runs are comparable.
///
/// A `Grid<UInt8>` input gives a dictionary-encoded output (see `Grid`): the input's
/// bytes with a table of the 256 mapped values, so nothing full-size is written.
public struct NormalizeStage: Stage {
    public static let spec = StageSpec(
        name: "normalize",
        summary: "Scale a numeric grid to Float32 values in [0, 1].",
        discussion: """
            min-max by default: (x - min) / (max - min); a constant grid becomes all 0. \
            With range: [lo, hi], (x - lo) / (hi - lo) clamped to [0, 1]. A Grid<UInt8> comes out \
            dictionary-encoded: its bytes and a table of the 256 mapped values, made without a pass \
            over the data; jpeg and png read it through the table, other consumers get it decoded.
            """,
        parameters: [
            ParameterSpec("range", .list(.number, count: 2), optional: true,
                          doc: "fixed input range [lo, hi] instead of the grid's own min and max"),
        ],
        inputs: [InputPort(accepts: .oneOf(ArtifactType.allGrids), doc: "a grid of any element type")],
        output: .fixed(.grid(.float32)))

    public let fixedRange: (low: Double, high: Double)?

    public init(parameters: Parameters) throws {
        if let bounds = parameters.doubles("range") {
            guard bounds[1] > bounds[0] else {
                throw ParameterError("range", "must be [lo, hi] with lo < hi, got [\(bounds[0]), \(bounds[1])]")
            }
            fixedRange = (bounds[0], bounds[1])
        } else {
            fixedRange = nil
        }
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let workers = context.concurrency
        switch inputs.input {
        case let grid as Grid<UInt8>: return try await normalize(grid, workers: workers)
        case let grid as Grid<UInt16>: return try await normalize(grid, workers: workers)
        case let grid as Grid<UInt32>: return try await normalize(grid, workers: workers)
        case let grid as Grid<Float>: return try await normalize(grid, workers: workers)
        case let grid as Grid<Double>: return try await normalize(grid, workers: workers)
        default: throw StageFailure("input is not a grid", retryable: false)
        }
    }

    /// The affine map x * scale + offset and whether to clamp.
    func transform<T: GridElement>(for grid: Grid<T>) throws -> (scale: Double, offset: Double, clamp: Bool) {
        if let (low, high) = fixedRange {
            return (1 / (high - low), -low / (high - low), true)
        }
        guard let (low, high) = try grid.cancellableValueRange(), high > low else {
            return (0, 0, false)  // constant (or empty, or all-NaN) grid: all zeros
        }
        return (1 / (high - low), -low / (high - low), false)
    }

    func normalize<T: GridElement>(_ grid: Grid<T>, workers: Int) async throws -> Grid<Float> {
        let (scale, offset, clamp) = try transform(for: grid)
        if let bytes = grid as? Grid<UInt8> {
            // 256 possible inputs: the output is the input with a table of their images,
            // made in O(256); it is decoded only if a consumer needs the floats in memory.
            return Grid(indices: bytes, table: (0..<256).map { Self.map(Double($0), scale, offset, clamp) })
        }
        // 16-bit grids have few distinct values: map each once.
        let table: [Float]? = T.self == UInt16.self ? (0..<65536).map { Self.map(Double($0), scale, offset, clamp) } : nil
        try grid.materialize()
        let count = grid.count
        // Pieces of 256 Ki elements (about a millisecond each), shared out to the workers, with a
        // cancellation check before each.
        let piece = 1 << 18
        let pieces = (count + piece - 1) / piece
        let tasks = max(1, min(workers, pieces))
        return try await Grid<Float>(width: grid.width, height: grid.height) { output in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        for index in stride(from: task, to: pieces, by: tasks) {
                            try Task.checkCancellation()
                            let range = (index * piece)..<min(count, (index + 1) * piece)
                            grid.withUnsafeBufferPointer { input in
                                Self.map(UnsafeBufferPointer(rebasing: input[range]), into: output.slice(range),
                                         table: table, scale: scale, offset: offset, clamp: clamp)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    static func map<T: GridElement>(
        _ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<Float>,
        table: [Float]?, scale: Double, offset: Double, clamp: Bool
    ) {
        if let table {
            table.withUnsafeBufferPointer { table in
                let words = UnsafeRawBufferPointer(input).assumingMemoryBound(to: UInt16.self)
                for i in 0..<words.count { output[i] = table[Int(words[i])] }
            }
        } else {
            for i in 0..<input.count {
                let value = input[i].doubleValue
                output[i] = value.isNaN ? .nan : map(value, scale, offset, clamp)
            }
        }
    }

    @inline(__always)
    static func map(_ value: Double, _ scale: Double, _ offset: Double, _ clamp: Bool) -> Float {
        let mapped = value * scale + offset
        return Float(clamp ? min(max(mapped, 0), 1) : mapped)
    }
}

extension NormalizeStage: StreamingStage {
    /// Streams in one pass with `range:`; min-max needs its input's range first (a
    /// range pass over a replayable upstream, else a materialised input).
    public static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: true, output: true, replayable: true, needsInputRange: parameters.doubles("range") == nil)
    }

    public static func estimate(parameters: Parameters, input: ArtifactEstimate?, bandRows: Int, bandBuffers: Int) -> StreamingEstimate {
        guard let input, let width = input.width, let height = input.height else { return StreamingEstimate(output: nil, streamingBytes: 0) }
        // A byte grid comes out dictionary-encoded: its bands pass through as they are.
        let bytes = input.elementType == .uint8
        return StreamingEstimate(output: ArtifactEstimate(width: width, height: height, elementType: .float32,
                                                          byteCount: Double(width) * Double(height) * (bytes ? 1 : 4)),
                                 streamingBytes: bytes ? 0 : Double(bandBuffers) * Double(min(bandRows, height)) * Double(width) * 4)
    }

    /// As `run`, a band at a time: a byte grid's bands pass through with a table of
    /// the 256 mapped values (as `run` makes a dictionary-encoded grid), a
    /// dictionary-encoded grid's table is mapped, and other grids are mapped into
    /// float bands of the stage's own.
    public func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let input = try io.requireGridInput(), output = try io.requireGridOutput()
        let info = try input.start()
        let (scale, offset, clamp): (Double, Double, Bool)
        if let (low, high) = fixedRange {
            (scale, offset, clamp) = (1 / (high - low), -low / (high - low), true)
        } else {
            switch io.inputRange {
            case .values(let low, let high) where high > low:
                (scale, offset, clamp) = (1 / (high - low), -low / (high - low), false)
            case .values, .noValues:
                (scale, offset, clamp) = (0, 0, false)  // constant (or empty, or all-NaN) grid: all zeros
            case nil:
                throw PipelineError("streamed without its input's range (a bug in the plan)", retryable: false, code: .stageBug)
            }
        }
        let progress = RowProgress(total: info.height, report: { context.reportProgress($0) })
        func map(_ value: Double) -> Float { value.isNaN ? .nan : Self.map(value, scale, offset, clamp) }
        if info.table != nil || info.elementType == .uint8 {
            let table = info.table.map { $0.map { map(Double($0)) } } ?? (0..<256).map { map(Double($0)) }
            let outputInfo = GridStreamInfo(width: info.width, height: info.height, elementType: .float32, table: table)
            try output.begin(outputInfo)
            while let band = try input.next() {
                try io.checkCancellation()
                try output.push(band, byteCount: band.rows.count * outputInfo.rowBytes)
                progress.add(band.rows.count)
            }
            output.finish()
            return nil
        }
        let writer = try io.gridWriter(GridStreamInfo(width: info.width, height: info.height, elementType: .float32))
        let words: [Float]? = info.elementType == .uint16 ? (0..<65536).map { map(Double($0)) } : nil
        while let band = try input.next() {
            defer { band.release() }
            try io.checkCancellation()
            try writer.write(rows: band.rows) { rows, memory in
                let range = ((rows.lowerBound - band.rows.lowerBound) * info.width)..<((rows.upperBound - band.rows.lowerBound) * info.width)
                let into = UnsafeMutableBufferPointer(start: memory.assumingMemoryBound(to: Float.self), count: range.count)
                func apply<T: GridElement>(_: T.Type) {
                    Self.map(UnsafeBufferPointer(rebasing: band.elements(T.self, width: info.width)[range]), into: into, table: words,
                             scale: scale, offset: offset, clamp: clamp)
                }
                switch info.elementType {
                case .uint8: apply(UInt8.self)
                case .uint16: apply(UInt16.self)
                case .uint32: apply(UInt32.self)
                case .float32: apply(Float.self)
                case .float64: apply(Double.self)
                }
            }
            progress.add(band.rows.count)
        }
        writer.finish()
        return nil
    }
}
