import Framework

/// `ramp`: a source stage; a left-to-right gradient from 0 to 255.
public struct RampStage: Stage {
    public static let spec = StageSpec(
        name: "ramp",
        summary: "A horizontal gradient, 0 at the left edge to 255 at the right.",
        parameters: [
            ParameterSpec("width", .integer, range: .closed(2, 65_535), doc: "number of columns"),
            ParameterSpec("height", .integer, range: .closed(1, 65_535), doc: "number of rows"),
        ],
        output: .fixed(.grid(.uint8)))

    let width: Int
    let height: Int

    public init(parameters: Parameters) throws {
        width = parameters.int("width")
        height = parameters.int("height")
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try Grid<UInt8>(width: width, height: height) { buffer in
            for y in 0..<height {
                for x in 0..<width { buffer[y * width + x] = UInt8(x * 255 / (width - 1)) }
            }
        }
    }
}
