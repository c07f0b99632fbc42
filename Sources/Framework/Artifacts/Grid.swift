import Foundation

/// The element type of a grid.
public enum ElementType: String, Sendable, Hashable, CaseIterable, Codable {
    case uint8, uint16, uint32, float32, float64

    /// The Swift spelling used in type names: `UInt8`, `Float32`.
    public var swiftName: String {
        switch self {
        case .uint8: "UInt8"
        case .uint16: "UInt16"
        case .uint32: "UInt32"
        case .float32: "Float32"
        case .float64: "Float64"
        }
    }

    public var byteWidth: Int {
        switch self {
        case .uint8: 1
        case .uint16: 2
        case .uint32, .float32: 4
        case .float64: 8
        }
    }
}

/// A scalar type a `Grid` can hold.
public protocol GridElement: Sendable, Comparable {
    static var elementType: ElementType { get }
    /// The value as a Double (exact for every supported type).
    var doubleValue: Double { get }
}

extension UInt8: GridElement {
    public static var elementType: ElementType { .uint8 }
    @inlinable public var doubleValue: Double { Double(self) }
}

extension UInt16: GridElement {
    public static var elementType: ElementType { .uint16 }
    @inlinable public var doubleValue: Double { Double(self) }
}

extension UInt32: GridElement {
    public static var elementType: ElementType { .uint32 }
    @inlinable public var doubleValue: Double { Double(self) }
}

extension Float: GridElement {
    public static var elementType: ElementType { .float32 }
    @inlinable public var doubleValue: Double { Double(self) }
}

extension Double: GridElement {
    public static var elementType: ElementType { .float64 }
    @inlinable public var doubleValue: Double { self }
}

/// A grid is any `Grid<Element>`; this lets stages accept several element types and
/// switch on them without knowing the generic parameter.
public protocol AnyGrid: Artifact {
    var width: Int { get }
    var height: Int { get }
    var elementType: ElementType { get }
    /// `visitor.visit(self)` with the grid as its own type: generic code over every
    /// element type without a cast per type (and without the runtime's type lookups
    /// that a cast to a type not yet used in the process costs).
    func accept<Visitor: GridVisitor>(_ visitor: Visitor) throws -> Visitor.Result
}

/// What to do with a grid of any element type; see `AnyGrid.accept`.
public protocol GridVisitor {
    associatedtype Result
    func visit<Element: GridElement>(_ grid: Grid<Element>) throws -> Result
}

/// A width x height grid of numbers, row-major, immutable once made.
///
/// A grid holds its elements in one contiguous allocation, or, *dictionary-encoded*,
/// as a `Grid<UInt8>` of indices into a table of at most 256 values, the way columnar
/// formats store columns with few distinct values. A stage that maps a byte grid
/// element by element (`normalize` on the generator's output) returns such a grid
/// in O(256) instead of writing a full-size copy; consumers that understand the
/// encoding (the JPEG and PNG encoders, the range scan) read the indices directly,
/// and any other access materialises the elements once, on first use.
///
/// The storage is filled by the closure given to `init`; after that the grid is
/// immutable, which is what makes sharing it between concurrent consumers safe.
public final class Grid<Element: GridElement>: AnyGrid, @unchecked Sendable {
    public let width: Int
    public let height: Int
    /// The elements, when the grid was made from them.
    private let dense: UnsafeMutableBufferPointer<Element>?
    /// The indices and table, when the grid is dictionary-encoded.
    public let dictionaryEncoding: DictionaryEncoding?
    /// A dictionary-encoded grid's elements, once something asked for them.
    private let materialized = OnceCache<UnsafeMutableBufferPointer<Element>>()
    private let rangeCache = OnceCache<(min: Double, max: Double)?>()
    /// A byte grid's count of each value, when its producer recorded them.
    private let valueCountsCache = OnceCache<[Int]>()

    public func accept<Visitor: GridVisitor>(_ visitor: Visitor) throws -> Visitor.Result { try visitor.visit(self) }
    public var asGrid: (any AnyGrid)? { self }

    /// A grid stored as byte indices into a table: element i is `table[indices[i]]`.
    public struct DictionaryEncoding: Sendable {
        public let indices: Grid<UInt8>
        /// 256 entries, one for every byte value.
        public let table: [Element]
    }

    public struct SizeError: Error, CustomStringConvertible {
        public var width: Int
        public var height: Int
        public var description: String {
            "a \(width)x\(height) grid of \(Element.elementType.swiftName) does not fit in memory"
        }
    }

    /// Allocates a grid and lets `fill` write every element, row-major (`y * width + x`).
    /// `fill` must initialise every element.
    public init(width: Int, height: Int, fill: (UnsafeMutableBufferPointer<Element>) throws -> Void) throws {
        self.width = width
        self.height = height
        let storage = try Self.allocate(width: width, height: height)
        self.dense = storage
        self.dictionaryEncoding = nil
        // If `fill` throws, the object is fully initialised, so deinit frees the storage.
        try fill(storage)
    }

    /// Allocates a grid and lets `fill` write every element from concurrent tasks.
    /// `fill` must initialise every element, each exactly once.
    public init(width: Int, height: Int, fillConcurrently fill: (UnsafeSendableBuffer<Element>) async throws -> Void) async throws {
        self.width = width
        self.height = height
        let storage = try Self.allocate(width: width, height: height)
        self.dense = storage
        self.dictionaryEncoding = nil
        // If `fill` throws, the object is fully initialised, so deinit frees the storage.
        try await fill(UnsafeSendableBuffer(storage))
    }

    /// A dictionary-encoded grid of `indices`' shape whose element i is
    /// `table[indices[i]]`. `table` must have 256 entries. Nothing is copied.
    public init(indices: Grid<UInt8>, table: [Element]) {
        precondition(table.count == 256, "a dictionary table has one entry for each of the 256 byte values")
        self.width = indices.width
        self.height = indices.height
        self.dense = nil
        self.dictionaryEncoding = DictionaryEncoding(indices: indices, table: table)
    }

    /// width * height, refusing negative sizes and sizes whose bytes overflow.
    private static func elementCount(width: Int, height: Int) throws -> Int {
        let (count, overflow) = width.multipliedReportingOverflow(by: height)
        let (bytes, overflow2) = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard width >= 0, height >= 0, !overflow, !overflow2, bytes < Int.max / 2 else {
            throw SizeError(width: width, height: height)
        }
        return count
    }

    /// Memory for a width x height grid, from `malloc`: a size that cannot be had is
    /// an `AllocationError` naming it, never a crash.
    private static func allocate(width: Int, height: Int) throws -> UnsafeMutableBufferPointer<Element> {
        let count = try elementCount(width: width, height: height)
        guard let raw = malloc(Swift.max(1, count * MemoryLayout<Element>.stride)) else {
            throw AllocationError(byteCount: Double(count) * Double(MemoryLayout<Element>.stride),
                                  purpose: "a \(width)x\(height) grid of \(Element.elementType.swiftName)")
        }
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: Element.self, capacity: count), count: count)
    }

    /// Decodes a dictionary-encoded grid's elements into memory now, so that a
    /// failing allocation is an error here rather than a crash in a later access.
    /// Does nothing for a grid that holds its elements.
    public func materialize() throws {
        guard dense == nil, materialized.ifComputed == nil else { return }
        let output = try Self.allocate(width: width, height: height)
        _ = materialized.value { decodeDictionary(into: output); return output }
        if materialized.ifComputed?.baseAddress != output.baseAddress { free(output.baseAddress) }
    }

    private func decodeDictionary(into output: UnsafeMutableBufferPointer<Element>) {
        let encoding = dictionaryEncoding!
        encoding.table.withUnsafeBufferPointer { table in
            encoding.indices.withUnsafeBufferPointer { indices in
                Self.decode(indices, table: table, into: output.baseAddress!)
            }
        }
    }

    /// A grid holding a copy of `values` (row-major); for tests and small data.
    public convenience init(width: Int, height: Int, values: [Element]) throws {
        precondition(values.count == width * height, "values.count must be width * height")
        try self.init(width: width, height: height) { buffer in
            _ = buffer.initialize(from: values)
        }
    }

    deinit {
        free(dense?.baseAddress)
        free(materialized.ifComputed?.baseAddress)
    }

    /// The elements in memory: the grid's own, or a dictionary-encoded grid's decoded
    /// once (the first caller pays; later and concurrent callers share the result).
    @usableFromInline
    var storage: UnsafeMutableBufferPointer<Element> {
        if let dense { return dense }
        return materialized.value {
            // Callers that can fail cleanly call materialize() first; here there is no way back.
            guard let output = try? Self.allocate(width: width, height: height) else {
                fatalError("cannot allocate \(width)x\(height) \(Element.elementType.swiftName) elements to decode a dictionary-encoded grid")
            }
            decodeDictionary(into: output)
            return output
        }
    }

    @_specialize(where Element == Float)
    @_specialize(where Element == Double)
    private static func decode(_ indices: UnsafeBufferPointer<UInt8>, table: UnsafeBufferPointer<Element>, into output: UnsafeMutablePointer<Element>) {
        for i in 0..<indices.count { (output + i).initialize(to: table[Int(indices[i])]) }
    }

    public var count: Int { width * height }
    public var elementType: ElementType { Element.elementType }
    public var artifactType: ArtifactType { .grid(Element.elementType) }

    /// The elements in memory. A dictionary-encoded grid is decoded on the first call
    /// (once, into memory of its own); consumers that can read `dictionaryEncoding`
    /// directly should.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(storage))
    }

    @inlinable
    public subscript(x: Int, y: Int) -> Element {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "grid index out of range")
        if let dictionaryEncoding { return dictionaryEncoding.table[Int(dictionaryEncoding.indices[x, y])] }
        return storage[y * width + x]
    }

    /// The elements as an array (a copy); for tests.
    public var elements: [Element] { Array(storage) }

    /// The smallest and largest element, ignoring NaN; nil for an empty or all-NaN grid.
    /// One pass, written as selects so that it vectorises once specialised.
    @inlinable
    public func range() -> (min: Element, max: Element)? {
        if let dictionaryEncoding { return Self.range(of: dictionaryEncoding) }
        let storage = self.storage
        guard let start = storage.firstIndex(where: { $0 == $0 }) else { return nil }  // skips NaN
        var low = storage[start], high = low
        var index = start + 1
        while index < storage.count {
            let value = storage[index]
            // A NaN compares false both ways, so it changes neither.
            low = value < low ? value : low
            high = value > high ? value : high
            index += 1
        }
        return (low, high)
    }

    /// `range()` as Doubles, computed once per grid and cached (grids are immutable).
    /// For a dictionary-encoded grid, from the indices without decoding them.
    public func valueRange() -> (min: Double, max: Double)? {
        rangeCache.value {
            guard let encoding = dictionaryEncoding else { return rangeAsDoubles() }
            return Self.range(of: encoding).map { ($0.min.doubleValue, $0.max.doubleValue) }
        }
    }

    /// `valueRange()`, for callers that must stay cancellable: a grid that holds its
    /// elements is scanned in pieces of 256 Ki elements, with `Task.checkCancellation()`
    /// before each. The result is cached as `valueRange()`'s is.
    @_specialize(where Element == UInt8)
    @_specialize(where Element == UInt16)
    @_specialize(where Element == UInt32)
    @_specialize(where Element == Float)
    @_specialize(where Element == Double)
    public func cancellableValueRange() throws -> (min: Double, max: Double)? {
        if let cached = rangeCache.ifComputed { return cached }
        guard let dense else { return valueRange() }
        let piece = 1 << 18
        var low: Element?, high: Element?
        var start = 0
        while start < dense.count {
            try Task.checkCancellation()
            let end = Swift.min(dense.count, start + piece)
            var index = start
            while index < end {
                let value = dense[index]
                if value == value {  // skips NaN
                    if let current = low { low = value < current ? value : current } else { low = value }
                    if let current = high { high = value > current ? value : current } else { high = value }
                }
                index += 1
            }
            start = end
        }
        let result = low.map { ($0.doubleValue, high!.doubleValue) }
        return rangeCache.value { result }
    }

    /// The smallest and largest table entry that some index selects, ignoring NaN.
    /// When the table is monotonic between the smallest and largest index (an affine
    /// map such as normalisation), these are the entries at those two indices, which
    /// occur; otherwise one pass over the indices finds which entries occur.
    @usableFromInline
    static func range(of encoding: DictionaryEncoding) -> (min: Element, max: Element)? {
        // The indices' range is usually cached already (normalize needed it).
        guard let (low, high) = encoding.indices.valueRange().map({ (Int($0.min), Int($0.max)) }) else { return nil }
        let used = encoding.table[low...high]
        // Comparisons with NaN are false, so a monotonic run holds no NaN beyond its ends.
        let (first, last) = (used.first!, used.last!)
        if first == first, last == last {
            if zip(used, used.dropFirst()).allSatisfy({ $0 <= $1 }) { return (first, last) }
            if zip(used, used.dropFirst()).allSatisfy({ $0 >= $1 }) { return (last, first) }
        }
        var occurs = [Bool](repeating: false, count: 256)
        encoding.indices.withUnsafeBufferPointer { indices in
            for index in indices { occurs[Int(index)] = true }
        }
        let values = (0..<256).filter { occurs[$0] && encoding.table[$0] == encoding.table[$0] }.map { encoding.table[$0] }
        guard let first = values.first else { return nil }
        return (values.min() ?? first, values.max() ?? first)
    }

    /// `range()` through a concrete element type, so the scan is specialised even when
    /// called through the `Artifact` existential.
    private func rangeAsDoubles() -> (Double, Double)? {
        func convert<T: GridElement>(_ range: (min: T, max: T)?) -> (Double, Double)? {
            range.map { ($0.min.doubleValue, $0.max.doubleValue) }
        }
        switch self {
        case let grid as Grid<UInt8>: return convert(grid.range())
        case let grid as Grid<UInt16>: return convert(grid.range())
        case let grid as Grid<UInt32>: return convert(grid.range())
        case let grid as Grid<Float>: return convert(grid.range())
        case let grid as Grid<Double>: return convert(grid.range())
        default: return convert(range())
        }
    }

    public func briefSummary() -> ArtifactSummary {
        var summary = ArtifactSummary(type: artifactType)
        summary.width = width
        summary.height = height
        summary.elementType = Element.elementType.rawValue
        summary.byteCount = count * MemoryLayout<Element>.stride
        if dictionaryEncoding != nil { summary.encoding = "dictionary" }
        return summary
    }

    public func summary() -> ArtifactSummary {
        var summary = briefSummary()
        if let (low, high) = valueRange() {
            summary.min = low
            summary.max = high
        }
        return summary
    }

    public var templateValues: [String: String] {
        ["width": String(width), "height": String(height)]
    }
}

/// A mutable buffer handed to concurrent tasks that write disjoint parts of it.
/// The caller guarantees that no two tasks touch the same element.
public struct UnsafeSendableBuffer<Element>: @unchecked Sendable {
    public let buffer: UnsafeMutableBufferPointer<Element>

    public init(_ buffer: UnsafeMutableBufferPointer<Element>) {
        self.buffer = buffer
    }

    public var count: Int { buffer.count }

    /// The elements `range` as their own buffer.
    @inlinable
    public func slice(_ range: Range<Int>) -> UnsafeMutableBufferPointer<Element> {
        UnsafeMutableBufferPointer(rebasing: buffer[range])
    }
}

extension Grid where Element == UInt8 {
    /// Records how many times each byte value occurs, as counted by the stage that
    /// wrote the elements while it wrote them (`ByteHistogram`, a block at a time while
    /// the block is in cache). The run report's digest then skips its own pass, and
    /// the value range follows from the counts. Ignored, returning false, unless
    /// there are 256 counts, none negative, summing to the number of elements, and
    /// none was recorded before.
    @discardableResult
    public func recordValueCounts(_ counts: [Int]) -> Bool {
        guard counts.count == 256, counts.allSatisfy({ $0 >= 0 }), valueCountsCache.ifComputed == nil else { return false }
        // Counts that overflow a sum cannot add up to the grid.
        var total = 0
        for value in counts {
            let (sum, overflow) = total.addingReportingOverflow(value)
            if overflow { return false }
            total = sum
        }
        guard total == count else { return false }
        _ = valueCountsCache.value { counts }
        let low = counts.firstIndex { $0 > 0 }, high = counts.lastIndex { $0 > 0 }
        _ = rangeCache.value { low.map { (Double($0), Double(high!)) } }
        return true
    }

    /// The counts `recordValueCounts` recorded, if any.
    public var recordedValueCounts: [Int]? { valueCountsCache.ifComputed }
}

/// A value computed at most once, on first use, from any thread.
final class OnceCache<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?
    private var computed = false

    /// The value if it has been computed, without computing it.
    var ifComputed: Value? {
        lock.lock()
        defer { lock.unlock() }
        return computed ? stored : nil
    }

    func value(_ compute: () -> Value) -> Value {
        lock.lock()
        defer { lock.unlock() }
        if !computed {
            stored = compute()
            computed = true
        }
        return stored!
    }
}
