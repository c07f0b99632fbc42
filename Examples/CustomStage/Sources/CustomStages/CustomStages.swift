import Framework
import Stages

/// This package's stage types, for a registry.
public enum CustomStages {
    public static let all: [StageType] = [
        StageType(RampStage.self),
        StageType(ThresholdStage.self),
        StageType(HistogramStage.self),
    ]

    /// This package's artifact codecs: how an artifact store keeps a `Report`.
    public static let codecs: [ArtifactCodec] = [Report.codec]

    /// The built-in stage types and these, with the codecs of this package's artifact types.
    public static func registry() throws -> StageRegistry {
        try BuiltinStages.registry(adding: all).adding([], codecs: codecs)
    }
}
