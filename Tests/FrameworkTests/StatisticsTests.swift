import Foundation
import Testing
@testable import Framework

/// The report's Poisson pmf, chi-square survival function and goodness-of-fit test,
/// against NumPy and SciPy (Tests/Fixtures/statistics_reference.py, run with the
/// Python environment scripts/test makes).
@Suite struct StatisticsTests {
    struct Reference: Decodable {
        struct Fit: Decodable {
            var bins: [[Double?]]
            var statistic: Double
            var p_value: Double
            var degrees_of_freedom: Int
        }

        var counts: [Int]
        var pmf: [Double]
        var survival: [[Double]]
        var fit: Fit
    }

    static func reference(lambda: Double, sampleLambda: Double, count: Int, seed: Int) throws -> Reference {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let python = ProcessInfo.processInfo.environment["PIPELINE_TEST_PYTHON"] ?? root.appendingPathComponent(".build/test-venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw Missing(description: "\(python) not found: run scripts/test, which installs NumPy and SciPy there")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [root.appendingPathComponent("Tests/Fixtures/statistics_reference.py").path,
                             "\(lambda)", "\(sampleLambda)", "\(count)", "\(seed)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(python) failed: run scripts/test, which installs NumPy and SciPy")
        return try JSONDecoder().decode(Reference.self, from: data)
    }

    struct Missing: Error, CustomStringConvertible {
        var description: String
    }

    static func close(_ a: Double, _ b: Double, relative: Double = 1e-9) -> Bool {
        abs(a - b) <= relative * max(abs(a), abs(b)) || abs(a - b) < 1e-300
    }

    @Test func thePMFAndTheChiSquareTailAgreeWithSciPy() throws {
        let reference = try Self.reference(lambda: 3, sampleLambda: 3, count: 1000, seed: 1)
        for (k, expected) in reference.pmf.enumerated() {
            #expect(Self.close(Statistics.poissonPMF(k, lambda: 3), expected, relative: 1e-12), "pmf(\(k))")
        }
        for point in reference.survival {
            let value = Statistics.chiSquareSurvival(point[0], degreesOfFreedom: Int(point[1]))
            #expect(Self.close(value, point[2], relative: 1e-9), "sf(\(point[0]), \(Int(point[1]))): \(value) vs \(point[2])")
        }
    }

    /// The reference job's grid: 2048 x 2048 Poisson(3) samples.
    @Test(arguments: [(3.0, 3.0, 2048 * 2048, 7), (3.0, 3.0, 500, 11), (0.5, 0.5, 10_000, 3), (40.0, 40.0, 100_000, 5)])
    func theFitOfAPoissonSampleAgreesWithSciPy(lambda: Double, sampleLambda: Double, count: Int, seed: Int) throws {
        let reference = try Self.reference(lambda: lambda, sampleLambda: sampleLambda, count: count, seed: seed)
        let fit = try #require(Statistics.poissonFit(counts: reference.counts, lambda: lambda))
        #expect(fit.samples == count)
        #expect(fit.degreesOfFreedom == reference.fit.degrees_of_freedom)
        #expect(fit.bins.count == reference.fit.bins.count)
        for (bin, expected) in zip(fit.bins, reference.fit.bins) {
            #expect(Double(bin.low) == expected[0] && bin.high.map(Double.init) == expected[1] && Double(bin.observed) == expected[2])
            #expect(Self.close(bin.expected, expected[3]!, relative: 1e-9), "\(bin) vs \(expected)")
        }
        #expect(Self.close(fit.statistic, reference.fit.statistic, relative: 1e-7), "\(fit.statistic) vs \(reference.fit.statistic)")
        #expect(Self.close(fit.pValue, reference.fit.p_value, relative: 1e-6), "\(fit.pValue) vs \(reference.fit.p_value)")
    }

    /// Samples from another λ fail the test clearly.
    @Test func aSampleOfAnotherLambdaIsRejected() throws {
        let reference = try Self.reference(lambda: 3, sampleLambda: 3.2, count: 100_000, seed: 2)
        let fit = try #require(Statistics.poissonFit(counts: reference.counts, lambda: 3))
        #expect(fit.pValue < 1e-6, "\(fit.pValue)")
        #expect(Self.close(fit.statistic, reference.fit.statistic, relative: 1e-7))
    }

    @Test func tooFewSamplesHaveNoTest() {
        #expect(Statistics.poissonFit(counts: [1, 2], lambda: 3) == nil)
        #expect(Statistics.poissonFit(counts: [], lambda: 3) == nil)
    }
}
