import Framework

/// `histogram`: a transform to this package's own artifact type; counts of each
/// value of an integer grid, as a JSON `Report`.
public struct HistogramStage: Stage {
    public static let spec = StageSpec(
        name: "histogram",
        summary: "Count each value of an integer grid, as a JSON report.",
        discussion: "The report holds width, height, total, min, max, mean and counts (value to count, zero counts left out).",
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8), .grid(.uint16), .grid(.uint32)), doc: "an integer grid")],
        output: .fixed(Report.type))

    public init(parameters: Parameters) throws {}

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        switch inputs.input {
        case let grid as Grid<UInt8>: return try report(grid)
        case let grid as Grid<UInt16>: return try report(grid)
        case let grid as Grid<UInt32>: return try report(grid)
        default: throw StageFailure("input is not an integer grid", retryable: false)
        }
    }

    func report<T: GridElement & FixedWidthInteger>(_ grid: Grid<T>) throws -> Report {
        var counts: [Int: Int] = [:]
        var sum = 0.0
        try grid.withUnsafeBufferPointer { values in
            // A long loop checks cancellation now and then (every 64 Ki values here).
            for start in stride(from: 0, to: values.count, by: 65_536) {
                try Task.checkCancellation()
                for value in values[start..<min(values.count, start + 65_536)] {
                    counts[Int(value), default: 0] += 1
                    sum += Double(value)
                }
            }
        }
        let total = grid.count
        return try Report([
            "width": grid.width, "height": grid.height, "total": total,
            "min": counts.keys.min() ?? 0, "max": counts.keys.max() ?? 0, "mean": total == 0 ? 0 : sum / Double(total),
            "counts": Dictionary(uniqueKeysWithValues: counts.map { (String($0.key), $0.value) }),
        ])
    }
}
