import PipelineTesting
import Testing
@testable import Framework

/// One test per kind of problem the check phase reports, each asserting the message
/// and the exact line and column (marked with ‸ in the source).
@Suite struct PlannerErrorTests {
    func expectProblem(
        _ marked: String, _ fragment: String, help: String? = nil, profiles: [String] = [], overrides: [String] = [],
        sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        PipelineHarness(registry: testRegistry).expectProblem(marked, fragment, help: help, profiles: profiles, overrides: overrides,
                                                             sourceLocation: sourceLocation)
    }

    @Test func malformedYAML() {
        expectProblem("""
            stages:
              a: {type: constant
              b‸: 1
            """, "invalid YAML: did not find expected ',' or '}'", help: "while parsing a flow mapping at line 2, column 6")
    }

    @Test func duplicateKey() {
        expectProblem("""
            stages:
              a:
                type: constant
                ‸type: pass
            """, "duplicate key 'type' (first defined at line 3, column 5)")
    }

    @Test func repeatedStageIDIsAnErrorNotACrash() {
        expectProblem("""
            stages:
              g: {type: constant}
              ‸g: {type: constant, with: {value: 2}}
              p: {type: pass, input: g}
            """, "duplicate key 'g' (first defined at line 2, column 3)")
    }

    @Test func tabsGetAHint() {
        expectProblem("stages:\n‸\ta: {type: constant}\n", "invalid YAML", help: "YAML does not allow tab characters for indentation")
    }

    @Test func unknownTopLevelKey() {
        expectProblem("""
            stages:
              a: {type: constant}
            ‸stagez: {}
            """, "unknown key 'stagez' at the top level", help: "did you mean 'stages'?")
    }

    @Test func unknownStageKey() {
        expectProblem("""
            stages:
              a: {type: constant, ‸wiht: {value: 3}}
            """, "unknown key 'wiht' in stage 'a'", help: "did you mean 'with'?")
    }

    @Test func unknownStageType() {
        expectProblem("""
            stages:
              a:
                type: ‸constnt
            """, "unknown stage type 'constnt'", help: "did you mean 'constant'?")
    }

    @Test func missingRequiredParameter() {
        let registry = try! testRegistry.adding([StageType(NeedsValue.self)])
        let source = Marked("""
            stages:
              a:
                type: needs
                ‸with: {other: 1}
            """)
        let result = Planner(registry: registry).plan(PipelineLoader(environment: [:]).load(bytes: Array(source.text.utf8), file: "test.yaml"))
        guard case .failure(let error) = result else {
            Issue.record("planned a stage without its required parameter")
            return
        }
        let match = error.diagnostics.first { $0.message == "stage 'a' (needs) is missing required parameter 'value'" }
        #expect(match?.location == source.locations[0])
        #expect(match?.help?.contains("add 'value: <integer>' under 'with:'") == true)
    }

    @Test func unknownParameter() {
        expectProblem("""
            stages:
              a: {type: constant, with: {‸valeu: 3}}
            """, "unknown parameter 'valeu' for stage 'a' (constant)", help: "did you mean 'value'?")
    }

    @Test func mistypedParameter() {
        expectProblem("""
            stages:
              a:
                type: constant
                with:
                  value: ‸three
            """, "parameter 'value' of stage 'a' (constant) must be an integer, got 'three'")
    }

    @Test func outOfRangeParameter() {
        expectProblem("""
            stages:
              a: {type: constant, with: {value: ‸300}}
            """, "parameter 'value' of stage 'a' (constant) must be 0...255, got 300")
    }

    @Test func inputNamingNoStage() {
        expectProblem("""
            stages:
              source: {type: constant}
              b:
                type: pass
                input: ‸sorce
            """, "stage 'b' (pass) takes input from 'sorce', which is not a stage of this pipeline", help: "did you mean 'source'?")
    }

    @Test func unknownInputPort() {
        expectProblem("""
            stages:
              x: {type: constant}
              sum:
                type: add
                inputs: {left: x, ‸rigth: x}
            """, "stage 'sum' (add) has no input port 'rigth'", help: "did you mean 'right'?")
    }

    @Test func unconnectedPort() {
        expectProblem("""
            stages:
              x: {type: constant}
              ‸sum:
                type: add
                inputs: {left: x}
            """, "stage 'sum' (add) needs an input on port 'right'")
    }

    @Test func cycleIsPrintedAsAPath() {
        expectProblem("""
            stages:
              source: {type: constant}
              a: {type: pass, input: ‸c}
              b: {type: pass, input: a}
              c: {type: pass, input: b}
            """, "dependency cycle: a -> b -> c -> a")
    }

    @Test func selfCycle() {
        expectProblem("""
            stages:
              a: {type: pass, input: ‸a}
            """, "dependency cycle: a -> a")
    }

    @Test func typeMismatchNamesBothTypes() {
        let registry = try! testRegistry.adding([StageType(FloatSink.self)])
        let source = Marked("""
            stages:
              a: {type: constant}
              b:
                type: float-sink
                input: ‸a
            """)
        let result = Planner(registry: registry).plan(PipelineLoader(environment: [:]).load(bytes: Array(source.text.utf8), file: "test.yaml"))
        guard case .failure(let error) = result else {
            Issue.record("planned an edge with the wrong type")
            return
        }
        #expect(error.diagnostics.count == 1)
        #expect(error.diagnostics.first?.message == "stage 'b' (float-sink) accepts Grid<Float32>, but 'a' (constant) produces Grid<UInt8>")
        #expect(error.diagnostics.first?.location == source.locations[0])
    }

    @Test func undefinedParam() {
        expectProblem("""
            params: {size: 4}
            stages:
              a: {type: constant, with: {size: "‸${sise}"}}
            """, "undefined parameter '${sise}'", help: "did you mean 'size'?")
    }

    @Test func undefinedEnvironmentVariable() {
        expectProblem("""
            stages:
              a: {type: constant, with: {size: 4, value: "‸${env.VALUE_FOR_TEST}"}}
            """, "environment variable 'VALUE_FOR_TEST' is not set", help: "${env.VALUE_FOR_TEST:-value}")
    }

    @Test func unresolvedValueIsReportedOnce() {
        let found = diagnostics("""
            stages:
              a: {type: constant, with: {size: "${nope}"}}
            """)
        #expect(found.count == 1)
        #expect(found.first?.message == "undefined parameter '${nope}'")
    }

    @Test(arguments: ["run_id", "stage", "date", "width"])
    func aRunTimeNameInDollarBracesPointsToTheRunTimePlaceholder(name: String) {
        let registry = try! testRegistry.adding([StageType(PathStage.self)])
        let source = Marked("stages:\n  a: {type: path-stage, with: {path: \"out/‸${\(name)}/x.jpg\"}}\n")
        let loaded = PipelineLoader(environment: [:]).load(bytes: Array(source.text.utf8), file: "test.yaml")
        guard case .failure(let error) = Planner(registry: registry).plan(loaded) else {
            Issue.record("planned an undefined ${\(name)}")
            return
        }
        #expect(error.diagnostics.count == 1)
        #expect(error.diagnostics.first?.message == "undefined parameter '${\(name)}'")
        #expect(error.diagnostics.first?.location == source.locations.first)
        #expect(error.diagnostics.first?.help
            == "'\(name)' is known only when the run starts: write the run-time placeholder {\(name)}, without '$'")
    }

    @Test func aWithIndentedAsAStageIDIsOneErrorWithAnIndentationHint() {
        let registry = try! testRegistry.adding([StageType(NeedsValue.self)])
        let source = Marked("""
            stages:
              a:
                type: needs
              ‸with: {value: 3}
              b: {type: pass, input: a}
            """)
        let result = Planner(registry: registry).plan(PipelineLoader(environment: [:]).load(bytes: Array(source.text.utf8), file: "test.yaml"))
        guard case .failure(let error) = result else {
            Issue.record("planned a stage called 'with'")
            return
        }
        #expect(error.diagnostics.map(\.message) == ["'with' is indented as a stage id, so it reads as a stage called 'with'"])
        #expect(error.diagnostics.first?.location == source.locations.first)
        #expect(error.diagnostics.first?.help == "indent 'with:' under stage 'a', as far as that stage's other keys")
    }

    @Test func anInputIndentedAsAStageIDIsOneError() {
        let found = diagnostics("""
            stages:
              a: {type: constant}
              b:
                type: pass
              input: a
            """)
        #expect(found.map(\.message) == ["'input' is indented as a stage id, so it reads as a stage called 'input'"])
        #expect(found.first?.location == SourceLocation(file: "test.yaml", line: 5, column: 3))
    }

    @Test func aStageWhoseKeysAreAllOneLevelTooFarLeftGetsOneErrorPerKeyAndNoMore() {
        let found = diagnostics("""
            stages:
              a:
              type: constant
              with: {value: 3}
              b: {type: pass, input: a}
            """)
        #expect(found.map(\.message) == ["'type' is indented as a stage id, so it reads as a stage called 'type'",
                                         "'with' is indented as a stage id, so it reads as a stage called 'with'"])
        #expect(found.first?.help == "indent 'type:' under stage 'a', as far as that stage's other keys")
    }

    @Test func aStageMayStillBeCalledLikeAKeyWhenItIsAStage() throws {
        let plan = try planYAML("stages:\n  input: {type: constant}\n  after: {type: pass, input: input}\n").get()
        #expect(plan.stages.map(\.id) == ["input", "after"])
    }

    @Test func aMistypedInputIsOneErrorNotTwo() {
        expectProblem("""
            stages:
              g: {type: constant}
              p:
                type: pass
                ‸inptu: g
            """, "unknown key 'inptu' in stage 'p'", help: "did you mean 'input'?")
        let found = diagnostics("stages:\n  g: {type: constant}\n  p:\n    type: pass\n    inptu: g\n")
        #expect(found.map(\.message) == ["unknown key 'inptu' in stage 'p'"])
    }

    @Test func aMistypedTypeOrWithIsOneError() {
        #expect(diagnostics("stages:\n  a: {tpye: constant}\n").map(\.message) == ["unknown key 'tpye' in stage 'a'"])
        let registry = try! testRegistry.adding([StageType(NeedsValue.self)])
        let result = Planner(registry: registry).plan(PipelineLoader(environment: [:]).load(
            bytes: Array("stages:\n  a: {type: needs, wiht: {value: 3}}\n".utf8), file: "test.yaml"))
        guard case .failure(let error) = result else {
            Issue.record("planned a stage without its required parameter")
            return
        }
        #expect(error.diagnostics.map(\.message) == ["unknown key 'wiht' in stage 'a'"])
    }

    @Test func anUnknownKeyLikeNoStageKeyKeepsTheMissingInputError() {
        // 'colour' is not a likely 'input', so the missing input is news.
        let found = diagnostics("stages:\n  g: {type: constant}\n  p: {type: pass, colour: g}\n")
        #expect(found.map(\.message) == ["stage 'p' (pass) needs an input on port 'input'", "unknown key 'colour' in stage 'p'"])
    }

    @Test func paramPutIntoAPathMustStayOneComponent() {
        let registry = try! testRegistry.adding([StageType(PathStage.self)])
        for bad in ["../up", "a/b", ".."] {
            let source = Marked("""
                params: {name: "\(bad)"}
                stages:
                  a: {type: path-stage, with: {path: "out/‸${name}/x.jpg"}}
                """)
            let result = Planner(registry: registry).plan(PipelineLoader(environment: [:]).load(bytes: Array(source.text.utf8), file: "test.yaml"))
            guard case .failure(let error) = result else {
                Issue.record("accepted '\(bad)' in a path")
                continue
            }
            #expect(error.diagnostics.first?.message.hasPrefix("parameter 'path' of stage 'a' (path-stage) gets '\(bad)' from '${name}', which") == true)
            #expect(error.diagnostics.first?.location == source.locations[0])
        }
        let fine = Planner(registry: registry).plan(PipelineLoader(environment: ["DIR": "/data/out"]).load(
            bytes: Array("params: {name: ok}\nstages:\n  a: {type: path-stage, with: {path: \"${env.DIR}/${name}/x\"}}\n".utf8), file: "t"))
        #expect(fine.value?.stage("a")?.parameters["path"] == .string("/data/out/ok/x"))
    }

    @Test func stageWithoutType() {
        expectProblem("""
            stages:
              ‸a: {with: {value: 1}}
            """, "stage 'a' has no 'type'")
    }

    @Test func inputToASource() {
        expectProblem("""
            stages:
              a: {type: constant}
              b: {type: constant, input: ‸a}
            """, "stage 'b' (constant) takes no input")
    }

    @Test func afterNamingNoStage() {
        expectProblem("""
            stages:
              a: {type: constant, after: [‸nothing]}
            """, "stage 'a' (constant) runs after 'nothing', which is not a stage of this pipeline")
    }

    @Test func badTimeoutAndRetries() {
        expectProblem("""
            stages:
              a: {type: constant, timeout: ‸soon}
            """, "stage 'a': timeout must be a positive duration like 30s, 500ms or 5m, got 'soon'")
        expectProblem("""
            stages:
              a: {type: constant, retries: ‸-1}
            """, "stage 'a': retries must be a count from 0 to 100, got '-1'")
    }

    @Test func parameterErrorFromStageInit() {
        let registry = try! testRegistry.adding([StageType(NeedsValue.self)])
        let source = Marked("""
            stages:
              a: {type: needs, with: {value: 5, other: ‸4}}
            """)
        let result = Planner(registry: registry).plan(PipelineLoader(environment: [:]).load(bytes: Array(source.text.utf8), file: "test.yaml"))
        guard case .failure(let error) = result else {
            Issue.record("planned a stage whose init refused its parameters")
            return
        }
        #expect(error.diagnostics.first?.message == "parameter 'other' of stage 'a' (needs) must be greater than 'value' (5)")
        #expect(error.diagnostics.first?.location == source.locations[0])
    }

    @Test func everyProblemIsReportedAtOnce() {
        let found = diagnostics("""
            stages:
              a: {type: constnt}
              b: {type: constant, with: {value: 999}}
              c: {type: pass, input: zz}
            extra: 1
            """)
        #expect(found.count == 4)
        // In file order.
        #expect(found.map { $0.location?.line ?? 0 } == [2, 3, 4, 5])
    }

    @Test func renderedDiagnosticShowsLineAndCaret() {
        guard case .failure(let error) = planYAML("stages:\n  a: {type: constant, with: {value: 300}}\n") else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.description == """
            test.yaml:2:37: error: parameter 'value' of stage 'a' (constant) must be 0...255, got 300
              |
            2 |   a: {type: constant, with: {value: 300}}
              |                                     ^
            """)
    }
}

/// A stage with a required parameter and a cross-parameter check in `init`.
struct NeedsValue: Stage {
    static let spec = StageSpec(
        name: "needs", summary: "Needs a value.",
        parameters: [
            ParameterSpec("value", .integer, doc: "required value"),
            ParameterSpec("other", .integer, default: .integer(100), doc: "must exceed value"),
        ],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {
        if parameters.int("other") <= parameters.int("value") {
            throw ParameterError("other", "must be greater than 'value' (\(parameters.int("value")))")
        }
    }

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try Grid<UInt8>(width: 1, height: 1, values: [0])
    }
}

/// A sink that only accepts Grid<Float32>.
struct FloatSink: Stage {
    static let spec = StageSpec(
        name: "float-sink", summary: "Accepts only Float32 grids.",
        inputs: [InputPort(accepts: .oneOf(.grid(.float32)), doc: "a float grid")],
        output: .fixed(.grid(.float32)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try inputs.get(Grid<Float>.self)
    }
}

/// A stage with a path template parameter.
struct PathStage: Stage {
    static let spec = StageSpec(
        name: "path-stage", summary: "Has a path.",
        parameters: [ParameterSpec("path", .template, doc: "a path")],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try Grid<UInt8>(width: 1, height: 1, values: [0])
    }
}
