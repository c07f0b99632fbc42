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
        let pool = BufferPool(bufferSize: 8 * 1000 * 4, count: 3, purpose: "test")
        #expect(pool.byteCount == 3 * 8 * 1000 * 4)
        let queue = BandQueue<GridBand>(capacity: 8)
        let taken = Log()
        let height = 100
        let producer = thread {
            do {
                for start in stride(from: 0, to: height, by: 8) {
                    let band = GridBand(rows: start..<min(height, start + 8), lease: try pool.take())
                    band.mutableElements(Float.self, width: 1000).initialize(repeating: Float(start))
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
            #expect(band.elements(Float.self, width: 1000).allSatisfy { $0 == Float(band.rows.lowerBound) })
            rows += band.rows.count
            seen.insert(ObjectIdentifier(band.lease.buffer))
            band.release()
        }
        producer.wait()
        #expect(rows == height && seen.count <= 3)
    }

    /// A band held by two consumers goes back to its pool when both have released it.
    @Test func aRetainedLeaseReturnsAfterItsLastRelease() throws {
        let pool = BufferPool(bufferSize: 16, count: 1, purpose: "test")
        let lease = try pool.take()
        lease.retain()
        lease.release()
        let taker = thread { _ = try? pool.take() }
        #expect(taker.wait(timeout: .now() + 0.1) == .timedOut)  // still held once
        lease.release()
        #expect(taker.wait(timeout: .now() + 5) == .success)
    }

    @Test func aStoppedPoolWakesItsTaker() throws {
        let pool = BufferPool(bufferSize: 32, count: 1, purpose: "test")
        let first = try pool.take()
        _ = first
        let thrown = Log()
        let taker = thread {
            do {
                _ = try pool.take()
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

    /// `--band-rows` asks for bands; none is taller than the image, and one too large
    /// to address is an allocation error, not a crash.
    @Test func bandsAreNeverTallerThanTheImage() throws {
        let io = StreamIO(bandRows: 1_000_000, bandBuffers: 2, cancel: CancelFlag())
        let (pool, rows) = try io.bandPool(rowBytes: 100, height: 10, purpose: "test")
        #expect(rows == 10 && pool.bufferSize == 1000)
        let (_, rounded) = try io.bandPool(rowBytes: 100, height: 5_000_000, granularity: 3, purpose: "test")
        #expect(rounded == 1_000_002)
        #expect(throws: AllocationError.self) { _ = try io.bandPool(rowBytes: Int.max / 2, height: 10, purpose: "huge") }
    }

    @Test func aBufferThatCannotBeMadeSaysSo() {
        let pool = BufferPool(bufferSize: Int.max / 2, count: 2, purpose: "a huge band")
        #expect(throws: AllocationError.self) { _ = try pool.take() }
    }

    /// A stream's header arrives before its items, and a failure wakes a consumer
    /// waiting for either.
    @Test func aStreamSendsItsHeaderFirstAndAFailureWakesItsConsumer() throws {
        let stream = ArtifactStream<String, Int>(capacity: 2)
        let seen = Log()
        let consumer = thread {
            do {
                seen.add(try stream.start())
                while let item = try stream.next() { seen.add("\(item)") }
                seen.add("end")
            } catch {
                seen.add("failed")
            }
        }
        try stream.begin("header")
        try stream.push(1, byteCount: 10)
        stream.finish()
        #expect(consumer.wait(timeout: .now() + 5) == .success)
        #expect(seen.all == ["header", "1", "end"])
        #expect(stream.statistics.items == 1 && stream.statistics.bytes == 10)

        let stopped = ArtifactStream<String, Int>(capacity: 2)
        let waiting = Log()
        let waiter = thread {
            do { _ = try stopped.start() } catch { waiting.add("woke") }
        }
        usleep(50_000)
        stopped.fail(CancellationError())
        #expect(waiter.wait(timeout: .now() + 5) == .success)
        #expect(waiting.all == ["woke"])
    }
}
