import Testing
@testable import Framework

/// The alias-expansion guard counts the nodes aliases add, not the nodes written out:
/// a large plain file loads, a "billion laughs" file does not, however large the
/// rest of the file is.
@Suite struct YAMLLimitsTests {
    /// A mapping of `count` keys, each holding a two-item list: 4 nodes per entry.
    func plainDocument(entries count: Int) -> String {
        var lines: [String] = []
        lines.reserveCapacity(count)
        for index in 0..<count { lines.append("k\(index): [a\(index), b\(index)]") }
        return lines.joined(separator: "\n") + "\n"
    }

    func laughs(levels: Int) -> [String] {
        var lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1..<levels {
            let refs = Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ")
            lines.append("l\(level): &l\(level) [\(refs)]")
        }
        return lines
    }

    @Test func largePlainFileLoads() throws {
        let count = 50_000  // 200,000 nodes and more, no aliases
        let start = ContinuousClock.now
        let result = YAMLParser.parse(plainDocument(entries: count), file: "t")
        let elapsed = ContinuousClock.now - start
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics.first?.message ?? "")")
        let root = try #require(result.root)
        #expect(root.pairs?.count == count)
        #expect(root["k49999"]?.items?.last?.scalar == "b49999")
        #expect(elapsed < .seconds(5), "parsing \(count * 4) nodes took \(elapsed)")
    }

    @Test func aliasesInALargeFileExpand() throws {
        // Thousands of stages sharing one anchored `with:`: 10,000 aliases of 5 nodes.
        var lines = ["defaults: &defaults {delay_ms: 0, failures: 0}", "stages:", "  s0: {type: constant}"]
        for index in 1..<10_000 { lines.append("  s\(index): {type: pass, input: s\(index - 1), with: *defaults}") }
        let result = YAMLParser.parse(lines.joined(separator: "\n"), file: "t")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics.first?.message ?? "")")
        #expect(result.root?["stages"]?["s9999"]?["with"]?["failures"]?.scalar == "0")
    }

    @Test func billionLaughsIsRefused() {
        let start = ContinuousClock.now
        let result = YAMLParser.parse(laughs(levels: 10).joined(separator: "\n"), file: "bomb.yaml")
        #expect(result.root == nil)
        #expect(result.diagnostics.count == 1)
        #expect(result.diagnostics.first?.message.contains("nodes through aliases; refusing to load it") == true)
        #expect(result.diagnostics.first?.location?.line == 5)  // l4 is the first level past 100,000 nodes
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test func billionLaughsInsideALargeFileIsRefused() {
        // Plain padding raises the allowance to the file's size, never to an
        // exponential one.
        let padding = plainDocument(entries: 20_000)  // about 400 KB
        let result = YAMLParser.parse(padding + laughs(levels: 10).joined(separator: "\n"), file: "bomb.yaml")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message.contains("nodes through aliases; refusing to load it") == true)
        #expect(result.diagnostics.first?.location?.line == 20_000 + 6)  // l5 adds a million nodes
    }
}
