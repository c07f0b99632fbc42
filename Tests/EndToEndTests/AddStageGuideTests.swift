// This file does exactly what the README's "Adding a stage type" guide says, so the
// guide cannot drift from the code. Keep the two in step.
import Foundation
import Testing
import Framework
import PipelineTesting
import RunnerCLI
import Stages

// 1. Define the stage type: a spec (name, summary, parameters, ports, output) and run.
struct InvertStage: Stage {
    static let spec = StageSpec(
        name: "invert",
        summary: "Turn a unit-range grid into its negative: 1 - x, scaled by strength.",
        parameters: [
            ParameterSpec("strength", .number, default: .number(1), range: .closed(0, 1),
                          doc: "0 leaves the grid as it is, 1 inverts it fully"),
        ],
        inputs: [InputPort(accepts: .oneOf(.grid(.float32)), doc: "a grid with values in [0, 1]")],
        output: .fixed(.grid(.float32)))

    let strength: Float

    init(parameters: Parameters) throws {
        strength = Float(parameters.double("strength"))
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let grid = try inputs.get(Grid<Float>.self)
        return try Grid<Float>(width: grid.width, height: grid.height) { output in
            try grid.withUnsafeBufferPointer { input in
                // A row at a time, checking between rows that the run was not cancelled.
                for row in 0..<grid.height {
                    try context.checkCancellation()
                    for i in row * grid.width..<(row + 1) * grid.width {
                        output[i] = input[i] + strength * (1 - 2 * input[i])
                    }
                }
            }
        }
    }
}

@Suite struct AddStageGuideTests {
    let pipeline = """
        name: inverted
        stages:
          generate: {type: poisson, with: {width: 64, height: 32, lambda: 3, seed: 1}}
          normalize: {type: normalize, input: generate}
          invert: {type: invert, input: normalize}
          encode: {type: png, input: invert}
          store: {type: filesystem, input: encode, with: {path: "out/{run_id}/inverted.png"}}
        """

    // 2. Register it next to the built-in stages, 3. run a pipeline that uses it.
    @Test func customStageRunsInAPipeline() async throws {
        let registry = try BuiltinStages.registry(adding: [StageType(InvertStage.self)])
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("inverted.yaml")
        try pipeline.replacingOccurrences(of: "out/", with: directory.path + "/out/").write(to: file, atomically: true, encoding: .utf8)

        let plan = try Planner(registry: registry).plan(contentsOf: file.path, loader: PipelineLoader()).get()
        let outcome = await Executor(plan: plan, options: RunOptions(runID: "guide")).run()
        #expect(outcome.succeeded, "\(String(describing: outcome.failure))")

        // The same pipeline with strength 0 leaves the grid alone: the two images are negatives.
        let stored = try #require(outcome.outputs["store"] as? StoredObject)
        let inverted = try PNGCodec.decode([UInt8](Data(contentsOf: URL(string: stored.uri)!)))
        let identityPlan = try Planner(registry: registry).plan(
            contentsOf: file.path, loader: PipelineLoader(overrides: ["stages.invert.with.strength=0"])).get()
        let identity = await Executor(plan: identityPlan, options: RunOptions(runID: "guide-identity")).run()
        let plainStored = try #require(identity.outputs["store"] as? StoredObject)
        let plain = try PNGCodec.decode([UInt8](Data(contentsOf: URL(string: plainStored.uri)!)))
        #expect(inverted.width == 64 && inverted.height == 32)
        #expect(zip(inverted.samples8, plain.samples8).allSatisfy { abs(Int($0) + Int($1) - 255) <= 1 })
        #expect(Set(plain.samples8).count > 3)
    }

    // 4. Or build your own runner with it: the whole CLI, with the extra stage.
    @Test func customRunnerCommandLine() async throws {
        let registry = try BuiltinStages.registry(adding: [StageType(InvertStage.self)])
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("inverted.yaml")
        try pipeline.replacingOccurrences(of: "out/", with: directory.path + "/out/").write(to: file, atomically: true, encoding: .utf8)
        let status = await RunnerMain.run(registry: registry, arguments: [file.path, "--run-id", "cli", "-q"])
        #expect(status == 0)
        #expect(FileManager.default.fileExists(atPath: directory.path + "/out/cli/inverted.png"))
        #expect(await RunnerMain.run(registry: registry, arguments: ["validate", file.path]) == 0)
        // Without the registration the same file is invalid, with a position.
        #expect(await RunnerMain.run(registry: try BuiltinStages.registry(), arguments: ["validate", file.path]) == 2)
    }

    // 5. Test it with PipelineTesting, as the README shows.
    @Test func invertChecksItsRange() async throws {
        let harness = PipelineHarness(registry: try BuiltinStages.registry(adding: [StageType(InvertStage.self)]))
        harness.expectProblem("""
            stages:
              g: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
              n: {type: normalize, input: g}
              i: {type: invert, input: n, with: {strength: ‸2}}
            """, "parameter 'strength' of stage 'i' (invert) must be 0...1, got 2.0")
        let outcome = try await harness.run("""
            stages:
              g: {type: poisson, with: {width: 8, height: 8, lambda: 3, seed: 1}}
              n: {type: normalize, input: g}
              i: {type: invert, input: n}
            """)
        #expect(outcome.outputs["i"] is Grid<Float>)
    }

    @Test func invertIsCorrect() async throws {
        let stage = try InvertStage(parameters: Parameters(["strength": .number(1)]))
        let grid = try Grid<Float>(width: 3, height: 1, values: [0, 0.25, 1])
        let context = StageContext(stageID: "i", stageType: "invert", runID: "r", seed: 0, logger: .init(label: "t"))
        let output = try await stage.run(inputs: StageInputs(["input": grid]), context: context)
        #expect((output as? Grid<Float>)?.elements == [1, 0.75, 0])
    }
}
