import Foundation
import Framework
import PipelineTesting
import Synchronization
import Testing

/// The conformance kit on stages made to break one rule each: every check must be
/// able to fail, name the stage and the check, and pass a stage that keeps the rules.
@Suite(.serialized) struct ConformanceKitTests {
    let sample = try! Grid<UInt8>(width: 256, height: 256) { buffer in
        for i in buffer.indices { buffer[i] = UInt8(truncatingIfNeeded: i &* 7) }
    }

    @Test func aStageThatKeepsTheRulesPasses() async throws {
        let report = try await StageConformance.check(
            TidyStage.self, parameters: "{path: '${env.CONFORMANCE_DIR}/{run_id}/out.bin'}", input: sample,
            failing: [.parameters("{path: '${env.CONFORMANCE_DIR}/{run_id}/out.bin', fail: true}", label: "fail: true")])
        #expect(report.passed, "\(report)")
        #expect(report.declaredOutputType == .grid(.uint8))
        let latency = try #require(report.cancellationLatency, "\(report)")
        #expect(latency < .milliseconds(250))
        #expect(report.notes.isEmpty, "\(report.notes)")
    }

    @Test func reportsAStageThatFailsOnTheSampleInputs() async throws {
        let report = try await StageConformance.evaluate(
            TidyStage.self, parameters: "{path: '${env.CONFORMANCE_DIR}/{run_id}/out.bin', fail: true}", input: sample)
        #expect(report.failures.map(\.description) == [
            "stage type 'tidy' fails conformance check 'runs': the first run on the sample inputs failed: 'asked to fail'",
        ])
    }

    @Test func givesUpOnARunPastTheTimeLimit() async throws {
        let report = try await StageConformance.evaluate(
            StubbornStage.self, input: sample, options: .init(timeLimit: .milliseconds(300)))
        #expect(report.failures.map(\.message) == ["the first run on the sample inputs was still running after 300ms"])
    }

    @Test func reportsAStageThatModifiesItsInput() async throws {
        let input = try Grid<UInt8>(width: 64, height: 64) { $0.initialize(repeating: 9) }
        let report = try await StageConformance.evaluate(InputMutatingStage.self, inputs: ["input": input])
        #expect(report.failedChecks == [.inputsUnchanged], "\(report)")
        let message = try #require(report.failures.first?.message)
        #expect(message == "the first run modified input 'input' (Grid<UInt8> 64x64 4.1 KB): byte 0 of 4096 changed from 0x09 to 0x0a", "\(message)")
        #expect(report.failures.first?.description.hasPrefix("stage type 'input-mutator' fails conformance check 'inputs unchanged'") == true)
    }

    @Test func reportsAStageThatModifiesItsBytesInput() async throws {
        let image = EncodedImage(bytes: [1, 2, 3, 4], format: "raw", mediaType: "application/octet-stream", width: 2, height: 2)
        _ = image.sha256  // cached: the kit must digest the bytes again, not trust this
        let report = try await StageConformance.evaluate(BytesMutatingStage.self, input: image)
        #expect(report.failedChecks == [.inputsUnchanged], "\(report)")
    }

    @Test func reportsTheWrongOutputType() async throws {
        let report = try await StageConformance.evaluate(WrongTypeStage.self, input: sample)
        #expect(report.failedChecks == [.outputType], "\(report)")
        #expect(report.failures.first?.message
            == "the first run returned Grid<UInt8>, but the spec declares Grid<Float32> for these parameters and input types")
    }

    /// The declared type is the one the planner resolves from the parameters.
    @Test func reportsAnOutputTypeThatIgnoresTheParameters() async throws {
        let right = try await StageConformance.evaluate(ParameterTypedStage.self, parameters: "{as: UInt8}", input: sample)
        #expect(right.passed, "\(right)")
        let wrong = try await StageConformance.evaluate(ParameterTypedStage.self, parameters: "{as: Float32}", input: sample)
        #expect(wrong.declaredOutputType == .grid(.float32))
        #expect(wrong.failedChecks == [.outputType], "\(wrong)")
    }

    @Test func reportsAStageThatIgnoresCancellation() async throws {
        let report = try await StageConformance.evaluate(
            StubbornStage.self, input: sample, options: .init(checks: [.cancellation]))
        #expect(report.failedChecks == [.cancellation], "\(report)")
        let latency = try #require(report.cancellationLatency)
        #expect(latency > .milliseconds(500))
        #expect(report.failures.first?.message.contains("(bound 250ms)") == true, "\(report)")
    }

    @Test func reportsAStageThatThrowsSomethingElseWhenCancelled() async throws {
        let report = try await StageConformance.evaluate(
            MisreportingStage.self, input: sample, options: .init(checks: [.cancellation]))
        #expect(report.failedChecks == [.cancellation], "\(report)")
        #expect(report.failures.first?.message.contains("instead of CancellationError") == true, "\(report)")
    }

    @Test func reportsTemporaryFilesLeftAfterAFailure() async throws {
        let report = try await StageConformance.evaluate(
            LeakyStage.self, parameters: "{path: '${env.CONFORMANCE_DIR}/{run_id}/out.bin'}", input: sample,
            failing: [.parameters("{path: '${env.CONFORMANCE_DIR}/{run_id}/out.bin', fail: true}", label: "fail: true")])
        #expect(report.failedChecks == [.cleanup], "\(report)")
        let messages = report.failures.map(\.message)
        // Once for the run the kit cancelled, once for the caller's failing run.
        #expect(messages.count == 2, "\(messages)")
        #expect(messages.contains {
            $0.hasPrefix("after the cancelled run failed (CancellationError), files were left in its temporary directory: leaky-")
                && $0.contains("; in the output directory: conformance-cancelled/.out.bin.tmp-")
        }, "\(messages)")
        #expect(messages.contains { $0.hasPrefix("after failing run 'fail: true' failed ('asked to fail'), files were left in its temporary directory") },
                "\(messages)")
        #expect(report.notes.contains { $0.hasPrefix("what was left behind is kept in ") })
        if let kept = report.notes.first(where: { $0.hasPrefix("what was left behind is kept in ") }) {
            try? FileManager.default.removeItem(atPath: String(kept.dropFirst("what was left behind is kept in ".count)))
        }
    }

    @Test func reportsTemporaryFilesLeftNextToOutputsAfterSuccess() async throws {
        let report = try await StageConformance.evaluate(
            LeakyStage.self, parameters: "{path: '${env.CONFORMANCE_DIR}/{run_id}/out.bin', leave_on_success: true}", input: sample,
            options: .init(checks: [.cleanup]))
        #expect(report.failedChecks == [.cleanup], "\(report)")
        #expect(report.failures.first?.message.hasPrefix("the first run left temporary files next to its outputs: conformance-1/.out.bin.tmp-") == true,
                "\(report)")
        if let kept = report.notes.first(where: { $0.hasPrefix("what was left behind is kept in ") }) {
            try? FileManager.default.removeItem(atPath: String(kept.dropFirst("what was left behind is kept in ".count)))
        }
    }

    @Test func reportsAStageThatFailsOnItsSecondRun() async throws {
        let report = try await StageConformance.evaluate(OnceOnlyStage.self, input: sample, options: .init(checks: [.runsAgain]))
        #expect(report.failedChecks == [.runsAgain], "\(report)")
        #expect(report.failures.first?.message == "a second run of the same instance on the same inputs failed: 'this instance has run already'")
    }

    @Test func determinismIsAnOption() async throws {
        let strict = try await StageConformance.evaluate(NoisyStage.self, input: sample, options: .init(checks: [.runsAgain]))
        #expect(strict.failedChecks == [.runsAgain], "\(strict)")
        #expect(strict.failures.first?.message.contains("pass 'deterministic: false'") == true)
        let lenient = try await StageConformance.evaluate(
            NoisyStage.self, input: sample, options: .init(deterministic: false, checks: [.runsAgain]))
        #expect(lenient.passed, "\(lenient)")
    }

    @Test func aFailingRunThatSucceedsIsReported() async throws {
        let report = try await StageConformance.evaluate(
            TidyStage.self, parameters: "{path: '${env.CONFORMANCE_DIR}/{run_id}/out.bin'}", input: sample,
            failing: [.parameters("{path: '${env.CONFORMANCE_DIR}/{run_id}/other.bin'}", label: "not failing")],
            options: .init(checks: [.cleanup]))
        #expect(report.failures.map(\.message) == [
            "failing run 'not failing' succeeded (it returned Grid<UInt8> 256x256 65.5 KB), so it shows nothing about cleaning up after a failure; give parameters, inputs or environment that make the stage fail",
        ])
    }

    @Test func aRunThatEndsBeforeTheCancelPassesWithANote() async throws {
        let report = try await StageConformance.evaluate(
            WrongTypeStage.self, input: sample, options: .init(cancelAfter: .milliseconds(200), checks: [.cancellation]))
        #expect(report.passed, "\(report)")
        #expect(report.cancellationLatency == nil)
        #expect(report.notes.contains { $0.contains("before the cancel (due 200ms into it) came; its latency was not measured") }, "\(report.notes)")
    }

    /// `check` records each failure as an issue at the caller's line, naming the
    /// stage type and the check.
    @Test func checkRecordsIssuesAtTheCallersLine() async throws {
        let line = #line + 2
        try await withKnownIssue {
            try await StageConformance.check(WrongTypeStage.self, input: sample, options: .init(checks: [.outputType]))
        } matching: { issue in
            let text = issue.comments.map(\.rawValue).joined()
            return issue.sourceLocation?.line == line && issue.sourceLocation?.fileID.hasSuffix("ConformanceKitTests.swift") == true
                && text.hasPrefix("stage type 'wrong-type' fails conformance check 'output type': the first run returned Grid<UInt8>")
        }
    }

    @Test func configurationsThePlannerRefusesAreThrown() async throws {
        let unknown = await #expect(throws: StageConformance.SetupError.self) {
            try await StageConformance.check(TidyStage.self, parameters: "{path: x, colour: red}", input: sample)
        }
        #expect(unknown?.message.contains("unknown parameter 'colour' for stage 'checked' (tidy)") == true, "\(String(describing: unknown))")
        let mistyped = await #expect(throws: StageConformance.SetupError.self) {
            try await StageConformance.check(TidyStage.self, parameters: "{path: x}", input: try Grid<Float>(width: 2, height: 2, values: [0, 0, 0, 0]))
        }
        #expect(mistyped?.message.contains("stage 'checked' (tidy) accepts Grid<UInt8>, but 'sample_input' (conformance-sample) produces Grid<Float32>") == true,
                "\(String(describing: mistyped))")
    }

    /// `options.environment` is set while the stage runs, and put back; TMPDIR is never
    /// changed (runs get their temporary directory through the context).
    @Test func theProcessEnvironmentIsPutBack() async throws {
        let before = ProcessInfo.processInfo.environment
        let report = try await StageConformance.evaluate(
            EnvironmentReadingStage.self, input: sample, options: .init(environment: ["CONFORMANCE_KIT_PROBE": "set"]))
        #expect(report.passed, "\(report)")
        let after = ProcessInfo.processInfo.environment
        #expect(after["CONFORMANCE_KIT_PROBE"] == nil)
        #expect(after["TMPDIR"] == before["TMPDIR"])
    }

    @Test func aFailingRunThePlannerRefusesIsThrown() async throws {
        let error = await #expect(throws: StageConformance.SetupError.self) {
            try await StageConformance.check(
                TidyStage.self, parameters: "{path: x}", input: sample, failing: [.parameters("{path: x, fail: maybe}", label: "maybe")])
        }
        #expect(error?.message.hasPrefix("failing run 'maybe': the planner refuses stage type 'tidy'") == true, "\(String(describing: error))")
    }

    /// Block mappings work as well as flow mappings, with the indentation of a Swift literal.
    @Test func parametersMayBeABlockMapping() async throws {
        let report = try await StageConformance.evaluate(
            ParameterTypedStage.self, parameters: """
                # the element type
                as: UInt8
                """, input: sample, options: .init(checks: [.outputType]))
        #expect(report.passed, "\(report)")
    }
}

// MARK: - Stages for the kit's tests

/// Sleeps `milliseconds` in 2 ms steps, honouring cancellation.
private func work(_ milliseconds: Int) async throws {
    for _ in 0..<(milliseconds / 2) {
        try await Task.sleep(for: .milliseconds(2))
    }
}

private func inverted(_ grid: Grid<UInt8>) throws -> Grid<UInt8> {
    try Grid<UInt8>(width: grid.width, height: grid.height) { output in
        grid.withUnsafeBufferPointer { input in
            for i in input.indices { output[i] = 255 - input[i] }
        }
    }
}

private let byteGrid = TypeRequirement.oneOf(.grid(.uint8))

/// Keeps every rule: inverts a grid, and also writes it to `path` atomically (a
/// temporary file, renamed), removing the temporary file when it fails or is cancelled.
private struct TidyStage: Stage {
    static let spec = StageSpec(
        name: "tidy", summary: "Invert a grid and write its bytes to a file, cleanly.",
        parameters: [
            ParameterSpec("path", .template, doc: "where to write the bytes"),
            ParameterSpec("fail", .boolean, default: .boolean(false), doc: "fail after writing the temporary file"),
        ],
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    let path: String
    let fail: Bool

    init(parameters: Parameters) throws {
        path = parameters.string("path")
        fail = parameters.bool("fail")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let output = try inverted(try inputs.get(Grid<UInt8>.self))
        let target = URL(fileURLWithPath: try context.expand(path))
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp-\(UUID().uuidString.prefix(6))")
        try Data(output.elements).write(to: temporary)
        do {
            try await work(100)
            if fail { throw StageFailure("asked to fail") }
            try FileManager.default.moveItem(at: temporary, to: target)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        return output
    }
}

/// Breaks "inputs must not be modified": scribbles on its input grid.
private struct InputMutatingStage: Stage {
    static let spec = StageSpec(
        name: "input-mutator", summary: "Return zeros, and change the input's first element.",
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let grid = try inputs.get(Grid<UInt8>.self)
        grid.withUnsafeBufferPointer { UnsafeMutablePointer(mutating: $0.baseAddress!).pointee &+= 1 }
        return try Grid<UInt8>(width: grid.width, height: grid.height) { $0.initialize(repeating: 0) }
    }
}

/// Breaks "inputs must not be modified" for bytes.
private struct BytesMutatingStage: Stage {
    static let spec = StageSpec(
        name: "bytes-mutator", summary: "Store nothing, and change the input's first byte.",
        inputs: [InputPort(accepts: .having(.bytes), doc: "bytes")], output: .fixed(.storedObject))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        guard let bytes = inputs.input as? any BytesArtifact else { throw StageFailure("no bytes") }
        bytes.bytes.withUnsafeBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress!).storeBytes(of: 0xff, as: UInt8.self) }
        return StoredObject(uri: "memory://nowhere", byteCount: bytes.bytes.count, sha256: bytes.sha256)
    }
}

/// Breaks "run returns the declared type": declares Grid<Float32>, returns Grid<UInt8>.
private struct WrongTypeStage: Stage {
    static let spec = StageSpec(
        name: "wrong-type", summary: "Declare floats, return bytes.",
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.float32)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try inverted(try inputs.get(Grid<UInt8>.self))
    }
}

/// Declares the element type given by `as`, and always returns UInt8: right for
/// `as: UInt8` only.
private struct ParameterTypedStage: Stage {
    static let spec = StageSpec(
        name: "parameter-typed", summary: "Declare the element type 'as' names.",
        parameters: [ParameterSpec("as", .choice(["UInt8", "Float32"]), doc: "the declared element type")],
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")],
        output: .computed([.grid(.uint8), .grid(.float32)], description: "Grid<as>") { context in
            context.parameters.string("as") == "UInt8" ? .grid(.uint8) : .grid(.float32)
        })

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try inverted(try inputs.get(Grid<UInt8>.self))
    }
}

/// Breaks "run honours cancellation": blocks for a second whatever happens.
private struct StubbornStage: Stage {
    static let spec = StageSpec(
        name: "stubborn", summary: "Work for a second without looking at cancellation.",
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let grid = try inputs.get(Grid<UInt8>.self)
        try await Blocking.run { Thread.sleep(forTimeInterval: 1) }
        return try inverted(grid)
    }
}

/// Notices cancellation but reports it as a failure of its own.
private struct MisreportingStage: Stage {
    static let spec = StageSpec(
        name: "misreporting", summary: "Turn cancellation into a stage failure.",
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let grid = try inputs.get(Grid<UInt8>.self)
        do {
            try await work(200)
        } catch {
            throw StageFailure("interrupted")
        }
        return try inverted(grid)
    }
}

/// Breaks "leaves nothing half-written": a temporary file next to the target and one
/// in TMPDIR, neither removed when it fails or is cancelled.
private struct LeakyStage: Stage {
    static let spec = StageSpec(
        name: "leaky", summary: "Write temporary files and forget them when things go wrong.",
        parameters: [
            ParameterSpec("path", .template, doc: "where to write the bytes"),
            ParameterSpec("fail", .boolean, default: .boolean(false), doc: "fail after writing the temporary files"),
            ParameterSpec("leave_on_success", .boolean, default: .boolean(false), doc: "copy instead of move, leaving the temporary file"),
        ],
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    let path: String
    let fail: Bool
    let leaveOnSuccess: Bool

    init(parameters: Parameters) throws {
        path = parameters.string("path")
        fail = parameters.bool("fail")
        leaveOnSuccess = parameters.bool("leave_on_success")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let output = try inverted(try inputs.get(Grid<UInt8>.self))
        let target = URL(fileURLWithPath: try context.expand(path))
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let suffix = UUID().uuidString.prefix(6)
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp-\(suffix)")
        let scratch = URL(fileURLWithPath: context.temporaryDirectory).appendingPathComponent("leaky-\(suffix)")
        try Data(output.elements).write(to: temporary)
        try Data("scratch".utf8).write(to: scratch)
        try await work(100)
        if fail { throw StageFailure("asked to fail") }
        if leaveOnSuccess {
            try FileManager.default.copyItem(at: temporary, to: target)
        } else {
            try FileManager.default.moveItem(at: temporary, to: target)
        }
        try? FileManager.default.removeItem(at: scratch)
        return output
    }
}

/// Breaks "run may be called again": keeps state between calls and refuses a second.
private struct OnceOnlyStage: Stage {
    final class Runs: @unchecked Sendable {
        let lock = NSLock()
        var count = 0
    }

    static let spec = StageSpec(
        name: "once-only", summary: "Run once per instance.",
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    let runs = Runs()

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let count = runs.lock.withLock {
            runs.count += 1
            return runs.count
        }
        if count > 1 { throw StageFailure("this instance has run already") }
        return try inverted(try inputs.get(Grid<UInt8>.self))
    }
}

/// Fails unless the variable the check sets is there.
private struct EnvironmentReadingStage: Stage {
    static let spec = StageSpec(
        name: "environment-reading", summary: "Read CONFORMANCE_KIT_PROBE.",
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        guard ProcessInfo.processInfo.environment["CONFORMANCE_KIT_PROBE"] == "set" else { throw StageFailure("CONFORMANCE_KIT_PROBE is not set") }
        return try inverted(try inputs.get(Grid<UInt8>.self))
    }
}

/// Ignores its seed: a different grid every run.
private struct NoisyStage: Stage {
    static let spec = StageSpec(
        name: "noisy", summary: "Random bytes, not from the seed.",
        inputs: [InputPort(accepts: byteGrid, doc: "a grid")], output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let grid = try inputs.get(Grid<UInt8>.self)
        var generator = SystemRandomNumberGenerator()
        return try Grid<UInt8>(width: grid.width, height: grid.height) { output in
            for i in output.indices { output[i] = UInt8.random(in: 0...255, using: &generator) }
        }
    }
}
