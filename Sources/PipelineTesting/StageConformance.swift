import Foundation
import Framework
import Testing

/// Conformance tests for stage types: what every `Stage` must do, checked on a type,
/// its parameters and sample inputs, from the stage author's own tests.
///
/// ```swift
/// @Test func invertConforms() async throws {
///     try await StageConformance.check(
///         InvertStage.self, parameters: "{strength: 0.5}",
///         input: try Grid<Float>(width: 2048, height: 2048) { $0.initialize(repeating: 0.25) })
/// }
/// ```
///
/// `check` runs the stage several times, holding a process-wide lock (two checks
/// never overlap), and records a test issue at the caller's position for every
/// requirement of `Stage` it does not meet, naming the stage type and the check:
///
/// - **runs**: the first run on the sample inputs succeeds (all else depends on it);
/// - **output type**: every returned artifact has the type the spec declares for
///   these parameters and input types. The kit plans a two-stage pipeline (a sample
///   producer per port, then the stage) with the real `Planner`, so parameters are
///   checked and defaulted, the instance is made and the output type resolved
///   exactly as `runner` does;
/// - **runs again**: a second run of the same instance on the same inputs succeeds
///   and, unless `options.deterministic` is false, returns an equal artifact (grids
///   and bytes by content; other artifacts by summary, without `uri`, `etag` and
///   `versionID`). Both runs get the same seed;
/// - **inputs unchanged**: after every run, each input's content (a grid's elements,
///   or its indices and table when dictionary-encoded; a bytes artifact's bytes; the
///   summary of anything else) equals a copy taken before the first run;
/// - **cancellation**: a run on fresh copies of the inputs (so that nothing cached on
///   them by the earlier runs shortens it), cancelled `options.cancelAfter` into it
///   (10 ms), ends, returning or throwing `CancellationError`, within
///   `options.cancellationBound` (250 ms) of the cancel. A run that ends before the
///   cancel passes (the report notes it: use inputs large enough to be cancelled
///   mid-run). The cancel comes from a thread of its own and the end is timed by the
///   run's task, so a stage that blocks its thread cannot hide its latency;
/// - **cleanup**: a failed run (the cancelled one, and each of `failing`) leaves no
///   file in its temporary directory (`context.temporaryDirectory`, a fresh one for
///   that run: stages make temporary files there, not in TMPDIR), and no
///   new file in the output directory; no run leaves a temporary-looking file
///   (`.NAME.tmp-*`, `NAME.tmp`, `NAME.part`) next to its outputs.
///
/// ## Where outputs go
///
/// Each check has a fresh output directory, removed afterwards (kept, and named in
/// the report's notes, when something was left behind). Parameters reach it as
/// `${env.CONFORMANCE_DIR}`: `path: "${env.CONFORMANCE_DIR}/{run_id}/image.png"`.
/// Each run has its own run id (`conformance-1`, `conformance-2`, ...), so a sink that
/// refuses to overwrite can run again when `{run_id}` is in its path or key. The kit
/// does not change the working directory (that would move every other test's
/// relative paths): keep relative paths out of the parameters, or the files land
/// outside the kit's view.
///
/// ## Failing runs
///
/// The cancelled run is a failure the kit injects. To check cleanup after a failure
/// the stage reports itself, pass `failing:` runs: other parameters, inputs or
/// environment variables under which the stage must throw (a path under a file, a
/// wrong secret, a program that exits 1). Each runs once, with its own temporary
/// directory; one that succeeds is reported, since it checks nothing.
///
/// ## The process environment
///
/// `options.environment` (for the whole check) and a failing run's `environment`
/// are set in the process environment, which every thread shares, and put back
/// afterwards; checks hold a lock against each other. TMPDIR is never changed.
///
/// A configuration the planner refuses (an unknown parameter, an input type the
/// stage does not accept) is a mistake in the test, not in the stage: `check`
/// throws `SetupError` with the planner's messages.
public enum StageConformance {
    /// The environment variable that names the check's output directory, for
    /// `${env.CONFORMANCE_DIR}` in parameters.
    public static let directoryVariable = "CONFORMANCE_DIR"

    /// How a check runs the stage.
    public struct Options: Sendable {
        /// The run seed; stages without a `seed` parameter derive theirs from it, as in
        /// a pipeline. Every run of a check has the same seed.
        public var seed: UInt64
        /// Whether two runs with the same seed and inputs must return equal artifacts.
        public var deterministic: Bool
        /// How long after its start the kit cancels the run of the cancellation check.
        public var cancelAfter: Duration
        /// How long a cancelled stage may take to end.
        public var cancellationBound: Duration
        /// How long the kit waits for any run before it gives up on it.
        public var timeLimit: Duration
        /// `StageContext.concurrency`: how many threads the stage may use.
        public var concurrency: Int
        /// Environment variables set in the process while the check runs (credentials,
        /// endpoints); an empty value unsets a variable.
        public var environment: [String: String]
        /// The checks to make; `runs` is always made.
        public var checks: Set<ConformanceCheck>

        public init(
            seed: UInt64 = 1, deterministic: Bool = true, cancelAfter: Duration = .milliseconds(10),
            cancellationBound: Duration = .milliseconds(250), timeLimit: Duration = .seconds(60),
            concurrency: Int = ProcessInfo.processInfo.activeProcessorCount, environment: [String: String] = [:],
            checks: Set<ConformanceCheck> = ConformanceCheck.all
        ) {
            self.seed = seed
            self.deterministic = deterministic
            self.cancelAfter = cancelAfter
            self.cancellationBound = cancellationBound
            self.timeLimit = timeLimit
            self.concurrency = max(1, concurrency)
            self.environment = environment
            self.checks = checks.union([.runs])
        }
    }

    /// A configuration under which the stage must fail, to check that it cleans up.
    /// What it does not give is taken from the check: its parameters, its inputs.
    public struct FailingRun: Sendable {
        /// Names the run in failure messages.
        public var label: String
        /// Parameters (a YAML mapping, like the check's), or nil for the check's.
        public var parameters: String?
        /// Inputs by port, or nil for the check's.
        public var inputs: [String: any Artifact]?
        /// Environment variables set on top of `Options.environment` for this run.
        public var environment: [String: String]

        public init(_ label: String, parameters: String? = nil, inputs: [String: any Artifact]? = nil,
                    environment: [String: String] = [:]) {
            self.label = label
            self.parameters = parameters
            self.inputs = inputs
            self.environment = environment
        }

        /// The check's inputs with these parameters.
        public static func parameters(_ parameters: String, label: String? = nil) -> FailingRun {
            FailingRun(label ?? "parameters \(parameters)", parameters: parameters)
        }

        /// The check's parameters with this artifact on the port `input`.
        public static func input(_ artifact: any Artifact, label: String? = nil) -> FailingRun {
            FailingRun(label ?? "input \(ArtifactContent.label(artifact))", inputs: [InputPort.defaultName: artifact])
        }

        /// The check's parameters and inputs with these environment variables.
        public static func environment(_ variables: [String: String], label: String? = nil) -> FailingRun {
            FailingRun(label ?? "environment " + variables.keys.sorted().joined(separator: ", "), environment: variables)
        }
    }

    /// A check that cannot run as asked: the planner refuses its parameters or
    /// inputs, or the stage type cannot be registered.
    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public var message: String

        public init(_ message: String) {
            self.message = message
        }

        public var description: String { message }
    }

    /// Checks `type` with `parameters` (a YAML mapping, as under `with:` in a
    /// pipeline; empty for none) on `inputs` (by port name) and records a test issue
    /// at `sourceLocation` for every requirement it does not meet.
    ///
    /// - Parameters:
    ///   - type: the stage type to check.
    ///   - parameters: the stage's parameters as YAML, e.g. `"{quality: 90}"`;
    ///     `${env.CONFORMANCE_DIR}` names the check's output directory.
    ///   - inputs: sample input artifacts by port; large enough that a run lasts
    ///     longer than `options.cancelAfter`, so that cancellation is measured.
    ///   - failing: configurations under which the stage must fail, to check cleanup.
    ///   - options: seed, determinism, timing bounds, environment, which checks.
    /// - Returns: the report, also for assertions of your own.
    /// - Throws: `SetupError` when the configuration cannot be planned.
    @discardableResult
    public static func check<S: Stage>(
        _ type: S.Type, parameters: String = "", inputs: [String: any Artifact] = [:], failing: [FailingRun] = [],
        options: Options = Options(), sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) async throws -> ConformanceReport {
        try await check(StageType(type), parameters: parameters, inputs: inputs, failing: failing, options: options,
                        sourceLocation: sourceLocation)
    }

    /// `check` for a stage with one input, on the port `input`.
    @discardableResult
    public static func check<S: Stage>(
        _ type: S.Type, parameters: String = "", input: any Artifact, failing: [FailingRun] = [],
        options: Options = Options(), sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) async throws -> ConformanceReport {
        try await check(StageType(type), parameters: parameters, inputs: [InputPort.defaultName: input], failing: failing,
                        options: options, sourceLocation: sourceLocation)
    }

    /// `check` for a registered stage type.
    @discardableResult
    public static func check(
        _ type: StageType, parameters: String = "", inputs: [String: any Artifact] = [:], failing: [FailingRun] = [],
        options: Options = Options(), sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) async throws -> ConformanceReport {
        let report = try await evaluate(type, parameters: parameters, inputs: inputs, failing: failing, options: options)
        for failure in report.failures {
            Issue.record(Comment(rawValue: failure.description), sourceLocation: sourceLocation)
        }
        return report
    }

    /// Runs the checks of `check` and returns what they found, without recording
    /// anything: for tests of the kit, and for XCTest (`XCTAssert(report.passed, "\(report)")`).
    public static func evaluate<S: Stage>(
        _ type: S.Type, parameters: String = "", inputs: [String: any Artifact] = [:], failing: [FailingRun] = [],
        options: Options = Options()
    ) async throws -> ConformanceReport {
        try await evaluate(StageType(type), parameters: parameters, inputs: inputs, failing: failing, options: options)
    }

    /// `evaluate` for a stage with one input, on the port `input`.
    public static func evaluate<S: Stage>(
        _ type: S.Type, parameters: String = "", input: any Artifact, failing: [FailingRun] = [],
        options: Options = Options()
    ) async throws -> ConformanceReport {
        try await evaluate(StageType(type), parameters: parameters, inputs: [InputPort.defaultName: input], failing: failing,
                           options: options)
    }

    /// `evaluate` for a registered stage type.
    public static func evaluate(
        _ type: StageType, parameters: String = "", inputs: [String: any Artifact] = [:], failing: [FailingRun] = [],
        options: Options = Options()
    ) async throws -> ConformanceReport {
        try await ConformanceLock.holding {
            let runner = try ConformanceRunner(type: type, parameters: parameters, inputs: inputs, failing: failing, options: options)
            return await runner.run()
        }
    }
}
