import Foundation
import Testing
@testable import Framework

/// The executor's tests share `Recorder.shared`, so they run one at a time.
@Suite(.serialized) struct ExecutorTests {
    init() {
        Recorder.shared.reset()
    }

    @Test func runsInDependencyOrderAndPassesArtifacts() async throws {
        let plan = try planYAML("""
            stages:
              sum: {type: add, inputs: {left: x, right: y}}
              x: {type: constant, with: {value: 2}}
              y: {type: constant, with: {value: 3}}
            """).get()
        #expect(plan.stages.map(\.id) == ["x", "y", "sum"])
        let outcome = await run(plan)
        #expect(outcome.succeeded)
        let sum = try #require(outcome.outputs["sum"] as? Grid<UInt8>)
        #expect(sum.elements == Array(repeating: 5, count: 16))
        #expect(outcome.outputs["x"] == nil)  // consumed, so not a result
        let log = Recorder.shared.log()
        #expect(log.contains("end x") && log.contains("end y"))
    }

    @Test func independentBranchesRunConcurrently() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              a: {type: pass, input: src, with: {delay_ms: 300}}
              b: {type: pass, input: src, with: {delay_ms: 300}}
            """).get()
        let outcome = await run(plan, jobs: 2)
        #expect(outcome.succeeded)
        // Both started before either finished.
        let log = Recorder.shared.log().filter { $0.hasSuffix(" a") || $0.hasSuffix(" b") }
        #expect(Array(log.prefix(2)).allSatisfy { $0.hasPrefix("start") }, "log: \(log)")
    }

    @Test func jobsOneRunsOneStageAtATime() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              a: {type: pass, input: src, with: {delay_ms: 50}}
              b: {type: pass, input: src, with: {delay_ms: 50}}
            """).get()
        let outcome = await run(plan, jobs: 1)
        #expect(outcome.succeeded)
        let log = Recorder.shared.log().filter { $0.hasSuffix(" a") || $0.hasSuffix(" b") }
        #expect(log == ["start a", "end a", "start b", "end b"])
    }

    @Test func afterOrdersWithoutData() async throws {
        let plan = try planYAML("""
            stages:
              late: {type: constant, after: [early]}
              early: {type: constant, with: {delay_ms: 50}}
            """).get()
        #expect(plan.stages.map(\.id) == ["early", "late"])
        _ = await run(plan)
        let log = Recorder.shared.log()
        #expect(log.firstIndex(of: "end early")! < log.firstIndex(of: "start late")!)
    }

    @Test func failureCancelsRunningStagesAndSkipsDownstream() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              slow: {type: pass, input: src, with: {delay_ms: 5000}}
              bad: {type: fail, input: src, with: {message: "disk on fire"}}
              after_bad: {type: pass, input: bad}
              after_slow: {type: pass, input: slow}
            """).get()
        let started = ContinuousClock.now
        let outcome = await run(plan, jobs: 4)
        #expect(ContinuousClock.now - started < .seconds(3), "the slow stage was not cancelled")
        #expect(outcome.report.status == .failed)
        #expect(outcome.failure?.summary == "stage 'bad' (fail) failed: disk on fire")
        let status = Dictionary(uniqueKeysWithValues: outcome.report.stages.map { ($0.id, $0.status) })
        #expect(status == ["src": .succeeded, "slow": .cancelled, "bad": .failed, "after_bad": .skipped, "after_slow": .skipped])
        #expect(Recorder.shared.log().contains("cancelled slow"))
        #expect(outcome.outputs.isEmpty)
    }

    @Test func retriesUntilSuccess() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              flaky: {type: pass, input: src, with: {failures: 2}, retries: {count: 3, delay: 10ms}}
            """).get()
        let outcome = await run(plan)
        #expect(outcome.succeeded)
        #expect(outcome.report.stages.first { $0.id == "flaky" }?.attempts == 3)
    }

    @Test func givesUpAfterTheLastRetry() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              flaky: {type: pass, input: src, with: {failures: 5}, retries: {count: 1, delay: 10ms}}
            """).get()
        let outcome = await run(plan)
        #expect(!outcome.succeeded)
        #expect(outcome.report.stages.first { $0.id == "flaky" }?.attempts == 2)
        #expect(outcome.failure?.summary == "stage 'flaky' (pass) failed: planned failure 2")
    }

    @Test func nonRetryableErrorsFailAtOnce() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              bad: {type: fail, input: src, retries: 3}
            """).get()
        let outcome = await run(plan)
        #expect(outcome.report.stages.first { $0.id == "bad" }?.attempts == 1)
    }

    @Test func durations() {
        #expect(Duration.parse("1m30s") == .seconds(90))
        #expect(Duration.parse("500ms") == .milliseconds(500))
        #expect(Duration.parse("2.5") == .milliseconds(2500))
        for bad in ["1e16", "99999999999999999s", "5x", "", "-1", "1m30"] {
            #expect(Duration.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func retryBackoffGrowsAndIsCapped() {
        let policy = RetryPolicy(count: 5, delay: .milliseconds(100), factor: 2, maxDelay: .milliseconds(350))
        #expect((1...4).map { policy.delay(beforeRetry: $0) } == [.milliseconds(100), .milliseconds(200), .milliseconds(350), .milliseconds(350)])
    }

    @Test func timeoutFailsTheStage() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              slow: {type: pass, input: src, with: {delay_ms: 5000}, timeout: 100ms}
            """).get()
        let started = ContinuousClock.now
        let outcome = await run(plan)
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(outcome.failure?.summary == "stage 'slow' (pass) failed: timed out after 100ms")
    }

    @Test func timeoutsAreRetried() async throws {
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              slow: {type: pass, input: src, with: {delay_ms: 5000}, timeout: 50ms, retries: {count: 1, delay: 10ms}}
            """).get()
        let outcome = await run(plan)
        #expect(outcome.report.stages.first { $0.id == "slow" }?.attempts == 2)
    }

    @Test func artifactIsReleasedAfterItsLastConsumer() async throws {
        // watched -> a (fast) and b (fast); then probe runs after a slow stage on
        // another branch. By then 'watched's artifact has no consumer left.
        let plan = try planYAML("""
            stages:
              src: {type: constant}
              watched: {type: watch, input: src}
              a: {type: pass, input: watched}
              b: {type: pass, input: watched}
              slow: {type: pass, input: src, with: {delay_ms: 200}, after: [a, b]}
              probe: {type: probe, input: slow}
            """).get()
        let outcome = await run(plan, jobs: 4)
        #expect(outcome.succeeded)
        // a and b returned the watched grid itself, and they are consumed by nothing,
        // so they are results: the grid stays alive through them.
        #expect(Recorder.shared.log().contains("alive at probe: 1"))

        Recorder.shared.reset()
        let released = try planYAML("""
            stages:
              src: {type: constant}
              watched: {type: watch, input: src}
              a: {type: add, inputs: {left: watched, right: src}}
              slow: {type: pass, input: src, with: {delay_ms: 200}, after: [a]}
              probe: {type: probe, input: slow}
            """).get()
        let second = await run(released, jobs: 4)
        #expect(second.succeeded)
        #expect(Recorder.shared.log().contains("alive at probe: 0"), "log: \(Recorder.shared.log())")
    }

    @Test func seedsAreDerivedPerStageAndRecorded() async throws {
        // `seed-probe` (TestsThatCanFailTests.swift) outputs the seed it ran with.
        let registry = try testRegistry.adding([StageType(SeedProbe.self)])
        let plan = try planYAML("stages:\n  a: {type: seed-probe}\n  b: {type: seed-probe}\n", registry: registry).get()
        let outcome = await run(plan, seed: 1234)
        #expect(outcome.report.seed == 1234)
        let a = try #require(SeedProbe.seed(in: outcome.outputs["a"]))
        #expect(a == SeedDerivation.seed(runSeed: 1234, stageID: "a"))
        #expect(a != SeedProbe.seed(in: outcome.outputs["b"]))
        #expect(SeedProbe.seed(in: await run(plan, seed: 1234).outputs["a"]) == a)
        #expect(SeedProbe.seed(in: await run(plan, seed: 1235).outputs["a"]) != a)
    }

    @Test func reportSummarisesEveryStage() async throws {
        let plan = try planYAML("stages:\n  a: {type: constant, with: {value: 7, size: 3}}\n").get()
        let outcome = await run(plan)
        let json = try JSONSerialization.jsonObject(with: outcome.report.jsonData()) as? [String: Any]
        #expect(json?["run_id"] as? String == "test-run")
        #expect(json?["status"] as? String == "succeeded")
        let stage = (json?["stages"] as? [[String: Any]])?.first
        #expect(stage?["type"] as? String == "constant")
        #expect(stage?["attempts"] as? Int == 1)
        let output = stage?["output"] as? [String: Any]
        #expect(output?["type"] as? String == "Grid<UInt8>")
        #expect(output?["width"] as? Int == 3)
        #expect(output?["min"] as? Double == 7)
        #expect(output?["max"] as? Double == 7)
    }

    @Test func runIDRules() {
        #expect(RunID.problem(with: "manual__2026-11-26T10:00:00+00:00") == nil)
        #expect(RunID.problem(with: "..") != nil)
        #expect(RunID.problem(with: "a/b") == "contains '/'; use letters, digits and . _ - : + ~ only")
        #expect(RunID.problem(with: "a\nb") == "contains '\\n'; use letters, digits and . _ - : + ~ only")
        let id = RunID.generate(date: Date(timeIntervalSince1970: 0))
        #expect(id.hasPrefix("19700101T000000Z-"))
        #expect(RunID.generate(date: Date(timeIntervalSince1970: 100)) > id)
    }

    @Test func templatesRefuseValuesThatEscapeTheDirectory() throws {
        #expect(try Template.expand("out/{run_id}/x.jpg", values: ["run_id": "r1"]) == "out/r1/x.jpg")
        #expect(try Template.expand("{{literal}}-{a}", values: ["a": "1"]) == "{literal}-1")
        for bad in ["..", "a/b", "", "x\u{7}"] {
            #expect(throws: StageFailure.self) { try Template.expand("out/{v}/x", values: ["v": bad]) }
        }
        #expect(throws: Template.SyntaxError.self) { try Template.placeholders(in: "out/{run_id") }
    }
}

@Suite struct UTCDateTests {
    /// Expected values from Python's datetime.fromtimestamp(s, timezone.utc).
    @Test func matchesKnownDates() {
        let cases: [(TimeInterval, String, String)] = [
            (0, "1970-01-01", "19700101T000000Z"),
            (951_782_400, "2000-02-29", "20000229T000000Z"),
            (1_795_707_912, "2026-11-26", "20261126T154512Z"),
            (-1, "1969-12-31", "19691231T235959Z"),
            (4_107_542_399, "2100-02-28", "21000228T235959Z"),
        ]
        for (seconds, date, stamp) in cases {
            let utc = UTCDate(Date(timeIntervalSince1970: seconds))
            #expect(utc.dateString == date)
            #expect(utc.compactTimestamp == stamp)
        }
    }
}
