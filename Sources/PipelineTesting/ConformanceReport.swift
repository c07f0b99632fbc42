import Framework

/// A requirement a stage did not meet, with what the kit saw.
public struct ConformanceFailure: Sendable, Hashable, CustomStringConvertible {
    /// The stage type's name.
    public var stage: String
    public var check: ConformanceCheck
    public var message: String

    public init(stage: String, check: ConformanceCheck, message: String) {
        self.stage = stage
        self.check = check
        self.message = message
    }

    /// `stage type 'png' fails conformance check 'cancellation': ...`
    public var description: String {
        "stage type '\(stage)' fails conformance check '\(check)': \(message)"
    }
}

/// What `StageConformance` found for one stage type and configuration.
public struct ConformanceReport: Sendable, CustomStringConvertible {
    /// The stage type's name.
    public var stage: String
    /// The output type the spec declares for the parameters and input types.
    public var declaredOutputType: ArtifactType
    public var failures: [ConformanceFailure] = []
    /// What the kit could not check and why, e.g. a stage that finished before the
    /// cancel came, so its cancellation latency was not measured.
    public var notes: [String] = []
    /// How each failing run failed, by label: to see that it failed for the reason meant.
    public var failingRunErrors: [String: String] = [:]
    /// How long the first run took.
    public var firstRunDuration: Duration?
    /// How long the stage took to end after it was cancelled; nil when it finished
    /// before the cancel, or the check did not run.
    public var cancellationLatency: Duration?

    public init(stage: String, declaredOutputType: ArtifactType) {
        self.stage = stage
        self.declaredOutputType = declaredOutputType
    }

    public var passed: Bool { failures.isEmpty }

    /// The checks with at least one failure.
    public var failedChecks: Set<ConformanceCheck> { Set(failures.map(\.check)) }

    public func failures(of check: ConformanceCheck) -> [ConformanceFailure] {
        failures.filter { $0.check == check }
    }

    public var description: String {
        var lines = [passed ? "stage type '\(stage)' passes the conformance checks" : "stage type '\(stage)' fails \(failures.count) conformance check(s):"]
        var timings: [String] = []
        if let firstRunDuration { timings.append("first run \(firstRunDuration.humanDescription)") }
        if let cancellationLatency { timings.append("ended \(cancellationLatency.humanDescription) after the cancel") }
        if !timings.isEmpty { lines[0] += " (" + timings.joined(separator: "; ") + ")" }
        lines += failures.map { "  - \($0.check): \($0.message)" }
        lines += failingRunErrors.sorted { $0.key < $1.key }.map { "  failing run '\($0.key)' failed: \($0.value)" }
        lines += notes.map { "  note: \($0)" }
        return lines.joined(separator: "\n")
    }

    /// Adds a failure unless the same one is already there.
    mutating func fail(_ check: ConformanceCheck, _ message: String) {
        let failure = ConformanceFailure(stage: stage, check: check, message: message)
        if !failures.contains(failure) { failures.append(failure) }
    }
}
