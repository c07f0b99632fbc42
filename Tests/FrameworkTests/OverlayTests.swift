import Testing
@testable import Framework

@Suite struct InterpolationTests {
    @Test func paramsAndEnvironment() throws {
        let plan = try planYAML("""
            params: {size: 8, base: "${env.BASE:-7}"}
            stages:
              a: {type: constant, with: {size: "${size}", value: "${base}"}}
              b: {type: constant, with: {size: 2, value: "${env.VALUE}"}}
              c: {type: constant, with: {size: 2, value: "${env.UNSET:-9}"}}
            """, environment: ["VALUE": "5"]).get()
        #expect(plan.stage("a")?.parameters["size"] == .integer(8))
        #expect(plan.stage("a")?.parameters["value"] == .integer(7))
        #expect(plan.stage("b")?.parameters["value"] == .integer(5))
        #expect(plan.stage("c")?.parameters["value"] == .integer(9))
    }

    @Test func dollarEscapesAndPartialInterpolation() throws {
        let loader = PipelineLoader(environment: ["USER": "ann"])
        let loaded = loader.load(bytes: Array("""
            params: {p: x}
            stages:
              a: {type: t, with: {s: "cost $$5 ${p}-${env.USER} $HOME"}}
            """.utf8), file: "t")
        #expect(loaded.diagnostics.isEmpty)
        let pair = loaded.document?.stage("a")?.parameters.first
        #expect(pair?.value.scalar == "cost $5 x-ann $HOME")
    }

    @Test func emptyEnvironmentVariableUsesTheDefault() throws {
        let plan = try planYAML("""
            stages:
              a: {type: constant, with: {value: "${env.EMPTY:-3}"}}
            """, environment: ["EMPTY": ""]).get()
        #expect(plan.stage("a")?.parameters["value"] == .integer(3))
    }

    @Test func unclosedInterpolation() {
        let found = diagnostics("stages:\n  a: {type: constant, with: {value: \"${size\"}}\n")
        #expect(found.first?.message == "'${' is never closed")
        #expect(found.first?.location == SourceLocation(file: "test.yaml", line: 2, column: 38))
    }
}

@Suite struct OverrideTests {
    let pipeline = """
        params: {size: 4}
        stages:
          a: {type: constant, with: {size: "${size}", value: 1}}
          b: {type: pass, input: a}
        """

    @Test func setOverridesParamsAndStageParameters() throws {
        let plan = try planYAML(pipeline, overrides: ["params.size=16", "stages.a.with.value=42", "stages.b.with.delay_ms=5"]).get()
        #expect(plan.stage("a")?.parameters["size"] == .integer(16))
        #expect(plan.stage("a")?.parameters["value"] == .integer(42))
        #expect(plan.stage("b")?.parameters["delay_ms"] == .integer(5))
    }

    @Test func setCanReplaceATypeAndAddStages() throws {
        let plan = try planYAML(pipeline, overrides: ["stages.c.type=pass", "stages.c.input=b"]).get()
        #expect(plan.stages.map(\.id) == ["a", "b", "c"])
    }

    @Test func setValueErrorsPointIntoTheArgument() {
        let found = diagnostics(pipeline, overrides: ["stages.a.with.value=lots"])
        #expect(found.first?.message == "parameter 'value' of stage 'a' (constant) must be an integer, got 'lots'")
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 21))
    }

    @Test func setWithoutEqualsOrWithABadRoot() {
        #expect(diagnostics(pipeline, overrides: ["params.size"]).first?.message == "--set expects KEY=VALUE, got 'params.size'")
        #expect(diagnostics(pipeline, overrides: ["size=3"]).first?.message
            == "--set key 'size' must start with 'params.', 'stages.' or be 'name'")
    }

    @Test func setAList() throws {
        let registry = try! testRegistry.adding([StageType(ListStage.self)])
        let plan = try planYAML("stages:\n  a: {type: list-stage, with: {bounds: [1, 2]}}\n", registry: registry,
                                overrides: ["stages.a.with.bounds=[3, 4.5]"]).get()
        #expect(plan.stage("a")?.parameters["bounds"] == .list([.number(3), .number(4.5)]))
    }
}

@Suite struct ProfileTests {
    let pipeline = """
        params: {value: 1}
        stages:
          a: {type: constant, with: {value: "${value}"}}
          b: {type: pass, input: a, retries: 2, with: {delay_ms: 1}}
        profiles:
          swap:
            stages:
              b: {type: watch}
          tune:
            params: {value: 9}
            stages:
              b: {with: {failures: 0}}
          drop:
            stages:
              b: null
        """

    @Test func profileReplacesAStageAndKeepsItsInput() throws {
        let plan = try planYAML(pipeline, profiles: ["swap"]).get()
        let b = try #require(plan.stage("b"))
        #expect(b.typeName == "watch")
        #expect(b.inputs == ["input": "a"])
        #expect(b.retry.count == 2)
        #expect(b.parameters.values.isEmpty)  // the old type's parameters are gone
    }

    @Test func profileMergesSameTypeAndParams() throws {
        let plan = try planYAML(pipeline, profiles: ["tune"]).get()
        #expect(plan.stage("a")?.parameters["value"] == .integer(9))
        #expect(plan.stage("b")?.parameters["delay_ms"] == .integer(1))
        #expect(plan.stage("b")?.parameters["failures"] == .integer(0))
    }

    @Test func profileRemovesAStage() throws {
        let plan = try planYAML(pipeline, profiles: ["drop"]).get()
        #expect(plan.stages.map(\.id) == ["a"])
    }

    @Test func setAppliesAfterProfiles() throws {
        let plan = try planYAML(pipeline, profiles: ["tune"], overrides: ["params.value=3"]).get()
        #expect(plan.stage("a")?.parameters["value"] == .integer(3))
    }

    @Test func unknownProfile() {
        let found = diagnostics(pipeline, profiles: ["swapp"])
        #expect(found.first?.message == "unknown profile 'swapp'")
        #expect(found.first?.location == nil)
        #expect(found.first?.help == "did you mean 'swap'?")
    }

    @Test func profileWithAnUnknownKey() {
        let found = diagnostics("stages:\n  a: {type: constant}\nprofiles:\n  p: {stagse: {}}\n")
        #expect(found.first?.message == "unknown key 'stagse' in profile 'p'")
        #expect(found.first?.location == SourceLocation(file: "test.yaml", line: 4, column: 7))
    }
}

struct ListStage: Stage {
    static let spec = StageSpec(
        name: "list-stage", summary: "Takes a list.",
        parameters: [ParameterSpec("bounds", .list(.number, count: 2), doc: "two numbers")],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try Grid<UInt8>(width: 1, height: 1, values: [0])
    }
}
