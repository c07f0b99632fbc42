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

// 6. Optionally, stream: take and give the grid a band of rows at a time.
extension InvertStage: StreamingStage {
    static func streaming(parameters: Parameters) -> StreamingSupport {
        // Deterministic, no side effects: the executor may run it twice (a range pass).
        StreamingSupport(input: true, output: true, replayable: true)
    }

    func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let input = try io.requireGridInput()
        let info = try input.start()
        if let table = info.table {
            // Dictionary-encoded (normalize of bytes): invert the 256 values and pass
            // the bands of indices on as they are.
            var inverted = info
            inverted.table = table.map { $0 + strength * (1 - 2 * $0) }
            let output = try io.requireGridOutput()
            try output.begin(inverted)
            while let band = try input.next() {
                try output.push(band, byteCount: band.rows.count * info.rowBytes)
            }
            output.finish()
            return nil
        }
        let writer = try io.gridWriter(info)
        while let band = try input.next() {
            defer { band.release() }
            try io.checkCancellation()
            let values = band.elements(Float.self, width: info.width)
            try writer.write(rows: band.rows) { rows, memory in
                let output = memory.assumingMemoryBound(to: Float.self)
                let first = (rows.lowerBound - band.rows.lowerBound) * info.width
                for i in 0..<rows.count * info.width {
                    output[i] = values[first + i] + strength * (1 - 2 * values[first + i])
                }
            }
        }
        writer.finish()
        return nil
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

    // 6. Streamed, the guide's pipeline gives the same image as with whole artifacts,
    // from bytes (a dictionary-encoded grid) and from dense floats.
    @Test func theStreamingInvertGivesTheSameImage() async throws {
        let harness = PipelineHarness(registry: try BuiltinStages.registry(adding: [StageType(InvertStage.self)]))
        for lambda in ["3", "300"] {
            // Without the sink: the encoder's output is the result to compare.
            let yaml = pipeline.replacingOccurrences(of: "lambda: 3", with: "lambda: \(lambda)")
                .split(separator: "\n").filter { !$0.hasPrefix("  store:") }.joined(separator: "\n")
            let plan = try harness.plan(yaml).get()
            #expect(StreamingLayout.layout(plan).segments == [["generate", "normalize", "invert", "encode"]])
            let streamed = try await harness.run(yaml, bandRows: 5)
            let whole = try await harness.run(yaml, streaming: false)
            let a = try #require(streamed.outputs["encode"] as? EncodedImage), b = try #require(whole.outputs["encode"] as? EncodedImage)
            #expect(a.sha256 == b.sha256, "lambda \(lambda)")
        }
    }

    /// The README's streaming example is this file's, word for word.
    @Test func theReadmeShowsThisStreamingStage() throws {
        let readme = try String(contentsOf: RunnerProcess.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let snippets = ReadmePackageSnippetTests.snippets(in: readme, section: "### Streaming stages")
        let code = try #require(snippets.first?.text)
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        #expect(code.contains("extension InvertStage: StreamingStage"))
        #expect(source.contains(code), "the README's streaming stage differs from AddStageGuideTests.swift")
    }

    @Test func invertIsCorrect() async throws {
        let stage = try InvertStage(parameters: Parameters(["strength": .number(1)]))
        let grid = try Grid<Float>(width: 3, height: 1, values: [0, 0.25, 1])
        let context = StageContext(stageID: "i", stageType: "invert", runID: "r", seed: 0, logger: .init(label: "t"))
        let output = try await stage.run(inputs: StageInputs(["input": grid]), context: context)
        #expect((output as? Grid<Float>)?.elements == [1, 0.75, 0])
    }
}

/// The README's "A package of your own" shows `Examples/CustomStage`'s own files
/// (`scripts/test` builds that package), so its `Package.swift` and `main.swift`
/// are ones that compile. Each ```swift block there follows a line naming its file
/// in backquotes, last: "`Package.swift`:".
@Suite struct ReadmePackageSnippetTests {
    static let example = RunnerProcess.packageRoot.appendingPathComponent("Examples/CustomStage")

    /// The fenced swift blocks of the README section `heading`, each with the last
    /// backquoted name on the non-empty line before it.
    static func snippets(in readme: String, section heading: String) -> [(file: String?, text: String)] {
        let lines = readme.components(separatedBy: "\n")
        guard let start = lines.firstIndex(of: heading) else { return [] }
        let end = lines[(start + 1)...].firstIndex { $0.hasPrefix("## ") || $0.hasPrefix("### ") } ?? lines.endIndex
        var result: [(file: String?, text: String)] = []
        var index = start + 1
        while index < end {
            guard lines[index] == "```swift" else { index += 1; continue }
            let before = lines[start..<index].last { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? ""
            let names = before.components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
            let close = lines[(index + 1)...].firstIndex(of: "```") ?? end
            result.append((names.last, lines[(index + 1)..<close].joined(separator: "\n") + "\n"))
            index = close + 1
        }
        return result
    }

    @Test func readmeShowsTheExamplePackageFiles() throws {
        let readme = try String(contentsOf: RunnerProcess.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = Self.snippets(in: readme, section: "### A package of your own")
        let files = blocks.compactMap(\.file)
        // A three-target Package.swift and a runner's main.swift, at the least.
        #expect(files.contains("Package.swift"), "\(files)")
        #expect(files.contains { $0.hasSuffix("/main.swift") }, "\(files)")
        #expect(files.count == blocks.count, "a swift block without a file name before it: \(files)")
        for block in blocks {
            guard let file = block.file else { continue }
            let actual = try String(contentsOf: Self.example.appendingPathComponent(file), encoding: .utf8)
            #expect(block.text == actual, "README's \(file) differs from Examples/CustomStage/\(file)")
        }
        let package = try #require(blocks.first { $0.file == "Package.swift" }?.text)
        #expect(package.contains(".target(") && package.contains(".executableTarget(") && package.contains(".testTarget("))
        #expect(package.contains(#".product(name: "Framework", package: "PipelineFramework")"#))
    }

    /// What the first README snippet of a runner lacked: a file that names
    /// `StageType` imports `Framework`, in the README and in the example.
    @Test func snippetsUsingStageTypeImportFramework() throws {
        let readme = try String(contentsOf: RunnerProcess.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for block in Self.snippets(in: readme, section: "### A package of your own") where block.text.contains("StageType") {
            #expect(block.text.contains("import Framework\n"), "\(block.file ?? "?") uses StageType without importing Framework")
        }
        let main = try String(contentsOf: Self.example.appendingPathComponent("Sources/custom-runner/main.swift"), encoding: .utf8)
        #expect(!main.contains("StageType") || main.contains("import Framework\n"))
    }
}
