import Foundation
import Testing
@testable import Framework

/// The bounded queue and band pool that streamed edges are made of (issue 12's
/// foundation): order, backpressure, ends, and failures that stop both sides.
@Suite struct BandQueueTests {
    /// Runs `body` on a thread of its own; the semaphore is signalled when it returns.
    func thread(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            body()
            done.signal()
        }
        return done
    }

    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [String] = []
        func add(_ entry: String) { lock.withLock { entries.append(entry) } }
        var all: [String] { lock.withLock { entries } }
    }

    @Test func itemsComeOutInOrderAndTheEndIsNil() throws {
        let queue = BandQueue<Int>(capacity: 3)
        let producer = thread {
            for item in 0..<1000 { try? queue.push(item) }
            queue.finish()
        }
        var received: [Int] = []
        while let item = try queue.pop() { received.append(item) }
        producer.wait()
        #expect(received == Array(0..<1000))
        #expect(try queue.pop() == nil)
        let statistics = queue.currentStatistics
        #expect(statistics.items == 1000 && statistics.deepest <= 3)
    }

    @Test func aFullQueueHoldsTheProducerBack() throws {
        let queue = BandQueue<Int>(capacity: 2)
        let log = Log()
        let producer = thread {
            for item in 0..<5 {
                try? queue.push(item)
                log.add("pushed \(item)")
            }
            queue.finish()
        }
        // The producer gets two items in, then waits for room.
        let deadline = ContinuousClock.now + .seconds(5)
        while log.all.count < 2 && ContinuousClock.now < deadline { usleep(1000) }
        usleep(100_000)
        #expect(log.all == ["pushed 0", "pushed 1"])
        var received: [Int] = []
        while let item = try queue.pop() { received.append(item) }
        producer.wait()
        #expect(received == [0, 1, 2, 3, 4])
        #expect(queue.currentStatistics.producerWaited > .milliseconds(50))
    }

    @Test func aFailureWakesAWaitingProducerAndEveryLaterCall() throws {
        struct SinkBroke: Error, Equatable {}
        let queue = BandQueue<Int>(capacity: 1)
        try queue.push(1)
        let thrown = Log()
        let producer = thread {
            do {
                try queue.push(2)  // waits: the queue is full
                thrown.add("pushed")
            } catch {
                thrown.add("\(type(of: error))")
            }
        }
        usleep(50_000)
        queue.fail(SinkBroke())
        #expect(producer.wait(timeout: .now() + 5) == .success)
        #expect(thrown.all == ["SinkBroke"])
        #expect(throws: SinkBroke.self) { _ = try queue.pop() }
        #expect(throws: SinkBroke.self) { try queue.push(3) }
        // The first failure stays.
        queue.cancel()
        #expect(throws: SinkBroke.self) { _ = try queue.pop() }
    }

    @Test func cancellingWakesAWaitingConsumer() throws {
        let queue = BandQueue<Int>(capacity: 4)
        let thrown = Log()
        let consumer = thread {
            do {
                _ = try queue.pop()  // waits: nothing was pushed
                thrown.add("popped")
            } catch {
                thrown.add(error is CancellationError ? "cancelled" : "\(error)")
            }
        }
        usleep(50_000)
        queue.cancel()
        #expect(consumer.wait(timeout: .now() + 5) == .success)
        #expect(thrown.all == ["cancelled"])
        #expect(queue.currentStatistics.consumerWaited > .milliseconds(20))
    }

    @Test func aConsumerThatStopsEarlyStopsTheProducer() {
        let queue = BandQueue<Int>(capacity: 1)
        queue.close()
        #expect(throws: BandQueue<Int>.Stopped.self) { try queue.push(1) }
    }

    /// A pool's memory is fixed: a producer that has every buffer out waits until a
    /// consumer gives one back, whatever the grid's height.
    @Test func aPoolBoundsTheBandsInFlight() throws {
        let pool = try BandPool<Float>(width: 1000, rowsPerBand: 8, bands: 3)
        #expect(pool.byteCount == 3 * 8 * 1000 * 4)
        let queue = BandQueue<GridBand<Float>>(capacity: 8)
        let taken = Log()
        let height = 100
        let producer = thread {
            do {
                for start in stride(from: 0, to: height, by: 8) {
                    let band = try pool.take(rows: start..<min(height, start + 8))
                    band.withMutableElements { $0.initialize(repeating: Float(start)) }
                    taken.add("\(start)")
                    try queue.push(band)
                }
                queue.finish()
            } catch {
                taken.add("error")
            }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while taken.all.count < 3 && ContinuousClock.now < deadline { usleep(1000) }
        usleep(100_000)
        #expect(taken.all.count == 3, "\(taken.all)")  // three buffers, none given back yet
        var rows = 0
        var seen: Set<ObjectIdentifier> = []
        while let band = try queue.pop() {
            #expect(band.withElements { $0.allSatisfy { $0 == Float(band.rows.lowerBound) } })
            rows += band.rows.count
            seen.insert(ObjectIdentifier(band.buffer))
            pool.give(band)
        }
        producer.wait()
        #expect(rows == height && seen.count <= 3)
    }

    @Test func aStoppedPoolWakesItsTaker() throws {
        let pool = try BandPool<UInt8>(width: 16, rowsPerBand: 2, bands: 1)
        let first = try pool.take(rows: 0..<2)
        _ = first
        let thrown = Log()
        let taker = thread {
            do {
                _ = try pool.take(rows: 2..<4)
                thrown.add("took")
            } catch {
                thrown.add(error is CancellationError ? "cancelled" : "\(error)")
            }
        }
        usleep(50_000)
        pool.fail(CancellationError())
        #expect(taker.wait(timeout: .now() + 5) == .success)
        #expect(thrown.all == ["cancelled"])
    }

    @Test func aPoolThatCannotBeMadeSaysSo() {
        #expect(throws: AllocationError.self) { _ = try BandPool<Float>(width: -1, rowsPerBand: 8, bands: 2) }
        #expect(throws: AllocationError.self) { _ = try BandPool<Float>(width: Int.max / 2, rowsPerBand: 8, bands: 2) }
    }
}
