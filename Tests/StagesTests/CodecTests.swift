import Testing
import Framework
@testable import Stages

/// Unit-range values that round both ways, values outside [0, 1] and a NaN.
func awkwardTable() -> [Float] {
    var table = (0..<256).map { (index: Int) -> Float in
        let base = Float(index) / 255
        let nudge = Float(index % 3) * 0.001
        return base + nudge
    }
    table[7] = .nan
    table[9] = -0.5
    table[11] = 3
    return table
}

@Suite struct JPEGTests {
    /// A smooth gradient with a little texture: what JPEG is for.
    func gradient(width: Int, height: Int) throws -> Grid<UInt8> {
        try Grid<UInt8>(width: width, height: height, values: (0..<(width * height)).map { index in
            let x = index % width, y = index / width
            return UInt8((x * 255 / max(1, width - 1) + y * 3 + (x * y) % 7) % 256)
        })
    }

    func meanAbsoluteError(_ a: [UInt8], _ b: [UInt8]) -> Double {
        Double(zip(a, b).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(a.count)
    }

    @Test(arguments: [(100, 1.0), (95, 1.5), (75, 3.0), (10, 10.0)])
    func roundTripWithinAQualityBound(quality: Int, bound: Double) throws {
        let grid = try gradient(width: 173, height: 91)
        let bytes = try JPEGCodec.encodeGray(grid, options: .init(quality: quality))
        #expect(Array(bytes.prefix(2)) == [0xFF, 0xD8])
        let image = try JPEGCodec.decode(bytes)
        #expect(image.width == 173 && image.height == 91 && image.components == 1)
        let error = meanAbsoluteError(image.pixels, grid.elements)
        #expect(error <= bound, "quality \(quality): mean abs error \(error)")
    }

    @Test func floatInputIsRoundedAndClamped() throws {
        let values: [Float] = [0, 1, 0.5, -3, 7, .nan, 0.25, 0.75]
        let floats = try Grid<Float>(width: 8, height: 1, values: values)
        let bytes = try JPEGCodec.encodeGray(floats, options: .init(quality: 100))
        let image = try JPEGCodec.decode(bytes)
        let expected: [UInt8] = [0, 255, 128, 0, 255, 0, 64, 191]
        for (got, want) in zip(image.pixels, expected) {
            #expect(abs(Int(got) - Int(want)) <= 2)
        }
    }

    @Test func progressiveAndOptimizedStillDecode() throws {
        let grid = try gradient(width: 64, height: 64)
        let plain = try JPEGCodec.encodeGray(grid, options: .init(quality: 90))
        let optimized = try JPEGCodec.encodeGray(grid, options: .init(quality: 90, optimize: true))
        let progressive = try JPEGCodec.encodeGray(grid, options: .init(quality: 90, progressive: true))
        #expect(optimized.count < plain.count)
        #expect(try JPEGCodec.decode(progressive).pixels == JPEGCodec.decode(plain).pixels)
    }

    /// Strips encoded on several cores and joined at restart markers are byte for
    /// byte what a single encoder writes with the same restart interval.
    @Test(arguments: [(2048, 2048, 8), (1000, 333, 2), (17, 1, 1), (640, 480, 3), (300, 1000, 16)])
    func parallelStripsEqualOneEncoder(width: Int, height: Int, restartRows: Int) async throws {
        var rng = Xoshiro256StarStar(seed: UInt64(width * height))
        let grid = try Grid<Float>(width: width, height: height) { buffer in
            for i in buffer.indices { buffer[i] = Float(rng.next() % 1000) / 999 }
        }
        let options = JPEGCodec.Options(quality: 95, restartRows: restartRows)
        let single = Array(try JPEGCodec.encodeGray(grid, options: options))
        for workers in [1, 2, 3, 7] {
            let parallel = Array(try await JPEGCodec.encodeGray(grid, options: options, workers: workers))
            #expect(parallel == single, "\(width)x\(height), restart rows \(restartRows), \(workers) workers")
        }
        let image = try JPEGCodec.decode(single)
        #expect(image.width == width && image.height == height)
        let error = zip(image.pixels, grid.elements).map { abs(Double($0) - Double($1) * 255) }.max() ?? 255
        #expect(error < 40, "max error \(error)")
    }

    /// A dictionary-encoded float grid (what `normalize` makes of bytes) is read
    /// through its table and gives the same bytes as the same floats held densely.
    @Test(arguments: [0, 8])
    func dictionaryEncodedGridsEncodeLikeDenseOnes(restartRows: Int) async throws {
        var rng = Xoshiro256StarStar(seed: 5)
        let indices = try Grid<UInt8>(width: 640, height: 480) { buffer in
            for i in buffer.indices { buffer[i] = UInt8(truncatingIfNeeded: rng.next() % 256) }
        }
        let table = awkwardTable()
        let encoded = Grid<Float>(indices: indices, table: table)
        let dense = try Grid<Float>(width: 640, height: 480, values: indices.elements.map { table[Int($0)] })
        let options = JPEGCodec.Options(quality: 95, restartRows: restartRows)
        let expected = Array(try JPEGCodec.encodeGray(dense, options: options))
        #expect(Array(try JPEGCodec.encodeGray(encoded, options: options)) == expected)
        #expect(Array(try await JPEGCodec.encodeGray(encoded, options: options, workers: 2)) == expected)
    }

    @Test func tooTallImagesAreRefusedNotCrashedOn() async throws {
        let grid = try Grid<UInt8>(width: 2, height: 70_000, values: Array(repeating: 1, count: 140_000))
        await #expect(throws: CodecError.self) { _ = try await JPEGCodec.encodeGray(grid, options: .init(restartRows: 8), workers: 2) }
    }

    /// libjpeg caps restart intervals at 65535 blocks: wide images get a shorter
    /// interval, so the strips still join at markers.
    @Test func wideImagesKeepTheirRestartMarkersOnStripBoundaries() async throws {
        var rng = Xoshiro256StarStar(seed: 7)
        let grid = try Grid<UInt8>(width: 16_384, height: 600) { buffer in
            for i in buffer.indices { buffer[i] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        let options = JPEGCodec.Options(quality: 50, restartRows: 32)
        let two = Array(try await JPEGCodec.encodeGray(grid, options: options, workers: 2))
        let one = Array(try await JPEGCodec.encodeGray(grid, options: options, workers: 1))
        #expect(two == one)
        let image = try JPEGCodec.decode(two)
        #expect(image.width == 16_384 && image.height == 600)
    }

    @Test func corruptAndTruncatedInputsAreErrorsWithLibjpegsMessage() throws {
        let bytes = try JPEGCodec.encodeGray(try gradient(width: 64, height: 64), options: .init())
        do {
            _ = try JPEGCodec.decode(Array(bytes.prefix(bytes.count / 2)))
            Issue.record("decoded a truncated JPEG")
        } catch let error as CodecError {
            #expect(error.description.hasPrefix("libjpeg: "))
            #expect(error.message.contains("Premature end of JPEG file"))
        }
        #expect(throws: CodecError.self) { try JPEGCodec.decode([0x00, 0x01, 0x02]) }
    }
}

@Suite struct PNGTests {
    @Test func eightBitRoundTripIsExact() throws {
        let values = (0..<(97 * 33)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let grid = try Grid<UInt8>(width: 97, height: 33, values: values)
        for filter in PNGCodec.Filter.allCases {
            for strategy in PNGCodec.Strategy.allCases {
                let bytes = try PNGCodec.encodeGray(grid, options: .init(compressionLevel: 6, filter: filter, strategy: strategy))
                let image = try PNGCodec.decode(bytes)
                #expect(image.bitDepth == 8 && image.channels == 1 && image.width == 97 && image.height == 33)
                #expect(image.samples8 == values, "filter \(filter), strategy \(strategy)")
            }
        }
    }

    @Test func sixteenBitRoundTripIsExact() throws {
        let values = (0..<(50 * 20)).map { UInt16(truncatingIfNeeded: $0 &* 977) }
        let grid = try Grid<UInt16>(width: 50, height: 20, values: values)
        let bytes = try PNGCodec.encodeGray(grid, options: .init(bitDepth: 16))
        let image = try PNGCodec.decode(bytes)
        #expect(image.bitDepth == 16)
        #expect(image.samples16 == values)
    }

    @Test func sixteenBitSamplesNeedSixteenBits() throws {
        let grid = try Grid<UInt16>(width: 100, height: 2, values: Array(repeating: 7, count: 200))
        #expect(throws: CodecError.self) { try PNGCodec.encodeGray(grid, options: .init(bitDepth: 8)) }
    }

    @Test func eightBitSamplesScaleToSixteenBits() throws {
        let grid = try Grid<UInt8>(width: 3, height: 1, values: [0, 1, 255])
        let image = try PNGCodec.decode(PNGCodec.encodeGray(grid, options: .init(bitDepth: 16)))
        #expect(image.samples16 == [0, 257, 65535])
    }

    @Test func floatsScaleToTheBitDepth() throws {
        let floats = try Grid<Float>(width: 4, height: 1, values: [0, 0.5, 1, 2])
        let eight = try PNGCodec.decode(PNGCodec.encodeGray(floats, options: .init(bitDepth: 8)))
        #expect(eight.samples8 == [0, 128, 255, 255])
        let sixteen = try PNGCodec.decode(PNGCodec.encodeGray(floats, options: .init(bitDepth: 16)))
        #expect(sixteen.samples16 == [0, 32768, 65535, 65535])
    }

    @Test(arguments: [8, 16])
    func dictionaryEncodedGridsEncodeLikeDenseOnes(bitDepth: Int) throws {
        let indices = try Grid<UInt8>(width: 256, height: 3, values: (0..<768).map { UInt8($0 % 256) })
        let table = awkwardTable()
        let encoded = Grid<Float>(indices: indices, table: table)
        let dense = try Grid<Float>(width: 256, height: 3, values: indices.elements.map { table[Int($0)] })
        let options = PNGCodec.Options(bitDepth: bitDepth)
        #expect(Array(try PNGCodec.encodeGray(encoded, options: options)) == Array(try PNGCodec.encodeGray(dense, options: options)))
    }

    @Test func corruptInputIsAnErrorWithLibpngsMessage() throws {
        let bytes = try PNGCodec.encodeGray(try Grid<UInt8>(width: 8, height: 8, values: Array(repeating: 9, count: 64)), options: .init())
        do {
            _ = try PNGCodec.decode(Array(bytes.prefix(bytes.count - 20)))
            Issue.record("decoded a truncated PNG")
        } catch let error as CodecError {
            #expect(error.description.hasPrefix("libpng: "))
        }
        do {
            _ = try PNGCodec.decode([1, 2, 3, 4, 5, 6, 7, 8, 9])
            Issue.record("decoded garbage")
        } catch let error as CodecError {
            #expect(error.message == "not a PNG file (bad signature)")
        }
    }
}
