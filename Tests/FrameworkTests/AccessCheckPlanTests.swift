import Foundation
import Testing
@testable import Framework

/// A sink that needs a "token" parameter to be non-empty; its check reports the
/// target and the depth it was asked for.
struct GatedSink: Stage {
    static let spec = StageSpec(
        name: "gated",
        summary: "Needs a token from outside.",
        parameters: [
            ParameterSpec("target", .string, doc: "where it would write"),
            ParameterSpec("token", .string, default: .string(""), doc: "what the check needs"),
        ],
        inputs: [InputPort(accepts: .oneOf(.grid(.uint8)), doc: "anything")],
        output: .fixed(.grid(.uint8)))

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        try inputs.get(Grid<UInt8>.self, port: InputPort.defaultName)
    }

    static func checkAccess(parameters: Parameters, depth: AccessCheckDepth) async throws -> AccessReport {
        guard !parameters.string("token").isEmpty else {
            throw AccessProblem("no token for '\(parameters.string("target"))'", help: "set 'token'\nor TOKEN")
        }
        return AccessReport(facts: ["target": .string(parameters.string("target")), "depth": .string(depth.rawValue)])
    }
}

@Suite struct AccessCheckPlanTests {
    let registry = try! StageRegistry([StageType(ConstantSource.self), StageType(GatedSink.self)])

    func plan() throws -> Plan {
        try planYAML("""
            stages:
              source: {type: constant}
              good: {type: gated, input: source, with: {target: a, token: t}}
              bad: {type: gated, input: source, with: {target: b}}
              worse: {type: gated, input: source, with: {target: c}}
            """, registry: registry).get()
    }

    @Test func everyStageIsCheckedAndKeyedByItsID() async throws {
        let plan = try plan()
        let results = await plan.checkAccess(depth: .deep)
        #expect(Set(results.keys) == ["source", "good", "bad", "worse"])
        #expect(try results["source"]?.get() == .nothingToCheck)
        #expect(try results["good"]?.get().facts == ["target": .string("a"), "depth": .string("deep")])
        let failures = plan.failures(in: results)
        #expect(failures.map(\.stageID) == ["bad", "worse"])
        #expect(failures.first?.description == "stage 'bad' (gated) cannot run: no token for 'b'; set 'token' or TOKEN")
    }

    @Test func onlyTheChosenStagesAreChecked() async throws {
        let plan = try plan()
        let results = await plan.checkAccess(depth: .shallow, only: ["good"])
        #expect(Array(results.keys) == ["good"])
        #expect(try results["good"]?.get().facts["depth"] == .string("shallow"))
        #expect(plan.failures(in: results).isEmpty)
    }

    @Test func summaryListsTheFactsInNameOrder() {
        let report = AccessReport(facts: ["region": .string("eu-west-1"), "bucket": .string("b"), "listed": .boolean(true)])
        #expect(report.summary == "bucket=b, listed=true, region=eu-west-1")
    }
}
