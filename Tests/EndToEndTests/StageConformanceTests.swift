import Foundation
import Framework
import PipelineTesting
import Stages
import TestFixtures
import Testing

/// Every built-in stage through the conformance kit, with inputs large enough that
/// the cancellation check cancels it mid-run (4096x4096 grids for the transforms and
/// encoders), and a configuration that makes it fail where one exists.
@Suite(.serialized) struct StageConformanceTests {
    /// The bound is 500 ms rather than the kit's 250 ms: these run in a debug build on
    /// two cores shared with the other suites, where a cancelled task may wait for a
    /// core. The encoders' own latency (about 100 ms) is measured more strictly, off
    /// the pool, in `CodecCancellationTests`.
    static let options = StageConformance.Options(cancellationBound: .milliseconds(500))

    /// The README's example, as it is there: the guide's `invert` stage.
    @Test func readmeExample() async throws {
        let grid = try Grid<Float>(width: 2048, height: 2048) { $0.initialize(repeating: 0.25) }
        print(try await StageConformance.check(InvertStage.self, parameters: "{strength: 0.5}", input: grid, options: Self.options))
    }

    @Test func poisson() async throws {
        // No failing configuration: every size the planner accepts can be made. The
        // cancelled run is the failure whose cleanup is checked (poisson writes no files).
        let report = try await StageConformance.check(
            PoissonStage.self, parameters: "{width: 2048, height: 2048, lambda: 3, seed: 7}", options: Self.options)
        print(report)
    }

    /// Without `seed`, the stage's seed comes from the run seed: still the same for both runs.
    @Test func poissonWithADerivedSeed() async throws {
        let report = try await StageConformance.check(
            PoissonStage.self, parameters: "{width: 1024, height: 1024, lambda: 200}", options: .init(seed: 99, checks: [.runsAgain]))
        #expect(report.declaredOutputType == .grid(.uint16))
    }

    /// The range scan and the mapping both check cancellation every 1 Mi elements.
    @Test func normalize() async throws {
        let report = try await StageConformance.check(NormalizeStage.self, input: Samples.uint16, options: Self.options)
        print(report)
    }

    /// The dictionary-encoded path: a Grid<UInt8> in, a table out, the input untouched.
    @Test func normalizeByteGrid() async throws {
        let report = try await StageConformance.check(
            NormalizeStage.self, parameters: "{range: [0, 200]}", input: Samples.uint8, options: Self.options)
        print(report)
    }

    /// Strips on all cores, each checking cancellation between bands of rows.
    @Test func jpeg() async throws {
        let report = try await StageConformance.check(
            JPEGStage.self, parameters: "{quality: 90}", input: Samples.float32,
            failing: [.input(try Grid<Float>(width: 0, height: 8, values: []), label: "an empty grid")], options: Self.options)
        print(report)
    }

    /// A progressive JPEG is encoded as one strip, whose final passes run inside
    /// libjpeg's finish: cancellation reaches them through its progress monitor.
    /// (The other checks are the same as for `jpeg`.)
    @Test func jpegProgressive() async throws {
        let report = try await StageConformance.check(
            JPEGStage.self, parameters: "{quality: 90, progressive: true}", input: Samples.uint8,
            options: .init(cancellationBound: Self.options.cancellationBound, checks: [.cancellation, .cleanup]))
        print(report)
    }

    /// The encoder checks cancellation between bands of rows.
    @Test func png() async throws {
        let report = try await StageConformance.check(
            PNGStage.self, input: Samples.float32,
            failing: [.input(try Grid<Float>(width: 0, height: 8, values: []), label: "an empty grid")], options: Self.options)
        print(report)
    }

    @Test func filesystem() async throws {
        let report = try await StageConformance.check(
            FilesystemStage.self, parameters: "{path: '${env.CONFORMANCE_DIR}/{run_id}/image.{format}'}", input: Samples.image,
            failing: [
                // The first run wrote this file; without overwrite other bytes are refused
                // (the same bytes would be a success: a re-run meeting its own output).
                .init("an existing file with other bytes", parameters: "{path: '${env.CONFORMANCE_DIR}/conformance-1/image.png'}",
                      inputs: ["input": EncodedImage(bytes: [1, 2, 3], format: "png", mediaType: "image/png", width: 1, height: 1)]),
                .parameters("{path: '${env.CONFORMANCE_DIR}/conformance-1/image.png/inner.png'}", label: "a file in the way"),
            ], options: Self.options)
        print(report)
    }

    @Test func exec() async throws {
        let script = PythonFixture.packageRoot.appendingPathComponent("Tests/Fixtures/exec_double.py").path
        func command(_ mode: String) -> String {
            "{command: ['\(PythonFixture.python)', '\(script)', '{inputs.input}', '{output}', \(mode)], output: Grid<UInt16>}"
        }
        let report = try await StageConformance.check(
            ExecStage.self, parameters: command("ok"), input: Samples.uint8Small,
            failing: [
                .parameters(command("nothing"), label: "a program that writes no output"),
                .parameters(command("truncated"), label: "a program that writes a truncated .npy"),
            ], options: Self.options)
        print(report)
    }

    @Test func s3() async throws {
        let s3 = try LocalS3.shared()
        let environment = [
            "AWS_ACCESS_KEY_ID": s3.accessKey, "AWS_SECRET_ACCESS_KEY": s3.secretKey, "AWS_SESSION_TOKEN": "",
            "AWS_PROFILE": "", "AWS_EC2_METADATA_DISABLED": "true",
        ]
        // 12 MiB in three 5 MiB parts, so that the cancel comes during the upload.
        let parameters = """
            bucket: pipeline-tests
            key: conformance/{run_id}/image.png
            endpoint: \(s3.endpoint)
            region: us-east-1
            multipart_threshold: 5242880
            part_size: 5242880
            concurrency: 2
            """
        let report = try await StageConformance.check(
            S3Stage.self, parameters: parameters, input: Samples.image,
            failing: [
                .environment(["AWS_SECRET_ACCESS_KEY": "not-the-secret"], label: "a wrong secret"),
                .parameters(parameters.replacingOccurrences(of: "pipeline-tests", with: "no-such-bucket"), label: "a missing bucket"),
            ],
            options: .init(environment: environment))
        print(report)
    }
}

/// Sample inputs, made once: rows cut from a pool of pseudo-random values at
/// scattered offsets, so that encoders see noise (no row repeats within zlib's window)
/// without a slow per-element loop in a debug build.
enum Samples {
    static let uint8 = try! grid(4096, 4096, pool: pool(1 << 20) { UInt8(truncatingIfNeeded: $0 >> 56) })
    static let uint8Small = try! grid(2048, 2048, pool: pool(1 << 20) { UInt8(truncatingIfNeeded: $0 >> 56) })
    static let uint16 = try! grid(4096, 4096, pool: pool(1 << 20) { UInt16(truncatingIfNeeded: $0 >> 48) })
    static let float32 = try! grid(4096, 4096, pool: pool(1 << 20) { Float($0 >> 40) / Float(1 << 24) })
    /// 12 MiB of noise, as an encoded image.
    static let image = EncodedImage(
        bytes: pool(12 << 17) { $0 }.withUnsafeBytes { SharedBytes($0) },
        format: "png", mediaType: "image/png", width: 4096, height: 3072)

    static func pool<T>(_ count: Int, _ make: (UInt64) -> T) -> [T] {
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return make(state)
        }
    }

    static func grid<T: GridElement>(_ width: Int, _ height: Int, pool: [T]) throws -> Grid<T> {
        try Grid<T>(width: width, height: height) { buffer in
            pool.withUnsafeBufferPointer { source in
                for y in 0..<height {
                    let offset = (y &* 7919) % (source.count - width)
                    (buffer.baseAddress! + y * width).initialize(from: source.baseAddress! + offset, count: width)
                }
            }
        }
    }
}
