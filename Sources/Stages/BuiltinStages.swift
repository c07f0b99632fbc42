import Framework

/// The stage types this package ships.
public enum BuiltinStages {
    public static let all: [StageType] = [
        StageType(PoissonStage.self),
        StageType(NormalizeStage.self),
        StageType(JPEGStage.self),
        StageType(PNGStage.self),
        StageType(FilesystemStage.self),
        StageType(S3Stage.self),
        StageType(ExecStage.self),
    ]

    /// A registry of the built-in stage types, plus `extra` ones.
    public static func registry(adding extra: [StageType] = []) throws -> StageRegistry {
        try StageRegistry(all + extra)
    }
}
