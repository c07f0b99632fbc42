import Framework

/// `threshold`: a transform; a binary image, 255 where the input is at or above the
/// level, 0 elsewhere.
public struct ThresholdStage: Stage {
    public static let spec = StageSpec(
        name: "threshold",
        summary: "Binarise a grid: 255 where a value is at or above 'level', else 0.",
        discussion: "Works on 8-bit grids (level in 0...255) and on unit-range float grids (level in 0...1).",
        parameters: [ParameterSpec("level", .number, default: .number(0.5), range: .closed(0, 255),
                                   doc: "the cut: a fraction for Grid<Float32>, a sample value for Grid<UInt8>")],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8), .grid(.float32)), doc: "the grid to binarise")],
        output: .fixed(.grid(.uint8)))

    let level: Double

    public init(parameters: Parameters) throws {
        level = parameters.double("level")
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        switch inputs.input {
        case let grid as Grid<UInt8>: return try binarise(grid)
        case let grid as Grid<Float>:
            guard level <= 1 else {
                throw StageFailure("level \(level) is above 1, but the input is a unit-range Grid<Float32>", retryable: false)
            }
            return try binarise(grid)
        default: throw StageFailure("input is not Grid<UInt8> or Grid<Float32>", retryable: false)
        }
    }

    func binarise<T: GridElement>(_ grid: Grid<T>) throws -> Grid<UInt8> {
        try Grid<UInt8>(width: grid.width, height: grid.height) { output in
            grid.withUnsafeBufferPointer { input in
                for i in input.indices { output[i] = input[i].doubleValue >= level ? 255 : 0 }
            }
        }
    }
}
