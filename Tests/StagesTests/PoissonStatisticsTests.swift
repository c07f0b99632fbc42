import Foundation
import Testing
@testable import Stages

/// Goodness of fit of the Poisson sampler against the exact pmf.
///
/// Every test uses a fixed seed, so it is deterministic; the thresholds are the
/// 1 - 1e-4 quantiles, which a correct sampler exceeds with probability 1e-4 per
/// seed, while the biased samplers below exceed them by orders of magnitude.
@Suite struct PoissonStatisticsTests {
    static let lambdas: [Double] = [0.001, 0.5, 3, 10, 30, 1000, 1e6]
    static let sampleCount = 1_000_000

    /// The exact pmf, computed here independently of the sampler's tables.
    static func pmf(_ k: Int, _ lambda: Double) -> Double {
        exp(-lambda + Double(k) * log(lambda) - lgamma(Double(k) + 1))
    }

    /// Pearson's chi-square statistic and its degrees of freedom, over bins of single
    /// values merged from both tails until each expects at least 20 samples.
    static func chiSquare(_ samples: [UInt64], lambda: Double) -> (statistic: Double, degreesOfFreedom: Int) {
        var counts: [Int: Int] = [:]
        for sample in samples { counts[Int(sample), default: 0] += 1 }
        let n = Double(samples.count)
        let spread = Int(12 * lambda.squareRoot() + 30)
        let low = max(0, Int(lambda) - spread), high = Int(lambda) + spread
        var bins: [(observed: Double, expected: Double)] = []
        var observed = 0.0, expected = 0.0
        // Lower tail: everything below `low` goes into the first bin.
        let belowLow = (0..<low).reduce(0.0) { $0 + pmf($1, lambda) }
        observed = Double(counts.filter { $0.key < low }.values.reduce(0, +))
        expected = belowLow * n
        for k in low...high {
            observed += Double(counts[k] ?? 0)
            expected += pmf(k, lambda) * n
            if expected >= 20 {
                bins.append((observed, expected))
                observed = 0
                expected = 0
            }
        }
        // Upper tail beyond `high`: its probability is what is left.
        let covered = bins.reduce(0.0) { $0 + $1.expected } + expected
        observed += Double(counts.filter { $0.key > high }.values.reduce(0, +))
        expected += max(0, n - covered)
        if bins.isEmpty {
            bins.append((observed, expected))
        } else {
            bins[bins.count - 1].observed += observed
            bins[bins.count - 1].expected += expected
        }
        let statistic = bins.reduce(0.0) { $0 + ($1.observed - $1.expected) * ($1.observed - $1.expected) / $1.expected }
        return (statistic, bins.count - 1)
    }

    /// The 1 - 1e-4 quantile of chi-square(df), Wilson-Hilferty (z = 3.719).
    static func criticalValue(_ df: Int) -> Double {
        let d = Double(df)
        if df == 1 { return 15.14 }  // exact for one degree of freedom
        let term = 1 - 2 / (9 * d) + 3.719 * (2 / (9 * d)).squareRoot()
        return d * term * term * term
    }

    /// How samples are drawn: one at a time, or in bulk as the `poisson` stage does
    /// (for small lambda a different code path, which decides most draws from the
    /// top 16 bits of u).
    enum Path: CaseIterable { case single, bulk }

    static func draw(_ lambda: Double, count: Int = sampleCount, seed: UInt64 = 2026, path: Path = .bulk) -> [UInt64] {
        let sampler = PoissonSampler(lambda: lambda)
        var rng = Xoshiro256StarStar(seed: seed, stream: 0)
        switch path {
        case .single:
            return (0..<count).map { _ in sampler.sample(&rng) }
        case .bulk:
            var samples = [UInt64](repeating: 0, count: count)
            let overflow = samples.withUnsafeMutableBufferPointer { sampler.fill($0, rng: &rng) }
            precondition(overflow == nil)
            return samples
        }
    }

    @Test(arguments: lambdas, Path.allCases)
    func meanAndVariance(lambda: Double, path: Path) {
        let samples = Self.draw(lambda, path: path)
        let n = Double(samples.count)
        let mean = samples.reduce(0.0) { $0 + Double($1) } / n
        let variance = samples.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / (n - 1)
        // Standard errors: sqrt(lambda / n) for the mean, sqrt((lambda + 2 lambda^2) / n) for the variance.
        #expect(abs(mean - lambda) < 4.5 * (lambda / n).squareRoot(), "lambda \(lambda): mean \(mean)")
        #expect(abs(variance - lambda) < 4.5 * ((lambda + 2 * lambda * lambda) / n).squareRoot(), "lambda \(lambda): variance \(variance)")
    }

    @Test(arguments: lambdas, Path.allCases)
    func chiSquareGoodnessOfFit(lambda: Double, path: Path) {
        let (statistic, df) = Self.chiSquare(Self.draw(lambda, path: path), lambda: lambda)
        #expect(df >= 1)
        #expect(statistic < Self.criticalValue(df), "lambda \(lambda): chi-square \(statistic) with \(df) degrees of freedom")
    }

    /// Every 16-bit prefix the bulk path decides alone gives the draw that inversion
    /// with all 63 bits gives, at both ends of its cell and inside it.
    @Test(arguments: [0.001, 0.5, 3, 10, 30, 63.9])
    func decidedPrefixesAgreeWithFullInversion(lambda: Double) throws {
        guard case .table(let thresholds, let guide, let shift, let prefixes?) = PoissonSampler(lambda: lambda).method else {
            Issue.record("lambda \(lambda) should use the table with prefixes")
            return
        }
        var rng = Xoshiro256StarStar(seed: 77)
        var decided = 0
        thresholds.withUnsafeBufferPointer { thresholds in
            guide.withUnsafeBufferPointer { guide in
                for prefix in 0..<prefixes.count where prefixes[prefix] != PoissonSampler.undecided {
                    decided += 1
                    let first = UInt64(prefix) << 47
                    for u in [first, first | (1 << 47 - 1), first | rng.next() >> 17] {
                        let exact = PoissonSampler.tableSample(u, thresholds: thresholds, guide: guide, shift: shift)
                        if exact != UInt64(prefixes[prefix]) {
                            Issue.record("lambda \(lambda), u \(u): prefix says \(prefixes[prefix]), inversion \(exact)")
                            return
                        }
                    }
                }
            }
        }
        // Nearly every prefix decides its draw: that is what makes the path fast.
        #expect(decided > prefixes.count * 99 / 100, "\(decided) of \(prefixes.count) prefixes decided")
    }

    /// The bulk path draw by draw: replaying its random words through the prefix table
    /// and, for undecided prefixes, full inversion gives the same values; for lengths
    /// that end 1 to 3 draws into a word, and often enough that undecided prefixes occur.
    @Test(arguments: [3.0, 63.9])
    func bulkDrawsReplayThroughFullInversion(lambda: Double) throws {
        let sampler = PoissonSampler(lambda: lambda)
        guard case .table(let thresholds, let guide, let shift, let prefixes?) = sampler.method else {
            Issue.record("lambda \(lambda) should use the table with prefixes")
            return
        }
        for count in [1, 2, 3, 4, 5, 6, 7, 400_003] {
            var rng = Xoshiro256StarStar(seed: UInt64(count))
            var replay = rng
            var output = [UInt64](repeating: 0, count: count)
            let overflow = output.withUnsafeMutableBufferPointer { sampler.fill($0, rng: &rng) }
            #expect(overflow == nil)
            var expected: [UInt64] = []
            var undecided = 0
            thresholds.withUnsafeBufferPointer { thresholds in
                guide.withUnsafeBufferPointer { guide in
                    while expected.count < count {
                        let word = replay.next()
                        for chunk in 0..<4 where expected.count < count {
                            let prefix = word >> (48 - 16 * UInt64(chunk)) & 0xFFFF
                            let value = prefixes[Int(prefix)]
                            if value != PoissonSampler.undecided {
                                expected.append(UInt64(value))
                            } else {
                                undecided += 1
                                let u = prefix << 47 | replay.next() >> 17
                                expected.append(PoissonSampler.tableSample(u, thresholds: thresholds, guide: guide, shift: shift))
                            }
                        }
                    }
                }
            }
            #expect(output == expected, "lambda \(lambda), \(count) draws")
            // Both consumed the same words.
            #expect(rng.next() == replay.next())
            if count > 1000 { #expect(undecided > 0, "no undecided prefix in \(count) draws") }
        }
    }

    /// The test has power: samplers that are slightly wrong fail it.
    @Test func biasedSamplersFail() {
        // 1. The mean off by 1 %.
        let (shifted, df1) = Self.chiSquare(Self.draw(30.3), lambda: 30)
        #expect(shifted > Self.criticalValue(df1), "a 1 % shift passed: \(shifted) with \(df1) df")
        // 2. A rounded normal approximation, a common shortcut for large lambda.
        var rng = Xoshiro256StarStar(seed: 5, stream: 0)
        let lambda = 30.0
        let normal: [UInt64] = (0..<Self.sampleCount).map { _ in
            let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
            let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            return UInt64(max(0, (lambda + lambda.squareRoot() * z).rounded()))
        }
        let (approximate, df2) = Self.chiSquare(normal, lambda: lambda)
        #expect(approximate > Self.criticalValue(df2), "the normal approximation passed: \(approximate) with \(df2) df")
        // 3. PTRS with its final acceptance test left out (a plausible bug): every
        //    candidate outside the squeeze is accepted.
        let big = 1000.0
        let b = 0.931 + 2.53 * big.squareRoot(), a = -0.059 + 0.02483 * b, vr = 0.9277 - 3.6224 / (b - 2)
        var rng3 = Xoshiro256StarStar(seed: 9, stream: 0)
        let truncated: [UInt64] = (0..<Self.sampleCount).map { _ in
            while true {
                let u = rng3.nextUnit() - 0.5, v = rng3.nextUnit()
                let us = 0.5 - abs(u)
                let k = ((2 * a / us + b) * u + big + 0.43).rounded(.down)
                if us >= 0.07 && v <= vr { return UInt64(k) }
                if k < 0 || (us < 0.013 && v > us) { continue }
                return UInt64(k)
            }
        }
        let (ptrsStatistic, df3) = Self.chiSquare(truncated, lambda: big)
        #expect(ptrsStatistic > Self.criticalValue(df3), "PTRS without its acceptance test passed: \(ptrsStatistic) with \(df3) df")
    }
}
