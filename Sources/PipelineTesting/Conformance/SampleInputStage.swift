import Framework

/// The producer of one sample input in the pipeline `StageConformance` plans: a
/// source stage whose output type is the sample's, given by its parameters, so that
/// the planner checks the edge and resolves the checked stage's output type exactly
/// as it does in a real pipeline. It is never run: the kit hands the sample to the
/// checked stage itself.
struct SampleInputStage: Stage {
    static let spec = StageSpec(
        name: "conformance-sample",
        summary: "A sample input of a stage conformance check (never run).",
        parameters: [
            ParameterSpec("artifact_type", .string, doc: "the sample's artifact type name"),
            ParameterSpec("traits", .list(.string), default: .list([]), doc: "the traits of the sample's artifact type"),
        ],
        output: .computed([ArtifactType(name: "the sample's type")], description: "the sample's type") { context in
            SampleInputStage.type(context.parameters)
        })

    static func type(_ parameters: Parameters) -> ArtifactType {
        var traits: Set<ArtifactTrait> = []
        if case .list(let items)? = parameters["traits"] {
            traits = Set(items.map { ArtifactTrait($0.description) })
        }
        return ArtifactType(name: parameters.string("artifact_type"), traits: traits)
    }

    init(parameters: Parameters) throws {}

    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        throw StageFailure("a conformance sample is handed to the checked stage directly; it is never run", retryable: false)
    }
}
