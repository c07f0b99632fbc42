#if canImport(Glibc)
import Glibc
#endif

/// The statistics the run report shows: the Poisson distribution a `poisson` stage
/// samples, and how well a histogram of its output fits it (Pearson's chi-square).
public enum Statistics {
    /// P(X = k) for X ~ Poisson(lambda), through logarithms (no overflow for large k).
    public static func poissonPMF(_ k: Int, lambda: Double) -> Double {
        guard k >= 0, lambda > 0 else { return k == 0 && lambda == 0 ? 1 : 0 }
        return exp(Double(k) * log(lambda) - lambda - lgamma(Double(k) + 1))
    }

    /// Q(a, x) = Γ(a, x) / Γ(a), the regularised upper incomplete gamma function: a
    /// power series below x = a + 1, Lentz's continued fraction above.
    public static func regularizedUpperGamma(_ a: Double, _ x: Double) -> Double {
        guard a > 0, x > 0 else { return x <= 0 ? 1 : .nan }
        let logPrefix = a * log(x) - x - lgamma(a)
        if x < a + 1 {
            // P(a, x) = e^-x x^a / Γ(a+1) * Σ x^n / ((a+1)...(a+n))
            var term = 1 / a, sum = term, denominator = a
            for _ in 0..<10_000 {
                denominator += 1
                term *= x / denominator
                sum += term
                if abs(term) < abs(sum) * 1e-16 { break }
            }
            return max(0, 1 - sum * exp(logPrefix))
        }
        // Q(a, x) = e^-x x^a / Γ(a) * 1 / (x + 1 - a - 1(1-a) / (x + 3 - a - 2(2-a) / (x + 5 - a - ...)))
        let tiny = 1e-300
        var b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d
        for i in 1..<10_000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        return min(1, exp(logPrefix) * h)
    }

    /// P(X ≥ x) for X ~ chi-square with `degreesOfFreedom`.
    public static func chiSquareSurvival(_ x: Double, degreesOfFreedom: Int) -> Double {
        regularizedUpperGamma(Double(degreesOfFreedom) / 2, x / 2)
    }

    /// Pearson's test of observed counts against Poisson(lambda).
    public struct PoissonFit: Sendable, Hashable, Codable {
        /// The bins compared: values `low...high` (the last one open: `high` is nil),
        /// merged so that each expects at least 5 samples.
        public struct Bin: Sendable, Hashable, Codable {
            public var low: Int
            public var high: Int?
            public var observed: Int
            public var expected: Double
        }

        public var lambda: Double
        public var samples: Int
        public var bins: [Bin]
        public var statistic: Double
        public var degreesOfFreedom: Int
        public var pValue: Double

        enum CodingKeys: String, CodingKey {
            case lambda, samples, bins, statistic, degreesOfFreedom = "degrees_of_freedom", pValue = "p_value"
        }
    }

    /// Compares `counts` (how many samples had each value: `counts[k]` for k = 0, 1,
    /// ...; values past the end had none) with what Poisson(lambda) expects of as many
    /// samples. Bins are merged from the left until each expects at least 5, and the
    /// tail from the last bin on is one open bin, so that the expectations sum to the
    /// sample count. λ is the stage's parameter, not estimated: degrees of freedom are
    /// bins - 1. Nil for fewer than 2 bins (too few samples to test).
    public static func poissonFit(counts: [Int], lambda: Double) -> PoissonFit? {
        let samples = counts.reduce(0, +)
        guard samples > 0, lambda > 0 else { return nil }
        let total = Double(samples)
        // Values up to where the expectation has all but vanished, and at least all observed.
        var last = max(counts.count - 1, Int(lambda + 12 * lambda.squareRoot() + 12))
        last = min(last, 1 << 20)
        var bins: [PoissonFit.Bin] = []
        var current = PoissonFit.Bin(low: 0, high: 0, observed: 0, expected: 0)
        var cumulative = 0.0
        for k in 0...last {
            let expected = total * poissonPMF(k, lambda: lambda)
            cumulative += expected
            current.high = k
            current.observed += k < counts.count ? counts[k] : 0
            current.expected += expected
            // Close a bin once it expects 5 and what is left expects 5 too.
            if current.expected >= 5 && total - cumulative >= 5 {
                bins.append(current)
                current = PoissonFit.Bin(low: k + 1, high: k + 1, observed: 0, expected: 0)
            }
        }
        // The tail: everything from `current.low` on, whatever value it is.
        current.high = nil
        current.expected = max(0, total - bins.reduce(0) { $0 + $1.expected })
        current.observed = samples - bins.reduce(0) { $0 + $1.observed }
        if current.expected >= 5 || bins.isEmpty {
            bins.append(current)
        } else if var merged = bins.popLast() {
            merged.high = nil
            merged.observed += current.observed
            merged.expected += current.expected
            bins.append(merged)
        }
        guard bins.count >= 2 else { return nil }
        let statistic = bins.reduce(0.0) { sum, bin in
            let difference = Double(bin.observed) - bin.expected
            return sum + difference * difference / bin.expected
        }
        let freedom = bins.count - 1
        return PoissonFit(lambda: lambda, samples: samples, bins: bins, statistic: statistic, degreesOfFreedom: freedom,
                          pValue: chiSquareSurvival(statistic, degreesOfFreedom: freedom))
    }
}
