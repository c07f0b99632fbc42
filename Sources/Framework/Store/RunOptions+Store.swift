extension RunOptions {
    /// Prepares these options for a run of `plan` that persists its outputs in
    /// `store`: what `runner --artifact-store` (with `--resume` or `--only`) does, for
    /// any program that embeds the framework, and for `PipelineHarness`.
    ///
    /// In order, before anything runs: checks that the plan's codecs (`Plan.codecs`)
    /// can store the output of every stage (with `only`, of that stage and its inputs), checks
    /// that the store can be used (`ArtifactStore.checkAccess`), finds the run's seed
    /// and records it (`ArtifactStore.startRun`); then sets `store`, `reuse` (on for
    /// `.resume`) and `seed`. Throws an `ArtifactStoreError` whose `isUsageError` tells
    /// a usage error (an output type without a codec, an unknown or damaged run, a
    /// store that does not exist) from a store that cannot be reached or read.
    ///
    /// - Parameters:
    ///   - store: Where every stage's output goes, and where a resumed run finds them.
    ///   - plan: The plan to run.
    ///   - start: A run of its own, a resume (the run must be in the store), or one stage alone.
    ///   - seed: The seed the user asked for, if any; else the recorded one, else
    ///     `self.seed` (or, for `.only`, one derived from the run id).
    ///   - only: The stage a `.only` run runs (`Executor.runOnly`): only its output and
    ///     its inputs pass through the store.
    ///   - checkAccess: false when the caller checked the store already (a sweep, once
    ///     before its items).
    public mutating func useStore(_ store: any ArtifactStore, for plan: Plan, start: RunStart, seed: UInt64?, only: String? = nil,
                                  checkAccess: Bool = true) throws {
        // The run id names a directory or prefix in the store: nothing that leaves it.
        if let problem = RunID.problem(with: runID) {
            throw ArtifactStoreError(message: "run id '\(FilePaths.printable(runID))' \(problem)", code: .invalidLocation)
        }
        let stages = only.flatMap(plan.stage).map { [$0] + $0.inputs.values.compactMap(plan.stage) } ?? plan.stages
        if let (stage, reason) = plan.codecs.unstorableOutput(stages) {
            throw ArtifactStoreError(message: "stage '\(stage.id)' (\(stage.typeName)) cannot run with an artifact store: " + reason,
                                     code: .noCodec)
        }
        if checkAccess { try store.checkAccess() }
        self.seed = try store.startRun(runID, start, seed: seed, newSeed: self.seed)
        self.store = store
        self.reuse = start == .resume
    }
}
