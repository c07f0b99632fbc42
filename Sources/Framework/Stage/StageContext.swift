import Foundation
public import Logging

/// What a running stage knows about its run, and how it talks back.
public struct StageContext: Sendable {
    /// The stage's id in the pipeline (`encode`).
    public let stageID: String
    /// The stage's type name (`jpeg`).
    public let stageType: String
    public let runID: String
    /// The stage's seed: its `seed` parameter when given, else derived from the run
    /// seed and the stage id (`SeedDerivation`).
    public let seed: UInt64
    /// 1 for the first attempt, 2 for the first retry, ...
    public let attempt: Int
    /// How many threads a stage may use for its own data parallelism.
    public let concurrency: Int
    public let logger: Logger
    /// Values for run-time templates: run_id, stage, date, and the pipeline params.
    public let templateValues: [String: String]
    /// Where the stage may make temporary files and directories (a run's, or TMPDIR's;
    /// `/tmp` by default). Stages remove what they make there.
    public let temporaryDirectory: String
    /// The absolute directory of the pipeline file, against which stages resolve
    /// relative paths the file names (an `exec` stage's program and `workdir`); nil
    /// when the pipeline did not come from a file.
    public let pipelineDirectory: String?
    /// The run gathers a digest of each grid for its report (`--report`). A stage that
    /// can count its byte grid's values while it writes them records the counts
    /// (`Grid.recordValueCounts`), which spares the run a pass over the grid.
    public let gathersDigests: Bool
    let progressHandler: @Sendable (Double) -> Void

    public init(
        stageID: String, stageType: String, runID: String, seed: UInt64, attempt: Int = 1,
        concurrency: Int = 1, logger: Logger, templateValues: [String: String] = [:],
        temporaryDirectory: String = StageContext.defaultTemporaryDirectory, pipelineDirectory: String? = nil,
        gathersDigests: Bool = false, progress: @escaping @Sendable (Double) -> Void = { _ in }
    ) {
        self.stageID = stageID
        self.stageType = stageType
        self.runID = runID
        self.seed = seed
        self.attempt = attempt
        self.concurrency = concurrency
        self.logger = logger
        self.templateValues = templateValues
        self.temporaryDirectory = temporaryDirectory
        self.pipelineDirectory = pipelineDirectory
        self.gathersDigests = gathersDigests
        self.progressHandler = progress
    }

    /// TMPDIR when it is set, else `/tmp`.
    public static var defaultTemporaryDirectory: String {
        let value = ProcessInfo.processInfo.environment["TMPDIR"] ?? ""
        return value.isEmpty ? "/tmp" : value
    }

    /// The absolute, symlink-free directory of the pipeline file at `path` (relative to
    /// the working directory), or nil when no such file exists (a pipeline given as text).
    public static func directory(ofPipelineFile path: String) -> String? {
        var info = stat()
        guard !path.isEmpty, stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return FilePaths.resolved(FilePaths.split(FilePaths.absolute(path)).directory)
    }

    /// Reports how far the stage is, from 0 to 1; shown as a progress bar on a terminal.
    public func reportProgress(_ fraction: Double) {
        // A fraction of nothing (0/0) is not progress; never pass NaN on.
        guard fraction.isFinite else { return }
        progressHandler(min(max(fraction, 0), 1))
    }

    /// Throws `CancellationError` when the run was cancelled or the stage timed out.
    public func checkCancellation() throws {
        try Task.checkCancellation()
    }

    /// Fills a run-time template (`{run_id}`, `{stage}`, `{date}`, pipeline params, and
    /// `{width}`, `{height}`, `{format}` from `artifact`). Values that could escape the
    /// directory of a path are refused.
    public func expand(_ template: String, with artifact: (any Artifact)? = nil) throws -> String {
        var values = templateValues
        if let artifact {
            values.merge(artifact.templateValues) { _, new in new }
        }
        return try Template.expand(template, values: values)
    }

    /// Fills a run-time template with `values` (a streamed image's `{width}`,
    /// `{height}` and `{format}`, from `EncodedStreamInfo.templateValues`) as well.
    public func expand(_ template: String, adding values: [String: String]) throws -> String {
        try Template.expand(template, values: templateValues.merging(values) { _, new in new })
    }
}

/// Derives per-stage seeds from a run seed, stably across machines and versions.
public enum SeedDerivation {
    /// SplitMix64 of the run seed mixed with the FNV-1a hash of the stage id.
    public static func seed(runSeed: UInt64, stageID: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in stageID.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return mix(runSeed ^ mix(hash))
    }

    /// SplitMix64's finaliser.
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
