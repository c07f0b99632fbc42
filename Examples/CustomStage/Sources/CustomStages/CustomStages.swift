import Framework
import Stages

/// This package's stage types, for a registry.
public enum CustomStages {
    public static let all: [StageType] = [
        StageType(RampStage.self),
        StageType(ThresholdStage.self),
        StageType(HistogramStage.self),
    ]

    /// The built-in stage types and these.
    public static func registry() throws -> StageRegistry {
        try BuiltinStages.registry(adding: all)
    }
}
