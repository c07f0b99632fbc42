import Foundation
import Framework
import Logging

/// The stage under check, planned by the real `Planner` in a two-stage pipeline: one
/// `SampleInputStage` per input port, connected to the checked stage. So parameters
/// are checked and defaulted, the instance made and the output type resolved by the
/// code path `runner` uses, not by a copy of it.
struct ConformanceSubject {
    static let stageID = "checked"

    let plan: Plan
    let stage: PlannedStage
    let yaml: String

    init(type: StageType, parameters: String, inputs: [String: any Artifact], environment: [String: String]) throws {
        let registry: StageRegistry
        do {
            registry = try StageRegistry([type, StageType(SampleInputStage.self)])
        } catch {
            throw StageConformance.SetupError("stage type '\(type.name)' cannot be registered: \(error)")
        }
        yaml = Self.pipeline(type: type.name, parameters: parameters, inputs: inputs)
        let loader = PipelineLoader(environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new })
        switch Planner(registry: registry).plan(loader.load(bytes: Array(yaml.utf8), file: "conformance.yaml")) {
        case .failure(let error):
            throw StageConformance.SetupError("""
                the planner refuses stage type '\(type.name)' with these parameters and inputs (a mistake in the check, \
                not a conformance failure):
                \(error.description)
                """)
        case .success(let plan):
            guard let stage = plan.stage(Self.stageID) else {
                throw StageConformance.SetupError("the conformance pipeline for '\(type.name)' has no stage '\(Self.stageID)'")
            }
            self.plan = plan
            self.stage = stage
        }
    }

    /// The pipeline: a sample stage per port, then the checked stage with `parameters`
    /// (a YAML mapping, flow or block) under `with:`.
    static func pipeline(type: String, parameters: String, inputs: [String: any Artifact]) -> String {
        var lines = ["stages:"]
        let ports = inputs.keys.sorted()
        for port in ports {
            let artifactType = inputs[port]!.artifactType
            let traits = artifactType.traits.map(\.name).sorted().map(quoted).joined(separator: ", ")
            lines.append("  sample_\(port): {type: conformance-sample, with: {artifact_type: \(quoted(artifactType.name)), traits: [\(traits)]}}")
        }
        lines.append("  \(stageID):")
        lines.append("    type: \(quoted(type))")
        if !ports.isEmpty {
            lines.append("    inputs: {" + ports.map { "\($0): sample_\($0)" }.joined(separator: ", ") + "}")
        }
        // The mapping's lines, without their common indentation, indented under `with:`.
        let body = parameters.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.allSatisfy(\.isWhitespace) }
        if !body.isEmpty {
            lines.append("    with:")
            let indent = body.map { $0.prefix { $0 == " " }.count }.min() ?? 0
            lines += body.map { "      " + $0.dropFirst(indent) }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML double-quoted scalar.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f: result += String(format: "\\x%02x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    /// The context of one run, as the executor would make it: the seed it would
    /// derive (or the stage's own `seed`), and the template values of a run `runID`.
    func context(runID: String, seed: UInt64, concurrency: Int, temporaryDirectory: String? = nil) -> StageContext {
        let options = RunOptions(runID: runID, seed: seed, jobs: concurrency)
        var values = plan.params
        values["run_id"] = runID
        values["date"] = UTCDate(options.startDate).dateString
        values["stage"] = stage.id
        return StageContext(
            stageID: stage.id, stageType: stage.typeName, runID: runID,
            seed: Executor(plan: plan, options: options).seed(for: stage), attempt: 1, concurrency: options.jobs,
            logger: Logger(label: "stage-conformance", factory: { _ in SwiftLogNoOpLogHandler() }), templateValues: values,
            temporaryDirectory: temporaryDirectory ?? StageContext.defaultTemporaryDirectory)
    }
}
