import Foundation

/// Memory for one band of rows, allocated once and used again for band after band:
/// a streamed segment touches the same few buffers instead of new memory for every
/// band (first-touch page faults cost about 0.5 ms per MB on these machines).
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

/// Rows `rows` of a grid `width` elements wide, in a buffer of a `BandPool`: what
/// flows along a streamed edge between grid stages. Immutable once pushed.
public struct GridBand<Element: GridElement>: Sendable {
    public let width: Int
    /// The band's rows, as row numbers of the whole grid.
    public let rows: Range<Int>
    public let buffer: BandBuffer

    public init(width: Int, rows: Range<Int>, buffer: BandBuffer) {
        precondition(buffer.byteCount >= width * rows.count * MemoryLayout<Element>.stride, "band buffer too small")
        self.width = width
        self.rows = rows
        self.buffer = buffer
    }

    /// The band's elements, row after row.
    public func withElements<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: buffer.pointer.assumingMemoryBound(to: Element.self), count: width * rows.count))
    }

    /// The band's elements, writable: only by the stage filling it, before it is pushed.
    public func withMutableElements<R>(_ body: (UnsafeMutableBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: buffer.pointer.assumingMemoryBound(to: Element.self), count: width * rows.count))
    }
}

/// A fixed set of band buffers, handed out and given back: the memory of a streamed
/// edge is `bands x rowsPerBand x width x element size`, whatever the grid's height.
/// `take` waits while every buffer is out (backpressure, like `BandQueue.push`), and
/// wakes with the queue's failure when the segment stops.
public final class BandPool<Element: GridElement>: @unchecked Sendable {
    public let width: Int
    public let rowsPerBand: Int
    public let bands: Int
    private let free: BandQueue<BandBuffer>

    /// `bands` buffers of `rowsPerBand` rows of `width` elements, allocated now.
    public init(width: Int, rowsPerBand: Int, bands: Int) throws(AllocationError) {
        self.width = width
        self.rowsPerBand = max(1, rowsPerBand)
        self.bands = max(1, bands)
        free = BandQueue(capacity: self.bands)
        let stride = MemoryLayout<Element>.stride
        let wanted = Double(max(0, width)) * Double(self.rowsPerBand) * Double(stride)
        let (rowBytes, overflowA) = max(0, width).multipliedReportingOverflow(by: stride)
        let (bytes, overflowB) = rowBytes.multipliedReportingOverflow(by: self.rowsPerBand)
        let (total, overflowC) = bytes.multipliedReportingOverflow(by: self.bands)
        let purpose = "a band of \(self.rowsPerBand) rows of \(width) \(Element.elementType.swiftName)"
        guard width >= 0, !overflowA, !overflowB, !overflowC else { throw AllocationError(byteCount: wanted, purpose: purpose) }
        byteCount = total
        for _ in 0..<self.bands {
            let buffer = try BandBuffer(byteCount: bytes, purpose: purpose)
            // Cannot block or fail: the queue holds exactly `bands` and is new.
            try? free.push(buffer)
        }
    }

    /// The memory the pool holds.
    public let byteCount: Int

    /// A band for `rows` (at most `rowsPerBand` of them), waiting for a free buffer.
    public func take(rows: Range<Int>) throws -> GridBand<Element> {
        precondition(rows.count <= rowsPerBand, "a band of \(rows.count) rows from a pool of \(rowsPerBand)-row bands")
        guard let buffer = try free.pop() else { throw BandQueue<BandBuffer>.Stopped() }
        return GridBand(width: width, rows: rows, buffer: buffer)
    }

    /// Gives a band's buffer back once its consumer is done with it.
    public func give(_ band: GridBand<Element>) {
        try? free.push(band.buffer)
    }

    /// Wakes every `take` with `error` (the segment stopped).
    public func fail(_ error: any Error) {
        free.fail(error)
    }
}
