/// Receives a run's events as they happen, e.g. to print progress.
///
/// Methods are called from the executor's tasks, possibly concurrently; conforming
/// types must be thread-safe. Every method has an empty default.
public protocol RunObserver: Sendable {
    func runStarted(plan: Plan, runID: String, seed: UInt64)
    func stageStarted(id: String, type: String, attempt: Int)
    func stageProgress(id: String, fraction: Double)
    func stageSucceeded(id: String, type: String, duration: Duration, output: ArtifactSummary)
    /// `retryIn` is the wait before the next attempt, or nil when the stage has failed for good.
    func stageFailed(id: String, type: String, attempt: Int, error: any Error, retryIn: Duration?)
    func runFinished(report: RunReport)
}

extension RunObserver {
    public func runStarted(plan: Plan, runID: String, seed: UInt64) {}
    public func stageStarted(id: String, type: String, attempt: Int) {}
    public func stageProgress(id: String, fraction: Double) {}
    public func stageSucceeded(id: String, type: String, duration: Duration, output: ArtifactSummary) {}
    public func stageFailed(id: String, type: String, attempt: Int, error: any Error, retryIn: Duration?) {}
    public func runFinished(report: RunReport) {}
}

/// An observer that ignores everything.
public struct SilentObserver: RunObserver {
    public init() {}
}
