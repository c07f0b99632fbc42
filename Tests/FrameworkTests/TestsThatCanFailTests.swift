import Foundation
import PipelineTesting
import Testing
@testable import Framework

/// The `memory` sink keeps each harness run's bytes apart.
@Suite struct MemoryStoreIsolationTests {
    let harness = PipelineHarness(registry: try! testRegistry.adding([StageType(TextBytes.self)]))

    func keep(_ text: String) -> String {
        "stages:\n  make: {type: text-bytes, with: {text: \(text)}}\n  keep: {type: memory, input: make}\n"
    }

    @Test func twoRunsOfOnePipelineKeepTheirOwnBytes() async throws {
        let first = try await harness.run(keep("first"))
        let second = try await harness.run(keep("second"))
        let firstObject = try #require(first.outputs["keep"] as? StoredObject)
        let secondObject = try #require(second.outputs["keep"] as? StoredObject)
        #expect(firstObject.uri != secondObject.uri)
        #expect(MemoryStore.shared.bytes(of: firstObject) == Array("first".utf8))
        #expect(MemoryStore.shared.bytes(of: secondObject) == Array("second".utf8))
    }

    @Test func runsAtTheSameTimeKeepTheirOwnBytes() async throws {
        let texts = (0..<8).map { "text\($0)" }
        let stored = try await withThrowingTaskGroup(of: (String, StoredObject?).self) { group in
            for text in texts {
                group.addTask { (text, try await harness.run(keep(text)).outputs["keep"] as? StoredObject) }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for text in texts {
            let object = try #require(stored[text] ?? nil)
            #expect(MemoryStore.shared.bytes(of: object) == Array(text.utf8), "\(text)")
        }
    }

    @Test func aRunIDCanStillBeChosen() async throws {
        let id = "chosen-" + UUID().uuidString.lowercased()
        let outcome = try await harness.run(keep("mine"), runID: id)
        #expect(outcome.report.runID == id)
        #expect(MemoryStore.shared["\(id)/keep"] == Array("mine".utf8))
    }
}

/// What a stage without a `seed` gets: derived from the run seed and its stage id, so
/// `--seed N` reproduces a run and two stages never share a stream.
@Suite(.serialized) struct SeedDerivationTests {
    let registry = try! testRegistry.adding([StageType(SeedProbe.self)])
    let pipeline = "stages:\n  a: {type: seed-probe}\n  b: {type: seed-probe}\n  c: {type: seed-probe, with: {seed: 77}}\n"

    /// The seed each stage ran with, by stage id.
    func seeds(runSeed: UInt64) async throws -> [String: UInt64] {
        let plan = try PipelineHarness(registry: registry).plan(pipeline).get()
        let outcome = await Executor(plan: plan, options: RunOptions(runID: "seeds", seed: runSeed, jobs: 2)).run()
        #expect(outcome.succeeded)
        var seeds: [String: UInt64] = [:]
        for id in ["a", "b", "c"] {
            let seed = try #require(SeedProbe.seed(in: outcome.outputs[id]))
            seeds[id] = seed
        }
        return seeds
    }

    @Test func stagesGetDifferentSeedsAndTheRunSeedChangesThemAll() async throws {
        let first = try await seeds(runSeed: 1234)
        let other = try await seeds(runSeed: 1235)
        #expect(first["a"] != first["b"])
        #expect(first["a"] != other["a"])
        #expect(first["b"] != other["b"])
        // Neither is the run seed itself: a stage never gets the raw run seed.
        #expect(first["a"] != 1234 && first["b"] != 1234)
    }

    @Test func anExplicitSeedIsKeptWhateverTheRunSeed() async throws {
        #expect(try await seeds(runSeed: 1234)["c"] == 77)
        #expect(try await seeds(runSeed: 99)["c"] == 77)
    }

    @Test func derivationSpreadsNearbyRunSeedsAndIDs() {
        // Adjacent run seeds and one-letter ids must still give unrelated seeds.
        var seen: Set<UInt64> = []
        for runSeed in UInt64(0)..<64 {
            for id in ["a", "b", "c", "ab", "ba"] {
                seen.insert(SeedDerivation.seed(runSeed: runSeed, stageID: id))
            }
        }
        #expect(seen.count == 64 * 5)
    }
}

/// Output types that depend on parameters and inputs are resolved by the planner.
@Suite struct OutputResolverTests {
    let registry = try! testRegistry.adding([StageType(Widen.self)])

    @Test func thePlannerUsesTheResolvedTypeOnTheNextEdge() throws {
        let text = "stages:\n  a: {type: constant}\n  w: {type: widen, input: a, with: {bits: BITS}}\n  p: {type: pass, input: w}\n"
        let plan = try planYAML(text.replacingOccurrences(of: "BITS", with: "8"), registry: registry).get()
        #expect(plan.stage("w")?.outputType == .grid(.uint8))
        guard case .failure(let error) = planYAML(text.replacingOccurrences(of: "BITS", with: "16"), registry: registry) else {
            Issue.record("'pass' accepted a Grid<UInt16>")
            return
        }
        #expect(error.diagnostics.map(\.message) == ["stage 'p' (pass) accepts Grid<UInt8>, but 'w' (widen) produces Grid<UInt16>"])
    }

    @Test func aResolverErrorIsReportedAtTheParameter() {
        let source = Marked("stages:\n  a: {type: constant}\n  w: {type: widen, input: a, with: {bits: ‸12}}\n")
        guard case .failure(let error) = planYAML(source.text, registry: registry) else {
            Issue.record("planned 12-bit elements")
            return
        }
        #expect(error.diagnostics.map(\.message) == ["parameter 'bits' of stage 'w' (widen) must be 8, 16 or 32"])
        #expect(error.diagnostics.first?.location == source.locations.first)
    }
}

/// Produces the bytes of its `text` parameter.
struct TextBytes: Stage {
    static let spec = StageSpec(
        name: "text-bytes", summary: "The UTF-8 bytes of a text.",
        parameters: [ParameterSpec("text", .string, doc: "the text")],
        output: .fixed(.encodedImage))

    let text: String

    init(parameters: Parameters) throws {
        text = parameters.string("text")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        EncodedImage(bytes: Array(text.utf8), format: "txt", mediaType: "text/plain", width: 1, height: 1)
    }
}

/// A 2x1 grid holding the seed the stage ran with: its high and low 32 bits.
struct SeedProbe: Stage {
    static let spec = StageSpec(
        name: "seed-probe", summary: "Shows its seed.",
        parameters: [.seed()],
        output: .fixed(.grid(.uint32)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try Grid<UInt32>(width: 2, height: 1, values: [UInt32(context.seed >> 32), UInt32(truncatingIfNeeded: context.seed)])
    }

    /// The seed a probe's output holds.
    static func seed(in artifact: (any Artifact)?) -> UInt64? {
        guard let grid = artifact as? Grid<UInt32>, grid.elements.count == 2 else { return nil }
        return UInt64(grid.elements[0]) << 32 | UInt64(grid.elements[1])
    }
}

/// Passes a UInt8 grid on as a grid of `bits`-bit elements: an output type that
/// depends on a parameter.
struct Widen: Stage {
    static let spec = StageSpec(
        name: "widen", summary: "Widens grid elements.",
        parameters: [ParameterSpec("bits", .integer, default: .integer(16), doc: "8, 16 or 32")],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "a grid")],
        output: .computed([.grid(.uint8), .grid(.uint16), .grid(.uint32)], description: "Grid<UInt8|UInt16|UInt32> (from bits)") { context in
            switch context.parameters.int("bits") {
            case 8: .grid(.uint8)
            case 16: .grid(.uint16)
            case 32: .grid(.uint32)
            default: throw ParameterError("bits", "must be 8, 16 or 32")
            }
        })

    let bits: Int

    init(parameters: Parameters) throws {
        bits = parameters.int("bits")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let grid = try inputs.get(Grid<UInt8>.self)
        switch bits {
        case 8: return grid
        case 16: return try Grid<UInt16>(width: grid.width, height: grid.height, values: grid.elements.map(UInt16.init))
        default: return try Grid<UInt32>(width: grid.width, height: grid.height, values: grid.elements.map(UInt32.init))
        }
    }
}
