import Framework

/// How the encoders turn a grid's elements into 8- or 16-bit samples: the one
/// definition of the rule, used by JPEG and PNG alike.
///
/// A float v in [0, 1] becomes round(v * max), max being 255 or 65535: v is clamped
/// to [0, 1] first, and NaN becomes 0. A dictionary-encoded `Grid<Float>` has each of
/// its 256 table entries converted by the same rule, then its indices looked up.
/// 8-bit samples written as 16-bit are scaled by 257 (255 becomes 65535).
enum SampleConversion {
    /// round(v * max) for v clamped to [0, 1], NaN as 0; `max` is 255 or 65535.
    ///
    /// Written without a trapping float-to-integer conversion, whose range check would
    /// keep the row loops from vectorising: adding 2^23 to a float below 2^23 leaves no
    /// fraction bits, so the sum rounds it to an integer, and the integer's bits are
    /// the low bits of the sum's.
    @inline(__always)
    static func level(_ value: Float, max: Float) -> UInt32 {
        let magic: Float = 8_388_608  // 2^23
        let positive = value > 0 ? value : 0  // NaN fails the comparison and becomes 0
        let unit = positive < 1 ? positive : 1
        let scaled = unit * max + 0.5
        // Rounding to nearest (ties to even) then stepping down where that went up is
        // floor(scaled), which is round-half-up of unit * max.
        let nearest = (scaled + magic) - magic
        let floor = nearest > scaled ? nearest - 1 : nearest
        return (floor + magic).bitPattern & 0xFFFF
    }

    static func byte(_ value: Float) -> UInt8 {
        UInt8(truncatingIfNeeded: level(value, max: 255))
    }

    static func word(_ value: Float) -> UInt16 {
        UInt16(truncatingIfNeeded: level(value, max: 65535))
    }

    /// Converts `count` floats.
    static func convert(_ source: UnsafePointer<Float>, to target: UnsafeMutablePointer<UInt8>, count: Int) {
        for i in 0..<count { target[i] = UInt8(truncatingIfNeeded: level(source[i], max: 255)) }
    }

    static func convert(_ source: UnsafePointer<Float>, to target: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count { target[i] = UInt16(truncatingIfNeeded: level(source[i], max: 65535)) }
    }

    /// Bytes as 16-bit samples: v * 257.
    static func widen(_ source: UnsafePointer<UInt8>, to target: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count { target[i] = UInt16(source[i]) &* 257 }
    }

    /// Looks `count` indices up in a table of 256 converted samples.
    static func lookUp<Sample>(_ indices: UnsafePointer<UInt8>, in table: UnsafePointer<Sample>,
                               to target: UnsafeMutablePointer<Sample>, count: Int) {
        for i in 0..<count { target[i] = table[Int(indices[i])] }
    }
}

/// A grid's rows as samples of one depth (8 or 16 bits), a band of rows at a time,
/// converted into a buffer that is reused from band to band; rows that need no
/// conversion are read in place.
///
/// Make one inside `SampleBands.with(_:depth:bandRows:_:)`, which keeps the grid's
/// memory in reach for as long as the bands are read.
final class SampleBands {
    private enum Source {
        case bytes(UnsafePointer<UInt8>)
        case words(UnsafePointer<UInt16>)
        case floats(UnsafePointer<Float>)
        /// Indices, and the table converted to samples of the depth.
        case indexed(UnsafePointer<UInt8>, table: UnsafeMutableRawPointer)
    }

    let width: Int
    let height: Int
    /// 8 or 16.
    let depth: Int
    /// The most rows a band holds.
    let bandRows: Int
    private let source: Source
    /// bandRows * width samples, when the rows need converting.
    private let buffer: UnsafeMutableRawPointer?

    /// Bytes from one row's start to the next's, in every band.
    var stride: Int { width * depth / 8 }

    private init(source: Source, width: Int, height: Int, depth: Int, bandRows: Int, converts: Bool) {
        self.source = source
        self.width = width
        self.height = height
        self.depth = depth
        self.bandRows = max(1, min(bandRows, height))
        buffer = converts ? UnsafeMutableRawPointer.allocate(byteCount: self.bandRows * width * depth / 8, alignment: 16) : nil
    }

    deinit {
        buffer?.deallocate()
        if case .indexed(_, let table) = source { table.deallocate() }
    }

    /// Rows `rows` (at most `bandRows` of them) as samples: `rows.count` rows `stride`
    /// bytes apart. Valid until the next call.
    func band(_ rows: Range<Int>) -> UnsafeRawPointer {
        precondition(rows.count <= bandRows && rows.lowerBound >= 0 && rows.upperBound <= height, "band out of range")
        let first = rows.lowerBound * width
        let count = rows.count * width
        switch (source, depth) {
        case (.bytes(let bytes), 8):
            return UnsafeRawPointer(bytes + first)
        case (.words(let words), _):
            return UnsafeRawPointer(words + first)
        case (.bytes(let bytes), _):
            let target = buffer!.assumingMemoryBound(to: UInt16.self)
            SampleConversion.widen(bytes + first, to: target, count: count)
        case (.floats(let floats), 8):
            SampleConversion.convert(floats + first, to: buffer!.assumingMemoryBound(to: UInt8.self), count: count)
        case (.floats(let floats), _):
            SampleConversion.convert(floats + first, to: buffer!.assumingMemoryBound(to: UInt16.self), count: count)
        case (.indexed(let indices, let table), 8):
            SampleConversion.lookUp(indices + first, in: table.assumingMemoryBound(to: UInt8.self),
                                    to: buffer!.assumingMemoryBound(to: UInt8.self), count: count)
        case (.indexed(let indices, let table), _):
            SampleConversion.lookUp(indices + first, in: table.assumingMemoryBound(to: UInt16.self),
                                    to: buffer!.assumingMemoryBound(to: UInt16.self), count: count)
        }
        return UnsafeRawPointer(buffer!)
    }

    /// Rows of about 128 K samples, 1 to 256 of them: a band takes a few milliseconds
    /// to encode at most, so that cancellation between bands takes effect quickly, and
    /// its converted samples stay in cache.
    static func defaultBandRows(width: Int) -> Int {
        min(256, max(1, 131_072 / max(1, width)))
    }

    /// Gives `write` the rows `rows` a band at a time (a pointer to the samples and the
    /// band's row count), throwing `CancellationError` before any band once `cancel`
    /// is set.
    func feed(_ rows: Range<Int>, cancel: CancelFlag?, progress: RowProgress?,
              _ write: (UnsafeRawPointer, Int) throws -> Void) throws {
        var row = rows.lowerBound
        while row < rows.upperBound {
            if let cancel, cancel.isSet() { throw CancellationError() }
            let end = min(row + bandRows, rows.upperBound)
            try write(band(row..<end), end - row)
            progress?.add(end - row)
            row = end
        }
    }

    /// Calls `body` with the bands of `grid` at `depth` bits: `Grid<UInt8>`, `Grid<UInt16>`
    /// (16 bits only), `Grid<Float>` dense or dictionary-encoded (read through its table,
    /// not decoded). Other grids are refused with a `CodecError` from `library`.
    static func with<Element: GridElement, R>(_ grid: Grid<Element>, depth: Int, bandRows: Int, library: String,
                                              _ body: (SampleBands) throws -> R) throws -> R {
        precondition(depth == 8 || depth == 16, "samples are 8 or 16 bits")
        func make(_ source: Source, converts: Bool) -> SampleBands {
            SampleBands(source: source, width: grid.width, height: grid.height, depth: depth, bandRows: bandRows, converts: converts)
        }
        switch grid {
        case let grid as Grid<UInt8>:
            return try grid.withUnsafeBufferPointer { try body(make(.bytes($0.baseAddress!), converts: depth == 16)) }
        case let grid as Grid<UInt16>:
            guard depth == 16 else {
                throw CodecError(library: library, message: "16-bit samples need bit depth 16, not \(depth)")
            }
            return try grid.withUnsafeBufferPointer { try body(make(.words($0.baseAddress!), converts: false)) }
        case let grid as Grid<Float>:
            if let encoding = grid.dictionaryEncoding {
                let table = UnsafeMutableRawPointer.allocate(byteCount: 256 * depth / 8, alignment: 16)
                for (index, value) in encoding.table.enumerated() {
                    if depth == 8 {
                        table.storeBytes(of: SampleConversion.byte(value), toByteOffset: index, as: UInt8.self)
                    } else {
                        table.storeBytes(of: SampleConversion.word(value), toByteOffset: 2 * index, as: UInt16.self)
                    }
                }
                // The bands own the table from here on.
                return try encoding.indices.withUnsafeBufferPointer {
                    try body(make(.indexed($0.baseAddress!, table: table), converts: true))
                }
            }
            return try grid.withUnsafeBufferPointer { try body(make(.floats($0.baseAddress!), converts: true)) }
        default:
            throw CodecError(library: library, message: "cannot encode Grid<\(Element.elementType.swiftName)>")
        }
    }
}
