import Foundation

/// What a run report shows of a grid: a histogram of all its values and a small
/// preview, gathered a band of rows at a time: a digest never holds the grid, only
/// its counts and at most `GridDigest.previewSide`² sampled values.
public struct GridDigest: Sendable, Codable, Hashable {
    /// How many of the grid's values fell in each bin.
    public struct Histogram: Sendable, Codable, Hashable {
        /// For grids of few distinct values (bytes, dictionary-encoded grids): each
        /// value that occurs, ascending, and `counts` its count. Nil for binned ones.
        public var values: [Double]?
        /// For other grids: equal bins from `low` to `high`.
        public var low: Double?
        public var high: Double?
        public var counts: [Int]

        /// The values a bin stands for: its value, or its centre.
        public var centres: [Double] {
            if let values { return values }
            guard let low, let high, !counts.isEmpty else { return [] }
            let width = (high - low) / Double(counts.count)
            return counts.indices.map { low + (Double($0) + 0.5) * width }
        }
    }

    /// A nearest-sample downscale: `width` x `height` values, each the grid's value at
    /// the centre of the cell it stands for, quantised to a byte over `low`...`high`
    /// (0 = low, 255 = high) and base64-encoded row by row.
    public struct Preview: Sendable, Codable, Hashable {
        public var width: Int
        public var height: Int
        public var low: Double
        public var high: Double
        public var bytes: String
    }

    public var histogram: Histogram
    public var preview: Preview
    /// What gathering it cost the run, in seconds (for a streamed grid, summed over
    /// its bands).
    public var seconds: Double?

    /// The longest side of a preview.
    public static let previewSide = 256
}

/// Gathers a grid's digest from its rows, in order, a band at a time.
public final class GridDigestAccumulator: @unchecked Sendable {
    public let width: Int
    public let height: Int
    let previewWidth: Int
    let previewHeight: Int
    /// Byte values counted directly (grids of UInt8, and the indices of dictionary-encoded ones).
    private var byteCounts = [Int](repeating: 0, count: 256)
    private var countsBytes = false
    /// Other grids: 256 bins from `origin`, each `binWidth` wide, doubled when a value falls outside.
    private var bins = [Int](repeating: 0, count: 256)
    private var origin = 0.0
    private var binWidth = 0.0
    /// The sampled preview values: as doubles, or as the bytes themselves (byte grids).
    private var samples: [Double] = []
    private var sampledBytes: [UInt8] = []
    private var nextRow = 0

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
        let side = GridDigest.previewSide
        let scale = min(1, Double(side) / Double(max(width, height, 1)))
        previewWidth = max(1, Int((Double(width) * scale).rounded()))
        previewHeight = max(1, Int((Double(height) * scale).rounded()))
    }

    /// The input row a preview row samples: the centre of the rows it stands for.
    func sourceRow(_ previewRow: Int) -> Int { min(height - 1, (2 * previewRow + 1) * height / (2 * previewHeight)) }
    func sourceColumn(_ previewColumn: Int) -> Int { min(width - 1, (2 * previewColumn + 1) * width / (2 * previewWidth)) }

    /// Counts and samples `rows` (`rowCount` rows of `width` values), the next ones of the grid.
    public func add(bytes rows: UnsafeBufferPointer<UInt8>, rowCount: Int) {
        countsBytes = true
        let counts = Self.countBytes(rows)
        for k in 0..<256 { byteCounts[k] += counts[k] }
        if sampledBytes.isEmpty { sampledBytes = [UInt8](repeating: 0, count: previewWidth * previewHeight) }
        sampledBytes.withUnsafeMutableBufferPointer { samples in
            sample(rowCount: rowCount) { sample, source in samples[sample] = rows[source] }
        }
    }

    /// How many of each byte value `bytes` holds: 8 bytes a load, each byte of the
    /// word into a table of its own (so that runs of one value do not wait on one
    /// counter), 32-bit counters flushed every 64 MiB.
    static func countBytes(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int] {
        var counts = [Int](repeating: 0, count: 256)
        guard let base = UnsafeRawPointer(bytes.baseAddress) else { return counts }
        let tables = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        defer { tables.deallocate() }
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + (1 << 26))
            tables.initialize(repeating: 0, count: 8 * 256)
            var i = start
            while i + 8 <= end {
                let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                tables[Int(word & 0xFF)] &+= 1
                tables[256 + Int((word >> 8) & 0xFF)] &+= 1
                tables[512 + Int((word >> 16) & 0xFF)] &+= 1
                tables[768 + Int((word >> 24) & 0xFF)] &+= 1
                tables[1024 + Int((word >> 32) & 0xFF)] &+= 1
                tables[1280 + Int((word >> 40) & 0xFF)] &+= 1
                tables[1536 + Int((word >> 48) & 0xFF)] &+= 1
                tables[1792 + Int(word >> 56)] &+= 1
                i += 8
            }
            while i < end {
                tables[Int(base.load(fromByteOffset: i, as: UInt8.self))] &+= 1
                i += 1
            }
            for table in 0..<8 {
                for k in 0..<256 { counts[k] += Int(tables[table * 256 + k]) }
            }
            start = end
        }
        return counts
    }

    /// Counts and samples rows of any element type.
    public func add<Element: GridElement>(_ rows: UnsafeBufferPointer<Element>, rowCount: Int) {
        if Element.self == UInt8.self {
            rows.withMemoryRebound(to: UInt8.self) { add(bytes: $0, rowCount: rowCount) }
            return
        }
        for element in rows {
            // NaN and infinities have no bin; the preview shows them at its low end.
            let value = element.doubleValue
            guard value.isFinite else { continue }
            if binWidth == 0 {
                // The first value: bins of a millionth of its size (or 1e-9) around it.
                binWidth = max(abs(value) * 1e-6, 1e-9)
                origin = max(value - 128 * binWidth, -.greatestFiniteMagnitude)
            }
            // Wider while the range stays finite: values near ±Double.greatestFiniteMagnitude
            // end in the outermost bins.
            while value < origin || value >= origin + 256 * binWidth, (origin - 512 * binWidth).isFinite, (origin + 512 * binWidth).isFinite {
                widen(towards: value)
            }
            let position = (value - origin) / binWidth
            bins[position.isFinite ? Int(min(255, max(0, position))) : (value < origin ? 0 : 255)] += 1
        }
        if samples.isEmpty { samples = [Double](repeating: 0, count: previewWidth * previewHeight) }
        samples.withUnsafeMutableBufferPointer { samples in
            sample(rowCount: rowCount) { sample, source in samples[sample] = rows[source].doubleValue }
        }
    }

    /// Doubles the bins' width, keeping the range's one end and extending it towards `value`.
    private func widen(towards value: Double) {
        var merged = [Int](repeating: 0, count: 256)
        if value < origin {
            // The old range becomes the upper half.
            for k in 0..<256 { merged[128 + k / 2] += bins[k] }
            origin -= 256 * binWidth
        } else {
            for k in 0..<256 { merged[k / 2] += bins[k] }
        }
        binWidth *= 2
        bins = merged
    }

    /// Calls `take(preview index, index in the rows)` for each preview cell whose
    /// source is in the next `rowCount` rows.
    private func sample(rowCount: Int, take: (Int, Int) -> Void) {
        let first = nextRow
        nextRow += rowCount
        // The preview rows whose source row is in this band.
        var previewRow = Int((Double(first) * Double(previewHeight) / Double(max(height, 1))).rounded(.down))
        while previewRow > 0 && sourceRow(previewRow - 1) >= first { previewRow -= 1 }
        while previewRow < previewHeight {
            let row = sourceRow(previewRow)
            if row >= nextRow { break }
            if row >= first {
                for column in 0..<previewWidth {
                    take(previewRow * previewWidth + column, (row - first) * width + sourceColumn(column))
                }
            }
            previewRow += 1
        }
    }

    /// The digest of what was added; `table` maps byte values to what they stand for
    /// (a dictionary-encoded grid's table).
    public func finish(table: [Double]? = nil) -> GridDigest {
        let histogram: GridDigest.Histogram
        if countsBytes {
            // One bin per value that occurs: bytes that a table maps to one value share
            // it, and a value that is not finite has none.
            var counts: [Double: Int] = [:]
            for k in 0..<256 where byteCounts[k] > 0 {
                let value = table.map { $0[k] } ?? Double(k)
                if value.isFinite { counts[value, default: 0] += byteCounts[k] }
            }
            let values = counts.keys.sorted()
            histogram = GridDigest.Histogram(values: values, counts: values.map { counts[$0]! })
        } else {
            // Trim the empty bins at both ends.
            let first = bins.firstIndex { $0 > 0 } ?? 0, last = bins.lastIndex { $0 > 0 } ?? 0
            func edge(_ bin: Int) -> Double { min(max(origin + Double(bin) * binWidth, -.greatestFiniteMagnitude), .greatestFiniteMagnitude) }
            histogram = GridDigest.Histogram(low: edge(first), high: edge(last + 1), counts: Array(bins[first...last]))
        }
        var low = Double.infinity, high = -Double.infinity
        var bytes: [UInt8]
        if countsBytes {
            // Through the 256 values a byte stands for: the range of those sampled, then
            // each byte's shade once.
            var seen = [Bool](repeating: false, count: 256)
            for byte in sampledBytes { seen[Int(byte)] = true }
            let values = (0..<256).map { table?[$0] ?? Double($0) }
            for k in 0..<256 where seen[k] && values[k].isFinite {
                low = min(low, values[k])
                high = max(high, values[k])
            }
            if low > high { (low, high) = (0, 0) }
            let scale = high > low ? 255 / (high - low) : 0
            let shade = values.map { $0.isFinite ? UInt8(max(0, min(255, (($0 - low) * scale).rounded()))) : 0 }
            bytes = sampledBytes.map { shade[Int($0)] }
        } else {
            for value in samples where value.isFinite {
                if value < low { low = value }
                if value > high { high = value }
            }
            if low > high { (low, high) = (0, 0) }
            let scale = high > low ? 255 / (high - low) : 0
            bytes = [UInt8](repeating: 0, count: samples.count)
            for i in samples.indices where samples[i].isFinite {
                bytes[i] = UInt8(max(0, min(255, ((samples[i] - low) * scale).rounded())))
            }
        }
        return GridDigest(histogram: histogram, preview: GridDigest.Preview(
            width: previewWidth, height: previewHeight, low: low, high: high, bytes: Self.base64(bytes)))
    }

    /// Standard base64 with padding.
    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let value = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(value >> 18)])
            out.append(alphabet[Int(value >> 12 & 63)])
            out.append(alphabet[Int(value >> 6 & 63)])
            out.append(alphabet[Int(value & 63)])
            i += 3
        }
        if i < bytes.count {
            let value = UInt32(bytes[i]) << 16 | (i + 1 < bytes.count ? UInt32(bytes[i + 1]) << 8 : 0)
            out += [alphabet[Int(value >> 18)], alphabet[Int(value >> 12 & 63)]]
            out += i + 1 < bytes.count ? [alphabet[Int(value >> 6 & 63)], UInt8(ascii: "=")] : [UInt8(ascii: "="), UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The digest of a whole grid (a dictionary-encoded one through its indices).
    /// With a `cache`, a byte grid met again (the indices of a dictionary-encoded
    /// grid made from it, as `normalize` makes) is not counted twice.
    public static func digest(_ grid: any AnyGrid, cache: GridDigestCache? = nil) -> GridDigest? {
        func bytes(_ grid: Grid<UInt8>) -> GridDigestAccumulator {
            func count() -> GridDigestAccumulator {
                let accumulator = GridDigestAccumulator(width: grid.width, height: grid.height)
                grid.withUnsafeBufferPointer { accumulator.add(bytes: $0, rowCount: grid.height) }
                return accumulator
            }
            return cache?.accumulator(for: grid, making: count) ?? count()
        }
        func of<Element: GridElement>(_ grid: Grid<Element>) -> GridDigest {
            if let encoding = grid.dictionaryEncoding {
                return bytes(encoding.indices).finish(table: encoding.table.map(\.doubleValue))
            }
            if let grid = grid as? Grid<UInt8> { return bytes(grid).finish() }
            let accumulator = GridDigestAccumulator(width: grid.width, height: grid.height)
            grid.withUnsafeBufferPointer { accumulator.add($0, rowCount: grid.height) }
            return accumulator.finish()
        }
        switch grid {
        case let grid as Grid<UInt8>: return of(grid)
        case let grid as Grid<UInt16>: return of(grid)
        case let grid as Grid<UInt32>: return of(grid)
        case let grid as Grid<Float>: return of(grid)
        case let grid as Grid<Double>: return of(grid)
        default: return nil
        }
    }
}

/// Byte grids already counted in a run, by identity (held weakly: a grid that is gone
/// is never confused with a new one at its address). A grid asked for twice at once
/// is counted once: the second asker waits for the first.
public final class GridDigestCache: @unchecked Sendable {
    private final class Slot: @unchecked Sendable {
        weak var grid: Grid<UInt8>?
        let lock = NSLock()
        var accumulator: GridDigestAccumulator?

        init(grid: Grid<UInt8>) { self.grid = grid }
    }

    private let lock = NSLock()
    private var slots: [ObjectIdentifier: Slot] = [:]

    public init() {}

    func accumulator(for grid: Grid<UInt8>, making make: () -> GridDigestAccumulator) -> GridDigestAccumulator {
        let slot: Slot = lock.withLock {
            if let slot = slots[ObjectIdentifier(grid)], slot.grid === grid { return slot }
            slots = slots.filter { $0.value.grid != nil }
            let slot = Slot(grid: grid)
            slots[ObjectIdentifier(grid)] = slot
            return slot
        }
        return slot.lock.withLock {
            if let accumulator = slot.accumulator { return accumulator }
            let accumulator = make()
            slot.accumulator = accumulator
            return accumulator
        }
    }
}
