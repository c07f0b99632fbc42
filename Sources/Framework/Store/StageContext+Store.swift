import Logging

extension StageContext {
    /// A context for work an artifact store does for a stage outside the stage itself
    /// (uploading its output): labelled with the stage and run, with a logger that
    /// discards messages, since the store's errors are reported through the run.
    public static func forStore(stageID: String, runID: String) -> StageContext {
        StageContext(stageID: stageID, stageType: "artifact-store", runID: runID, seed: 0,
                     logger: Logger(label: "artifact-store", factory: { _ in SwiftLogNoOpLogHandler() }))
    }
}
