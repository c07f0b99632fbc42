import Foundation
import Testing
import Framework
import Logging
@testable import Stages

/// Noise that zlib at level 9 and libjpeg at quality 100 take seconds over: rows are
/// slices of a 1 MiB random buffer at scattered offsets, so that the grid is quick to
/// make even in a debug build and holds no matches within zlib's 32 KiB window.
func slowToEncodeGrid(size: Int) throws -> Grid<UInt8> {
    var rng = Xoshiro256StarStar(seed: 42)
    let pool = (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next() % 11) }
    return try Grid<UInt8>(width: size, height: size) { buffer in
        pool.withUnsafeBufferPointer { pool in
            for row in 0..<size {
                let offset = Int(SeedDerivation.mix(UInt64(row)) % UInt64(pool.count - size))
                _ = UnsafeMutableBufferPointer(rebasing: buffer[(row * size)..<((row + 1) * size)])
                    .update(fromContentsOf: UnsafeBufferPointer(rebasing: pool[offset..<(offset + size)]))
            }
        }
    }
}

/// Cancelling an encode stops it at its next band: a timeout or SIGINT takes effect
/// in milliseconds, not after the whole image.
@Suite(.serialized) struct CodecCancellationTests {
    static let grid = Result { try slowToEncodeGrid(size: 8192) }

    static var now: Double { Date().timeIntervalSinceReferenceDate }

    /// Calls `body` on a thread of its own 200 ms after `started` holds a time: outside
    /// the cooperative pool, which other tests may keep busy.
    /// Calls `body` on a thread of its own once the encode is under way: 200 ms after
    /// its first progress report, or as soon as it reports 5 % done, whichever comes
    /// first (an unloaded machine encodes a whole 8192x8192 JPEG in under 200 ms).
    static func afterFirstReport(_ started: ProgressLog, latest: ProgressLog, _ body: @escaping @Sendable () -> Void) {
        Thread {
            let deadline = now + 30
            while started.latest == nil && now < deadline { usleep(1_000) }
            let cancelBy = now + 0.2
            while (latest.latest ?? 0) < 0.05 && now < cancelBy { usleep(500) }
            body()
        }.start()
    }

    /// Runs `encode` on a thread of its own, sets its flag once it is under way (see
    /// `afterFirstReport`), and expects `CancellationError` within 0.3 s of that, before the
    /// last row. Both times are taken on threads outside the cooperative pool.
    func expectEncoderStops(rows: Int, _ encode: @escaping @Sendable (CancelFlag, RowProgress) throws -> SharedBytes) async throws {
        let cancel = CancelFlag()
        let started = ProgressLog(), latest = ProgressLog()
        let meter = RowProgress(total: rows) { fraction in
            if started.latest == nil { started.record(Self.now) }
            latest.record(fraction)
        }
        let cancelledAt = ProgressLog()
        Self.afterFirstReport(started, latest: latest) {
            cancelledAt.record(Self.now)
            cancel.set()
        }
        let (result, endedAt) = try await Blocking.run { _ in
            let result = Result { try encode(cancel, meter) }
            return (result, Self.now)
        }
        let latency = endedAt - (cancelledAt.latest ?? .infinity)
        switch result {
        case .success:
            Issue.record("the encode finished (progress \(latest.latest ?? 0)) instead of being cancelled")
        case .failure(let error):
            #expect(error is CancellationError, "\(error)")
            #expect(latency < 0.3, "ended \(latency) s after the cancel")
            #expect((latest.latest ?? 0) < 1)
        }
    }

    @Test func pngAtLevelNineStopsSoonAfterACancel() async throws {
        let grid = try Self.grid.get()
        let options = PNGCodec.Options(compressionLevel: 9, filter: .all, strategy: .default)
        try await expectEncoderStops(rows: grid.height) { cancel, progress in
            try PNGCodec.encode(grid, options: options, cancel: cancel, progress: progress)
        }
    }

    @Test func sixteenBitPNGFromFloatsStopsSoonAfterACancel() async throws {
        let indexed = Grid<Float>(indices: try Self.grid.get(), table: awkwardTable())
        let options = PNGCodec.Options(bitDepth: 16, compressionLevel: 9, filter: .all, strategy: .default)
        try await expectEncoderStops(rows: indexed.height) { cancel, progress in
            try PNGCodec.encode(indexed, options: options, cancel: cancel, progress: progress)
        }
    }

    /// Parallel strips (restart markers) and one encoder (none).
    @Test(arguments: [JPEGCodec.Options(quality: 100, restartRows: 8), JPEGCodec.Options(quality: 100, restartRows: 0)])
    func jpegStopsSoonAfterACancel(options: JPEGCodec.Options) async throws {
        let grid = try Self.grid.get()
        try await expectEncoderStops(rows: grid.height) { cancel, progress in
            try JPEGCodec.encodeStrips(grid, options: options, workers: 2, cancel: cancel, progress: progress)
        }
    }

    /// Progressive and optimized images are coded in passes inside libjpeg's finish,
    /// after the last row: cancelled right then, the shim's progress hook stops them.
    @Test(arguments: [JPEGCodec.Options(quality: 100, progressive: true), JPEGCodec.Options(quality: 100, optimize: true)])
    func multiPassJPEGStopsInItsFinalPasses(options: JPEGCodec.Options) async throws {
        let grid = try Self.grid.get()
        let cancel = CancelFlag()
        let cancelledAt = ProgressLog()
        let allRowsWritten = RowProgress(total: 4096) { fraction in
            if fraction == 1 {
                cancelledAt.record(Self.now)
                cancel.set()
            }
        }
        let (result, endedAt) = try await Blocking.run { _ in
            let result = Result { try JPEGCodec.encodeStrip(grid, rows: 0..<4096, options: options, cancel: cancel, progress: allRowsWritten) }
            return (result, Self.now)
        }
        let latency = endedAt - (cancelledAt.latest ?? 0)
        switch result {
        case .success:
            Issue.record("the final passes ran to the end")
        case .failure(let error):
            #expect(error is CancellationError, "\(error)")
        }
        #expect(latency < 0.3, "ended \(latency) s after the cancel")
    }

    /// Cancelling the task that runs the public API or a stage sets the encoder's flag:
    /// the task ends with `CancellationError` before the last row. The bound is loose:
    /// the test's task resumes on the cooperative pool, which other tests may keep busy
    /// (alone, these take as long as the tests above).
    func expectTaskStops(_ encode: @escaping @Sendable (@escaping @Sendable (Double) -> Void) async throws -> SharedBytes) async throws {
        let started = ProgressLog(), latest = ProgressLog(), cancelledAt = ProgressLog()
        let task = Task {
            try await encode { fraction in
                if started.latest == nil { started.record(Self.now) }
                latest.record(fraction)
            }
        }
        Self.afterFirstReport(started, latest: latest) {
            cancelledAt.record(Self.now)
            task.cancel()
        }
        let result = await task.result
        let latency = Self.now - (cancelledAt.latest ?? .infinity)
        switch result {
        case .success:
            Issue.record("the encode finished (progress \(latest.latest ?? 0)) instead of being cancelled")
        case .failure(let error):
            #expect(error is CancellationError, "\(error)")
            #expect(latency < 5, "ended \(latency) s after the cancel")
            #expect((latest.latest ?? 0) < 1)
        }
    }

    @Test func cancellingThePNGTaskStopsTheEncoder() async throws {
        let grid = try Self.grid.get()
        let options = PNGCodec.Options(compressionLevel: 9, filter: .all, strategy: .default)
        try await expectTaskStops { progress in try await PNGCodec.encodeGray(grid, options: options, progress: progress) }
    }

    @Test func cancellingTheJPEGTaskStopsTheEncoder() async throws {
        let grid = try Self.grid.get()
        try await expectTaskStops { progress in
            try await JPEGCodec.encodeGray(grid, options: .init(quality: 100, restartRows: 8), workers: 2, progress: progress)
        }
    }

    /// The stages pass the run's cancellation on.
    @Test func cancellingThePNGStageStopsTheEncoder() async throws {
        let grid = try Self.grid.get()
        let stage = try PNGStage(parameters: parameters(PNGStage.spec, ["compression": .integer(9), "filter": .string("all"), "strategy": .string("default")]))
        try await expectTaskStops { progress in
            let context = StageContext(stageID: "p", stageType: "png", runID: "r", seed: 1, logger: Logger(label: "test"), progress: progress)
            let image = try await stage.run(inputs: StageInputs(["input": grid]), context: context)
            return (image as! EncodedImage).bytes
        }
    }
}

/// The latest progress fraction reported, from any thread.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Double?

    func record(_ fraction: Double) {
        lock.lock(); value = fraction; lock.unlock()
    }

    var latest: Double? {
        lock.lock(); defer { lock.unlock() }
        return value
    }
}
