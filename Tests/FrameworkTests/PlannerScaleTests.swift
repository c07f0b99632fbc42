import Foundation
import Testing
@testable import Framework

/// Planning stays linear (or n log n) in the number of stages: 10,000-stage
/// pipelines of several shapes load, check and plan well within a bound that the
/// quadratic planner missed by far. The bounds hold in a debug build on a busy
/// 2-core machine; they are limits, not benchmarks.
@Suite(.serialized) struct PlannerScaleTests {
    static let count = 10_000
    /// A debug build plans each 10,000-stage shape below in about 1 to 2 s (under
    /// load); the quadratic planner took 70 s (a fan-out) to over 130 s (a chain).
    static let bound: Duration = .seconds(10)

    /// `constant` then `count - 1` `pass` stages, each reading `producer(index)`.
    func pipeline(count: Int = Self.count, extra: String = "", producer: (Int) -> String) -> String {
        var lines = ["stages:", "  s0: {type: constant}"]
        lines.reserveCapacity(count + 2)
        for index in 1..<count {
            lines.append("  s\(index): {type: pass, input: \(producer(index))}")
        }
        return lines.joined(separator: "\n") + "\n" + extra
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
        var profile = ["profiles:", "  slow:", "    stages:"]
        for index in 1..<Self.count { profile.append("      s\(index): {with: {delay_ms: 1}}") }
        let text = pipeline(extra: profile.joined(separator: "\n")) { "s\($0 - 1)" }
        let (result, elapsed) = timed { planYAML(text, profiles: ["slow"]) }
        let plan = try result.get()
        #expect(plan.stage("s9999")?.parameters["delay_ms"] == .integer(1))
        #expect(elapsed < Self.bound, "applying a profile to \(Self.count) stages took \(elapsed)")
    }

    @Test func longCycleIsReportedQuickly() throws {
        // s0 -> s1 -> ... -> s9999 -> s0.
        var lines = ["stages:"]
        for index in 0..<Self.count { lines.append("  s\(index): {type: pass, input: s\((index + Self.count - 1) % Self.count)}") }
        let (problems, elapsed) = timed { diagnostics(lines.joined(separator: "\n")) }
        #expect(problems.count == 1)
        let message = problems.first?.message ?? ""
        #expect(message.hasPrefix("dependency cycle: s0 -> s1 -> s2 -> ") && message.hasSuffix(" -> s9999 -> s0"))
        #expect(elapsed < Self.bound, "finding a \(Self.count)-stage cycle took \(elapsed)")
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
        // A debug build runs it in about 1 s; scanning every stage after every
        // completion took over 10 s.
        #expect(elapsed < .seconds(6), "running a \(Self.count)-stage chain took \(elapsed)")
    }
}
