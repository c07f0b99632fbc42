import Foundation

/// The shape of a streamed grid, known before its first band.
public struct GridStreamInfo: Sendable, Hashable {
    public var width: Int
    public var height: Int
    /// The grid's element type, what a consumer that materialises it gets.
    public var elementType: ElementType
    /// For a dictionary-encoded `Grid<Float>` (`normalize` of a `Grid<UInt8>`): the
    /// bands hold byte indices into this table of 256 values.
    public var table: [Float]?

    public init(width: Int, height: Int, elementType: ElementType, table: [Float]? = nil) {
        self.width = width
        self.height = height
        self.elementType = elementType
        self.table = table
    }

    /// The type of the elements in the bands: `uint8` for a dictionary-encoded grid.
    public var storedElementType: ElementType { table != nil ? .uint8 : elementType }

    /// Bytes of one row as the bands hold it; `Int.max` for a width so large that the
    /// product does not fit (a band of it then cannot be allocated, and says so).
    public var rowBytes: Int {
        let (bytes, overflow) = width.multipliedReportingOverflow(by: storedElementType.byteWidth)
        return overflow ? .max : bytes
    }

    public var artifactType: ArtifactType { .grid(elementType) }
}

/// What a streamed encoded image is, known before its first byte.
public struct EncodedStreamInfo: Sendable, Hashable {
    public var format: String
    public var mediaType: String
    public var width: Int
    public var height: Int

    public init(format: String, mediaType: String, width: Int, height: Int) {
        self.format = format
        self.mediaType = mediaType
        self.width = width
        self.height = height
    }

    /// The values `EncodedImage.templateValues` gives, so that a sink fills `{format}`
    /// and the like in a path before the bytes are all there.
    public var templateValues: [String: String] {
        ["width": String(width), "height": String(height), "format": format]
    }
}

/// One streamed edge: a header the producer sends first (the grid's shape, the
/// image's format), then items in order through a bounded queue with backpressure.
///
/// Either side can stop the stream: `fail` wakes both, and every later call throws.
/// The executor fails every stream of a segment when one of its stages fails or the
/// run is cancelled, so no stage waits forever for one that stopped.
public final class ArtifactStream<Header: Sendable, Item: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var header: Header?
    private var failure: (any Error)?
    private let queue: BandQueue<Item>
    private var bytes = 0
    private var consumerStart: ContinuousClock.Instant?

    /// A stream that holds at most `capacity` items between its two sides.
    public init(capacity: Int) {
        queue = BandQueue(capacity: capacity)
    }

    /// Producer: sends the header; before the first item.
    public func begin(_ header: Header) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failure { throw failure }
        precondition(self.header == nil, "ArtifactStream.begin called twice")
        self.header = header
        condition.broadcast()
    }

    /// Consumer: the header, waiting for the producer to send it.
    public func start() throws -> Header {
        condition.lock()
        defer { condition.unlock() }
        while header == nil && failure == nil { condition.wait() }
        if let failure { throw failure }
        return header!
    }

    /// The header once sent, without waiting.
    public var currentHeader: Header? {
        condition.lock(); defer { condition.unlock() }
        return header
    }

    /// Producer: appends `item` of `byteCount` bytes, waiting while the queue is full.
    public func push(_ item: Item, byteCount: Int) throws {
        try queue.push(item)
        condition.lock()
        bytes += byteCount
        condition.unlock()
    }

    /// Consumer: the next item, nil after the last.
    public func next() throws -> Item? {
        let item = try queue.pop()
        if let item, let tap { tap(item) }
        return item
    }

    private var tap: (@Sendable (Item) -> Void)?

    /// Calls `body` with each item as the consumer takes it, in order, on the
    /// consumer's thread, before the consumer has it (the run report's digest of a
    /// streamed grid). Set before the stream is used.
    public func tap(_ body: @escaping @Sendable (Item) -> Void) {
        tap = body
    }

    /// Producer: the last item was pushed.
    public func finish() {
        queue.finish()
    }

    /// Stops the stream with `error` (the first failure is kept).
    public func fail(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        condition.broadcast()
        condition.unlock()
        queue.fail(error)
    }

    /// The producer sent its header and finished.
    public var isFinished: Bool { currentHeader != nil && queue.isFinished }

    /// Finished, and every item taken.
    public var isDrained: Bool { queue.isDrained }

    /// What passed: items, bytes, and how long each side waited for the other.
    public var statistics: StreamStatistics {
        let queued = queue.currentStatistics
        condition.lock(); defer { condition.unlock() }
        return StreamStatistics(items: queued.items, bytes: bytes, producerWaited: queued.producerWaited,
                                consumerWaited: queued.consumerWaited)
    }
}

/// Rows of a grid, band after band.
public typealias GridStream = ArtifactStream<GridStreamInfo, GridBand>
/// An encoded image, chunk after chunk.
public typealias ByteStream = ArtifactStream<EncodedStreamInfo, ByteChunk>

/// What passed along a streamed edge, for the report.
public struct StreamStatistics: Sendable, Hashable {
    public var items: Int
    public var bytes: Int
    /// Time the producer waited for room (it was ahead of its consumer).
    public var producerWaited: Duration
    /// Time the consumer waited for an item (it was ahead of its producer).
    public var consumerWaited: Duration

    public init(items: Int = 0, bytes: Int = 0, producerWaited: Duration = .zero, consumerWaited: Duration = .zero) {
        self.items = items
        self.bytes = bytes
        self.producerWaited = producerWaited
        self.consumerWaited = consumerWaited
    }
}

/// Writes bytes of any size to a `ByteStream` in chunks of its pool's buffer size:
/// a chunk is pushed when full, the last one by `finish`.
public final class ByteStreamWriter: @unchecked Sendable {
    /// 256 KiB: large enough for efficient writes and uploads, small enough that a
    /// stream's chunks in flight hold about a megabyte.
    public static let defaultChunkSize = 256 << 10

    private let stream: ByteStream
    private let pool: BufferPool
    private var current: BandLease?
    private var filled = 0
    /// Bytes written so far.
    public private(set) var count = 0
    /// How far through the image the producer is (0 to 1), passed on with each chunk.
    public var fraction: Double = 0

    public init(stream: ByteStream, pool: BufferPool) {
        self.stream = stream
        self.pool = pool
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            if current == nil {
                current = try pool.take()
                filled = 0
            }
            let lease = current!
            let room = pool.bufferSize - filled
            let size = min(room, bytes.count - offset)
            (lease.pointer + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: size)
            filled += size
            offset += size
            count += size
            if filled == pool.bufferSize { try flush() }
        }
    }

    private func flush() throws {
        guard let lease = current, filled > 0 else { return }
        current = nil
        try stream.push(ByteChunk(count: filled, lease: lease, fraction: fraction), byteCount: filled)
    }

    /// Pushes what is left and ends the stream.
    public func finish() throws {
        fraction = 1
        try flush()
        stream.finish()
    }
}

/// Writes a streamed grid's rows into bands of its pool's size, whatever rows the
/// caller has at hand: `write(rows:_:)` cuts them into pieces of at most a band and
/// has `fill` produce each piece in the band's memory.
public final class GridStreamWriter: @unchecked Sendable {
    public let info: GridStreamInfo
    private let stream: GridStream
    private let pool: BufferPool
    /// The most rows a band holds.
    public let rowsPerBand: Int

    init(info: GridStreamInfo, stream: GridStream, pool: BufferPool, rowsPerBand: Int) {
        self.info = info
        self.stream = stream
        self.pool = pool
        self.rowsPerBand = max(1, rowsPerBand)
    }

    /// Pushes rows `rows`, a band at a time: `fill(piece, memory)` writes rows
    /// `piece` (a part of `rows`) as elements of `info.storedElementType`, row after
    /// row, at `memory`.
    public func write(rows: Range<Int>, _ fill: (Range<Int>, UnsafeMutableRawPointer) throws -> Void) throws {
        var row = rows.lowerBound
        while row < rows.upperBound {
            let end = min(rows.upperBound, row + rowsPerBand)
            let lease = try pool.take()
            do {
                try fill(row..<end, lease.pointer)
            } catch {
                lease.release()
                throw error
            }
            try stream.push(GridBand(rows: row..<end, lease: lease), byteCount: (end - row) * info.rowBytes)
            row = end
        }
    }

    /// Ends the stream.
    public func finish() {
        stream.finish()
    }
}

/// The smallest and largest value of a grid seen band by band, NaN ignored: what a
/// range pass computes for min-max `normalize`.
public struct ValueRangeAccumulator: Sendable {
    public private(set) var range: (min: Double, max: Double)?

    public init() {}

    public mutating func add(_ low: Double, _ high: Double) {
        if let (a, b) = range {
            range = (Swift.min(a, low), Swift.max(b, high))
        } else {
            range = (low, high)
        }
    }

    /// Adds a band of `info`'s grid.
    public mutating func add(_ band: GridBand, info: GridStreamInfo) {
        let count = info.width * band.rows.count
        guard count > 0 else { return }
        if let table = info.table {
            var used = [Bool](repeating: false, count: 256)
            for index in band.elements(UInt8.self, width: info.width) { used[Int(index)] = true }
            for (index, value) in table.enumerated() where used[index] && !value.isNaN { add(Double(value), Double(value)) }
            return
        }
        switch info.elementType {
        case .uint8: addIntegers(band.elements(UInt8.self, width: info.width))
        case .uint16: addIntegers(band.elements(UInt16.self, width: info.width))
        case .uint32: addIntegers(band.elements(UInt32.self, width: info.width))
        case .float32: addFloats(band.elements(Float.self, width: info.width))
        case .float64: addFloats(band.elements(Double.self, width: info.width))
        }
    }

    private mutating func addIntegers<T: FixedWidthInteger & GridElement>(_ values: UnsafeBufferPointer<T>) {
        var low = T.max, high = T.min
        for value in values {
            low = Swift.min(low, value)
            high = Swift.max(high, value)
        }
        add(low.doubleValue, high.doubleValue)
    }

    private mutating func addFloats<T: BinaryFloatingPoint & GridElement>(_ values: UnsafeBufferPointer<T>) {
        var low = T.infinity, high = -T.infinity
        for value in values where !value.isNaN {
            low = Swift.min(low, value)
            high = Swift.max(high, value)
        }
        if low <= high { add(low.doubleValue, high.doubleValue) }
    }
}
