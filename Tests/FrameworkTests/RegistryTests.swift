import Testing
@testable import Framework

@Suite struct RegistryTests {
    @Test func listsAndLooksUpTypes() throws {
        #expect(testRegistry.names == ["add", "constant", "fail", "pass", "probe", "watch"])
        #expect(testRegistry["add"]?.spec.inputs.map(\.name) == ["left", "right"])
        #expect(testRegistry["nope"] == nil)
    }

    @Test func addingKeepsTheOriginal() throws {
        let bigger = try testRegistry.adding([StageType(FloatSink.self)])
        #expect(bigger.names.contains("float-sink"))
        #expect(!testRegistry.names.contains("float-sink"))
    }

    @Test func rejectsDuplicates() {
        #expect(throws: RegistrationError.self) {
            try StageRegistry([StageType(ConstantSource.self), StageType(ConstantSource.self)])
        }
        do {
            _ = try testRegistry.adding([StageType(ConstantSource.self)])
            Issue.record("registered 'constant' twice")
        } catch {
            #expect(error.problems == ["stage type 'constant' is registered twice"])
        }
    }

    @Test func rejectsBadNamesMissingDocsAndBadDefaults() {
        do {
            _ = try StageRegistry([StageType(BadlyDescribed.self)])
            Issue.record("registered a badly described stage")
        } catch {
            #expect(error.problems == [
                "stage type 'Bad Name': name must be snake_case or kebab-case (lower-case letters, digits, '_' or '-')",
                "stage type 'Bad Name': summary is missing",
                "stage type 'Bad Name': parameter 'level' has no doc",
                "stage type 'Bad Name': default of parameter 'level' must be 1...10, got 50",
                "stage type 'Bad Name': parameter 'level' is declared twice",
                "stage type 'Bad Name': input port 'input' has no doc",
            ])
        }
    }

    @Test func outputTypeCanDependOnParameters() throws {
        // `widen` (TestsThatCanFailTests.swift) produces a grid whose element type is its `bits`.
        func resolved(_ bits: Int) throws -> ArtifactType {
            try Widen.spec.output.resolve(OutputContext(parameters: Parameters(["bits": .integer(bits)]), inputTypes: ["input": .grid(.uint8)]))
        }
        #expect(try resolved(8) == .grid(.uint8))
        #expect(try resolved(16) == .grid(.uint16))
        #expect(try resolved(32) == .grid(.uint32))
        #expect(throws: ParameterError.self) { try resolved(12) }
    }
}

struct BadlyDescribed: Stage {
    static let spec = StageSpec(
        name: "Bad Name", summary: " ",
        parameters: [
            ParameterSpec("level", .integer, default: .integer(50), range: .closed(1, 10), doc: ""),
            ParameterSpec("level", .integer, doc: "again"),
        ],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "")],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try Grid<UInt8>(width: 1, height: 1, values: [0])
    }
}

@Suite struct NameTests {
    @Test func typeNames() {
        for good in ["jpeg", "s3", "float-sink", "my_stage2", "a-b_c"] { #expect(Names.isTypeName(good), "\(good)") }
        for bad in ["", "Jpeg", "2d", "a--b", "a_", "-a", "a b", "é"] { #expect(!Names.isTypeName(bad), "\(bad)") }
    }

    @Test func identifiersAndPipelineIDs() {
        #expect(Names.isIdentifier("bit_depth") && !Names.isIdentifier("bitDepth") && !Names.isIdentifier("_x"))
        #expect(Names.isPipelineID("Store_2-b") && Names.isPipelineID("_x") && !Names.isPipelineID("2x") && !Names.isPipelineID("a.b"))
    }
}
