import Foundation
import Testing
import Framework
import PipelineTesting
@testable import Stages

/// Streaming execution: bands flow between stages in bounded memory, with the same
/// output as whole artifacts.
@Suite struct StreamingTests {
    static let harness = PipelineHarness(registry: try! BuiltinStages.registry(adding: [StageType(CountingSource.self), StageType(TallySink.self)]))

    /// The bytes of `stage`'s output after running `yaml`.
    static func bytes(_ yaml: String, stage: String = "encode", jobs: Int, streaming: Bool, bandRows: Int? = nil) async throws -> [UInt8] {
        let outcome = try await harness.run(yaml, seed: 11, jobs: jobs, streaming: streaming, bandRows: bandRows)
        try #require(outcome.succeeded, "\(outcome.failure?.description ?? "")")
        let image = try #require(outcome.outputs[stage] as? EncodedImage)
        return image.bytes.withUnsafeBytes { Array($0) }
    }

    /// Every built-in chain from a generator to an encoder, on a 2000x1001 grid (a
    /// height that is not a multiple of 8, of a band or of a JPEG strip).
    static let chains: [(String, String)] = {
        let size = "width: 2000, height: 1001"
        func chain(_ generate: String, _ middle: String, _ encode: String) -> String {
            var yaml = "stages:\n  generate: {type: poisson, with: {\(size), \(generate)}}\n"
            var input = "generate"
            if !middle.isEmpty {
                yaml += "  normalize: {type: normalize, input: generate\(middle)}\n"
                input = "normalize"
            }
            return yaml + "  encode: {type: \(encode.split(separator: ",")[0]), input: \(input)\(encode.contains(",") ? ", with: {" + encode.split(separator: ",", maxSplits: 1)[1] + "}" : "")}\n"
        }
        return [
            ("reference jpeg", chain("lambda: 3", ",", "jpeg")),
            ("jpeg restart every 8 rows", chain("lambda: 3", ",", "jpeg, restart_rows: 1")),
            ("jpeg restart every 64 rows (the default before)", chain("lambda: 3", ",", "jpeg, restart_rows: 8")),
            ("jpeg without restarts", chain("lambda: 3", ",", "jpeg, restart_rows: 0")),
            ("jpeg progressive", chain("lambda: 3", ",", "jpeg, progressive: true")),
            ("jpeg optimized", chain("lambda: 3", ",", "jpeg, optimize: true")),
            ("bytes straight to jpeg", chain("lambda: 3", "", "jpeg")),
            ("fixed range", chain("lambda: 3", ", with: {range: [0, 8]}", "jpeg")),
            ("16-bit grid normalized (float bands)", chain("lambda: 300", ",", "jpeg")),
            ("png", chain("lambda: 3", ",", "png")),
            ("16-bit png from floats", chain("lambda: 3", ",", "png, bit_depth: '16'")),
            ("16-bit grid straight to png", chain("lambda: 300", "", "png")),
            ("png level 9 with filters", chain("lambda: 3", ",", "png, compression: 9, filter: all")),
        ]
    }()

    @Test(arguments: chains)
    func streamedOutputIsByteIdenticalToWholeArtifacts(_ name: String, _ yaml: String) async throws {
        let whole = try await Self.bytes(yaml, jobs: 2, streaming: false)
        for (jobs, bandRows) in [(1, nil), (2, nil), (3, 7), (2, 1), (4, 64), (2, 1_000_000)] as [(Int, Int?)] {
            let streamed = try await Self.bytes(yaml, jobs: jobs, streaming: true, bandRows: bandRows)
            #expect(streamed == whole, "\(name): --jobs \(jobs) --band-rows \(bandRows.map(String.init) ?? "auto") differs from the whole-artifact bytes")
        }
    }

    @Test func theLayoutStreamsTheReferenceChainWithARangePass() throws {
        let plan = try Self.harness.plan(Self.chains[0].1).get()
        let layout = StreamingLayout.layout(plan)
        #expect(layout.segments == [["generate", "normalize", "encode"]])
        #expect(layout.rangePasses["normalize"] == ["generate"])
        // The encoder's output is the pipeline's result: held whole.
        #expect(layout.materialised == ["encode"])
        #expect(StreamingLayout.whole(plan).segments.isEmpty)
    }

    /// The runner holds small data whole (faster, as lean), and a small input whole
    /// rather than computing it twice for a range pass.
    @Test func smallDataIsHeldWholeByDefault() throws {
        let minimum = StreamingLayout.defaultMinimumBytes
        let small = try Self.harness.plan(Self.chains[0].1).get()  // 2000x1001: 2 MB a stage
        #expect(StreamingLayout.layout(small, minimumBytes: minimum).segments.isEmpty)
        let medium = try Self.harness.plan(Self.chains[0].1.replacingOccurrences(of: "width: 2000, height: 1001", with: "width: 3000, height: 3000")).get()
        let layout = StreamingLayout.layout(medium, minimumBytes: minimum)  // 9 MB: streams, but no range pass
        #expect(layout.segments == [["normalize", "encode"]])
        #expect(layout.rangePasses.isEmpty)
        #expect(layout.notes["normalize"]?.contains("holding it costs less than a range pass") == true, "\(layout.notes)")
        let large = try Self.harness.plan(Self.chains[0].1.replacingOccurrences(of: "width: 2000, height: 1001", with: "width: 5000, height: 5000")).get()
        #expect(StreamingLayout.layout(large, minimumBytes: minimum).rangePasses["normalize"] == ["generate"])
    }

    @Test func aNonReplayableUpstreamMaterialisesBeforeMinMaxNormalize() throws {
        let yaml = """
            stages:
              source: {type: counting_source, with: {width: 16, height: 16, tag: layout}}
              normalize: {type: normalize, input: source}
              encode: {type: png, input: normalize}
            """
        let plan = try Self.harness.plan(yaml).get()
        let layout = StreamingLayout.layout(plan)
        #expect(layout.segments == [["normalize", "encode"]])
        #expect(layout.notes["normalize"]?.contains("'source' is not replayable") == true, "\(layout.notes)")
        #expect(layout.describe(plan).contains { $0.hasPrefix("materialised: ") })
    }

    @Test func aFailingSinkStopsTheGenerator() async throws {
        let tag = "fail-\(UUID().uuidString)"
        let yaml = """
            stages:
              source: {type: counting_source, with: {width: 1000, height: 100000, tag: \(tag)}}
              sink: {type: tally_sink, input: source, with: {tag: \(tag), fail_after: 3}}
            """
        let outcome = try await Self.harness.run(yaml, jobs: 2, bandRows: 10)
        #expect(!outcome.succeeded)
        #expect(outcome.failure?.stage == "sink", "\(outcome.failure?.description ?? "")")
        #expect(outcome.report.stages.first { $0.id == "source" }?.status == .cancelled)
        let tally = Tally.named(tag)
        // 10000 bands were to come; the source stopped within a pool's worth of the failure.
        #expect(tally.pushed < 20, "the source pushed \(tally.pushed) bands after the sink failed at its 3rd")
    }

    /// A stage whose own threads fail stops its streams; the failure is still its own,
    /// not its neighbour's, whatever the threads and bands.
    @Test func aFailureIsChargedToTheStageThatHadIt() async throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 500, height: 400, lambda: 200, dtype: uint8, seed: 1}}
              normalize: {type: normalize, input: generate, with: {range: [0, 300]}}
              encode: {type: jpeg, input: normalize}
            """
        for (jobs, bandRows) in [(1, 1), (3, 7), (2, nil)] as [(Int, Int?)] {
            let outcome = try await Self.harness.run(yaml, jobs: jobs, bandRows: bandRows)
            #expect(outcome.failure?.stage == "generate", "--jobs \(jobs): \(outcome.failure?.description ?? "no failure")")
            #expect(outcome.failure?.message.contains("does not fit in UInt8") == true)
        }
    }

    /// A stage that returns without finishing its output, or without reading all of
    /// its input, is a bug said as one, not a run that waits forever.
    @Test func aStageThatLeavesAStreamOpenFailsInsteadOfHanging() async throws {
        let tag = "open-\(UUID().uuidString)"
        for (source, sink, culprit) in [("finish: false", "", "source"), ("", ", stop_after: 2", "sink")] {
            let yaml = """
                stages:
                  source: {type: counting_source, with: {width: 100, height: 1000, tag: \(tag)\(source.isEmpty ? "" : ", " + source)}}
                  sink: {type: tally_sink, input: source, with: {tag: \(tag)\(sink)}}
                """
            let outcome = try await Self.harness.run(yaml, jobs: 2, bandRows: 10)
            #expect(outcome.failure?.code == .stageBug, "\(outcome.failure?.description ?? "no failure")")
            #expect(outcome.failure?.stage == culprit)
        }
    }

    @Test func aSlowSinkHoldsTheSourceBackInsteadOfGrowingMemory() async throws {
        let tag = "slow-\(UUID().uuidString)"
        let yaml = """
            stages:
              source: {type: counting_source, with: {width: 1000, height: 600, tag: \(tag)}}
              sink: {type: tally_sink, input: source, with: {tag: \(tag), delay_ms: 2}}
            """
        let outcome = try await Self.harness.run(yaml, jobs: 2, bandRows: 2)
        #expect(outcome.succeeded, "\(outcome.failure?.description ?? "")")
        let tally = Tally.named(tag)
        #expect(tally.consumed == 300)
        // Bands in flight never exceed the source's pool (jobs + 2 buffers).
        #expect(tally.maxOutstanding <= 4, "up to \(tally.maxOutstanding) bands were in flight")
        let flow = try #require(outcome.report.stages.first { $0.id == "source" }?.flow)
        #expect(flow.bandsOut == 300)
        #expect(flow.waitingForOutputSeconds > 0.2, "the source waited \(flow.waitingForOutputSeconds) s for the slow sink")
        let sinkFlow = try #require(outcome.report.stages.first { $0.id == "sink" }?.flow)
        #expect(sinkFlow.bandsIn == 300 && sinkFlow.bytesIn == 600_000)
    }

    @Test func aRetryRunsTheWholeSegmentAgain() async throws {
        let tag = "retry-\(UUID().uuidString)"
        let yaml = """
            stages:
              source: {type: counting_source, with: {width: 100, height: 1000, tag: \(tag)}}
              sink:
                type: tally_sink
                input: source
                with: {tag: \(tag), fail_after: 5, fail_attempts: 1}
                retries: {count: 1, delay: 10ms}
            """
        let outcome = try await Self.harness.run(yaml, jobs: 2, bandRows: 10)
        #expect(outcome.succeeded, "\(outcome.failure?.description ?? "")")
        // The source ran again from its first band: its attempt 2 pushed all 100.
        #expect(outcome.report.stages.map(\.attempts) == [2, 2])
        #expect(Tally.named(tag).pushed >= 100 + 5)
        #expect(outcome.report.stages.first { $0.id == "source" }?.flow?.bandsOut == 100)
    }

    @Test func cancellingMidStreamLeavesNoFiles() throws {
        let box = try HardeningTests.Sandbox()
        defer { box.remove() }
        let file = try box.write("""
            stages:
              generate: {type: poisson, with: {width: 8192, height: 8192, lambda: 3, seed: 1}}
              encode: {type: png, input: generate, with: {compression: 9}}
              store: {type: filesystem, input: encode, with: {path: out/image.png}}
            """)
        let result = try box.run([file, "--jobs", "2"], signals: [(SIGINT, after: .milliseconds(700))])
        #expect(result.status == 130, "\(result.stderr)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: box.root.appendingPathComponent("out").path)) ?? []
        #expect(left.isEmpty, "left in out/: \(left)")
        #expect(box.leftovers.isEmpty, "left in TMPDIR: \(box.leftovers)")
    }

    @Test func an8192SquarePNGStreamsInBoundedMemory() throws {
        let box = try HardeningTests.Sandbox()
        defer { box.remove() }
        let file = try box.write("""
            stages:
              generate: {type: poisson, with: {width: 8192, height: 8192, lambda: 3, seed: 1}}
              normalize: {type: normalize, input: generate}
              encode: {type: png, input: normalize, with: {compression: 1}}
              store: {type: filesystem, input: encode, with: {path: out/image.png}}
            """)
        for streaming in [true, false] {
            let result = try box.run([file, "--report", "report.json", "--set", "stages.store.with.overwrite=true"]
                                     + (streaming ? [] : ["--no-stream"]), limit: .seconds(300))
            #expect(result.status == 0, "\(result.stderr)")
            let report = try JSONDecoder().decode(ReportMemory.self, from: Data(contentsOf: box.root.appendingPathComponent("report.json")))
            let peak = report.memory.measured_peak_bytes / 1_048_576
            if streaming {
                // Whole, the grid alone is 64 MiB and the PNG about as much again.
                #expect(peak < 72, "peak RSS \(peak) MiB while streaming")
                #expect(report.memory.streamed == [["generate", "normalize", "encode", "store"]])
            } else {
                #expect(peak > 100, "peak RSS \(peak) MiB holding whole artifacts: the bound above would not tell them apart")
            }
        }
    }

    struct ReportMemory: Decodable {
        struct Memory: Decodable {
            var measured_peak_bytes: Double
            var streamed: [[String]]
        }
        var memory: Memory
    }

    @Test func theMemoryLimitRefusesAPlanThatCannotFitAndNamesTheStage() throws {
        let box = try HardeningTests.Sandbox()
        defer { box.remove() }
        let file = try box.write("""
            stages:
              generate: {type: poisson, with: {width: 20000, height: 20000, lambda: 3, seed: 1}}
              encode: {type: jpeg, input: generate}
              store: {type: filesystem, input: encode, with: {path: out/image.jpg}}
            """)
        // Streamed, it needs tens of MB; whole, the grid alone is 400 MB.
        let streamed = try box.run(["validate", "-v", file, "--memory-limit", "300M"])
        #expect(streamed.status == 0, "\(streamed.stderr)")
        #expect(streamed.stderr.contains("streamed: generate -> encode -> store"), "\(streamed.stderr)")
        let whole = try box.run([file, "--no-stream", "--memory-limit", "300M"])
        #expect(whole.status == 2, "\(whole.stderr)")
        #expect(whole.stderr.contains("stage 'generate' must hold its output") && whole.stderr.contains("400.0 MB"), "\(whole.stderr)")
        #expect(!box.exists("out"))
        let bad = try box.run([file, "--memory-limit", "lots"])
        #expect(bad.status == 2 && bad.stderr.contains("--memory-limit must be a size"), "\(bad.stderr)")
    }

    @Test func graphMarksStreamedEdges() throws {
        let box = try HardeningTests.Sandbox()
        defer { box.remove() }
        let path = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path
        let result = try box.run(["graph", path, "--set", "params.size=8192"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("\"generate\" -> \"normalize\" [label=\"Grid<UInt8> (streamed)\", style=bold"), "\(result.stdout)")
        #expect(result.stdout.contains("estimated peak memory"))
        // At 2048 the job's data (4 MB a stage) is small: held whole, plain edges, unless --stream.
        let small = try box.run(["graph", path])
        #expect(small.stdout.contains("\"generate\" -> \"normalize\" [label=\"Grid<UInt8>\"];"), "\(small.stdout)")
        let forced = try box.run(["graph", path, "--stream"])
        #expect(forced.stdout.contains("(streamed)"))
        let stages = try box.run(["stages"])
        #expect(stages.stdout.contains("poisson: A grid of independent Poisson(lambda) samples.\n  inputs:  none (a source)\n"
            + "  output:  Grid<UInt8|UInt16|UInt32> (from lambda and dtype)\n  streams: its output a band (or chunk) at a time; replayable"), "\(stages.stdout)")
        #expect(stages.stdout.contains("  streams: no: takes and gives whole artifacts"))
        let json = try box.run(["stages", "normalize", "--format", "json"])
        #expect(json.stdout.contains("\"needs_input_range\" : true"), "\(json.stdout)")
    }
}

/// What a counting source pushed and a tally sink took, by tag.
final class Tally: @unchecked Sendable {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var all: [String: Tally] = [:]
    static func named(_ tag: String) -> Tally {
        lock.lock(); defer { lock.unlock() }
        if let tally = all[tag] { return tally }
        let tally = Tally()
        all[tag] = tally
        return tally
    }

    private let lock = NSLock()
    private(set) var pushed = 0
    private(set) var consumed = 0
    private(set) var maxOutstanding = 0

    func push() {
        lock.lock(); pushed += 1; maxOutstanding = max(maxOutstanding, pushed - consumed); lock.unlock()
    }

    func consume() {
        lock.lock(); consumed += 1; lock.unlock()
    }
}

/// A streaming grid source that is not replayable and counts what it pushes.
struct CountingSource: StreamingStage {
    static let spec = StageSpec(
        name: "counting_source", summary: "Rows of bytes, counted.",
        parameters: [
            ParameterSpec("width", .integer, range: .atLeast(1), doc: "columns"),
            ParameterSpec("height", .integer, range: .atLeast(1), doc: "rows"),
            ParameterSpec("tag", .string, doc: "the tally to count in"),
            ParameterSpec("finish", .boolean, default: .boolean(true), doc: "false: return without finishing the stream (a bug)"),
        ],
        output: .fixed(.grid(.uint8)))

    let width: Int, height: Int, tag: String, finish: Bool

    init(parameters: Parameters) throws {
        width = parameters.int("width")
        height = parameters.int("height")
        tag = parameters.string("tag")
        finish = parameters.bool("finish")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        let width = width
        return try Grid<UInt8>(width: width, height: height) { buffer in
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index / width) }
        }
    }

    static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: false, output: true)
    }

    func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let output = try io.requireGridOutput()
        try output.begin(GridStreamInfo(width: width, height: height, elementType: .uint8))
        let (pool, rows) = try io.bandPool(rowBytes: width, height: height, purpose: "test band")
        let tally = Tally.named(tag)
        var row = 0
        while row < height {
            let end = min(height, row + rows)
            let band = GridBand(rows: row..<end, lease: try pool.take())
            let elements = band.mutableElements(UInt8.self, width: width)
            for index in elements.indices { elements[index] = UInt8(truncatingIfNeeded: row + index / width) }
            try output.push(band, byteCount: elements.count)
            tally.push()
            row = end
        }
        if finish { output.finish() }
        return nil
    }
}

/// A streaming grid sink that takes its time, or fails after some bands.
struct TallySink: StreamingStage {
    static let spec = StageSpec(
        name: "tally_sink", summary: "Counts bands; slowly, or failing.",
        parameters: [
            ParameterSpec("tag", .string, doc: "the tally to count in"),
            ParameterSpec("delay_ms", .integer, default: .integer(0), range: .atLeast(0), doc: "sleep per band"),
            ParameterSpec("fail_after", .integer, default: .integer(-1), doc: "fail at this band; -1 never"),
            ParameterSpec("fail_attempts", .integer, default: .integer(1000), doc: "fail (retryably) in this many attempts only"),
            ParameterSpec("stop_after", .integer, default: .integer(-1), doc: "return after this many bands, the rest unread (a bug)"),
        ],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "rows")],
        output: .fixed(.storedObject))

    let tag: String, delay: Int, failAfter: Int, failAttempts: Int, stopAfter: Int

    init(parameters: Parameters) throws {
        tag = parameters.string("tag")
        delay = parameters.int("delay_ms")
        failAfter = parameters.int("fail_after")
        failAttempts = parameters.int("fail_attempts")
        stopAfter = parameters.int("stop_after")
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        StoredObject(uri: "test://whole", byteCount: 0, sha256: "")
    }

    static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: true, output: false)
    }

    func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let input = try io.requireGridInput()
        _ = try input.start()
        let tally = Tally.named(tag)
        var count = 0
        while let band = try input.next() {
            defer { band.release() }
            count += 1
            if count == failAfter && context.attempt <= failAttempts {
                throw PipelineError("the sink failed at band \(count)", retryable: failAttempts < 1000, code: .io)
            }
            if delay > 0 { usleep(useconds_t(delay * 1000)) }
            tally.consume()
            if count == stopAfter { break }
        }
        return StoredObject(uri: "test://streamed", byteCount: count, sha256: "")
    }
}

/// Streaming tests that time the runner: run on their own (scripts/test's timed phase),
/// since a timer in a test process whose other tests keep every thread busy fires late.
@Suite struct StreamingTimingTests {
    /// One deadline bounds a segment's attempt, its range pass included.
    @Test func aTimeoutBoundsTheRangePassToo() async throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 8192, height: 8192, lambda: 3, seed: 1}}
              normalize: {type: normalize, input: generate}
              encode: {type: png, input: normalize, timeout: 300ms}
            """
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = try await StreamingTests.harness.run(yaml, jobs: 2)
        let elapsed = clock.now - start
        #expect(outcome.failure?.code == .timeout && outcome.failure?.stage == "encode", "\(outcome.failure?.description ?? "")")
        #expect(elapsed < .seconds(1.5), "the run ended after \(elapsed)")
    }

    @Test func aTimeoutOfOneStageEndsTheSegment() async throws {
        let tag = "timeout-\(UUID().uuidString)"
        let yaml = """
            stages:
              source: {type: counting_source, with: {width: 100, height: 100000, tag: \(tag)}}
              sink:
                type: tally_sink
                input: source
                with: {tag: \(tag), delay_ms: 5}
                timeout: 300ms
            """
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = try await StreamingTests.harness.run(yaml, jobs: 2, bandRows: 10)
        #expect(clock.now - start < .seconds(5))
        #expect(outcome.failure?.code == .timeout, "\(outcome.failure?.description ?? "")")
        #expect(outcome.failure?.stage == "sink")
        #expect(outcome.report.stages.first { $0.id == "source" }?.status == .cancelled)
    }
}
