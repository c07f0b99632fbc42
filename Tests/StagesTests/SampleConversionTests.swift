import Foundation
import Testing
import Framework
@testable import Stages

/// The float-to-sample rule both encoders use: round(v * max), v clamped to [0, 1],
/// NaN as 0; expected values are written out or computed here in Double.
@Suite struct SampleConversionTests {
    /// The rule in Double, for values whose v * max is not near a tie (within 0.01 of
    /// x.5 at 16 bits, where Float's rounding could decide it either way).
    func expected(_ value: Float, max: Double) -> Int {
        guard !value.isNaN else { return 0 }
        let unit = Swift.min(Swift.max(Double(value), 0), 1)
        return Int((unit * max).rounded(.toNearestOrAwayFromZero))
    }

    /// A random value in [0, 1] that is a level or lies between levels, away from ties,
    /// at 8 bits and at 16.
    func unitValue(_ rng: inout Xoshiro256StarStar) -> Float {
        let level = Double(rng.next() % 255)
        return Float((level + [0, 0.2, 0.7][Int(rng.next() % 3)]) / 255)
    }

    @Test func specialValues() {
        let cases: [(Float, UInt8, UInt16)] = [
            (0, 0, 0), (-0.0, 0, 0), (1, 255, 65535), (0.5, 128, 32768),  // 127.5 and 32767.5 round up
            (0.25, 64, 16384), (0.75, 191, 49151),                            // 63.75, 191.25, 16383.75, 49151.25
            (-0.25, 0, 0), (-1e30, 0, 0), (1.5, 255, 65535), (1e30, 255, 65535),
            (.nan, 0, 0), (-.nan, 0, 0), (.infinity, 255, 65535), (-.infinity, 0, 0),
            (.leastNonzeroMagnitude, 0, 0), (Float(1).nextUp, 255, 65535), (Float(1).nextDown, 255, 65535),
            (1.0 / 255, 1, 257), (254.0 / 255, 254, 65278), (1.0 / 65535, 0, 1),
            (0.4 / 255, 0, 103), (0.6 / 255, 1, 154),                         // 0.4 and 0.6 of a level at 8 bits
        ]
        for (value, byte, word) in cases {
            #expect(SampleConversion.byte(value) == byte, "\(value) as 8 bits")
            #expect(SampleConversion.word(value) == word, "\(value) as 16 bits")
        }
    }

    @Test func everyLevelAndTheValuesBetweenThem() {
        for (max, bits) in [(255.0, 8), (65535.0, 16)] {
            var mismatches: [String] = []
            for level in 0...Int(max) {
                for offset in [0.0, 0.3, -0.3, 0.45, 0.55] {
                    let value = Float((Double(level) + offset) / max)
                    let got = bits == 8 ? Int(SampleConversion.byte(value)) : Int(SampleConversion.word(value))
                    let want = expected(value, max: max)
                    if got != want && mismatches.count < 5 { mismatches.append("\(value): \(got), not \(want)") }
                }
            }
            #expect(mismatches.isEmpty, "\(bits) bits: \(mismatches)")
        }
    }

    /// Every kind of grid becomes the samples the rule gives, band by band, whatever
    /// the band size; bytes and words that need no conversion are read in place.
    @Test(arguments: [8, 16], [1, 3, 7])
    func bandsOfEveryGridKind(depth: Int, bandRows: Int) throws {
        let width = 5, height = 7
        var rng = Xoshiro256StarStar(seed: 3)
        let bytes = try Grid<UInt8>(width: width, height: height) { b in for i in b.indices { b[i] = UInt8(truncatingIfNeeded: rng.next()) } }
        let specials: [Float] = [0, 1, 0.5, -1, 2, .nan, .infinity, -.infinity]
        let floats = try Grid<Float>(width: width, height: height, values: (0..<(width * height)).map {
            $0 < specials.count ? specials[$0] : unitValue(&rng)
        })
        let table = awkwardTable()
        let indexed = Grid<Float>(indices: bytes, table: table)
        let words = try Grid<UInt16>(width: width, height: height) { b in for i in b.indices { b[i] = UInt16(truncatingIfNeeded: rng.next()) } }
        let max = depth == 8 ? 255.0 : 65535.0
        var cases: [(String, any AnyGrid, [Int])] = [
            ("UInt8", bytes, bytes.elements.map { depth == 8 ? Int($0) : Int($0) * 257 }),
            ("Float32", floats, floats.elements.map { expected($0, max: max) }),
            ("dictionary", indexed, bytes.elements.map { expected(table[Int($0)], max: max) }),
        ]
        if depth == 16 { cases.append(("UInt16", words, words.elements.map { Int($0) })) }
        for (name, grid, want) in cases {
            func read<Element: GridElement>(_ grid: Grid<Element>) throws -> [Int] {
                try SampleBands.with(grid, depth: depth, bandRows: bandRows, library: "test") { bands in
                    var samples: [Int] = []
                    try bands.feed(0..<height, cancel: nil, progress: nil) { pointer, rows in
                        #expect(rows <= bandRows)
                        let count = rows * width
                        if depth == 8 {
                            samples += UnsafeBufferPointer(start: pointer.assumingMemoryBound(to: UInt8.self), count: count).map { Int($0) }
                        } else {
                            samples += UnsafeBufferPointer(start: pointer.assumingMemoryBound(to: UInt16.self), count: count).map { Int($0) }
                        }
                    }
                    return samples
                }
            }
            let got: [Int]
            switch grid {
            case let grid as Grid<UInt8>: got = try read(grid)
            case let grid as Grid<UInt16>: got = try read(grid)
            case let grid as Grid<Float>: got = try read(grid)
            default: fatalError()
            }
            #expect(got == want, "\(name) at \(depth) bits, \(bandRows)-row bands")
        }
    }

    /// The encoders apply the rule: a float grid encodes to the very bytes of the
    /// integer grid the rule gives, computed here.
    @Test func encodersConvertFloatsByTheRule() async throws {
        let width = 300, height = 41
        var rng = Xoshiro256StarStar(seed: 11)
        let values: [Float] = (0..<(width * height)).map { index in
            switch rng.next() % 5 {
            case 0: [Float.nan, .infinity, -.infinity, -0.5, 1.5, 0, 1][index % 7]
            default: unitValue(&rng)
            }
        }
        let floats = try Grid<Float>(width: width, height: height, values: values)
        let bytes = try Grid<UInt8>(width: width, height: height, values: values.map { UInt8(expected($0, max: 255)) })
        let words = try Grid<UInt16>(width: width, height: height, values: values.map { UInt16(expected($0, max: 65535)) })
        #expect(Array(try PNGCodec.encodeGray(floats, options: .init(bitDepth: 8))) == Array(try PNGCodec.encodeGray(bytes, options: .init(bitDepth: 8))))
        #expect(Array(try PNGCodec.encodeGray(floats, options: .init(bitDepth: 16))) == Array(try PNGCodec.encodeGray(words, options: .init(bitDepth: 16))))
        let jpeg = JPEGCodec.Options(quality: 90, restartRows: 1)
        #expect(Array(try JPEGCodec.encodeGray(floats, options: jpeg)) == Array(try JPEGCodec.encodeGray(bytes, options: jpeg)))
        #expect(Array(try await JPEGCodec.encodeGray(floats, options: jpeg, workers: 3)) == Array(try JPEGCodec.encodeGray(bytes, options: jpeg)))
    }
}
