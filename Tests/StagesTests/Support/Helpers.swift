import Foundation
import Framework
import Logging

func testContext(stage: String = "test", seed: UInt64 = 42, concurrency: Int = 2, values: [String: String] = [:],
                 gathersDigests: Bool = false) -> StageContext {
    var templateValues = ["run_id": "run-1", "stage": stage, "date": "2026-11-26"]
    templateValues.merge(values) { _, new in new }
    return StageContext(stageID: stage, stageType: "test", runID: "run-1", seed: seed, concurrency: concurrency,
                        logger: Logger(label: "test"), templateValues: templateValues, gathersDigests: gathersDigests)
}

func parameters(_ spec: StageSpec, _ values: [String: ParameterValue]) -> Parameters {
    var all = values
    for parameter in spec.parameters where all[parameter.name] == nil {
        if let value = parameter.defaultValue { all[parameter.name] = value }
    }
    return Parameters(all)
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("stages-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
