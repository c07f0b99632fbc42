import Framework

/// `normalize`: maps a numeric grid to `Grid<Float32>` in [0, 1].
///
/// - min-max (default): (x - min) / (max - min), min and max found in one pass. A
///   constant grid (max == min) maps to all zeros. NaN elements are ignored when
///   finding the range and stay NaN.
/// - fixed range (`range: [lo, hi]`): (x - lo) / (hi - lo), clamped to [0, 1], so
///   images of different runs are comparable.
public struct NormalizeStage: Stage {
    public static let spec = StageSpec(
        name: "normalize",
        summary: "Scale a numeric grid to Float32 values in [0, 1].",
        discussion: """
            min-max by default: (x - min) / (max - min); a constant grid becomes all 0. \
            With range: [lo, hi], (x - lo) / (hi - lo) clamped to [0, 1].
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
        guard let grid = inputs.input as? any AnyGrid else {
            throw StageFailure("input is not a grid", retryable: false)
        }
        switch grid {
        case let g as Grid<UInt8>: return try normalize(g)
        case let g as Grid<UInt16>: return try normalize(g)
        case let g as Grid<UInt32>: return try normalize(g)
        case let g as Grid<Float>: return try normalize(g)
        case let g as Grid<Double>: return try normalize(g)
        default: throw StageFailure("unsupported grid type \(grid.artifactType)", retryable: false)
        }
    }

    /// The affine map x * scale + offset and whether to clamp.
    func transform<T: GridElement>(for grid: Grid<T>) -> (scale: Double, offset: Double, clamp: Bool) {
        if let (low, high) = fixedRange {
            return (1 / (high - low), -low / (high - low), true)
        }
        guard let (low, high) = grid.range(), high > low else {
            return (0, 0, false)  // constant (or empty, or all-NaN) grid: all zeros
        }
        let l = low.doubleValue, h = high.doubleValue
        return (1 / (h - l), -l / (h - l), false)
    }

    func normalize<T: GridElement>(_ grid: Grid<T>) throws -> Grid<Float> {
        let (scale, offset, clamp) = transform(for: grid)
        return try Grid<Float>(width: grid.width, height: grid.height) { output in
            grid.withUnsafeBufferPointer { input in
                if T.self == UInt8.self || T.self == UInt16.self {
                    // Few distinct values: compute each once.
                    let levels = T.self == UInt8.self ? 256 : 65536
                    let table = (0..<levels).map { Self.map(Double($0), scale, offset, clamp) }
                    table.withUnsafeBufferPointer { table in
                        if T.self == UInt8.self {
                            let bytes = UnsafeRawBufferPointer(input).assumingMemoryBound(to: UInt8.self)
                            for i in 0..<bytes.count { output[i] = table[Int(bytes[i])] }
                        } else {
                            let words = UnsafeRawBufferPointer(input).assumingMemoryBound(to: UInt16.self)
                            for i in 0..<words.count { output[i] = table[Int(words[i])] }
                        }
                    }
                } else {
                    for i in 0..<input.count {
                        let value = input[i].doubleValue
                        output[i] = value.isNaN ? .nan : Self.map(value, scale, offset, clamp)
                    }
                }
            }
        }
    }

    @inline(__always)
    static func map(_ value: Double, _ scale: Double, _ offset: Double, _ clamp: Bool) -> Float {
        let mapped = value * scale + offset
        return Float(clamp ? min(max(mapped, 0), 1) : mapped)
    }
}
