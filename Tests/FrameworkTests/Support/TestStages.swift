import Foundation
@testable import Framework
import Logging
import PipelineTesting

/// A source of a small Grid<UInt8> whose values are `value` everywhere.
struct ConstantSource: Stage {
    static let spec = StageSpec(
        name: "constant",
        summary: "A small grid filled with one value.",
        parameters: [
            ParameterSpec("value", .integer, default: .integer(1), range: .closed(0, 255), doc: "the value"),
            ParameterSpec("size", .integer, default: .integer(4), range: .atLeast(1), doc: "width and height"),
            ParameterSpec("delay_ms", .integer, default: .integer(0), range: .atLeast(0), doc: "sleep before producing"),
        ],
        output: .fixed(.grid(.uint8)))

    let value: UInt8
    let size: Int
    let delay: Int

    init(parameters: Parameters) throws {
        value = UInt8(parameters.int("value"))
        size = parameters.int("size")
        delay = parameters.int("delay_ms")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        Recorder.shared.record("start \(context.stageID)")
        if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
        let grid = try Grid<UInt8>(width: size, height: size, values: Array(repeating: value, count: size * size))
        Recorder.shared.record("end \(context.stageID)")
        return grid
    }
}

/// Adds the values of two grids (ports `left` and `right`).
struct AddStage: Stage {
    static let spec = StageSpec(
        name: "add",
        summary: "Adds two grids element by element.",
        inputs: [
            InputPort("left", accepts: .oneOf(.grid(.uint8)), doc: "first grid"),
            InputPort("right", accepts: .oneOf(.grid(.uint8)), doc: "second grid"),
        ],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let left = try inputs.get(Grid<UInt8>.self, port: "left")
        let right = try inputs.get(Grid<UInt8>.self, port: "right")
        return try Grid<UInt8>(width: left.width, height: left.height, values: zip(left.elements, right.elements).map { $0 &+ $1 })
    }
}

/// Passes its grid through after an optional delay; can fail a number of times first.
struct PassStage: Stage {
    static let spec = StageSpec(
        name: "pass",
        summary: "Passes a grid through, slowly or failing on demand.",
        parameters: [
            ParameterSpec("delay_ms", .integer, default: .integer(0), range: .atLeast(0), doc: "sleep before finishing"),
            ParameterSpec("failures", .integer, default: .integer(0), range: .atLeast(0), doc: "fail this many attempts first"),
            ParameterSpec("key", .string, default: .string(""), doc: "key for the failure counter"),
            ParameterSpec("ignore_cancel", .boolean, default: .boolean(false), doc: "sleep without honouring cancellation"),
        ],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")],
        output: .fixed(.grid(.uint8)))

    let delay: Int
    let failures: Int
    let key: String

    init(parameters: Parameters) throws {
        delay = parameters.int("delay_ms")
        failures = parameters.int("failures")
        key = parameters.string("key")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        Recorder.shared.record("start \(context.stageID)")
        defer { Recorder.shared.record("end \(context.stageID)") }
        if delay > 0 {
            do {
                try await Task.sleep(for: .milliseconds(delay))
            } catch {
                Recorder.shared.record("cancelled \(context.stageID)")
                throw error
            }
        }
        if Recorder.shared.increment(key.isEmpty ? context.stageID : key) <= failures {
            throw StageFailure("planned failure \(context.attempt)")
        }
        return try inputs.get(Grid<UInt8>.self)
    }
}

/// Fails at once with a non-retryable error.
struct FailStage: Stage {
    static let spec = StageSpec(
        name: "fail",
        summary: "Always fails.",
        parameters: [ParameterSpec("message", .string, default: .string("boom"), doc: "the error message")],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")],
        output: .fixed(.grid(.uint8)))

    let message: String

    init(parameters: Parameters) throws {
        message = parameters.string("message")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        throw StageFailure(message, retryable: false)
    }
}

/// Records whether the artifact of `watch` was still alive when it ran.
struct ProbeStage: Stage {
    static let spec = StageSpec(
        name: "probe",
        summary: "Checks which watched artifacts are still alive.",
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        Recorder.shared.record("alive at \(context.stageID): \(Recorder.shared.watchedAlive())")
        return try inputs.get(Grid<UInt8>.self)
    }
}

/// Keeps a weak reference to every artifact `watch` produced, to test release.
struct WatchStage: Stage {
    static let spec = StageSpec(
        name: "watch",
        summary: "Passes a grid through and watches its lifetime.",
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let input = try inputs.get(Grid<UInt8>.self)
        let copy = try Grid<UInt8>(width: input.width, height: input.height, values: input.elements)
        Recorder.shared.watch(copy)
        return copy
    }
}

/// Thread-safe event log and counters shared by the test stages.
final class Recorder: @unchecked Sendable {
    static let shared = Recorder()
    private let lock = NSLock()
    private var events: [String] = []
    private var counters: [String: Int] = [:]
    private var watched: [WeakBox] = []

    struct WeakBox { weak var object: AnyObject? }

    func record(_ event: String) {
        lock.lock(); events.append(event); lock.unlock()
    }

    func increment(_ key: String) -> Int {
        lock.lock(); defer { lock.unlock() }
        counters[key, default: 0] += 1
        return counters[key]!
    }

    func watch(_ object: AnyObject) {
        lock.lock(); watched.append(WeakBox(object: object)); lock.unlock()
    }

    func watchedAlive() -> Int {
        lock.lock(); defer { lock.unlock() }
        return watched.filter { $0.object != nil }.count
    }

    func log() -> [String] {
        lock.lock(); defer { lock.unlock() }
        return events
    }

    func reset() {
        lock.lock(); events = []; counters = [:]; watched = []; lock.unlock()
    }
}

let testRegistry = try! StageRegistry([
    StageType(ConstantSource.self), StageType(AddStage.self), StageType(PassStage.self),
    StageType(FailStage.self), StageType(ProbeStage.self), StageType(WatchStage.self),
])

/// Loads and plans YAML text with the test registry.
func planYAML(
    _ text: String, registry: StageRegistry = testRegistry, environment: [String: String] = [:],
    profiles: [String] = [], overrides: [String] = []
) -> Result<Plan, PipelineValidationError> {
    let loader = PipelineLoader(environment: environment, profiles: profiles, overrides: overrides)
    return Planner(registry: registry).plan(loader.load(bytes: Array(text.utf8), file: "test.yaml"))
}

/// The diagnostics of a pipeline that must not plan.
func diagnostics(_ text: String, environment: [String: String] = [:], profiles: [String] = [], overrides: [String] = []) -> [Diagnostic] {
    switch planYAML(text, environment: environment, profiles: profiles, overrides: overrides) {
    case .success: return []
    case .failure(let error): return error.diagnostics
    }
}

/// Source text with `‸` markers: the test-support library's.
typealias Marked = MarkedSource

/// Runs a plan and returns the outcome.
func run(_ plan: Plan, jobs: Int = 4, seed: UInt64 = 1) async -> RunOutcome {
    await Executor(plan: plan, options: RunOptions(runID: "test-run", seed: seed, jobs: jobs, events: IgnoredEvents())).run()
}

extension Result {
    var value: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}
