import Foundation

/// Memory for one band of rows or one chunk of bytes, allocated once and used again
/// for band after band: a streamed segment touches the same few buffers instead of
/// new memory for every band (first-touch page faults cost about 0.5 ms per MB on
/// these machines).
public final class BandBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    /// `byteCount` bytes, or an `AllocationError` naming `purpose`.
    public init(byteCount: Int, purpose: @autoclosure () -> String) throws(AllocationError) {
        guard byteCount >= 0, let pointer = malloc(max(1, byteCount)) else {
            throw AllocationError(byteCount: Double(byteCount), purpose: purpose())
        }
        self.pointer = pointer
        self.byteCount = byteCount
    }

    deinit { free(pointer) }
}

/// A buffer lent by a `BufferPool`: it goes back to the pool when its last holder
/// releases it. A stage that hands a band to two consumers (a JPEG band that
/// straddles two strips) retains it once more first.
public final class BandLease: @unchecked Sendable {
    public let buffer: BandBuffer
    private weak var pool: BufferPool?
    private let lock = NSLock()
    private var holders = 1

    init(buffer: BandBuffer, pool: BufferPool?) {
        self.buffer = buffer
        self.pool = pool
    }

    /// A buffer of one's own, not from a pool (for tests and adapters).
    public convenience init(byteCount: Int, purpose: String) throws(AllocationError) {
        self.init(buffer: try BandBuffer(byteCount: byteCount, purpose: purpose), pool: nil)
    }

    public var pointer: UnsafeMutableRawPointer { buffer.pointer }

    /// One more holder: each `retain` needs its own `release`.
    public func retain() {
        lock.lock(); holders += 1; lock.unlock()
    }

    /// Gives the buffer back to its pool once every holder has released it.
    public func release() {
        lock.lock()
        holders -= 1
        let done = holders == 0
        lock.unlock()
        if done { pool?.giveBack(buffer) }
    }
}

/// A fixed number of equal buffers, allocated when first needed and handed out again
/// and again: the memory of a streamed edge is `count x bufferSize`, whatever the
/// size of the image. `take` waits while every buffer is out (backpressure, like
/// `BandQueue.push`) and wakes with the failure when the segment stops.
public final class BufferPool: @unchecked Sendable {
    public let bufferSize: Int
    public let count: Int
    private let purpose: String
    private let condition = NSCondition()
    private var free: [BandBuffer] = []
    private var allocated = 0
    private var failure: (any Error)?
    private var waited: Duration = .zero

    /// At most `count` buffers of `bufferSize` bytes each, for `purpose` (named in an
    /// allocation failure). Nothing is allocated yet.
    public init(bufferSize: Int, count: Int, purpose: String) {
        self.bufferSize = max(1, bufferSize)
        self.count = max(1, count)
        self.purpose = purpose
    }

    /// The most memory the pool can hold.
    public var byteCount: Int { bufferSize.multipliedReportingOverflow(by: count).partialValue }

    /// A buffer, allocated if fewer than `count` exist, else the next one given back.
    public func take() throws -> BandLease {
        condition.lock()
        defer { condition.unlock() }
        if free.isEmpty && allocated >= count && failure == nil {
            let clock = ContinuousClock()
            let start = clock.now
            while free.isEmpty && failure == nil { condition.wait() }
            waited += clock.now - start
        }
        if let failure { throw failure }
        if let buffer = free.popLast() { return BandLease(buffer: buffer, pool: self) }
        allocated += 1
        do {
            return BandLease(buffer: try BandBuffer(byteCount: bufferSize, purpose: purpose), pool: self)
        } catch {
            allocated -= 1
            throw error
        }
    }

    func giveBack(_ buffer: BandBuffer) {
        condition.lock()
        if failure == nil { free.append(buffer) }
        condition.broadcast()
        condition.unlock()
    }

    /// Wakes every `take` with `error` (the segment stopped); buffers given back from
    /// now on are freed.
    public func fail(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        free.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    /// How long `take` waited for a buffer to come back.
    public var waitedForBuffers: Duration {
        condition.lock(); defer { condition.unlock() }
        return waited
    }
}

/// Rows `rows` of a streamed grid, in a leased buffer: what flows along a streamed
/// edge between grid stages. The elements are `GridStreamInfo.storedElementType`,
/// `GridStreamInfo.width` to a row, row after row. Immutable once pushed; its last
/// consumer releases it.
public struct GridBand: Sendable {
    /// The band's rows, as row numbers of the whole grid.
    public let rows: Range<Int>
    public let lease: BandLease

    public init(rows: Range<Int>, lease: BandLease) {
        self.rows = rows
        self.lease = lease
    }

    public var pointer: UnsafeMutableRawPointer { lease.pointer }

    /// The band's elements, row after row.
    public func elements<T>(_: T.Type, width: Int) -> UnsafeBufferPointer<T> {
        precondition(lease.buffer.byteCount >= width * rows.count * MemoryLayout<T>.stride, "band buffer too small")
        return UnsafeBufferPointer(start: lease.pointer.assumingMemoryBound(to: T.self), count: width * rows.count)
    }

    /// Writable: only for the stage filling the band, before it pushes it.
    public func mutableElements<T>(_: T.Type, width: Int) -> UnsafeMutableBufferPointer<T> {
        precondition(lease.buffer.byteCount >= width * rows.count * MemoryLayout<T>.stride, "band buffer too small")
        return UnsafeMutableBufferPointer(start: lease.pointer.assumingMemoryBound(to: T.self), count: width * rows.count)
    }

    public func release() { lease.release() }
}

/// An ordered piece of a streamed byte artifact (an encoded image).
public struct ByteChunk: Sendable {
    public let count: Int
    public let lease: BandLease
    /// How far through the image its producer was when the chunk filled (rows
    /// encoded over the height): what a sink shows as its progress.
    public let fraction: Double

    public init(count: Int, lease: BandLease, fraction: Double = 0) {
        self.count = count
        self.lease = lease
        self.fraction = fraction
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: lease.pointer, count: count) }

    public func release() { lease.release() }
}
