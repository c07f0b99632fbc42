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
    /// The version of this report's layout: it grows by fields, and goes up when a
    /// field's meaning changes. 2 added `schema_version`, `machine`, and each stage's
    /// `inputs`, `attempt_spans` and `logs`.
    public var schemaVersion: Int = RunReport.currentSchemaVersion
    /// The machine the run ran on.
    public var machine: Machine?

    public static let currentSchemaVersion = 2

    /// Cores, memory and system of the machine that ran the run.
    public struct Machine: Sendable, Codable, Hashable {
        public var cores: Int
        public var memoryBytes: Double
        /// `uname`: system, release and hardware, e.g. "Linux 6.1.0 x86_64".
        public var system: String

        public init(cores: Int, memoryBytes: Double, system: String) {
            self.cores = cores
            self.memoryBytes = memoryBytes
            self.system = system
        }

        /// This machine.
        public static var current: Machine {
            var name = utsname()
            uname(&name)
            func text<T>(_ field: T) -> String {
                withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            }
            return Machine(cores: ProcessInfo.processInfo.activeProcessorCount, memoryBytes: Double(ProcessInfo.processInfo.physicalMemory),
                           system: "\(text(name.sysname)) \(text(name.release)) \(text(name.machine))")
        }

        enum CodingKeys: String, CodingKey {
            case cores, memoryBytes = "memory_bytes", system
        }
    }

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
        case memory, schemaVersion = "schema_version", machine
    }

    public init(runID: String, seed: UInt64, pipeline: String, file: String, status: Status, startedAt: Date, durationSeconds: Double,
                stages: [StageReport]) {
        self.runID = runID
        self.seed = seed
        self.pipeline = pipeline
        self.file = file
        self.status = status
        self.startedAt = startedAt
        self.durationSeconds = durationSeconds
        self.stages = stages
    }

    /// Reads a report, including one written before `schema_version` (version 1).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        runID = try container.decode(String.self, forKey: .runID)
        seed = try container.decode(UInt64.self, forKey: .seed)
        pipeline = try container.decode(String.self, forKey: .pipeline)
        file = try container.decode(String.self, forKey: .file)
        status = try container.decode(Status.self, forKey: .status)
        startedAt = try container.decode(Date.self, forKey: .startedAt)
        durationSeconds = try container.decode(Double.self, forKey: .durationSeconds)
        error = try container.decodeIfPresent(String.self, forKey: .error)
        errorCode = try container.decodeIfPresent(PipelineError.Code.self, forKey: .errorCode)
        retryable = try container.decodeIfPresent(Bool.self, forKey: .retryable)
        stages = try container.decode([StageReport].self, forKey: .stages)
        runnerVersion = try container.decodeIfPresent(String.self, forKey: .runnerVersion) ?? "unknown"
        invocation = try container.decodeIfPresent(Invocation.self, forKey: .invocation)
        memory = try container.decodeIfPresent(MemoryReport.self, forKey: .memory)
        schemaVersion = try container.decodeIfPresent(Int.self, forKey: .schemaVersion) ?? 1
        machine = try container.decodeIfPresent(Machine.self, forKey: .machine)
    }

    /// Dates as the report writes them: ISO 8601 in UTC, to the millisecond.
    static let dateStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// Reads a report written by `jsonData()` (ISO 8601 dates, with or without
    /// fractions of a second).
    public static func decode(_ data: Data) throws -> RunReport {
        try decoder().decode(RunReport.self, from: data)
    }

    /// Reads what `jsonData` (or `SweepReport.jsonData`) wrote: ISO 8601 dates, with
    /// or without milliseconds.
    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            if let date = (try? dateStyle.parse(text)) ?? (try? Date.ISO8601FormatStyle().parse(text)) { return date }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not an ISO 8601 date"))
        }
        return decoder
    }

    /// The report as pretty, key-sorted JSON with ISO 8601 dates in milliseconds
    /// (a timeline needs more than whole seconds).
    public func jsonData() throws -> Data {
        try Self.encoder().encode(self)
    }

    /// Pretty, key-sorted JSON with ISO 8601 dates in milliseconds: every report's.
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(dateStyle.format(date))
        }
        return encoder
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
    /// Its inputs: the producing stage of each port (the pipeline's edges).
    public var inputs: [String: String]?
    /// Each attempt's start and length, and the error that ended it when it failed.
    public var attemptSpans: [AttemptSpan]?
    /// What the stage logged (at most `LogLine.kept` lines: the first and the last
    /// halves), and how many lines were left out.
    public var logs: [LogLine]?
    public var logsOmitted: Int?

    public struct AttemptSpan: Sendable, Codable, Hashable {
        public var startedAt: Date
        public var durationSeconds: Double?
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case startedAt = "started_at", durationSeconds = "duration_seconds", error
        }
    }

    public struct LogLine: Sendable, Codable, Hashable {
        public var time: Date
        /// trace, debug, info, notice, warning, error or critical.
        public var level: String
        public var message: String

        /// Lines a stage's report keeps.
        public static let kept = 200
    }

    enum CodingKeys: String, CodingKey {
        case id, type, status, attempts, startedAt = "started_at", durationSeconds = "duration_seconds"
        case seed, parameters, output, error, errorCode = "error_code", retryable, reused, access, flow
        case attemptSpans = "attempt_spans", logs, logsOmitted = "logs_omitted", inputs
    }
}
