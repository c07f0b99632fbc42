import Foundation
import Testing
@testable import Framework

/// Grid digests (the report's histograms and previews): counts and samples checked
/// against the grid directly, band by band as whole, and bounded in size.
@Suite struct GridDigestTests {
    static func bytes(width: Int, height: Int, seed: UInt64 = 1) throws -> Grid<UInt8> {
        var state = seed
        return try Grid<UInt8>(width: width, height: height) { buffer in
            for i in buffer.indices {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                buffer[i] = UInt8((state >> 59) + (state >> 61))  // 0...23, uneven
            }
        }
    }

    static func previewBytes(_ digest: GridDigest) -> [UInt8] {
        [UInt8](Data(base64Encoded: digest.preview.bytes) ?? Data())
    }

    @Test func aByteGridsHistogramCountsEveryValue() throws {
        let grid = try Self.bytes(width: 300, height: 200)
        let digest = try #require(GridDigestAccumulator.digest(grid))
        var counts: [Double: Int] = [:]
        for value in grid.elements { counts[Double(value), default: 0] += 1 }
        #expect(digest.histogram.values == counts.keys.sorted())
        #expect(digest.histogram.counts == counts.keys.sorted().map { counts[$0]! })
        #expect(digest.histogram.counts.reduce(0, +) == 300 * 200)
    }

    /// Counting by pairs (large inputs), by bytes (small ones), the tail past the last
    /// whole word, and an input of over 64 MiB (the counters fold every GiB): the counts
    /// of a plain loop, for uneven values and for every byte value.
    @Test(arguments: [0, 7, 4_099, (1 << 18) - 1, (1 << 18) + 13, (1 << 26) + 5])
    func byteCountsMatchAPlainCount(length: Int) {
        var state: UInt64 = UInt64(length) | 1
        var bytes = [UInt8](repeating: 0, count: length)
        for i in bytes.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            // Mostly a few small values, now and then any byte.
            bytes[i] = state >> 60 == 0 ? UInt8(truncatingIfNeeded: state >> 40) : UInt8((state >> 61) + (state >> 62))
        }
        var expected = [Int](repeating: 0, count: 256)
        for byte in bytes { expected[Int(byte)] += 1 }
        #expect(bytes.withUnsafeBufferPointer { GridDigestAccumulator.countBytes($0) } == expected)
    }

    /// The preview holds the grid's value at the centre of each cell, scaled over the
    /// preview's own range.
    @Test func thePreviewSamplesCellCentres() throws {
        let grid = try Self.bytes(width: 1000, height: 500, seed: 9)
        let digest = try #require(GridDigestAccumulator.digest(grid))
        let preview = digest.preview
        #expect(preview.width == 256 && preview.height == 128)
        let bytes = Self.previewBytes(digest)
        #expect(bytes.count == 256 * 128)
        var sampled: [Double] = []
        for row in 0..<128 {
            for column in 0..<256 {
                let y = (2 * row + 1) * 500 / (2 * 128), x = (2 * column + 1) * 1000 / (2 * 256)
                sampled.append(Double(grid[x, y]))
            }
        }
        let low = sampled.min()!, high = sampled.max()!
        #expect(preview.low == low && preview.high == high)
        for (byte, value) in zip(bytes, sampled) {
            #expect(byte == UInt8(((value - low) / (high - low) * 255).rounded()))
        }
    }

    /// Fed a band at a time, as a stream delivers rows, the digest is the same.
    @Test(arguments: [1, 7, 64, 500])
    func bandsGiveTheSameDigestAsTheWhole(bandRows: Int) throws {
        let grid = try Self.bytes(width: 333, height: 500, seed: 3)
        let whole = try #require(GridDigestAccumulator.digest(grid))
        let accumulator = GridDigestAccumulator(width: 333, height: 500)
        grid.withUnsafeBufferPointer { buffer in
            var row = 0
            while row < 500 {
                let rows = min(bandRows, 500 - row)
                accumulator.add(bytes: UnsafeBufferPointer(rebasing: buffer[(row * 333)..<((row + rows) * 333)]), rowCount: rows)
                row += rows
            }
        }
        #expect(accumulator.finish() == whole)
    }

    @Test func aFloatGridsBinsHoldEveryValueBetweenItsLowestAndHighest() throws {
        let grid = try Grid<Float>(width: 400, height: 300) { buffer in
            for i in buffer.indices { buffer[i] = Float(sin(Double(i) * 0.001) * 50 + 10) }
        }
        let digest = try #require(GridDigestAccumulator.digest(grid))
        let histogram = digest.histogram
        #expect(histogram.values == nil && histogram.counts.reduce(0, +) == 400 * 300)
        let (low, high) = try #require(grid.valueRange())
        let bins = try #require(histogram.low.flatMap { low in histogram.high.map { (low, $0) } })
        #expect(bins.0 <= low && bins.1 > high && histogram.counts.count <= 256)
        // Each value in the bin it belongs to: recount into the same bins.
        let width = (bins.1 - bins.0) / Double(histogram.counts.count)
        var counts = [Int](repeating: 0, count: histogram.counts.count)
        for value in grid.elements { counts[min(counts.count - 1, Int((Double(value) - bins.0) / width))] += 1 }
        #expect(counts == histogram.counts)
    }

    /// A dictionary-encoded grid is digested through its indices, mapped by its
    /// table; counted once when the byte grid was counted already.
    @Test func aDictionaryGridMapsItsIndicesCounts() throws {
        let indices = try Self.bytes(width: 200, height: 100, seed: 5)
        let table = (0..<256).map { Float($0) / 23 }
        let encoded = Grid<Float>(indices: indices, table: table)
        let cache = GridDigestCache()
        let byteDigest = try #require(GridDigestAccumulator.digest(indices, cache: cache))
        let digest = try #require(GridDigestAccumulator.digest(encoded, cache: cache))
        #expect(digest.histogram.counts == byteDigest.histogram.counts)
        #expect(digest.histogram.values == byteDigest.histogram.values?.map { Double(Float($0) / 23) })
        #expect(digest == GridDigestAccumulator.digest(encoded))  // the same without the cache
        #expect(Self.previewBytes(digest) == Self.previewBytes(byteDigest))
    }

    /// Values at the ends of Double's range, infinities and NaN: no trap, finite
    /// figures only (JSON cannot hold others), every finite value counted.
    @Test func extremeAndNonFiniteValuesStayCountableAndEncodable() throws {
        let values: [Double] = [-.greatestFiniteMagnitude, .greatestFiniteMagnitude, 0, .nan, .infinity, -.infinity, 1e-300, 5]
        let grid = try Grid<Double>(width: 8, height: 50) { buffer in
            for i in buffer.indices { buffer[i] = values[i % values.count] }
        }
        let digest = try #require(GridDigestAccumulator.digest(grid))
        #expect(digest.histogram.counts.reduce(0, +) == 5 * 50)
        #expect(digest.histogram.low?.isFinite == true && digest.histogram.high?.isFinite == true)
        #expect(digest.preview.low == -.greatestFiniteMagnitude && digest.preview.high == .greatestFiniteMagnitude)
        _ = try JSONEncoder().encode(digest)
    }

    /// A table that maps many bytes to one value, or to NaN: one bin per finite value.
    @Test func bytesATableMapsToOneValueShareItsBin() throws {
        let indices = try Self.bytes(width: 50, height: 40, seed: 8)
        let table = (0..<256).map { $0 == 0 ? Float.nan : Float(min($0, 3)) }
        let digest = try #require(GridDigestAccumulator.digest(Grid<Float>(indices: indices, table: table)))
        var counts: [Double: Int] = [:]
        for index in indices.elements where index != 0 { counts[Double(min(index, 3)), default: 0] += 1 }
        #expect(digest.histogram.values == counts.keys.sorted())
        #expect(digest.histogram.counts == counts.keys.sorted().map { counts[$0]! })
        _ = try JSONEncoder().encode(digest)
    }

    /// Counts recorded by a grid's producer are kept only when they add up to the
    /// grid; the digest then uses them, and equals the one that counts.
    @Test func recordedCountsAreCheckedAndUsed() throws {
        let grid = try Self.bytes(width: 120, height: 90, seed: 4)
        let counted = try #require(GridDigestAccumulator.digest(grid))
        var counts = [Int](repeating: 0, count: 256)
        for value in grid.elements { counts[Int(value)] += 1 }
        var wrong = counts
        wrong[0] += 1
        #expect(!grid.recordValueCounts(wrong))
        #expect(!grid.recordValueCounts(Array(counts.prefix(255))))
        #expect(!GridDigestAccumulator.isBounded(grid))
        #expect(grid.recordValueCounts(counts))
        #expect(!grid.recordValueCounts(counts))  // once
        #expect(GridDigestAccumulator.isBounded(grid))
        #expect(GridDigestAccumulator.isBounded(Grid<Float>(indices: grid, table: (0..<256).map(Float.init))))
        #expect(GridDigestAccumulator.digest(grid) == counted)
    }

    /// Bands taken from a stream give the digest of the whole grid, for byte, wide
    /// and dictionary-encoded streams.
    @Test func aStreamsTapGivesTheWholeGridsDigest() throws {
        let grid = try Self.bytes(width: 257, height: 199, seed: 6)
        let table = (0..<256).map { Float($0) * 0.5 }
        for (info, whole) in [
            (GridStreamInfo(width: 257, height: 199, elementType: .uint8), GridDigestAccumulator.digest(grid)),
            (GridStreamInfo(width: 257, height: 199, elementType: .float32, table: table), GridDigestAccumulator.digest(Grid<Float>(indices: grid, table: table))),
        ] {
            let stream = GridStream(capacity: 4)
            let tap = StreamedGridDigest(tapping: stream)
            try stream.begin(info)
            var row = 0
            grid.withUnsafeBufferPointer { elements in
                while row < 199 {
                    let rows = row..<min(199, row + 37)
                    let lease = try! BandLease(byteCount: rows.count * 257, purpose: "a test band")
                    lease.pointer.copyMemory(from: elements.baseAddress! + row * 257, byteCount: rows.count * 257)
                    try! stream.push(GridBand(rows: rows, lease: lease), byteCount: rows.count * 257)
                    _ = try! stream.next()
                    lease.release()
                    row = rows.upperBound
                    if row < 199 { #expect(tap.finish() == nil) }  // not every row yet
                }
            }
            stream.finish()
            var digest = try #require(tap.finish())
            #expect(digest.seconds != nil)
            digest.seconds = nil
            #expect(digest == whole)
        }
    }

    /// A digest's size does not grow with the grid: 256 bins, a 256-sample side.
    @Test func aLargeGridsDigestStaysSmall() throws {
        let grid = try Grid<Float>(width: 6000, height: 4000) { buffer in
            for i in buffer.indices { buffer[i] = Float(i % 7919) }
        }
        let digest = try #require(GridDigestAccumulator.digest(grid))
        let json = try JSONEncoder().encode(digest)
        #expect(json.count < 120_000, "\(json.count) bytes")
        #expect(digest.preview.width == 256 && digest.preview.height == 171)
    }
}
