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
        // In Double: a product of two sizes from the pipeline file must not wrap.
        let bytes = Double(width) * Double(height) * Double(elementType.byteWidth)
        let limit = MemoryLimit.current
        if bytes > Double(limit.bytes) {
            throw ParameterError("width", "makes a \(width)x\(height) grid of \(elementType.swiftName), "
                + "\(ByteCountFormatting.string(bytes)), more than the memory this process may use (\(limit))",
                help: "use a smaller width or height")
        }
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
        return try await Grid<T>(width: width, height: height) { (buffer: UnsafeSendableBuffer<T>) in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<workers {
                    group.addTask {
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
                            progress.add(1)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }
}
