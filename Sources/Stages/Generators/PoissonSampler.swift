import Foundation

/// Exact Poisson(lambda) sampling.
///
/// - lambda below `tableLimit`: inversion of the cumulative distribution, tabulated
///   once (pmf terms in log space, summed with compensation) up to where the
///   remaining tail is below 2^-60, as 63-bit integer thresholds compared directly
///   with 63 random bits, with a guide table so a draw costs one lookup and about
///   one comparison.
/// - larger lambda: Hörmann's PTRS ("The transformed rejection method for generating
///   Poisson random variables", 1993), exact for lambda >= 10.
public struct PoissonSampler: Sendable {
    public static let tableLimit = 64.0

    public let lambda: Double
    @usableFromInline let method: Method

    @usableFromInline enum Method: Sendable {
        /// `thresholds[k]` is floor(P(X <= k) * 2^63), the last one 2^63; a draw is the
        /// smallest k with u < thresholds[k] for a uniform 63-bit u. `guide[j]` is the
        /// smallest k with thresholds[k] > j << guideShift. `prefixes`, when there are
        /// fewer than 255 values, maps the top 16 bits of u to the draw wherever they
        /// decide it (see `fill`), and to `PoissonSampler.undecided` where they do not.
        case table(thresholds: [UInt64], guide: [UInt16], guideShift: UInt64, prefixes: [UInt8]?)
        case ptrs(PTRS)
    }

    @usableFromInline struct PTRS: Sendable {
        @usableFromInline let lambda, logLambda, a, b, invAlpha, vr: Double
    }

    public init(lambda: Double) {
        precondition(lambda > 0 && lambda.isFinite, "lambda must be finite and > 0")
        self.lambda = lambda
        if lambda < Self.tableLimit {
            method = Self.tables.table(for: lambda)
        } else {
            let slam = lambda.squareRoot()
            let b = 0.931 + 2.53 * slam
            let a = -0.059 + 0.02483 * b
            method = .ptrs(PTRS(lambda: lambda, logLambda: Foundation.log(lambda), a: a, b: b,
                                invAlpha: 1.1239 + 1.1328 / (b - 3.4), vr: 0.9277 - 3.6224 / (b - 2)))
        }
    }

    /// The largest value the sampler can return, when it is bounded (table method).
    public var tableMaximum: Int? {
        if case .table(let thresholds, _, _, _) = method { return thresholds.count - 1 }
        return nil
    }

    /// The tables of the last few lambdas: a sweep makes hundreds of grids with one
    /// lambda, and building the tables (the prefix table has 65,536 cells) cost about
    /// 0.15 ms of each 512x512 grid's 1 ms. The arrays are shared, not copied.
    static let tables = TableCache()

    final class TableCache: @unchecked Sendable {
        static let capacity = 8
        private let lock = NSLock()
        private var entries: [(lambda: UInt64, method: Method)] = []

        func table(for lambda: Double) -> Method {
            let key = lambda.bitPattern
            if let hit = lock.withLock({ entries.first { $0.lambda == key }?.method }) { return hit }
            // Built outside the lock: two threads may build the same table, and one is kept.
            let method = PoissonSampler.makeTable(lambda)
            lock.withLock {
                guard !entries.contains(where: { $0.lambda == key }) else { return }
                if entries.count == Self.capacity { entries.removeFirst() }
                entries.append((key, method))
            }
            return method
        }
    }

    fileprivate static func makeTable(_ lambda: Double) -> Method {
        // pmf by the recurrence p(k) = p(k-1) * lambda / k from p(0) = exp(-lambda):
        // plain IEEE arithmetic apart from one exp, so the table (and the samples) are
        // the same on every machine whose exp is correctly rounded (glibc >= 2.28).
        var cdf: [Double] = []
        var pmf = exp(-lambda)
        var sum = 0.0, compensation = 0.0
        var k = 0
        while true {
            // Kahan summation keeps the cumulative sums exact to a few ulps.
            let y = pmf - compensation
            let t = sum + y
            compensation = (t - sum) - y
            sum = t
            cdf.append(min(sum, 1))
            // Past the mode the pmf falls at least geometrically with ratio lambda/(k+2),
            // so the whole tail is below pmf / (1 - ratio).
            let ratio = lambda / Double(k + 2)
            if Double(k) > lambda && pmf / (1 - ratio) < 0x1.0p-60 { break }
            if sum >= 1 { break }
            k += 1
            pmf *= lambda / Double(k)
        }
        // Integer thresholds: 2^-63 resolution, finer than the doubles they come from.
        var thresholds = cdf.map { UInt64(min($0, 1) * 0x1.0p63) }
        thresholds[thresholds.count - 1] = 1 << 63  // the remaining tail (< 2^-60) goes to the last value
        // About 64 guide cells per value: a cell that straddles two values (where the
        // search loop runs, and its branch is mispredicted) is then rare. 2-byte cells
        // keep the guide in L1 for the lambdas this method serves.
        var guideBits: UInt64 = 8
        while (1 << guideBits) < thresholds.count * 64 && guideBits < 16 { guideBits += 1 }
        let guideShift = 63 - guideBits
        var guide = [UInt16](repeating: 0, count: 1 << guideBits)
        var index = 0
        for j in guide.indices {
            while thresholds[index] <= UInt64(j) << guideShift { index += 1 }
            guide[j] = UInt16(index)
        }
        return .table(thresholds: thresholds, guide: guide, guideShift: guideShift, prefixes: prefixTable(thresholds))
    }

    /// Bits of a uniform 63-bit u that `prefixes` is indexed by.
    @usableFromInline static let prefixBits: UInt64 = 16
    /// A `prefixes` entry whose prefix does not decide the draw.
    @usableFromInline static let undecided: UInt8 = 255

    /// For each 16-bit prefix h, the draw for every u in [h << 47, (h + 1) << 47) when
    /// that is one value (no threshold falls inside the cell), else `undecided`.
    private static func prefixTable(_ thresholds: [UInt64]) -> [UInt8]? {
        guard thresholds.count < Int(undecided) else { return nil }
        let cellBits = 63 - prefixBits
        var table = [UInt8](repeating: undecided, count: 1 << prefixBits)
        var low = 0, high = 0  // the draws for the cell's first and last u
        for h in table.indices {
            let first = UInt64(h) << cellBits, last = first | ((1 << cellBits) - 1)
            while thresholds[low] <= first { low += 1 }
            if high < low { high = low }
            while thresholds[high] <= last { high += 1 }
            if low == high { table[h] = UInt8(low) }
        }
        return table
    }

    /// One sample.
    @inlinable
    public func sample(_ rng: inout Xoshiro256StarStar) -> UInt64 {
        switch method {
        case .table(let thresholds, let guide, let shift, _):
            return thresholds.withUnsafeBufferPointer { thresholds in
                guide.withUnsafeBufferPointer { guide in
                    Self.tableSample(&rng, thresholds: thresholds, guide: guide, shift: shift)
                }
            }
        case .ptrs(let constants):
            return Self.ptrsSample(&rng, constants)
        }
    }

    /// Fills `output` with samples, converting to `T` and refusing values that do not
    /// fit it. Returns the first value that did not fit, or nil.
    @inlinable
    public func fill<T: FixedWidthInteger>(_ output: UnsafeMutableBufferPointer<T>, rng: inout Xoshiro256StarStar) -> UInt64? {
        let maximum = UInt64(T.max)
        switch method {
        case .table(let thresholds, let guide, let shift, let prefixes):
            if let prefixes, let last = tableMaximum, UInt64(last) <= maximum {
                // Every value the table can produce fits, so there is no check per
                // sample. A draw needs only as many bits of u as it takes to decide it:
                // the top 16 nearly always do (when no threshold falls inside their
                // cell), so one 64-bit word gives four draws. The rare undecided prefix
                // takes its remaining 47 bits from a fresh word, so every draw is still
                // exactly the 63-bit inversion.
                return thresholds.withUnsafeBufferPointer { thresholds in
                    guide.withUnsafeBufferPointer { guide in
                        prefixes.withUnsafeBufferPointer { prefixes in
                            @inline(__always) func draw(_ prefix: UInt64) -> T {
                                let value = prefixes[Int(truncatingIfNeeded: prefix)]
                                if _fastPath(value != Self.undecided) { return T(truncatingIfNeeded: value) }
                                let u = prefix << (63 - Self.prefixBits) | rng.next() >> (Self.prefixBits + 1)
                                return T(truncatingIfNeeded: Self.tableSample(u, thresholds: thresholds, guide: guide, shift: shift))
                            }
                            var index = 0
                            while index &+ 4 <= output.count {
                                let word = rng.next()
                                output[index] = draw(word >> 48)
                                output[index &+ 1] = draw(word >> 32 & 0xFFFF)
                                output[index &+ 2] = draw(word >> 16 & 0xFFFF)
                                output[index &+ 3] = draw(word & 0xFFFF)
                                index &+= 4
                            }
                            if index < output.count {
                                var word = rng.next()
                                while index < output.count {
                                    output[index] = draw(word >> 48)
                                    word <<= 16
                                    index &+= 1
                                }
                            }
                            return nil
                        }
                    }
                }
            }
            return thresholds.withUnsafeBufferPointer { thresholds in
                guide.withUnsafeBufferPointer { guide in
                    for index in output.indices {
                        let value = Self.tableSample(&rng, thresholds: thresholds, guide: guide, shift: shift)
                        if value > maximum { return value }
                        output[index] = T(truncatingIfNeeded: value)
                    }
                    return nil
                }
            }
        case .ptrs(let constants):
            for index in output.indices {
                let value = Self.ptrsSample(&rng, constants)
                if value > maximum { return value }
                output[index] = T(truncatingIfNeeded: value)
            }
            return nil
        }
    }

    @inlinable @inline(__always)
    static func tableSample(
        _ rng: inout Xoshiro256StarStar, thresholds: UnsafeBufferPointer<UInt64>, guide: UnsafeBufferPointer<UInt16>, shift: UInt64
    ) -> UInt64 {
        tableSample(rng.next() &>> 1, thresholds: thresholds, guide: guide, shift: shift)
    }

    /// The draw for a uniform 63-bit `u`: the smallest k with u < thresholds[k].
    @inlinable @inline(__always)
    static func tableSample(
        _ u: UInt64, thresholds: UnsafeBufferPointer<UInt64>, guide: UnsafeBufferPointer<UInt16>, shift: UInt64
    ) -> UInt64 {
        var k = Int(guide[Int(truncatingIfNeeded: u &>> shift)])
        while thresholds[k] <= u { k &+= 1 }
        return UInt64(k)
    }

    @inlinable
    static func ptrsSample(_ rng: inout Xoshiro256StarStar, _ c: PTRS) -> UInt64 {
        while true {
            let u = rng.nextUnit() - 0.5
            let v = rng.nextUnit()
            let us = 0.5 - abs(u)
            let k = ((2 * c.a / us + c.b) * u + c.lambda + 0.43).rounded(.down)
            if us >= 0.07 && v <= c.vr {
                return UInt64(k)
            }
            if k < 0 || (us < 0.013 && v > us) {
                continue
            }
            if Foundation.log(v) + Foundation.log(c.invAlpha) - Foundation.log(c.a / (us * us) + c.b)
                <= -c.lambda + k * c.logLambda - logFactorial(k) {
                return UInt64(k)
            }
        }
    }

    /// log(k!) for a whole number k >= 0: a table below 128, Stirling's series above
    /// (error below 1e-15 there). Pure, so safe from any thread.
    @inlinable
    static func logFactorial(_ k: Double) -> Double {
        if k < 128 { return smallLogFactorials[Int(k)] }
        let x = k + 1
        let inverse = 1 / x
        let inverse2 = inverse * inverse
        let series = inverse * (1.0 / 12 - inverse2 * (1.0 / 360 - inverse2 * (1.0 / 1260 - inverse2 / 1680)))
        return (x - 0.5) * Foundation.log(x) - x + 0.918_938_533_204_672_7 + series
    }

    @usableFromInline static let smallLogFactorials: [Double] = (0..<128).map { lgamma(Double($0) + 1) }

    /// The smallest k such that P(X >= k) < 1e-30 by the Chernoff bound
    /// P(X >= k) <= exp(-lambda) (e lambda / k)^k: samples reach k with probability
    /// below 1e-30. Used to choose an element type that cannot overflow.
    public static func practicalMaximum(lambda: Double) -> Double {
        let logLimit = Foundation.log(1e-30)
        func logBound(_ k: Double) -> Double { -lambda + k * (1 + Foundation.log(lambda) - Foundation.log(k)) }
        var low = max(lambda, 1), high = lambda + 100 * lambda.squareRoot() + 200
        while high - low > 0.5 {
            let middle = (low + high) / 2
            if logBound(middle) < logLimit { high = middle } else { low = middle }
        }
        return high.rounded(.up)
    }
}
