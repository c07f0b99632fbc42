import Foundation
import Testing
import Framework
@testable import Stages

@Suite struct PoissonStageTests {
    func generate(_ values: [String: ParameterValue], seed: UInt64 = 7, concurrency: Int = 2) async throws -> any Artifact {
        let stage = try PoissonStage(parameters: parameters(PoissonStage.spec, values))
        return try await stage.run(inputs: StageInputs([:]), context: testContext(seed: seed, concurrency: concurrency))
    }

    /// For the run report the generator counts its byte grid's values as it writes
    /// them: exactly the grid's counts, for any number of workers and a last block
    /// that is short; the range follows from them. Without a report it counts nothing.
    @Test(arguments: [1, 2, 3])
    func theGeneratorsRecordedCountsAreTheGridsCounts(concurrency: Int) async throws {
        let stage = try PoissonStage(parameters: parameters(PoissonStage.spec, ["width": .integer(700), "height": .integer(301), "lambda": .number(3)]))
        let counted = try await stage.run(inputs: StageInputs([:]), context: testContext(seed: 11, concurrency: concurrency, gathersDigests: true))
        let grid = try #require(counted as? Grid<UInt8>)
        var expected = [Int](repeating: 0, count: 256)
        for value in grid.elements { expected[Int(value)] += 1 }
        #expect(grid.recordedValueCounts == expected)
        let (low, high) = try #require(grid.valueRange())
        #expect(low == Double(grid.elements.min()!) && high == Double(grid.elements.max()!))
        let plain = try await stage.run(inputs: StageInputs([:]), context: testContext(seed: 11, concurrency: concurrency))
        #expect((plain as? Grid<UInt8>)?.recordedValueCounts == nil)
        #expect((plain as? Grid<UInt8>)?.elements == grid.elements)
    }

    @Test func meanAndVarianceMatchLambda() async throws {
        for lambda in [0.5, 3.0, 30.0, 1000.0] {
            let artifact = try await generate(["width": .integer(512), "height": .integer(512), "lambda": .number(lambda)])
            let values: [Double]
            switch artifact {
            case let grid as Grid<UInt8>: values = grid.elements.map(Double.init)
            case let grid as Grid<UInt16>: values = grid.elements.map(Double.init)
            default: Issue.record("unexpected \(artifact.artifactType)"); return
            }
            let n = Double(values.count)
            let mean = values.reduce(0, +) / n
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
            // Standard error of the mean is sqrt(lambda / n); allow 5 of them.
            #expect(abs(mean - lambda) < 5 * (lambda / n).squareRoot(), "lambda \(lambda): mean \(mean)")
            #expect(abs(variance / lambda - 1) < 0.03, "lambda \(lambda): variance \(variance)")
        }
    }

    @Test func sameSeedSameBytesWhateverTheConcurrency() async throws {
        let values: [String: ParameterValue] = ["width": .integer(300), "height": .integer(700), "lambda": .number(3)]
        let one = try #require(try await generate(values, seed: 99, concurrency: 1) as? Grid<UInt8>)
        let two = try #require(try await generate(values, seed: 99, concurrency: 2) as? Grid<UInt8>)
        let five = try #require(try await generate(values, seed: 99, concurrency: 5) as? Grid<UInt8>)
        #expect(one.elements == two.elements)
        #expect(one.elements == five.elements)
        let other = try #require(try await generate(values, seed: 100, concurrency: 2) as? Grid<UInt8>)
        #expect(other.elements != one.elements)
    }

    @Test func elementTypeFollowsLambda() throws {
        func output(_ lambda: Double, _ dtype: String = "auto") throws -> ArtifactType {
            try PoissonStage.spec.output.resolve(OutputContext(
                parameters: parameters(PoissonStage.spec, ["width": .integer(1), "height": .integer(1), "lambda": .number(lambda), "dtype": .string(dtype)]),
                inputTypes: [:]))
        }
        #expect(try output(3) == .grid(.uint8))
        #expect(try output(100) == .grid(.uint8))
        #expect(try output(200) == .grid(.uint16))
        #expect(try output(1e6) == .grid(.uint32))
        #expect(try output(3, "uint16") == .grid(.uint16))
        #expect(throws: ParameterError.self) { try output(300, "uint8") }
    }

    @Test func explicitNarrowTypeOverflowIsAnError() async throws {
        // lambda 200 in uint8: the mean fits but many samples do not.
        await #expect(throws: StageFailure.self) {
            _ = try await generate(["width": .integer(64), "height": .integer(64), "lambda": .number(250), "dtype": .string("uint8")])
        }
    }

    /// A grid held whole that cannot fit is refused before the run, by the plan's
    /// memory estimate; streamed, the same grid needs a few bands.
    @Test func gridLargerThanMemoryIsRefusedAtCheckTime() throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 10000000, height: 10000000, lambda: 3}}
            """
        let loaded = PipelineLoader().load(bytes: Array(yaml.utf8), file: "big.yaml")
        let plan = try Planner(registry: try BuiltinStages.registry()).plan(loaded).get()
        let layout = StreamingLayout.layout(plan)
        let problem = try #require(layout.memoryProblem(plan, limit: 16e9, limitDescription: "test"))
        #expect(problem.contains("stage 'generate' must hold its output (Grid<UInt8> 10000000x10000000) whole, 100.0 TB"), "\(problem)")
        let streamed = try Planner(registry: try BuiltinStages.registry()).plan(PipelineLoader().load(bytes: Array((yaml + """

              encode: {type: png, input: generate}
              store: {type: filesystem, input: encode, with: {path: out/x.png}}
            """).utf8), file: "big.yaml")).get()
        #expect(StreamingLayout.layout(streamed).peakBytes < 1e9)
    }
}

@Suite struct NormalizeStageTests {
    func normalize<T: GridElement>(_ grid: Grid<T>, range: [Double]? = nil) async throws -> [Float] {
        var values: [String: ParameterValue] = [:]
        if let range { values["range"] = .list(range.map { .number($0) }) }
        let stage = try NormalizeStage(parameters: Parameters(values))
        let output = try await stage.run(inputs: StageInputs(["input": grid]), context: testContext())
        return try #require(output as? Grid<Float>).elements
    }

    @Test func minMaxMapsToTheUnitInterval() async throws {
        #expect(try await normalize(Grid<UInt8>(width: 4, height: 1, values: [2, 4, 6, 10])) == [0, 0.25, 0.5, 1])
        #expect(try await normalize(Grid<UInt16>(width: 3, height: 1, values: [1000, 3000, 2000])) == [0, 1, 0.5])
        #expect(try await normalize(Grid<Double>(width: 3, height: 1, values: [-1, 1, 0])) == [0, 1, 0.5])
        #expect(try await normalize(Grid<UInt32>(width: 2, height: 1, values: [7, 9])) == [0, 1])
    }

    @Test func parallelChunksMatchTheFormula() async throws {
        var rng = Xoshiro256StarStar(seed: 3)
        let values = (0..<(1000 * 700)).map { _ in UInt16(truncatingIfNeeded: rng.next() % 50_000 + 1000) }
        let grid = try Grid<UInt16>(width: 1000, height: 700, values: values)
        let stage = try NormalizeStage(parameters: Parameters())
        let output = try await stage.run(inputs: StageInputs(["input": grid]), context: testContext(concurrency: 3))
        let floats = try #require(output as? Grid<Float>).elements
        let low = Double(values.min()!), high = Double(values.max()!)
        #expect(floats.count == values.count)
        #expect(zip(values, floats).allSatisfy { Float((Double($0) - low) / (high - low)) == $1 })
    }

    @Test func constantGridMapsToZero() async throws {
        #expect(try await normalize(Grid<UInt8>(width: 3, height: 1, values: [5, 5, 5])) == [0, 0, 0])
        #expect(try await normalize(Grid<Float>(width: 2, height: 1, values: [2, 2])) == [0, 0])
    }

    @Test func fixedRangeClamps() async throws {
        #expect(try await normalize(Grid<UInt8>(width: 4, height: 1, values: [0, 5, 10, 20]), range: [0, 10]) == [0, 0.5, 1, 1])
        #expect(throws: ParameterError.self) {
            _ = try NormalizeStage(parameters: Parameters(["range": .list([.number(3), .number(3)])]))
        }
    }

    /// A byte grid is normalised by table: the output shares the input's bytes and
    /// holds the 256 mapped values, and reads exactly like the dense mapping.
    @Test func byteGridsComeOutDictionaryEncoded() async throws {
        var rng = Xoshiro256StarStar(seed: 11)
        let values = (0..<(300 * 200)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 19 + 3) }
        let grid = try Grid<UInt8>(width: 300, height: 200, values: values)
        for range in [nil, [5.0, 12.0]] as [[Double]?] {
            var parameters: [String: ParameterValue] = [:]
            if let range { parameters["range"] = .list(range.map { .number($0) }) }
            let stage = try NormalizeStage(parameters: Parameters(parameters))
            let output = try #require(try await stage.run(inputs: StageInputs(["input": grid]), context: testContext()) as? Grid<Float>)
            let encoding = try #require(output.dictionaryEncoding)
            #expect(encoding.indices === grid)
            let (low, high, clamp) = range.map { ($0[0], $0[1], true) } ?? (3.0, 21.0, false)
            let expected = values.map { value -> Float in
                let mapped = (Double(value) - low) / (high - low)
                return Float(clamp ? min(max(mapped, 0), 1) : mapped)
            }
            #expect(output.elements == expected)
            #expect(output[299, 199] == expected.last)
            let range = try #require(output.valueRange())
            #expect(range.min == Double(expected.min()!) && range.max == Double(expected.max()!))
        }
    }

    @Test func nanIsIgnoredForTheRangeAndKept() async throws {
        let output = try await normalize(Grid<Float>(width: 3, height: 1, values: [0, .nan, 4]))
        #expect(output[0] == 0 && output[2] == 1 && output[1].isNaN)
    }
}

@Suite struct EncoderStageTests {
    @Test func jpegStageEncodesUnitFloats() async throws {
        let stage = try JPEGStage(parameters: parameters(JPEGStage.spec, [:]))
        let grid = try Grid<Float>(width: 16, height: 8, values: Array(repeating: 0.5, count: 128))
        let output = try await stage.run(inputs: StageInputs(["input": grid]), context: testContext())
        let image = try #require(output as? EncodedImage)
        #expect(image.format == "jpeg" && image.mediaType == "image/jpeg" && image.width == 16 && image.height == 8)
        let decoded = try JPEGCodec.decode(image.bytes)
        #expect(decoded.pixels.allSatisfy { abs(Int($0) - 128) <= 1 })
        #expect(image.summary().sha256?.count == 64)
    }

    @Test func pngStageWritesSixteenBitForUInt16() async throws {
        let stage = try PNGStage(parameters: parameters(PNGStage.spec, [:]))
        let grid = try Grid<UInt16>(width: 3, height: 1, values: [0, 40000, 65535])
        let output = try await stage.run(inputs: StageInputs(["input": grid]), context: testContext())
        let image = try PNGCodec.decode(try #require(output as? EncodedImage).bytes)
        #expect(image.bitDepth == 16 && image.samples16 == [0, 40000, 65535])
    }

    @Test func pngRefusesEightBitForUInt16AtCheckTime() throws {
        let context = OutputContext(parameters: parameters(PNGStage.spec, ["bit_depth": .string("8")]), inputTypes: ["input": .grid(.uint16)])
        #expect(throws: ParameterError.self) { try PNGStage.spec.output.resolve(context) }
    }
}

@Suite struct BuiltinPipelineChecks {
    func problems(_ yaml: String) throws -> [Diagnostic] {
        let loaded = PipelineLoader(environment: [:]).load(bytes: Array(yaml.utf8), file: "t.yaml")
        switch Planner(registry: try BuiltinStages.registry()).plan(loaded) {
        case .success: return []
        case .failure(let error): return error.diagnostics
        }
    }

    @Test func jpegRefusesSixteenBitGridsAtCheckTime() throws {
        let found = try problems("""
            stages:
              generate: {type: poisson, with: {width: 8, height: 8, lambda: 3, dtype: uint16}}
              encode: {type: jpeg, input: generate}
            """)
        #expect(found.count == 1)
        #expect(found.first?.message == "stage 'encode' (jpeg) accepts Grid<Float32> or Grid<UInt8>, but 'generate' (poisson) produces Grid<UInt16>")
        #expect(found.first?.help == "put a 'normalize' stage between them to get Grid<Float32>")
        #expect(found.first?.location == SourceLocation(file: "t.yaml", line: 3, column: 31))
    }

    @Test func lambdaMustBeFiniteAndPositive() throws {
        for bad in ["0", "-1", ".nan", ".inf", "2e9"] {
            let found = try problems("stages:\n  g: {type: poisson, with: {width: 8, height: 8, lambda: \(bad)}}\n")
            #expect(found.first?.message.hasPrefix("parameter 'lambda' of stage 'g' (poisson) must be") == true, "\(bad): \(found)")
        }
    }
}

@Suite struct FilesystemStageTests {
    func store(_ bytes: [UInt8], path: String, overwrite: Bool = false, values: [String: String] = [:]) async throws -> StoredObject {
        let stage = try FilesystemStage(parameters: Parameters(["path": .string(path), "overwrite": .boolean(overwrite)]))
        let image = EncodedImage(bytes: bytes, format: "jpeg", mediaType: "image/jpeg", width: 2, height: 3)
        let output = try await stage.run(inputs: StageInputs(["input": image]), context: testContext(values: values))
        return try #require(output as? StoredObject)
    }

    @Test func writesAtomicallyIntoNewDirectories() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let stored = try await store([1, 2, 3], path: directory.path + "/a/{run_id}/img_{width}x{height}.{format}")
        let expected = directory.path + "/a/run-1/img_2x3.jpeg"
        #expect(stored.uri == URL(fileURLWithPath: expected).absoluteString)
        #expect(stored.byteCount == 3)
        #expect(stored.sha256 == "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81")
        #expect(FileManager.default.contents(atPath: expected) == Data([1, 2, 3]))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path + "/a/run-1")
        #expect(leftovers == ["img_2x3.jpeg"])
    }

    @Test func refusesToOverwriteUnlessAsked() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.path + "/x.bin"
        _ = try await store([1], path: path)
        do {
            _ = try await store([2], path: path)
            Issue.record("overwrote an existing file")
        } catch let error as StageFailure {
            #expect(error.message == "'\(path)' already exists and holds other bytes of the same size (another SHA-256); "
                + "to replace it, run again with --set stages.test.with.overwrite=true (or set 'overwrite: true' in the file)")
            #expect(!error.isRetryable)
        }
        #expect(FileManager.default.contents(atPath: path) == Data([1]))
        do {
            _ = try await store([1, 1], path: path)
            Issue.record("overwrote an existing file of another size")
        } catch let error as StageFailure {
            #expect(error.message.hasPrefix("'\(path)' already exists and holds 1 bytes, not the 2 to be written; "))
        }
        // The same bytes: a re-run meeting its own output succeeds and leaves the file alone.
        let inode = try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
        let again = try await store([1], path: path)
        #expect(again.byteCount == 1)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int == inode)
        _ = try await store([3], path: path, overwrite: true)
        #expect(FileManager.default.contents(atPath: path) == Data([3]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["x.bin"])
    }

    @Test func unwritableDirectoryIsAClearError() async throws {
        let directory = try temporaryDirectory()
        defer {
            chmod(directory.path, 0o755)
            try? FileManager.default.removeItem(at: directory)
        }
        // A regular file where a directory should be works even as root.
        _ = FileManager.default.createFile(atPath: directory.path + "/blocker", contents: Data())
        do {
            _ = try await store([1], path: directory.path + "/blocker/sub/x.bin")
            Issue.record("wrote below a regular file")
        } catch let error as StageFailure {
            #expect(error.message.hasPrefix("cannot create directory '\(directory.path)/blocker/sub'"))
        }
    }

    @Test func valuesCannotEscapeTheDirectory() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for bad in ["..", "../etc", "a/b", "x\ny"] {
            await #expect(throws: StageFailure.self) {
                _ = try await store([1], path: directory.path + "/{name}/x.bin", values: ["name": bad])
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}
