import Foundation

extension Executor {
    /// With an artifact store, a failed outcome when one of `stages` (default: every
    /// stage of the plan) outputs a type that has no codec in `plan.codecs`, so that
    /// a run that could not store its outputs fails before any stage runs; nil when
    /// there is no store or every output can be stored.
    func refusingUnstorableOutputs(of stages: [PlannedStage]? = nil) -> RunOutcome? {
        guard options.store != nil, let (stage, reason) = plan.codecs.unstorableOutput(stages ?? plan.stages) else { return nil }
        let failure = StageExecutionError(stageID: stage.id, stageType: stage.typeName, underlying: StageFailure(reason, retryable: false))
        let report = RunReport(runID: options.runID, seed: options.seed, pipeline: plan.name, file: plan.file, status: .failed,
                               startedAt: Date(), durationSeconds: 0, error: failure.description, stages: [])
        options.observer.stageFailed(id: stage.id, type: stage.typeName, attempt: 0, error: failure.underlying, retryIn: nil)
        options.observer.runFinished(report: report)
        return RunOutcome(report: report, outputs: [:], failure: failure)
    }
}
