import Framework
import PipelineTesting
import Testing
@testable import CustomStages

/// This package's stages through the framework's conformance kit: output types as
/// the planner resolves them, a second run, inputs left alone, cancellation, and
/// nothing left behind after a failure.
@Suite(.serialized) struct ConformanceTests {
    static let options = StageConformance.Options()

    /// A 1024x1024 gradient, made once.
    static let ramp = try! Grid<UInt8>(width: 1024, height: 1024) { buffer in
        for y in 0..<1024 {
            for x in 0..<1024 { buffer[y * 1024 + x] = UInt8(x / 4) }
        }
    }
    static let unit = try! Grid<Float>(width: 1024, height: 1024) { buffer in
        for i in buffer.indices { buffer[i] = Float(i % 1024) / 1023 }
    }

    @Test func ramp() async throws {
        print(try await StageConformance.check(RampStage.self, parameters: "{width: 1024, height: 1024}", options: Self.options))
    }

    @Test func thresholdOnBytes() async throws {
        print(try await StageConformance.check(
            ThresholdStage.self, parameters: "{level: 128}", input: Self.ramp,
            // The parameters are checked for bytes (0...255); a float grid needs a level
            // in 0...1, which only the run can tell.
            failing: [.init("a level above 1 for a float grid", inputs: ["input": Self.unit])], options: Self.options))
    }

    @Test func thresholdOnFloats() async throws {
        print(try await StageConformance.check(ThresholdStage.self, parameters: "{level: 0.25}", input: Self.unit, options: Self.options))
    }

    /// The output is `Report`, this package's own artifact type: compared between runs
    /// by its bytes, like any bytes artifact.
    ///
    /// `histogram` checks cancellation every 64 Ki values of its counting loop.
    @Test func histogram() async throws {
        let report = try await StageConformance.check(HistogramStage.self, input: Self.ramp, options: Self.options)
        print(report)
        #expect(report.declaredOutputType == Report.type)
    }
}
