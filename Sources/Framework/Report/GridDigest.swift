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
    private lazy var byteHistogram = ByteHistogram(expectedCount: width.multipliedReportingOverflow(by: height).partialValue)
    private let settling = NSLock()
    private var countsBytes = false
    /// Other grids: 256 bins from `origin`, each `binWidth` wide, doubled when a value falls outside.
    private var bins = [Int](repeating: 0, count: 256)
    private var origin = 0.0
    private var binWidth = 0.0
    /// The sampled preview values: as doubles, or as the bytes themselves (byte grids).
    private var samples: [Double] = []
    private var sampledBytes: [UInt8] = []
    private var nextRow = 0
    /// The source column of each preview column.
    private var sourceColumns: [Int] = []

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
        byteHistogram.add(rows)
        sample(bytes: rows, rowCount: rowCount)
    }

    /// Samples `rows` for the preview without counting them: their counts come from
    /// `add(counts:)` (a grid whose producer counted its values).
    public func sample(bytes rows: UnsafeBufferPointer<UInt8>, rowCount: Int) {
        countsBytes = true
        if sampledBytes.isEmpty { sampledBytes = [UInt8](repeating: 0, count: previewWidth * previewHeight) }
        sampledBytes.withUnsafeMutableBufferPointer { samples in
            sample(rowCount: rowCount) { sample, source in samples[sample] = rows[source] }
        }
    }

    /// The byte counts with what the histogram holds folded in; once the rows are all
    /// added, `finish` may be called from several threads (a byte grid's digest is
    /// shared with the dictionary-encoded grids made from it).
    private func settledByteCounts() -> [Int] {
        settling.withLock {
            add(counts: byteHistogram.counts)
            byteHistogram = ByteHistogram(expectedCount: 0)
            return byteCounts
        }
    }

    /// Adds counts of byte values (256 of them) made elsewhere.
    public func add(counts: [Int]) {
        precondition(counts.count == 256, "byte counts are 256")
        countsBytes = true
        for k in 0..<256 { byteCounts[k] += counts[k] }
    }

    /// How many of each byte value `bytes` holds.
    static func countBytes(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int] {
        let histogram = ByteHistogram(expectedCount: bytes.count)
        histogram.add(bytes)
        return histogram.counts
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
    @inline(__always)
    private func sample(rowCount: Int, take: (Int, Int) -> Void) {
        let first = nextRow
        nextRow += rowCount
        if sourceColumns.isEmpty { sourceColumns = (0..<previewWidth).map(sourceColumn) }
        // The preview rows whose source row is in this band.
        var previewRow = Int((Double(first) * Double(previewHeight) / Double(max(height, 1))).rounded(.down))
        while previewRow > 0 && sourceRow(previewRow - 1) >= first { previewRow -= 1 }
        sourceColumns.withUnsafeBufferPointer { columns in
            while previewRow < previewHeight {
                let row = sourceRow(previewRow)
                if row >= nextRow { break }
                if row >= first {
                    let target = previewRow * previewWidth, source = (row - first) * width
                    for column in 0..<previewWidth { take(target + column, source + columns[column]) }
                }
                previewRow += 1
            }
        }
    }

    /// The digest of what was added; `table` maps byte values to what they stand for
    /// (a dictionary-encoded grid's table).
    public func finish(table: [Double]? = nil) -> GridDigest {
        let histogram: GridDigest.Histogram
        if countsBytes {
            let byteCounts = settledByteCounts()
            // One bin per value that occurs: bytes that a table maps to one value share
            // it, and a value that is not finite has none.
            var occurring: [(value: Double, count: Int)] = []
            for k in 0..<256 where byteCounts[k] > 0 {
                let value = table.map { $0[k] } ?? Double(k)
                if value.isFinite { occurring.append((value, byteCounts[k])) }
            }
            occurring.sort { $0.value < $1.value }
            var values: [Double] = [], counts: [Int] = []
            for (value, count) in occurring {
                if values.last == value { counts[counts.count - 1] += count } else { values.append(value); counts.append(count) }
            }
            histogram = GridDigest.Histogram(values: values, counts: counts)
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
            sampledBytes.withUnsafeBufferPointer { sampled in
                seen.withUnsafeMutableBufferPointer { seen in
                    for byte in sampled { seen[Int(byte)] = true }
                }
            }
            let values = (0..<256).map { table?[$0] ?? Double($0) }
            for k in 0..<256 where seen[k] && values[k].isFinite {
                low = min(low, values[k])
                high = max(high, values[k])
            }
            if low > high { (low, high) = (0, 0) }
            let scale = high > low ? 255 / (high - low) : 0
            let shade = values.map { $0.isFinite ? UInt8(max(0, min(255, (($0 - low) * scale).rounded()))) : 0 }
            bytes = [UInt8](unsafeUninitializedCapacity: sampledBytes.count) { out, initialized in
                sampledBytes.withUnsafeBufferPointer { sampled in
                    shade.withUnsafeBufferPointer { shade in
                        for i in sampled.indices { out[i] = shade[Int(sampled[i])] }
                    }
                }
                initialized = sampledBytes.count
            }
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
        let length = (bytes.count + 2) / 3 * 4
        guard length > 0 else { return "" }
        return bytes.withUnsafeBufferPointer { input in
            String(unsafeUninitializedCapacity: length) { out in
                let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                let letters = alphabet.utf8Start
                var i = 0, o = 0
                while i + 3 <= input.count {
                    let value = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                    out[o] = letters[Int(value >> 18)]
                    out[o + 1] = letters[Int(value >> 12 & 63)]
                    out[o + 2] = letters[Int(value >> 6 & 63)]
                    out[o + 3] = letters[Int(value & 63)]
                    i += 3
                    o += 4
                }
                if i < input.count {
                    let two = i + 1 < input.count
                    let value = UInt32(input[i]) << 16 | (two ? UInt32(input[i + 1]) << 8 : 0)
                    out[o] = letters[Int(value >> 18)]
                    out[o + 1] = letters[Int(value >> 12 & 63)]
                    out[o + 2] = two ? letters[Int(value >> 6 & 63)] : UInt8(ascii: "=")
                    out[o + 3] = UInt8(ascii: "=")
                }
                return length
            }
        }
    }

    /// The digest of a whole grid (a dictionary-encoded one through its indices).
    /// With a `cache`, a byte grid met again (the indices of a dictionary-encoded
    /// grid made from it, as `normalize` makes) is not counted twice.
    public static func digest(_ grid: any AnyGrid, cache: GridDigestCache? = nil) -> GridDigest? {
        try? grid.accept(WholeGrid(cache: cache))
    }

    /// Whether `digest(grid)` costs only the preview's work, whatever the grid's size:
    /// its byte values (or its indices') were counted by the stage that wrote them.
    public static func isBounded(_ grid: any AnyGrid) -> Bool {
        (try? grid.accept(Bounded())) ?? false
    }

    private struct Bounded: GridVisitor {
        func visit<Element: GridElement>(_ grid: Grid<Element>) -> Bool {
            if let encoding = grid.dictionaryEncoding { return encoding.indices.recordedValueCounts != nil }
            return Element.self == UInt8.self && unsafeDowncast(grid, to: Grid<UInt8>.self).recordedValueCounts != nil
        }
    }

    private struct WholeGrid: GridVisitor {
        let cache: GridDigestCache?

        func visit<Element: GridElement>(_ grid: Grid<Element>) -> GridDigest {
            if let encoding = grid.dictionaryEncoding {
                return bytes(encoding.indices).finish(table: encoding.table.map { $0.doubleValue })
            }
            if Element.self == UInt8.self { return bytes(unsafeDowncast(grid, to: Grid<UInt8>.self)).finish() }
            let accumulator = GridDigestAccumulator(width: grid.width, height: grid.height)
            grid.withUnsafeBufferPointer { accumulator.add($0, rowCount: grid.height) }
            return accumulator.finish()
        }

        func bytes(_ grid: Grid<UInt8>) -> GridDigestAccumulator {
            func count() -> GridDigestAccumulator {
                let accumulator = GridDigestAccumulator(width: grid.width, height: grid.height)
                // Counts its producer recorded spare the pass.
                if let counts = grid.recordedValueCounts {
                    accumulator.add(counts: counts)
                    grid.withUnsafeBufferPointer { accumulator.sample(bytes: $0, rowCount: grid.height) }
                } else {
                    grid.withUnsafeBufferPointer { accumulator.add(bytes: $0, rowCount: grid.height) }
                }
                return accumulator
            }
            return cache?.accumulator(for: grid, making: count) ?? count()
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
    /// A run has a few grids: a list, searched by identity.
    private var slots: [Slot] = []

    public init() {}

    func accumulator(for grid: Grid<UInt8>, making make: () -> GridDigestAccumulator) -> GridDigestAccumulator {
        let slot: Slot = lock.withLock {
            if let slot = slots.first(where: { $0.grid === grid }) { return slot }
            slots.removeAll { $0.grid == nil }
            let slot = Slot(grid: grid)
            slots.append(slot)
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

/// The digest of a streamed grid, gathered from its bands as its consumer takes them
/// (`ArtifactStream.tap`): the grid is never whole, and the digest holds only its
/// counts and preview samples.
public final class StreamedGridDigest: @unchecked Sendable {
    private let lock = NSLock()
    private var accumulator: GridDigestAccumulator?
    private var info: GridStreamInfo?
    private var rows = 0
    private var seconds = 0.0

    /// Taps `stream`: every band its consumer takes is added.
    public init(tapping stream: GridStream) {
        stream.tap { [unowned stream] band in self.add(band, info: stream.currentHeader) }
    }

    private func add(_ band: GridBand, info header: GridStreamInfo?) {
        guard let header else { return }
        let clock = ContinuousClock(), start = clock.now
        lock.withLock {
            if accumulator == nil {
                info = header
                accumulator = GridDigestAccumulator(width: header.width, height: header.height)
            }
            guard let accumulator, band.rows.lowerBound == rows else { return }  // bands come in order
            let width = header.width, count = band.rows.count
            switch header.storedElementType {
            case .uint8: accumulator.add(bytes: band.elements(UInt8.self, width: width), rowCount: count)
            case .uint16: accumulator.add(band.elements(UInt16.self, width: width), rowCount: count)
            case .uint32: accumulator.add(band.elements(UInt32.self, width: width), rowCount: count)
            case .float32: accumulator.add(band.elements(Float.self, width: width), rowCount: count)
            case .float64: accumulator.add(band.elements(Double.self, width: width), rowCount: count)
            }
            rows = band.rows.upperBound
            seconds += (clock.now - start).seconds
        }
    }

    /// The digest, once every row went by; nil for a stream that did not finish.
    public func finish() -> GridDigest? {
        lock.withLock {
            guard let accumulator, let info, rows == info.height else { return nil }
            let clock = ContinuousClock(), start = clock.now
            var digest = accumulator.finish(table: info.table.map { $0.map(Double.init) })
            digest.seconds = seconds + (clock.now - start).seconds
            return digest
        }
    }
}
