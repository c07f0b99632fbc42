import Foundation
import Framework

/// `poisson`: a width x height grid of independent Poisson(lambda) samples.
///
/// Rows are cut into blocks of a fixed size that depends only on the width; block
/// `b` draws from stream `b` of the stage seed, and blocks are spread over
/// `context.concurrency` tasks. The grid is therefore byte-identical for a given
/// seed whatever the number of threads.
public struct PoissonStage: Stage {
    public static let spec = StageSpec(
        name: "poisson",
        summary: "A grid of independent Poisson(lambda) samples.",
        discussion: """
            Exact for any lambda > 0: inverse-CDF table for lambda < 64, Hörmann's PTRS above. \
            The element type is the smallest unsigned type that no sample exceeds with probability \
            above 1e-30 (dtype: auto), or the one given; a sample that does not fit is an error. \
            The same seed gives the same bytes whatever --jobs is.
            """,
        parameters: [
            ParameterSpec("width", .integer, range: .atLeast(1), doc: "number of columns"),
            ParameterSpec("height", .integer, range: .atLeast(1), doc: "number of rows"),
            ParameterSpec("lambda", .number, range: NumericRange(lower: 0, lowerInclusive: false, upper: 1e9),
                          doc: "mean (and variance) of the distribution"),
            ParameterSpec("dtype", .choice(["auto", "uint8", "uint16", "uint32"]), default: .string("auto"),
                          doc: "element type of the grid; auto picks the smallest that cannot overflow"),
            .seed(),
        ],
        output: .computed([.grid(.uint8), .grid(.uint16), .grid(.uint32)], description: "Grid<UInt8|UInt16|UInt32> (from lambda and dtype)") { context in
            .grid(try elementType(lambda: context.parameters.double("lambda"), dtype: context.parameters.string("dtype")))
        })

    public let width: Int
    public let height: Int
    public let lambda: Double
    public let elementType: ElementType

    public init(parameters: Parameters) throws {
        width = parameters.int("width")
        height = parameters.int("height")
        lambda = parameters.double("lambda")
        elementType = try Self.elementType(lambda: lambda, dtype: parameters.string("dtype"))
        // Whether the grid fits in memory depends on whether it streams: the plan's
        // memory estimate (`StreamingLayout`) decides, before the run.
    }

    static func elementType(lambda: Double, dtype: String) throws -> ElementType {
        let needed = PoissonSampler.practicalMaximum(lambda: lambda)
        let choices: [(ElementType, Double)] = [(.uint8, 255), (.uint16, 65535), (.uint32, 4_294_967_295)]
        if dtype == "auto" {
            guard let choice = choices.first(where: { needed <= $0.1 }) else {
                throw ParameterError("lambda", "is too large for any supported element type")
            }
            return choice.0
        }
        let chosen = choices.first { $0.0.rawValue == dtype }!
        if lambda >= chosen.1 {
            throw ParameterError("dtype", "'\(dtype)' holds values up to \(Int(chosen.1)), but samples average \(lambda)",
                                 help: "use dtype: auto")
        }
        return chosen.0
    }

    /// Rows per block: about 64 Ki samples, fixed by the width alone.
    static func rowsPerBlock(width: Int) -> Int { max(1, 65_536 / max(1, width)) }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        switch elementType {
        case .uint8: try await generate(UInt8.self, context: context)
        case .uint16: try await generate(UInt16.self, context: context)
        default: try await generate(UInt32.self, context: context)
        }
    }

    func generate<T: FixedWidthInteger & GridElement>(_: T.Type, context: StageContext) async throws -> Grid<T> {
        let sampler = PoissonSampler(lambda: lambda)
        let seed = context.seed
        let width = width, height = height
        let rowsPerBlock = Self.rowsPerBlock(width: width)
        let blocks = (height + rowsPerBlock - 1) / rowsPerBlock
        let workers = max(1, min(context.concurrency, blocks))
        let progress = RowProgress(total: blocks, report: { context.reportProgress($0) })
        // For the run report: a byte grid's values counted a block at a time while the
        // block is in cache, instead of in a pass of their own over the whole grid.
        let counting = context.gathersDigests && T.self == UInt8.self
        let counts = ValueCounts()
        let grid = try await Grid<T>(width: width, height: height) { (buffer: UnsafeSendableBuffer<T>) in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<workers {
                    group.addTask {
                        let histogram = counting ? ByteHistogram(expectedCount: width * height / workers) : nil
                        for block in stride(from: worker, to: blocks, by: workers) {
                            try Task.checkCancellation()
                            let firstRow = block * rowsPerBlock
                            let rows = min(rowsPerBlock, height - firstRow)
                            var rng = Xoshiro256StarStar(seed: seed, stream: UInt64(block))
                            let slice = buffer.slice(firstRow * width..<(firstRow + rows) * width)
                            if let value = sampler.fill(slice, rng: &rng) {
                                throw StageFailure("a sample (\(value)) does not fit in \(T.elementType.swiftName); use a wider dtype",
                                                   retryable: false, code: .invalidParameter)
                            }
                            histogram?.add(UnsafeRawBufferPointer(slice).assumingMemoryBound(to: UInt8.self))
                            progress.add(1)
                        }
                        if let histogram { counts.add(histogram.counts) }
                    }
                }
                try await group.waitForAll()
            }
        }
        if counting, let bytes = grid as? Grid<UInt8> { bytes.recordValueCounts(counts.total) }
        return grid
    }

    /// The workers' counts, summed as each finishes.
    private final class ValueCounts: @unchecked Sendable {
        private let lock = NSLock()
        private var counts = [Int](repeating: 0, count: 256)

        func add(_ more: [Int]) {
            lock.withLock { for k in 0..<256 { counts[k] += more[k] } }
        }

        var total: [Int] { lock.withLock { counts } }
    }
}

extension PoissonStage: StreamingStage {
    /// A source: its output streams, and it is replayable (any band is reproduced from
    /// the seed, so a range pass can run it twice).
    public static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: false, output: true, replayable: true)
    }

    public static func estimate(parameters: Parameters, input: ArtifactEstimate?, bandRows: Int, bandBuffers: Int) -> StreamingEstimate {
        let width = parameters.int("width"), height = parameters.int("height")
        let elementType = (try? elementType(lambda: parameters.double("lambda"), dtype: parameters.string("dtype"))) ?? .uint32
        let unit = rowsPerBlock(width: width)
        let rows = max(unit, (bandRows + unit - 1) / unit * unit)
        return StreamingEstimate(output: .grid(width: width, height: height, elementType: elementType),
                                 streamingBytes: Double(bandBuffers) * Double(min(rows, height)) * Double(width) * Double(elementType.byteWidth))
    }

    /// Bands of whole row blocks, filled on `context.concurrency` threads (each band's
    /// blocks from their own streams, as `run` fills them) and pushed in row order:
    /// the same bytes as `run`, whatever the band size or the number of threads.
    public func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        switch elementType {
        case .uint8: try stream(UInt8.self, io: io, context: context)
        case .uint16: try stream(UInt16.self, io: io, context: context)
        default: try stream(UInt32.self, io: io, context: context)
        }
        return nil
    }

    func stream<T: FixedWidthInteger & GridElement>(_: T.Type, io: StreamIO, context: StageContext) throws {
        let output = try io.requireGridOutput()
        let info = GridStreamInfo(width: width, height: height, elementType: T.elementType)
        try output.begin(info)
        let sampler = PoissonSampler(lambda: lambda)
        let (seed, width, height) = (context.seed, width, height)
        let rowsPerBlock = Self.rowsPerBlock(width: width)
        let (pool, bandRows) = try io.bandPool(rowBytes: info.rowBytes, height: height, granularity: rowsPerBlock,
                                               purpose: "a band of \(width)-wide rows")
        let bands = height / bandRows + (height % bandRows == 0 ? 0 : 1)
        let workers = max(1, min(context.concurrency, bands, io.bandBuffers - 1))
        let taking = Sequencer(), pushing = Sequencer()
        let progress = RowProgress(total: height, report: { context.reportProgress($0) })
        try Blocking.parallel(workers, stop: { error in
            taking.fail(error)
            pushing.fail(error)
            io.stop(error)
        }) { worker in
            for band in stride(from: worker, to: bands, by: workers) {
                try io.checkCancellation()
                let rows = (band * bandRows)..<(band * bandRows + min(bandRows, height - band * bandRows))
                // Buffers are taken in band order too, so the band whose turn it is to
                // be pushed never waits for a buffer held by a later one.
                try taking.wait(for: band)
                let lease = try pool.take()
                taking.advance()
                let gridBand = GridBand(rows: rows, lease: lease)
                let elements = gridBand.mutableElements(T.self, width: width)
                var row = rows.lowerBound
                while row < rows.upperBound {
                    let block = row / rowsPerBlock
                    let count = min(rowsPerBlock, height - row)
                    var rng = Xoshiro256StarStar(seed: seed, stream: UInt64(block))
                    let start = (row - rows.lowerBound) * width
                    if let value = sampler.fill(UnsafeMutableBufferPointer(rebasing: elements[start..<(start + count * width)]), rng: &rng) {
                        lease.release()
                        throw StageFailure("a sample (\(value)) does not fit in \(T.elementType.swiftName); use a wider dtype",
                                           retryable: false, code: .invalidParameter)
                    }
                    row += count
                }
                try pushing.wait(for: band)
                try output.push(gridBand, byteCount: rows.count * info.rowBytes)
                pushing.advance()
                progress.add(rows.count)
            }
        }
        output.finish()
    }
}
