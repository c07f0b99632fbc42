import Foundation
import Framework

/// Runs and checks YAML pipelines in tests, the way `runner` does.
///
/// ```swift
/// let outcome = try await PipelineHarness(registry: myRegistry).run("""
///     stages:
///       generate: {type: poisson, with: {width: 8, height: 8, lambda: 3, seed: 1}}
///       mine: {type: my-stage, input: generate}
///     """)
/// let grid = try #require(outcome.outputs["mine"] as? Grid<UInt8>)
/// ```
public struct PipelineHarness: Sendable {
    public var registry: StageRegistry
    public var environment: [String: String]
    /// Where runs' events go: nowhere by default (the outcome's report holds what
    /// they said); a recording handler lets a test look at them.
    public var events: any RunEventHandler = IgnoredEvents()

    /// `registry` plus the `memory` sink, which tests can store results in.
    public init(registry: StageRegistry, environment: [String: String] = [:]) {
        self.registry = (try? registry.adding([StageType(MemorySink.self)])) ?? registry
        self.environment = environment
    }

    /// Loads and checks `yaml`; the plan, or every problem found.
    public func plan(_ yaml: String, file: String = "test.yaml", profiles: [String] = [], overrides: [String] = [])
        -> Result<Plan, PipelineValidationError>
    {
        let loader = PipelineLoader(environment: environment, profiles: profiles, overrides: overrides)
        return Planner(registry: registry).plan(loader.load(bytes: Array(yaml.utf8), file: file))
    }

    /// The problems `yaml` has; empty when it is valid.
    public func problems(_ yaml: String, profiles: [String] = [], overrides: [String] = []) -> [Diagnostic] {
        if case .failure(let error) = plan(yaml, profiles: profiles, overrides: overrides) { return error.diagnostics }
        return []
    }

    /// Checks and runs `yaml`; throws `PipelineValidationError` when it is invalid.
    /// The outcome's `outputs` hold the results of the stages nothing consumes.
    ///
    /// Each run has its own run id unless `runID` is given, so what `memory` sinks
    /// store (under `{run_id}/{stage}` by default) never collides with what another
    /// test, running at the same time, stores.
    ///
    /// With a `store`, every stage's output is persisted there, as with `runner
    /// --artifact-store` (`RunOptions.useStore`); `resume: true` resumes run `runID`,
    /// which must be in the store: stages whose stage, parameters, seed and inputs are
    /// unchanged reuse their stored outputs, and the run's recorded seed is used
    /// (`seed` is ignored). Store problems throw `ArtifactStoreError` before anything runs.
    ///
    /// `streaming: true` streams every edge that can, however small its data
    /// (`--stream`), so that tests of small pipelines exercise streaming;
    /// `streaming: false` holds every artifact whole (`--no-stream`). `bandRows` sets
    /// the rows per band of streamed grids (`--band-rows`).
    public func run(_ yaml: String, seed: UInt64 = 1, jobs: Int = 2, overrides: [String] = [], runID: String? = nil,
                    store: (any ArtifactStore)? = nil, resume: Bool = false, streaming: Bool = true,
                    bandRows: Int? = nil) async throws -> RunOutcome {
        let plan = try plan(yaml, overrides: overrides).get()
        if resume && (store == nil || runID == nil) {
            throw ArtifactStoreError(message: "resume needs a store and the runID of the run to resume", code: .unknownRun)
        }
        let id = runID ?? "test-" + UUID().uuidString.lowercased()
        var options = RunOptions(runID: id, seed: seed, jobs: jobs, events: events)
        options.streaming = streaming
        options.streamingMinimumBytes = 0
        options.bandRows = bandRows
        if let store {
            try options.useStore(store, for: plan, start: resume ? .resume : .run, seed: resume ? nil : seed)
        }
        return await Executor(plan: plan, options: options).run()
    }
}

/// Source text with `‸` markers where problems are expected; the markers are removed
/// and their 1-based positions kept (columns count Unicode scalars, as libyaml does).
public struct MarkedSource: Sendable {
    public static let marker: Unicode.Scalar = "‸"

    public let text: String
    public let locations: [SourceLocation]

    public init(_ marked: String, file: String = "test.yaml") {
        var text = String.UnicodeScalarView()
        var locations: [SourceLocation] = []
        var line = 1, column = 1
        for scalar in marked.unicodeScalars {
            if scalar == Self.marker {
                locations.append(SourceLocation(file: file, line: line, column: column))
                continue
            }
            text.append(scalar)
            if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        self.text = String(text)
        self.locations = locations
    }
}
