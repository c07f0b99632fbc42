import Foundation
import Testing
@testable import Framework

/// Planning stays linear (or n log n) in the number of stages: 10,000-stage
/// pipelines of several shapes load, check and plan well within a bound that the
/// quadratic planner missed by far. The bounds hold in a debug build on a busy
/// 2-core machine; they are limits, not benchmarks.
@Suite(.serialized) struct PlannerScaleTests {
    static let count = 10_000
    /// A debug build plans each 10,000-stage shape below in about 0.4 s on a quiet
    /// machine, under 2 s next to other tests; the quadratic planner took 40 s (a
    /// profile over 7,000 stages) to over 130 s (a 10,000-stage chain).
    static let bound: Duration = .seconds(5)

    /// `constant` then `count - 1` `pass` stages, each reading `producer(index)`.
    func pipeline(count: Int = Self.count, extra: String = "", producer: (Int) -> String) -> String {
        var lines = ["stages:", "  s0: {type: constant}"]
        lines.reserveCapacity(count + 2)
        for index in 1..<count {
            lines.append("  s\(index): {type: pass, input: \(producer(index))}")
        }
        return lines.joined(separator: "\n") + "\n" + extra
    }

    func problems(of result: Result<Plan, PipelineValidationError>) -> [Diagnostic] {
        if case .failure(let error) = result { return error.diagnostics }
        return []
    }

    func timed<T>(_ body: () throws -> T) rethrows -> (T, Duration) {
        let start = ContinuousClock.now
        let result = try body()
        return (result, ContinuousClock.now - start)
    }

    @Test func longChainPlansQuickly() throws {
        let text = pipeline { "s\($0 - 1)" }
        let (result, elapsed) = timed { planYAML(text) }
        let plan = try result.get()
        #expect(plan.stages.count == Self.count)
        #expect(plan.stages.last?.id == "s\(Self.count - 1)")
        #expect(plan.stage("s5000")?.inputs[InputPort.defaultName] == "s4999")
        #expect(plan.edges.count == Self.count - 1)
        #expect(elapsed < Self.bound, "planning a \(Self.count)-stage chain took \(elapsed)")
    }

    @Test func wideFanOutPlansQuickly() throws {
        let text = pipeline { _ in "s0" }
        let (result, elapsed) = timed { planYAML(text) }
        let plan = try result.get()
        #expect(plan.stages.map(\.id) == (0..<Self.count).map { "s\($0)" })  // ties keep file order
        #expect(elapsed < Self.bound, "planning a \(Self.count)-stage fan-out took \(elapsed)")
    }

    @Test func reversedChainIsOrderedQuickly() throws {
        // Each stage reads the one after it in the file: the order is the file reversed.
        let last = Self.count - 1
        var lines = ["stages:"]
        for index in 0..<last { lines.append("  s\(index): {type: pass, input: s\(index + 1)}") }
        lines.append("  s\(last): {type: constant}")
        let (result, elapsed) = timed { planYAML(lines.joined(separator: "\n")) }
        let plan = try result.get()
        #expect(plan.stages.first?.id == "s\(last)" && plan.stages.last?.id == "s0")
        #expect(elapsed < Self.bound, "planning a reversed \(Self.count)-stage chain took \(elapsed)")
    }

    @Test func profileTouchingEveryStageAppliesQuickly() throws {
        // 7,000 stages: few enough nodes (84,000) for the old alias guard, which
        // counted every node, to let the file through.
        let count = 7_000
        var profile = ["profiles:", "  slow:", "    stages:"]
        for index in 1..<count { profile.append("      s\(index): {with: {delay_ms: 1}}") }
        let text = pipeline(count: count, extra: profile.joined(separator: "\n")) { "s\($0 - 1)" }
        let (result, elapsed) = timed { planYAML(text, profiles: ["slow"]) }
        let plan = try result.get()
        #expect(plan.stage("s\(count - 1)")?.parameters["delay_ms"] == .integer(1))
        #expect(plan.stage("s0")?.parameters["delay_ms"] == .integer(0))
        #expect(elapsed < Self.bound, "applying a profile to \(count) stages took \(elapsed)")
    }

    @Test func longCycleIsReportedQuickly() throws {
        // s0 -> s1 -> ... -> s15999 -> s0: more than the usual count, since only the
        // cycle walk (not the ordering) was quadratic here, and few enough nodes
        // (96,000) for the old alias guard to let the file through.
        let count = 16_000
        var lines = ["stages:"]
        for index in 0..<count { lines.append("  s\(index): {type: pass, input: s\((index + count - 1) % count)}") }
        // Only the check is timed: loading 16,000 stages takes a debug build about 2 s.
        let loaded = PipelineLoader(environment: [:]).load(bytes: Array(lines.joined(separator: "\n").utf8), file: "test.yaml")
        let (result, elapsed) = timed { Planner(registry: testRegistry).plan(loaded) }
        let problems = problems(of: result)
        #expect(problems.count == 1)
        let message = problems.first?.message ?? ""
        #expect(message.hasPrefix("dependency cycle: s0 -> s1 -> s2 -> ") && message.hasSuffix(" -> s\(count - 1) -> s0"))
        // The quadratic walk took 15 s.
        #expect(elapsed < .seconds(4), "finding a \(count)-stage cycle took \(elapsed)")
    }

    @Test func thousandsOfWrongReferencesAreReportedQuickly() throws {
        // Every stage names a producer that does not exist: one problem each, and the
        // "did you mean" search must not compare every name with every stage.
        let count = 3_000
        let text = pipeline(count: count) { "t\($0)" }
        let (problems, elapsed) = timed { diagnostics(text) }
        #expect(problems.count == count - 1)
        #expect(problems.first?.help == "did you mean 's1'?")
        #expect(problems.allSatisfy { !($0.help ?? "").contains("'s2', 's3'") }, "a help lists every stage")
        #expect(elapsed < Self.bound, "reporting \(count - 1) wrong references took \(elapsed)")
    }

    @Test func executorRunsALongChainWithoutQuadraticScheduling() async throws {
        let plan = try planYAML(pipeline { "s\($0 - 1)" }).get()
        let start = ContinuousClock.now
        let outcome = await run(plan, jobs: 2)
        let elapsed = ContinuousClock.now - start
        #expect(outcome.succeeded)
        #expect(outcome.report.stages.count == Self.count)
        #expect(outcome.outputs.keys.sorted() == ["s\(Self.count - 1)"])
        // A debug build runs it in about 1 s (10 s with the whole suite running);
        // scanning every stage after every completion took over 3 minutes.
        #expect(elapsed < .seconds(40), "running a \(Self.count)-stage chain took \(elapsed)")
    }
}
