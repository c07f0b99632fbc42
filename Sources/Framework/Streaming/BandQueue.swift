import Foundation

/// A bounded first-in, first-out queue between two threads of a streamed segment
/// (a producer stage and its consumer), with backpressure: `push` waits while the
/// queue is full, `pop` while it is empty. Stages of a segment run on threads of their
/// own (their work is CPU-bound C code), so the queue blocks threads rather than
/// suspending tasks; it never blocks the cooperative pool unless called there.
///
/// The queue also ends a segment as one: when either side fails, or the run is
/// cancelled, every waiter wakes and the next `push` or `pop` on either side throws,
/// so no thread waits forever for a partner that has stopped.
///
/// It counts what the report needs to show the bottleneck: items passed, and how long
/// each side waited (a producer waiting on a full queue is ahead of its consumer).
public final class BandQueue<Element: Sendable>: @unchecked Sendable {
    /// How the queue ended early: the error every later `push` and `pop` throws.
    public struct Stopped: Error, Sendable, CustomStringConvertible {
        public var description: String { "the other side of a stream stopped" }
    }

    /// What the queue saw, for the report.
    public struct Statistics: Sendable, Hashable {
        /// Items pushed.
        public var items: Int
        /// The most items the queue held at once.
        public var deepest: Int
        /// Time the producer spent waiting for room.
        public var producerWaited: Duration
        /// Time the consumer spent waiting for an item.
        public var consumerWaited: Duration
    }

    public let capacity: Int
    private let condition = NSCondition()
    private var items: [Element] = []
    private var head = 0
    private var finished = false
    private var failure: (any Error)?
    private var statistics = Statistics(items: 0, deepest: 0, producerWaited: .zero, consumerWaited: .zero)

    /// A queue that holds at most `capacity` items (at least 1).
    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        items.reserveCapacity(self.capacity)
    }

    private var count: Int { items.count - head }

    /// Appends `element`, waiting while the queue is full. Throws the failure that
    /// stopped the queue (`fail`), `CancellationError` after `cancel`, or `Stopped`
    /// when the consumer has finished early.
    public func push(_ element: Element) throws {
        condition.lock()
        defer { condition.unlock() }
        if count >= capacity && failure == nil {
            let clock = ContinuousClock()
            let start = clock.now
            while count >= capacity && failure == nil { condition.wait() }
            statistics.producerWaited += clock.now - start
        }
        if let failure { throw failure }
        precondition(!finished, "BandQueue.push after finish")
        if head > 0 && head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        items.append(element)
        statistics.items += 1
        statistics.deepest = max(statistics.deepest, count)
        condition.broadcast()
    }

    /// The next element, waiting while the queue is empty; nil once the producer has
    /// called `finish` and every element was taken. Throws as `push` does.
    public func pop() throws -> Element? {
        condition.lock()
        defer { condition.unlock() }
        if count == 0 && !finished && failure == nil {
            let clock = ContinuousClock()
            let start = clock.now
            while count == 0 && !finished && failure == nil { condition.wait() }
            statistics.consumerWaited += clock.now - start
        }
        if let failure { throw failure }
        guard count > 0 else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return element
    }

    /// Says the producer has pushed its last element.
    public func finish() {
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the queue with `error`: both sides wake, and their next `push` or `pop`
    /// throws it. The first failure is kept; elements still queued are dropped.
    public func fail(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        items.removeAll()
        head = 0
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the queue because the run was cancelled (`CancellationError`).
    public func cancel() {
        fail(CancellationError())
    }

    /// Says the consumer will take nothing more (it stopped early without failing):
    /// the producer's next `push` throws `Stopped`.
    public func close() {
        fail(Stopped())
    }

    /// The producer has called `finish`.
    public var isFinished: Bool {
        condition.lock(); defer { condition.unlock() }
        return finished
    }

    /// Finished, and every element taken.
    public var isDrained: Bool {
        condition.lock(); defer { condition.unlock() }
        return finished && count == 0
    }

    public var currentStatistics: Statistics {
        condition.lock()
        defer { condition.unlock() }
        return statistics
    }
}

/// Turns taken in order by threads that work out of order: thread `n` waits in
/// `wait(for: n)` until turns `0..<n` are done, then calls `advance()`. A streaming
/// producer that fills bands on several threads pushes them in row order this way.
public final class Sequencer: @unchecked Sendable {
    private let condition = NSCondition()
    private var next = 0
    private var failure: (any Error)?

    public init() {}

    /// Waits for turn `turn`; throws the failure that stopped the sequence.
    public func wait(for turn: Int) throws {
        condition.lock()
        defer { condition.unlock() }
        while next != turn && failure == nil { condition.wait() }
        if let failure { throw failure }
    }

    /// Ends the current turn.
    public func advance() {
        condition.lock()
        next += 1
        condition.broadcast()
        condition.unlock()
    }

    /// Wakes every waiter with `error`.
    public func fail(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        condition.broadcast()
        condition.unlock()
    }
}
