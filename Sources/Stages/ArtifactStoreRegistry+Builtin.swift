import Framework

extension ArtifactStoreRegistry {
    /// The stores the runner knows: a directory (a plain path or `file://`) and S3
    /// (`s3://bucket/prefix`).
    public static let builtin = ArtifactStoreRegistry.standard.adding(S3ArtifactStore.scheme)
}
