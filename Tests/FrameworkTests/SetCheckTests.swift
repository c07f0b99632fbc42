import PipelineTesting
import Testing
@testable import Framework

/// `--set` arguments are checked against the file they change, and problems with
/// their values are reported at the argument.
@Suite struct SetCheckTests {
    let pipeline = """
        params: {size: 4, label: x}
        stages:
          source: {type: constant, with: {size: "${size}", value: 1}}
          encode: {type: pass, input: source}
        """

    @Test func anUndeclaredParamIsAnErrorAtTheArgument() {
        let found = diagnostics(pipeline, overrides: ["params.sise=16"])
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.message == "--set params.sise=16: the pipeline declares no param 'sise'")
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 8))
        #expect(found.first?.help == "did you mean 'size'?")
    }

    @Test func anUndeclaredParamWithNothingCloseListsTheDeclaredOnes() {
        let found = diagnostics(pipeline, overrides: ["params.quality=16"])
        #expect(found.first?.message == "--set params.quality=16: the pipeline declares no param 'quality'")
        #expect(found.first?.help == "declared params: 'label' and 'size'")
        let none = diagnostics("stages:\n  a: {type: constant}\n", overrides: ["params.size=2"])
        #expect(none.first?.help == "this pipeline has no 'params:'; declare it there first")
    }

    @Test func aParamTheFileUsesWithADefaultCanBeSet() throws {
        let text = "stages:\n  a: {type: constant, with: {value: \"${level:-3}\"}}\n"
        #expect(try planYAML(text).get().stage("a")?.parameters["value"] == .integer(3))
        #expect(try planYAML(text, overrides: ["params.level=9"]).get().stage("a")?.parameters["value"] == .integer(9))
    }

    @Test func aParamAProfileDeclaresCanBeSet() throws {
        let text = pipeline + "\nprofiles:\n  big: {params: {extra: 1}}\n"
        #expect(throws: Never.self) { try planYAML(text, profiles: ["big"], overrides: ["params.extra=2"]).get() }
        #expect(diagnostics(text, overrides: ["params.extra=2"]).first?.message == "--set params.extra=2: the pipeline declares no param 'extra'")
    }

    @Test func aMistypedStageIDGetsADidYouMeanAndNoKnockOnErrors() {
        let found = diagnostics(pipeline, overrides: ["stages.encdoe.with.delay_ms=5"])
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.message == "--set stages.encdoe.with.delay_ms=5: the pipeline has no stage 'encdoe'")
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 8))
        #expect(found.first?.help == "did you mean 'encode'?")
    }

    @Test func aNewStageNeedsATypeFromSomeSet() throws {
        // In either order, a `--set` that gives the new stage a type makes it a new stage.
        let plan = try planYAML(pipeline, overrides: ["stages.extra.input=encode", "stages.extra.type=pass"]).get()
        #expect(plan.stages.map(\.id) == ["source", "encode", "extra"])
        let found = diagnostics(pipeline, overrides: ["stages.zzz.input=encode"])
        #expect(found.map(\.message) == ["--set stages.zzz.input=encode: the pipeline has no stage 'zzz'"])
        #expect(found.first?.help == "stages: 'source' and 'encode'; to add a stage, give it a type too: --set stages.zzz.type=TYPE")
    }

    @Test func aStageIDLikeAStageTypeSuggestsThatStage() {
        // 'pas' is close to no stage id, but to the type of the stage 'encode'.
        let found = diagnostics("""
            stages:
              generate: {type: constant}
              encode: {type: pass, input: generate}
            """, overrides: ["stages.pas.with.delay_ms=90"])
        #expect(found.map(\.message) == ["--set stages.pas.with.delay_ms=90: the pipeline has no stage 'pas'"])
        #expect(found.first?.help == "did you mean 'encode'? (its type is 'pass')")
    }

    @Test func aBadValueIsBlamedOnTheArgumentNotOnTheFile() {
        let found = diagnostics(pipeline, overrides: ["params.size=abc"])
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.message == "--set params.size=abc: parameter 'size' of stage 'source' (constant) must be an integer, got 'abc'")
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 13))
        #expect(found.first?.help == "the file puts it into this parameter with ${size} at test.yaml:3:42")
    }

    @Test func aBadValueIsShownWithTheArgument() {
        guard case .failure(let error) = planYAML(pipeline, overrides: ["params.label=1", "params.size=0"]) else {
            Issue.record("planned a grid of size 0")
            return
        }
        #expect(error.description == """
            --set[2]:1:13: error: --set params.size=0: parameter 'size' of stage 'source' (constant) must be >= 1, got 0
              |
            1 | params.size=0
              |             ^
              help: the file puts it into this parameter with ${size} at test.yaml:3:42
            """)
    }

    @Test func aParamMadeFromASetParamIsBlamedOnTheArgument() {
        let found = diagnostics("""
            params: {size: 4, side: "${size}"}
            stages:
              source: {type: constant, with: {size: "${side}"}}
            """, overrides: ["params.size=-2"])
        #expect(found.map(\.message) == ["--set params.size=-2: parameter 'size' of stage 'source' (constant) must be >= 1, got -2"])
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 13))
    }

    @Test func aValueThatIsNotFromTheCommandLineStaysInTheFile() {
        // `--set params.label` is fine; the bad value is the file's own.
        let found = diagnostics("""
            params: {size: big, label: x}
            stages:
              source: {type: constant, with: {size: "${size}"}}
            """, overrides: ["params.label=y"])
        #expect(found.first?.location == SourceLocation(file: "test.yaml", line: 3, column: 41))
        #expect(found.first?.help == "'big' comes from ${size}")
    }

    @Test func aPathProblemFromASetParamIsBlamedOnTheArgument() {
        let registry = try! testRegistry.adding([StageType(PathStage.self)])
        let text = "params: {name: ok}\nstages:\n  a: {type: path-stage, with: {path: \"out/${name}/x\"}}\n"
        let loader = PipelineLoader(environment: [:], overrides: ["params.name=../up"])
        guard case .failure(let error) = Planner(registry: registry).plan(loader.load(bytes: Array(text.utf8), file: "test.yaml")) else {
            Issue.record("accepted '../up' in a path")
            return
        }
        #expect(error.diagnostics.first?.message.hasPrefix("--set params.name=../up: parameter 'path' of stage 'a' (path-stage) gets '../up'") == true)
        #expect(error.diagnostics.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 13))
    }

    @Test func aTemplateProblemInTheFilesOwnTextStaysInTheFile() {
        let registry = try! testRegistry.adding([StageType(PathStage.self)])
        func first(_ path: String, _ overrides: [String]) -> Diagnostic? {
            let text = "params: {name: ok}\nstages:\n  a: {type: path-stage, with: {path: \"\(path)\"}}\n"
            let loader = PipelineLoader(environment: [:], overrides: overrides)
            guard case .failure(let error) = Planner(registry: registry).plan(loader.load(bytes: Array(text.utf8), file: "test.yaml")) else {
                return nil
            }
            return error.diagnostics.first
        }
        // The unknown placeholder is the file's; the argument only gave 'name'.
        let own = first("out/{runid}/${name}.jpg", ["params.name=fine"])
        #expect(own?.message == "parameter 'path' of stage 'a' (path-stage) uses unknown placeholder '{runid}'")
        #expect(own?.location?.file == "test.yaml")
        // The unknown placeholder came in with the argument's value.
        let given = first("out/${name}.jpg", ["params.name={nope}"])
        #expect(given?.message == "--set params.name={nope}: parameter 'path' of stage 'a' (path-stage) uses unknown placeholder '{nope}'")
        #expect(given?.location == SourceLocation(file: "--set[1]", line: 1, column: 13))
    }

    @Test func aKeyBelowAScalarIsAnErrorAtThatKey() {
        let found = diagnostics(pipeline, overrides: ["stages.source.type.name=x"])
        #expect(found.map(\.message) == ["--set stages.source.type.name=x: 'name' is below a value that is a scalar, not a mapping"])
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 20))
    }

    @Test func aLongArgumentIsShortenedAndControlCharactersEscaped() {
        let long = "params.sise=" + String(repeating: "9", count: 200)
        let message = diagnostics(pipeline, overrides: [long]).first?.message ?? ""
        #expect(message.hasPrefix("--set params.sise=999"))
        #expect(message.count < 140)
        let control = diagnostics(pipeline, overrides: ["params.s\u{1B}ze=1"]).first?.message ?? ""
        #expect(!control.contains("\u{1B}"))
        #expect(control.contains("\\u{1B}"))
    }
}

/// Positions inside list values point at the item, in the file and in `--set`.
@Suite struct ListPositionTests {
    let registry = try! testRegistry.adding([StageType(ListStage.self)])

    func problems(_ marked: String, overrides: [String] = []) -> (found: [Diagnostic], expected: [Framework.SourceLocation]) {
        let source = Marked(marked)
        let loader = PipelineLoader(environment: [:], overrides: overrides)
        guard case .failure(let error) = Planner(registry: registry).plan(loader.load(bytes: Array(source.text.utf8), file: "test.yaml")) else {
            return ([], source.locations)
        }
        return (error.diagnostics, source.locations)
    }

    @Test func aBadItemInAFlowListInTheFile() {
        let (found, expected) = problems("stages:\n  a: {type: list-stage, with: {bounds: [1,   ‸x]}}\n")
        #expect(found.first?.message == "parameter 'bounds' of stage 'a' (list-stage) must be a number, got 'x'")
        #expect(found.first?.location == expected.first)
    }

    @Test func aBadItemInABlockListInTheFile() {
        let (found, expected) = problems("""
            stages:
              a:
                type: list-stage
                with:
                  bounds:
                    - 1
                    -   ‸"two"
            """)
        #expect(found.first?.message == "parameter 'bounds' of stage 'a' (list-stage) must be a number, got 'two'")
        #expect(found.first?.location == expected.first)
    }

    @Test func aBadItemMadeByAParamNamesTheParam() {
        let (found, expected) = problems("params: {low: x}\nstages:\n  a: {type: list-stage, with: {bounds: [‸\"${low}\", 2]}}\n")
        #expect(found.first?.location == expected.first)
        #expect(found.first?.help == "'x' comes from ${low}")
    }

    @Test func aBadItemInASetList() {
        let (found, _) = problems("stages:\n  a: {type: list-stage, with: {bounds: [1, 2]}}\n", overrides: ["stages.a.with.bounds=[3,  x]"])
        #expect(found.first?.message == "parameter 'bounds' of stage 'a' (list-stage) must be a number, got 'x'")
        // "stages.a.with.bounds=" is 21 characters; the item is 6 further.
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 1, column: 27))
    }

    @Test func aBadItemOnTheSecondLineOfASetList() {
        let (found, _) = problems("stages:\n  a: {type: list-stage, with: {bounds: [1, 2]}}\n", overrides: ["stages.a.with.bounds=[3,\n x]"])
        #expect(found.first?.location == SourceLocation(file: "--set[1]", line: 2, column: 2))
    }

    @Test func aSyntaxErrorInASetListOnItsSecondLine() {
        let (found, _) = problems("stages:\n  a: {type: list-stage, with: {bounds: [1, 2]}}\n", overrides: ["stages.a.with.bounds=[3,\n ]]"])
        #expect(found.first?.message.hasPrefix("invalid YAML") == true)
        #expect(found.first?.location?.line == 2)
        #expect(found.first?.location?.column == 3)
    }
}
