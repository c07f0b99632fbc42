/// How many times each byte value occurs in any number of buffers, counted fast
/// enough to ride along with the pass that writes them (a generator filling a block
/// while it is still in cache).
///
/// Large inputs are counted two bytes at a time in one table of 65,536 pairs, folded
/// into the 256 counts only when asked: half the increments of counting bytes, and
/// for data of few values (a Poisson grid's) the pairs that occur stay in the
/// first-level cache. Small inputs go a byte at a time into eight tables, one per byte
/// of an 8-byte load, so that runs of one value do not wait on one counter. Either
/// way the counters are 32-bit, folded before they could overflow.
public final class ByteHistogram {
    private let pairs: Bool
    private var table: UnsafeMutablePointer<UInt32>?
    private var tableSize: Int { pairs ? 65_536 : 8 * 256 }
    /// Bytes in the table since it was last folded.
    private var pending = 0
    private var folded = [Int](repeating: 0, count: 256)

    /// From this many bytes on, counting pairs pays for zeroing and folding their table.
    public static let pairCountingThreshold = 1 << 18
    /// The table is folded once it holds this many bytes, and takes at most this many
    /// more before the next check: no 32-bit counter reaches 2^31.
    private static let foldEvery = 1 << 30

    /// `expectedCount`: about how many bytes will be added in all (it chooses the method).
    public init(expectedCount: Int) {
        pairs = expectedCount >= Self.pairCountingThreshold
    }

    deinit { table?.deallocate() }

    /// Counts `bytes`.
    public func add(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = UnsafeRawPointer(bytes.baseAddress) else { return }
        var start = 0
        while start < bytes.count {
            if pending >= Self.foldEvery { fold() }
            let end = min(bytes.count, start + Self.foldEvery)
            let table = self.table ?? {
                let table = UnsafeMutablePointer<UInt32>.allocate(capacity: tableSize)
                table.initialize(repeating: 0, count: tableSize)
                self.table = table
                return table
            }()
            var i = start
            if pairs {
                while i + 8 <= end {
                    let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    table[Int(word & 0xFFFF)] &+= 1
                    table[Int((word >> 16) & 0xFFFF)] &+= 1
                    table[Int((word >> 32) & 0xFFFF)] &+= 1
                    table[Int(word >> 48)] &+= 1
                    i += 8
                }
            } else {
                while i + 8 <= end {
                    let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    table[Int(word & 0xFF)] &+= 1
                    table[256 + Int((word >> 8) & 0xFF)] &+= 1
                    table[512 + Int((word >> 16) & 0xFF)] &+= 1
                    table[768 + Int((word >> 24) & 0xFF)] &+= 1
                    table[1024 + Int((word >> 32) & 0xFF)] &+= 1
                    table[1280 + Int((word >> 40) & 0xFF)] &+= 1
                    table[1536 + Int((word >> 48) & 0xFF)] &+= 1
                    table[1792 + Int(word >> 56)] &+= 1
                    i += 8
                }
            }
            pending += i - start
            while i < end {
                folded[Int(base.load(fromByteOffset: i, as: UInt8.self))] += 1
                i += 1
            }
            start = end
        }
    }

    /// The 256 counts so far.
    public var counts: [Int] {
        fold()
        return folded
    }

    private func fold() {
        guard let table, pending > 0 else { return }
        if pairs {
            // Each pair counts for both its bytes (whichever order a load put them in).
            for pair in 0..<65_536 where table[pair] != 0 {
                folded[pair & 0xFF] += Int(table[pair])
                folded[pair >> 8] += Int(table[pair])
            }
        } else {
            for sub in 0..<8 {
                for k in 0..<256 { folded[k] += Int(table[sub * 256 + k]) }
            }
        }
        table.update(repeating: 0, count: tableSize)
        pending = 0
    }
}
