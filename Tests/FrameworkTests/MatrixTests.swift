import Foundation
import Testing
@testable import Framework

/// `matrix:`: the cross product, ranges, `include` and `exclude` as CI matrices have
/// them, each problem at its position, and each item's document and plan.
@Suite struct MatrixTests {
    static func load(_ yaml: String, overrides: [String] = [], item: Matrix.Item? = nil) -> PipelineLoader.Result {
        PipelineLoader(environment: [:], overrides: overrides).load(bytes: Array(yaml.utf8), file: "sweep.yaml", item: item)
    }

    static func pipeline(_ matrix: String, params: String = "lambda: 3\n  size: 8") -> String {
        """
        params:
          \(params)
        matrix:
        \(matrix)
        stages:
          generate: {type: poisson, with: {width: "${size}", height: "${size}", lambda: "${lambda}"}}
        """
    }

    static func items(_ matrix: String, params: String = "lambda: 3\n  size: 8") throws -> [String] {
        let loaded = load(pipeline(matrix, params: params))
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        return try #require(loaded.document?.matrix).items.map(\.label)
    }

    static func errors(_ matrix: String, params: String = "lambda: 3\n  size: 8", overrides: [String] = []) -> [String] {
        load(pipeline(matrix, params: params), overrides: overrides).diagnostics.filter { $0.severity == .error }
            .map { "\($0.location.map { "\($0.line):\($0.column)" } ?? "-") \($0.message)\($0.help.map { " | \($0)" } ?? "")" }
    }

    @Test func theItemsAreTheCrossProductFirstAxisSlowest() throws {
        #expect(try Self.items("  lambda: [0.5, 3]\n  size: [8, 16, 32]") == [
            "lambda=0.5 size=8", "lambda=0.5 size=16", "lambda=0.5 size=32", "lambda=3 size=8", "lambda=3 size=16", "lambda=3 size=32",
        ])
    }

    @Test func rangesLeaveOutTheStopAndTakeAStep() throws {
        #expect(try Self.items("  seed: {range: [0, 4]}") == ["seed=0", "seed=1", "seed=2", "seed=3"])
        #expect(try Self.items("  size: {range: [8, 40, 16]}") == ["size=8", "size=24"])
        #expect(try Self.items("  size: {range: [10, 0, -4]}") == ["size=10", "size=6", "size=2"])
    }

    /// The example of GitHub's documentation of `include`, in this file's terms.
    @Test func includeAddsToMatchingItemsOrMakesItsOwn() throws {
        let matrix = [
            "  lambda: [1, 2]", "  size: [8, 16]", "  include:", "    - {seed: 7}", "    - {lambda: 1, depth: 3}",
            "    - {lambda: 2, size: 16, depth: 4}", "    - {lambda: 9}",
        ].joined(separator: "\n")
        let items = try Self.items(matrix, params: "lambda: 3\n  size: 8\n  depth: 0")
        #expect(items == [
            "lambda=1 size=8 seed=7 depth=3", "lambda=1 size=16 seed=7 depth=3", "lambda=2 size=8 seed=7", "lambda=2 size=16 seed=7 depth=4",
            "lambda=9",
        ])
    }

    @Test func excludeRemovesWhatMatchesEveryValueItGives() throws {
        #expect(try Self.items("  lambda: [1, 2.0]\n  size: [8, 16]\n  exclude:\n    - {lambda: 2, size: 16}\n    - {size: 99}") == [
            "lambda=1 size=8", "lambda=1 size=16", "lambda=2.0 size=8",
        ])
    }

    @Test(arguments: [
        ("  lamda: [1, 2]", "5:3 matrix key 'lamda' is not a param of this pipeline | did you mean 'lambda'?"),
        ("  lambda: 3", "5:11 matrix values of 'lambda' must be a list or {range: [start, stop]}, not a scalar | for example: lambda: [1, 2, 3]"),
        ("  lambda: []", "5:11 matrix list 'lambda' is empty | give it at least one value"),
        ("  lambda: [[1]]", "5:12 matrix values of 'lambda' must be single values, not a list"),
        ("  seed: [1, -2]", "5:13 a seed must be a whole number from 0 to 18446744073709551615, got '-2'"),
        ("  seed: {range: [-2, 2]}", "5:17 seeds are whole numbers from 0 to 18446744073709551615; this range has negative ones"),
        ("  size: {range: [5, 5]}", "5:17 range [5, 5] has no values | the stop is left out: [0, 3] is 0, 1, 2"),
        ("  size: {range: [0, 9, 0]}", "5:24 a range's step cannot be 0"),
        ("  size: {range: [0, x]}", "5:17 'range' must be [start, stop] or [start, stop, step] of whole numbers | for example: {range: [0, 100]} for 0 to 99"),
        ("  size: [8]\n  exclude: [{lambda: 3}]", "6:14 'exclude' names 'lambda', which is not a list in the matrix | exclude leaves out combinations of the matrix's own lists: 'size'"),
        ("  size: [8]\n  include: {size: 8}", "6:12 'include' must be a list of mappings of params to values, not a mapping | for example: include: [{lambda: 3, seed: 0}]"),
        ("  size: [8, 8]", "5:13 matrix items 0 and 1 have the same values (size=8) | remove the repeated value or include entry"),
        ("  size: [8]\n  exclude: [{size: 8}]", "5:3 'exclude' leaves no items"),
        ("  seed: {range: [0, 1000]}\n  size: {range: [0, 1000]}", "5:3 the matrix makes more than 100000 items | sweep fewer values (a range takes a step: {range: [0, 1000, 10]})"),
        ("  {}", "5:3 the matrix has no values | give a param a list of values: lambda: [0.5, 3, 30]"),
    ])
    func problemsAreReportedWhereTheyAre(matrix: String, expected: String) {
        #expect(Self.errors(matrix) == [expected])
    }

    /// Four lists of 65,536 values make 2^64 items, which an Int multiplied without a
    /// cap counts as 0: refused, not built (the count is capped as it is multiplied).
    @Test func aProductBeyondIntIsRefusedWithoutBuildingIt() {
        let lists = ["seed", "size", "lambda", "depth"].map { "  \($0): {range: [0, 65536]}" }.joined(separator: "\n")
        #expect(Self.errors(lists, params: "lambda: 3\n  size: 8\n  depth: 0")
            == ["6:3 the matrix makes more than 100000 items | sweep fewer values (a range takes a step: {range: [0, 1000, 10]})"])
    }

    /// Ranges whose span or step does not fit an Int are counted without a trap: refused
    /// when too long, and built exactly when short.
    @Test func rangesAtTheEndsOfIntAreCountedWithoutOverflow() throws {
        let max = Int.max, min = Int.min
        #expect(Self.errors("  seed: {range: [-1, \(max)]}")
            == ["5:17 range [-1, \(max)] has 9223372036854775808 values, more than 100000"])
        #expect(Self.errors("  size: {range: [-5000000000000000000, 5000000000000000000]}")
            == ["5:17 range [-5000000000000000000, 5000000000000000000] has 10000000000000000000 values, more than 100000"])
        #expect(try Self.items("  size: {range: [1, 0, \(min)]}") == ["size=1"])
        #expect(try Self.items("  size: {range: [\(min), \(max), \(max)]}") == ["size=\(min)", "size=-1", "size=\(max - 1)"])
        #expect(try Self.items("  size: {range: [-9000000000000000000, 9000000000000000000, 6000000000000000000]}")
            == ["size=-9000000000000000000", "size=-3000000000000000000", "size=3000000000000000000"])
        #expect(try Self.items("  size: {range: [\(max), \(min), \(min)]}") == ["size=\(max)", "size=-1"])
    }

    /// A matrix that is not a mapping: the help is one line a terminal shows as it is.
    @Test func aMatrixThatIsNotAMappingGetsAOneLineExample() {
        let loaded = Self.load("params: {lambda: 3}\nmatrix: null\nstages:\n  g: {type: poisson, with: {width: 8, height: 8}}\n")
        let errors = loaded.diagnostics.filter { $0.severity == .error }
        #expect(errors.map(\.message) == ["'matrix' must map params to their values, not null"])
        #expect(errors.first?.help == "for example: matrix: {lambda: [0.5, 3, 30], seed: {range: [0, 10]}}")
    }

    /// Many include entries over many items are refused before they are matched.
    @Test func includeEntriesTimesItemsAreBounded() {
        let entries = (0..<1_001).map { "    - {lambda: \($0)}" }.joined(separator: "\n")
        #expect(Self.errors("  seed: {range: [0, 10000]}\n  include:\n" + entries)
            == ["5:3 the matrix has 1001 include entries for 10000 items, more than 10000000 entry-item pairs to match"
                + " | sweep the included values as a list instead, or split the file"])
    }

    @Test func aParamCalledSeedCannotAlsoBeSwept() {
        #expect(Self.errors("  seed: [1]", params: "seed: 1\n  lambda: 3\n  size: 8")
            == ["6:3 matrix key 'seed' sets each item's run seed, but the pipeline also has a param 'seed' | rename the param"])
    }

    @Test func aProfileCannotSetASweptParam() {
        let yaml = Self.pipeline("  lambda: [1, 2]") + "\nprofiles:\n  big:\n    params: {lambda: 7, size: 64}\n"
        let loader = PipelineLoader(environment: [:], profiles: ["big"])
        let errors = loader.load(bytes: Array(yaml.utf8), file: "sweep.yaml").diagnostics.filter { $0.severity == .error }
            .map { "\($0.location.map { "\($0.line):\($0.column)" } ?? "-") \($0.message)" }
        #expect(errors == ["10:14 profile 'big' sets param 'lambda', which the matrix sweeps"])
        // The profile's other params apply to every item.
        let other = Self.pipeline("  lambda: [1, 2]") + "\nprofiles:\n  big:\n    params: {size: 64}\n"
        #expect(loader.load(bytes: Array(other.utf8), file: "sweep.yaml").diagnostics.filter { $0.severity == .error }.isEmpty)
    }

    /// A stage parameter the file fills from a swept param cannot be set over it, by
    /// --set or a profile (every item would get the one value); others can.
    @Test func aStageParameterFromASweptParamCannotBeSetOver() {
        #expect(Self.errors("  lambda: [1, 2]", overrides: ["stages.generate.with.lambda=7"]) == [
            "- --set stages.generate.with.lambda=7: 'stages.generate.with.lambda' takes '${lambda}' in the file, which the matrix sweeps"
                + " | leave out --set for it, or take 'lambda' out of the matrix",
        ])
        #expect(Self.errors("  lambda: [1, 2]", overrides: ["stages.generate.with.width=16"]).isEmpty)
        let yaml = Self.pipeline("  lambda: [1, 2]") + "\nprofiles:\n  fixed:\n    stages:\n      generate: {with: {lambda: 7}}\n"
        let errors = PipelineLoader(environment: [:], profiles: ["fixed"]).load(bytes: Array(yaml.utf8), file: "sweep.yaml").diagnostics
            .filter { $0.severity == .error }.map(\.message)
        #expect(errors == ["profile 'fixed' sets stages.generate.with.lambda, which takes '${lambda}' in the file, which the matrix sweeps"])
    }

    @Test func setCannotGiveASweptParam() {
        let errors = Self.errors("  lambda: [1, 2]", overrides: ["params.lambda=5", "params.size=4"])
        #expect(errors.count == 1 && errors[0].contains("params.lambda=5: the matrix sweeps param 'lambda'"), "\(errors)")
    }

    /// An item's document is the pipeline with the item's values as its params: in
    /// `${...}` at load time and in the plan's params (for `{...}` at run time).
    @Test func anItemsDocumentHasItsValues() throws {
        let yaml = Self.pipeline("  lambda: [0.5, 3]\n  seed: [4]\n  size: [8]")
        let matrix = try #require(Self.load(yaml).document?.matrix)
        let loaded = Self.load(yaml, item: matrix.items[0])
        #expect(loaded.diagnostics.isEmpty)
        let document = try #require(loaded.document)
        #expect(document.params["lambda"] == "0.5" && document.params["size"] == "8" && document.params["seed"] == nil)
        let with = try #require(document.stage("generate")?.parameters)
        #expect(with.first { $0.name == "lambda" }?.value.scalar == "0.5")
        #expect(matrix.items[0].seed == 4 && matrix.items[1].label == "lambda=3 seed=4 size=8")
    }
}
