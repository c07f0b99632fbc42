import Foundation
import Testing
import Framework
@testable import Stages

/// The shims' incremental encoders: rows in any number of calls, errors kept with the
/// library's message, abandoning at any point.
@Suite struct IncrementalEncoderTests {
    func noise(width: Int, height: Int, seed: UInt64) throws -> Grid<UInt8> {
        var rng = Xoshiro256StarStar(seed: seed)
        return try Grid<UInt8>(width: width, height: height) { b in for i in b.indices { b[i] = UInt8(truncatingIfNeeded: rng.next() % 200) } }
    }

    func grids(width: Int, height: Int) throws -> [(String, any AnyGrid)] {
        let bytes = try noise(width: width, height: height, seed: 1)
        let floats = try Grid<Float>(width: width, height: height, values: bytes.elements.map { Float($0) / 180 - 0.05 })
        let words = try Grid<UInt16>(width: width, height: height, values: bytes.elements.map { UInt16($0) &* 300 })
        return [("UInt8", bytes), ("Float32", floats), ("dictionary", Grid<Float>(indices: bytes, table: awkwardTable())), ("UInt16", words)]
    }

    /// Bands of 1 row, 7 rows and the whole image give the same bytes.
    @Test(arguments: [(61, 45), (1, 1), (300, 8)])
    func bandSizesDoNotChangeTheBytes(width: Int, height: Int) throws {
        for (name, grid) in try grids(width: width, height: height) {
            func encodings<Element: GridElement>(_ grid: Grid<Element>) throws -> [[UInt8]] {
                var all: [[UInt8]] = []
                for bandRows in [1, 7, height] {
                    if Element.self != UInt16.self {
                        all.append(Array(try JPEGCodec.encodeStrip(grid, rows: 0..<height, options: .init(quality: 90, restartRows: 1), bandRows: bandRows).shared()))
                        all.append(Array(try PNGCodec.encode(grid, options: .init(bitDepth: 8, compressionLevel: 6, filter: .paeth), bandRows: bandRows)))
                    }
                    all.append(Array(try PNGCodec.encode(grid, options: .init(bitDepth: 16, filter: .all, strategy: .default), bandRows: bandRows)))
                }
                return all
            }
            let all: [[UInt8]]
            switch grid {
            case let grid as Grid<UInt8>: all = try encodings(grid)
            case let grid as Grid<UInt16>: all = try encodings(grid)
            case let grid as Grid<Float>: all = try encodings(grid)
            default: fatalError()
            }
            let perBandSize = all.count / 3
            for index in 0..<perBandSize {
                #expect(all[index] == all[perBandSize + index] && all[index] == all[2 * perBandSize + index], "\(name), encoding \(index)")
            }
        }
    }

    /// Rows given to the encoders in calls of any size, empty ones included: the same
    /// bytes as in one call.
    @Test func rowsInCallsOfAnySize() throws {
        let grid = try noise(width: 37, height: 29, seed: 2)
        try grid.withUnsafeBufferPointer { samples throws in
            let base = UnsafeRawPointer(samples.baseAddress!)
            func jpeg(_ calls: [Int]) throws -> [UInt8] {
                let encoder = try JPEGEncoder(options: .init(quality: 80), width: 37, height: 29)
                var row = 0
                for count in calls {
                    try encoder.write(base + row * 37, stride: 37, count: count)
                    row += count
                }
                return try encoder.finish().withUnsafeBytes { Array($0) }
            }
            func png(_ calls: [Int]) throws -> [UInt8] {
                let encoder = try PNGEncoder(options: .init(), width: 37, height: 29)
                var row = 0
                for count in calls {
                    try encoder.write(base + row * 37, stride: 37, count: count)
                    row += count
                }
                return Array(try encoder.finish())
            }
            let shapes = [[29], Array(repeating: 1, count: 29), [7, 7, 7, 7, 1], [0, 28, 0, 1]]
            for shape in shapes.dropFirst() {
                #expect(try jpeg(shape) == jpeg(shapes[0]), "\(shape)")
                #expect(try png(shape) == png(shapes[0]), "\(shape)")
            }
        }
    }

    func expectCodecError(_ library: String, containing text: String, _ body: () throws -> Void,
                          sourceLocation: Testing.SourceLocation = #_sourceLocation) -> String? {
        do {
            try body()
            Issue.record("no error", sourceLocation: sourceLocation)
        } catch let error as CodecError {
            #expect(error.library == library, sourceLocation: sourceLocation)
            #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
            return error.message
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    /// Errors come with libjpeg's message, at begin or in the middle, and every later
    /// call fails with the same message.
    @Test func jpegErrorsAreKeptWithLibjpegsMessage() throws {
        let row = [UInt8](repeating: 9, count: 70_000)
        try row.withUnsafeBytes { row in
            _ = expectCodecError("libjpeg", containing: "Maximum supported image dimension is 65500 pixels") {
                _ = try JPEGEncoder(options: .init(), width: 70_000, height: 10)
            }
            _ = expectCodecError("libjpeg", containing: "Empty JPEG image") {
                _ = try JPEGEncoder(options: .init(), width: 0, height: 10)
            }
            // Too many rows, in the middle of the image.
            let encoder = try JPEGEncoder(options: .init(), width: 16, height: 3)
            try encoder.write(row.baseAddress!, stride: 16, count: 2)
            let message = expectCodecError("libjpeg", containing: "too many scanlines") {
                try encoder.write(row.baseAddress!, stride: 16, count: 2)
            }
            _ = expectCodecError("libjpeg", containing: message ?? "?") { try encoder.write(row.baseAddress!, stride: 16, count: 1) }
            _ = expectCodecError("libjpeg", containing: message ?? "?") { _ = try encoder.finish() }
            // Too few rows when finishing.
            let short = try JPEGEncoder(options: .init(), width: 16, height: 30)
            try short.write(row.baseAddress!, stride: 0, count: 29)
            _ = expectCodecError("libjpeg", containing: "too few scanlines") { _ = try short.finish() }
            // Nothing after finish.
            let done = try JPEGEncoder(options: .init(), width: 16, height: 1)
            try done.write(row.baseAddress!, stride: 16, count: 1)
            _ = try done.finish()
            _ = expectCodecError("libjpeg", containing: "already finished") { try done.write(row.baseAddress!, stride: 16, count: 1) }
        }
    }

    /// The same for libpng: an invalid compression level is refused by zlib when the
    /// first row is compressed, after begin succeeded.
    @Test func pngErrorsAreKeptWithLibpngsMessage() throws {
        let row = [UInt8](repeating: 9, count: 64)
        try row.withUnsafeBytes { row in
            _ = expectCodecError("libpng", containing: "Image width is zero in IHDR") {
                _ = try PNGEncoder(options: .init(), width: 0, height: 10)
            }
            _ = expectCodecError("libpng", containing: "Invalid image height in IHDR") {
                _ = try PNGEncoder(options: .init(), width: 10, height: -5)
            }
            let encoder = try PNGEncoder(options: .init(compressionLevel: 12), width: 16, height: 3)
            let message = expectCodecError("libpng", containing: "bad parameters to zlib") { try encoder.write(row.baseAddress!, stride: 16, count: 1) }
            #expect(!(message ?? "").isEmpty)
            _ = expectCodecError("libpng", containing: message ?? "?") { try encoder.write(row.baseAddress!, stride: 16, count: 1) }
            _ = expectCodecError("libpng", containing: message ?? "?") { _ = try encoder.finish() }
            // More rows than the image has, and fewer.
            let tall = try PNGEncoder(options: .init(), width: 16, height: 3)
            try tall.write(row.baseAddress!, stride: 0, count: 2)
            _ = expectCodecError("libpng", containing: "2 rows written after 2 of a 3-row image") { try tall.write(row.baseAddress!, stride: 0, count: 2) }
            _ = expectCodecError("libpng", containing: "2 rows written after 2") { _ = try tall.finish() }
            let short = try PNGEncoder(options: .init(), width: 16, height: 3)
            try short.write(row.baseAddress!, stride: 0, count: 2)
            _ = expectCodecError("libpng", containing: "only 2 rows written of a 3-row image") { _ = try short.finish() }
            _ = expectCodecError("libpng", containing: "bit depth 8 or 16") { _ = try PNGEncoder(options: .init(bitDepth: 4), width: 16, height: 3) }
        }
    }

    /// Encoders dropped at any point (fresh, mid-image, failed) free what they hold:
    /// a hundred abandoned 8192x2048 images (whose output buffers start at 16 and 32
    /// MiB, mapped by malloc) leave the process's address space about where it was.
    @Test func abandonedEncodersFreeEverything() throws {
        let row = [UInt8](repeating: 200, count: 8192 * 16)
        /// Virtual memory size in bytes (Linux), or 0.
        func mapped() -> Int {
            guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
                  let pages = Int(statm.split(separator: " ").first ?? "") else { return 0 }
            return pages * 4096
        }
        let before = mapped()
        try row.withUnsafeBytes { row in
            for round in 0..<100 {
                let jpeg = try JPEGEncoder(options: .init(optimize: round % 2 == 0), width: 8192, height: 2048, cancel: CancelFlag())
                let png = try PNGEncoder(options: .init(bitDepth: 16), width: 8192, height: 2048)
                if round % 3 > 0 {
                    try jpeg.write(row.baseAddress!, stride: 8192, count: 16)
                    try png.write(row.baseAddress!, stride: 8192 * 2, count: 8)
                }
                if round % 3 == 2 {
                    _ = try? jpeg.finish()
                    _ = try? png.finish()
                }
            }
        }
        let grown = mapped() - before
        #expect(grown < 256 << 20, "the address space grew by \(grown >> 20) MiB")
    }
}
