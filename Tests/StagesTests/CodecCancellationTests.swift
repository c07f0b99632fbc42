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

    /// Starts `encode`, waits until it has written rows and 200 ms more, cancels it and
    /// expects `CancellationError` within `bound` seconds of the cancel, before the
    /// last row.
    func expectPromptCancellation(bound: Double = 0.3, _ encode: @escaping @Sendable (@escaping @Sendable (Double) -> Void) async throws -> SharedBytes) async throws {
        let progress = ProgressLog()
        let task = Task { try await encode { progress.record($0) } }
        let start = Date()
        while progress.latest == nil && Date().timeIntervalSince(start) < 10 {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        try await Task.sleep(nanoseconds: 200_000_000)
        let cancelled = Date()
        task.cancel()
        let result = await task.result
        let latency = Date().timeIntervalSince(cancelled)
        #expect(progress.latest != nil, "no progress before the cancel")
        switch result {
        case .success:
            Issue.record("the encode finished (progress \(progress.latest ?? 0)) instead of being cancelled")
        case .failure(let error):
            #expect(error is CancellationError, "\(error)")
        }
        #expect(latency < bound, "ended \(latency) s after the cancel")
        #expect((progress.latest ?? 0) < 1)
    }

    @Test func pngAtLevelNineStopsSoonAfterACancel() async throws {
        let grid = try Self.grid.get()
        let options = PNGCodec.Options(compressionLevel: 9, filter: .all, strategy: .default)
        try await expectPromptCancellation { progress in try await PNGCodec.encodeGray(grid, options: options, progress: progress) }
    }

    @Test func sixteenBitPNGFromFloatsStopsSoonAfterACancel() async throws {
        let indexed = Grid<Float>(indices: try Self.grid.get(), table: awkwardTable())
        let options = PNGCodec.Options(bitDepth: 16, compressionLevel: 9, filter: .all, strategy: .default)
        try await expectPromptCancellation { progress in try await PNGCodec.encodeGray(indexed, options: options, progress: progress) }
    }

    @Test(arguments: [JPEGCodec.Options(quality: 100, restartRows: 8), JPEGCodec.Options(quality: 100, restartRows: 0)])
    func jpegStopsSoonAfterACancel(options: JPEGCodec.Options) async throws {
        let grid = try Self.grid.get()
        try await expectPromptCancellation { progress in
            try await JPEGCodec.encodeGray(grid, options: options, workers: 2, progress: progress)
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
                cancelledAt.record(Date().timeIntervalSinceReferenceDate)
                cancel.set()
            }
        }
        let result = try await Blocking.run { _ in
            Result { try JPEGCodec.encodeStrip(grid, rows: 0..<4096, options: options, cancel: cancel, progress: allRowsWritten) }
        }
        let latency = Date().timeIntervalSinceReferenceDate - (cancelledAt.latest ?? 0)
        switch result {
        case .success:
            Issue.record("the final passes ran to the end")
        case .failure(let error):
            #expect(error is CancellationError, "\(error)")
        }
        #expect(latency < 0.3, "ended \(latency) s after the cancel")
    }

    /// The stages pass the run's cancellation on: cancelling the task running `png`
    /// stops the encoder.
    @Test func thePNGStageIsCancellable() async throws {
        let grid = try Self.grid.get()
        let stage = try PNGStage(parameters: parameters(PNGStage.spec, ["compression": .integer(9), "filter": .string("all"), "strategy": .string("default")]))
        try await expectPromptCancellation { progress in
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
