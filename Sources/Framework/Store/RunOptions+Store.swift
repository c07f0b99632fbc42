extension RunOptions {
    /// Prepares these options for a run that persists its outputs in `store`: what
    /// `runner --artifact-store` (with `--resume` or `--only`) does, for any program
    /// that embeds the framework, and for `PipelineHarness`.
    ///
    /// Checks that the store can be used (`ArtifactStore.checkAccess`), finds the run's
    /// seed and records it (`ArtifactStore.startRun`), and sets `store`, `reuse` (on
    /// for `.resume`) and `seed`. Nothing has run when it throws: an
    /// `ArtifactStoreError` whose `isUsageError` tells a usage error (an unknown or
    /// damaged run, a store that does not exist) from a store that cannot be reached.
    ///
    /// - Parameters:
    ///   - store: Where every stage's output goes, and where a resumed run finds them.
    ///   - start: A run of its own, a resume (the run must be in the store), or one stage alone.
    ///   - seed: The seed the user asked for, if any; else the recorded one, else
    ///     `self.seed` (or, for `.only`, one derived from the run id).
    public mutating func useStore(_ store: any ArtifactStore, start: RunStart, seed: UInt64?) throws {
        try store.checkAccess()
        self.seed = try store.startRun(runID, start, seed: seed, newSeed: self.seed)
        self.store = store
        self.reuse = start == .resume
    }

    /// These options prepared for a run with `store` (see `useStore(_:start:seed:)`).
    public func withStore(_ store: any ArtifactStore, start: RunStart, seed: UInt64?) throws -> RunOptions {
        var options = self
        try options.useStore(store, start: start, seed: seed)
        return options
    }
}
