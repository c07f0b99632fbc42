// Per-stage figures for Benchmarks/run: each built-in stage's own work, timed in
// process (median of several runs), printed as one JSON object per line.
//
//   stage-bench [--size 2048] [--runs 7]
import Foundation
import Framework
import Logging
import Stages

struct Settings {
    var size = 2048
    var runs = 7
    /// Only the sampler figures (for interleaving with NumPy's).
    var samplerOnly = false
    /// Upload this file with the s3 stage's code (endpoint, bucket, key, credentials
    /// from AWS_ENDPOINT_URL_S3, S3_BENCH_BUCKET, S3_BENCH_KEY and the usual chain).
    var uploadFile: String?

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--size": size = Int(iterator.next() ?? "") ?? size
            case "--runs": runs = Int(iterator.next() ?? "") ?? runs
            case "--sampler-only": samplerOnly = true
            case "--s3-upload": uploadFile = iterator.next()
            default:
                FileHandle.standardError.write(Data("usage: stage-bench [--size N] [--runs N] [--sampler-only]\n".utf8))
                exit(2)
            }
        }
    }
}

let settings = Settings(Array(CommandLine.arguments.dropFirst()))
let size = settings.size

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Median seconds of `runs` calls of `body` (after one warm-up call).
func time(runs: Int = settings.runs, _ body: () async throws -> Void) async rethrows -> Double {
    try await body()
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        try await body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(samples)
}

func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func context(jobs: Int) -> StageContext {
    StageContext(stageID: "bench", stageType: "bench", runID: "bench", seed: 1, concurrency: jobs, logger: Logger(label: "bench"))
}

let count = size * size

if let path = settings.uploadFile {
    // The whole upload as a user would run it: map the file, upload, exit. In a
    // pipeline the bytes are an artifact already in memory; mapping the file (which
    // the other contenders read from the page cache too) gives the sink the same
    // start without charging it for copying the file into fresh memory first.
    // S3_BENCH_LOAD=read reads it into memory instead, to show what that costs.
    let descriptor = open(path, O_RDONLY)
    var status = stat()
    guard descriptor >= 0, fstat(descriptor, &status) == 0 else { fatalError("cannot read \(path)") }
    let size = Int(status.st_size)
    let bytes: SharedBytes
    if ProcessInfo.processInfo.environment["S3_BENCH_LOAD"] == "read" {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, size), alignment: 16)
        var offset = 0
        while offset < size {
            let count = read(descriptor, buffer + offset, size - offset)
            guard count > 0 else { fatalError("cannot read \(path)") }
            offset += count
        }
        bytes = SharedBytes(takingOwnershipOf: buffer, count: size) { $0.deallocate() }
    } else {
        guard let mapped = mmap(nil, max(1, size), PROT_READ, MAP_PRIVATE | MAP_POPULATE, descriptor, 0), mapped != MAP_FAILED else {
            fatalError("cannot map \(path)")
        }
        bytes = SharedBytes(takingOwnershipOf: mapped, count: size) { munmap($0, max(1, size)) }
    }
    close(descriptor)
    let environment = AWSEnvironment()
    let client = S3Client(
        configuration: S3Configuration(endpoint: environment["AWS_ENDPOINT_URL_S3"], region: "us-east-1", pathStyle: true),
        credentials: AWSCredentialChain(environment: environment))
    let upload = S3Upload(client: client, bucket: environment["S3_BENCH_BUCKET"] ?? "bench", key: environment["S3_BENCH_KEY"] ?? "object",
                          bytes: bytes, headers: [("Content-Type", "application/octet-stream")],
                          checksum: environment["S3_BENCH_CHECKSUM"] != "none", overwrite: true,
                          partSize: 8 << 20, concurrency: Int(environment["S3_BENCH_CONCURRENCY"] ?? "") ?? 8, context: context(jobs: 2))
    _ = try await upload.run(multipart: bytes.count > 16 << 20)  // the s3 stage's defaults
    exit(0)
}

// Generator: the sampler alone into a warm buffer, then the whole stage (allocation included).
// Warm up for a quarter second first: the first measurements of a process run slow
// here (clock ramp-up on a shared machine) and would be charged to whichever comes first.
do {
    let warmUp = PoissonSampler(lambda: 5)
    let buffer = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: 1 << 20)
    var rng = Xoshiro256StarStar(seed: 0)
    let start = DispatchTime.now().uptimeNanoseconds
    while DispatchTime.now().uptimeNanoseconds - start < 250_000_000 { _ = warmUp.fill(buffer, rng: &rng) }
    buffer.deallocate()
}
for lambda in [3.0, 30.0, 1000.0] {
    let sampler = PoissonSampler(lambda: lambda)
    let buffer = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: count)
    buffer.initialize(repeating: 0)
    let seconds = await time {
        var rng = Xoshiro256StarStar(seed: 1)
        _ = sampler.fill(buffer, rng: &rng)
    }
    buffer.deallocate()
    emit(["stage": "poisson", "what": "sampler", "lambda": lambda, "jobs": 1, "seconds": seconds, "ns_per_sample": seconds * 1e9 / Double(count)])
}
if settings.samplerOnly { exit(0) }

let poissonParameters = Parameters(["width": .integer(size), "height": .integer(size), "lambda": .number(3), "dtype": .string("auto")])
let generator = try PoissonStage(parameters: poissonParameters)
for jobs in [1, 2] {
    let seconds = try await time { _ = try await generator.run(inputs: StageInputs([:]), context: context(jobs: jobs)) }
    emit(["stage": "poisson", "what": "stage", "lambda": 3.0, "jobs": jobs, "seconds": seconds, "ns_per_sample": seconds * 1e9 / Double(count)])
}

// Normalize. Grid<UInt8> in: a min/max scan (once per grid, then cached) and a
// 256-entry table, no pass over the data. Grid<UInt16> in: a dense Grid<Float32>.
let grid = try await generator.run(inputs: StageInputs([:]), context: context(jobs: 2))
let bytes = grid as! Grid<UInt8>
let normalizer = try NormalizeStage(parameters: Parameters())
let scan = await time { _ = bytes.range() }
emit(["stage": "normalize", "what": "min/max scan of the Grid<UInt8>", "jobs": 1, "seconds": scan, "input_mb_per_s": Double(count) / scan / 1e6])
let tabled = try await time { _ = try await normalizer.run(inputs: StageInputs(["input": grid]), context: context(jobs: 1)) }
emit(["stage": "normalize", "what": "Grid<UInt8> -> dictionary-encoded Grid<Float32>, scan cached", "jobs": 1, "seconds": tabled])
let decode = try await time {
    let encoded = try await normalizer.run(inputs: StageInputs(["input": grid]), context: context(jobs: 1)) as! Grid<Float>
    encoded.withUnsafeBufferPointer { _ in }
}
emit(["stage": "normalize", "what": "the same, then decoded to dense Float32 (what a consumer that needs floats pays)", "jobs": 1,
      "seconds": decode, "output_mb_per_s": Double(count * 4) / decode / 1e6])
let words = try Grid<UInt16>(width: size, height: size) { buffer in
    bytes.withUnsafeBufferPointer { source in for i in buffer.indices { buffer[i] = UInt16(source[i]) &* 257 } }
}
for jobs in [1, 2] {
    let seconds = try await time { _ = try await normalizer.run(inputs: StageInputs(["input": words]), context: context(jobs: jobs)) }
    emit(["stage": "normalize", "what": "Grid<UInt16> -> Grid<Float32>", "jobs": jobs, "seconds": seconds,
          "input_mb_per_s": Double(count) / seconds / 1e6, "output_mb_per_s": Double(count * 4) / seconds / 1e6])
}

// Encoders, from the normalised grid (the reference job: dictionary-encoded), from
// the same values as dense floats, and from 8-bit samples.
let unit = try await normalizer.run(inputs: StageInputs(["input": grid]), context: context(jobs: 2)) as! Grid<Float>
let dense = try Grid<Float>(width: size, height: size, values: unit.elements)
for (name, options) in [("jpeg q95", JPEGCodec.Options(quality: 95)), ("jpeg q95 optimize", JPEGCodec.Options(quality: 95, optimize: true)),
                        ("jpeg q95 progressive", JPEGCodec.Options(quality: 95, progressive: true))] {
    var size = 0
    let seconds = try await time { size = try JPEGCodec.encodeGray(unit, options: options).count }
    let fromDense = try await time { _ = try JPEGCodec.encodeGray(dense, options: options) }
    let fromBytes = try await time { _ = try JPEGCodec.encodeGray(bytes, options: options) }
    emit(["stage": "jpeg", "what": name, "seconds": seconds, "seconds_from_dense": fromDense, "seconds_from_uint8": fromBytes,
          "pixels_mb_per_s": Double(count) / seconds / 1e6, "bytes": size])
}
for workers in [1, 2] {
    let options = JPEGCodec.Options(quality: 95, restartRows: 2)
    var size = 0
    let seconds = try await time { size = try await JPEGCodec.encodeGray(unit, options: options, workers: workers).count }
    emit(["stage": "jpeg", "what": "jpeg q95, restart_rows 2 (the stage's default), \(workers) strip\(workers == 1 ? "" : "s")",
          "seconds": seconds, "pixels_mb_per_s": Double(count) / seconds / 1e6, "bytes": size])
}
for filter in [PNGCodec.Filter.none, .all] {
    for strategy in [PNGCodec.Strategy.rle, .huffman, .default] {
        for level in [1, 6, 9] {
            let options = PNGCodec.Options(compressionLevel: level, filter: filter, strategy: strategy)
            var size = 0
            let seconds = try await time { size = try PNGCodec.encodeGray(unit, options: options).count }
            emit(["stage": "png", "what": "filter \(filter.rawValue), strategy \(strategy.rawValue), level \(level)",
                  "seconds": seconds, "pixels_mb_per_s": Double(count) / seconds / 1e6, "bytes": size])
        }
    }
}
// The png stage's own path: a thread of its own, rows in cancellable bands, progress.
do {
    var size = 0
    let seconds = try await time { size = try await PNGCodec.encodeGray(unit, options: PNGCodec.Options(), progress: { _ in }).count }
    emit(["stage": "png", "what": "filter none, strategy rle, level 6, as the stage runs it (own thread, cancellable)",
          "seconds": seconds, "pixels_mb_per_s": Double(count) / seconds / 1e6, "bytes": size])
}
