import Foundation

/// What `--report FILE` writes: one run, every stage's outcome.
public struct RunReport: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        case succeeded, failed, cancelled
    }

    public var runID: String
    public var seed: UInt64
    public var pipeline: String
    public var file: String
    public var status: Status
    public var startedAt: Date
    public var durationSeconds: Double
    /// The message of the failure that ended the run, if any.
    public var error: String?
    /// The failure's code (`PipelineError.Code`), for programs.
    public var errorCode: PipelineError.Code?
    /// Whether the failure was one a retry could help with.
    public var retryable: Bool?
    public var stages: [StageReport]
    /// The version of the runner that made the report (`RunnerVersion.current`).
    public var runnerVersion: String = RunnerVersion.current
    /// How the run was asked for, when it came from a command line.
    public var invocation: Invocation?
    /// What the plan expected the run's memory to be, and what it was.
    public var memory: MemoryReport?

    /// The plan's memory estimate (`StreamingLayout`) and the process's measured peak.
    public struct MemoryReport: Sendable, Codable, Hashable {
        /// The estimated peak resident memory of the run, in bytes.
        public var estimatedPeakBytes: Double
        /// The process's peak resident set size when the run ended (getrusage), in bytes.
        public var measuredPeakBytes: Double
        /// The stages that streamed together, each chain from head to tail.
        public var streamed: [[String]]
        /// Why an edge that could have streamed held its data whole, by consumer stage.
        public var materialised: [String: String]?

        enum CodingKeys: String, CodingKey {
            case estimatedPeakBytes = "estimated_peak_bytes", measuredPeakBytes = "measured_peak_bytes", streamed, materialised
        }
    }

    /// The command line of a run, and the profiles and `--set`s it applied, in order.
    public struct Invocation: Sendable, Codable, Hashable {
        public var arguments: [String]
        public var profiles: [String]
        public var overrides: [String]

        public init(arguments: [String], profiles: [String], overrides: [String]) {
            self.arguments = arguments
            self.profiles = profiles
            self.overrides = overrides
        }
    }

    enum CodingKeys: String, CodingKey {
        case runID = "run_id", seed, pipeline, file, status, startedAt = "started_at"
        case durationSeconds = "duration_seconds", error, errorCode = "error_code", retryable, stages, runnerVersion = "runner_version", invocation
        case memory
    }

    /// The report as pretty, key-sorted JSON with ISO 8601 dates.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(self)
    }
}

/// One stage's part of a run report.
public struct StageReport: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        /// Never started: an upstream stage failed or the run was cancelled first.
        case skipped
        case succeeded, failed, cancelled
    }

    public var id: String
    public var type: String
    public var status: Status
    public var attempts: Int
    public var startedAt: Date?
    public var durationSeconds: Double?
    /// The seed the stage ran with, for stages that take one.
    public var seed: UInt64?
    public var parameters: [String: JSONValue]
    public var output: ArtifactSummary?
    public var error: String?
    /// The failure's code (`PipelineError.Code`), for programs.
    public var errorCode: PipelineError.Code?
    /// Whether the failure was one a retry could help with.
    public var retryable: Bool?
    /// True when the output came from the artifact store instead of a run.
    public var reused: Bool?
    /// What the stage's access check found before the run: for an `s3` sink its
    /// `endpoint`, `region`, `bucket`, `addressing` and where its `credentials` came
    /// from (never the keys); for a `filesystem` sink its `directory`.
    public var access: [String: JSONValue]?
    /// How its data flowed when it streamed: bands and bytes in and out, and its time
    /// busy against its time waiting for input or for room downstream.
    public var flow: StageFlow?

    enum CodingKeys: String, CodingKey {
        case id, type, status, attempts, startedAt = "started_at", durationSeconds = "duration_seconds"
        case seed, parameters, output, error, errorCode = "error_code", retryable, reused, access, flow
    }
}
