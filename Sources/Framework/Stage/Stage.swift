/// A unit of work in a pipeline: takes typed artifacts on its input ports, returns
/// one artifact.
///
/// A stage type is registered once (`StageType(MyStage.self)`) and described by its
/// static `spec`, which the registry lists and the planner checks pipelines against
/// without creating an instance. The planner creates one instance per pipeline stage
/// with the checked parameters, before anything runs, so an `init` that throws is
/// reported like any other pipeline error.
///
/// ## Implementation requirements
///
/// - `spec` is a constant: name (snake_case or kebab-case), a one-line summary, a doc
///   string for every parameter and port, and an output type that is fully
///   determined by the parameters and input types.
/// - `init(parameters:)` does no I/O and no heavy work; it only checks what the
///   schema cannot express (relations between parameters) and throws
///   `ParameterError` naming the parameter at fault.
/// - `run` returns an artifact whose `artifactType` equals the type `spec.output`
///   resolved to; the executor checks this.
/// - `run` honours cancellation: long loops call `try context.checkCancellation()`
///   (a run is cancelled when another stage fails, on a timeout, or on SIGINT).
/// - `run` leaves nothing half-written: a stage that writes outside the process does
///   so atomically and removes its temporary files when it fails or is cancelled.
/// - `run` may be called again after a failure (retries) and concurrently on
///   different instances; it must not keep mutable state between calls.
/// - Artifacts are immutable once returned; inputs must not be modified.
/// - `spec.version` goes up whenever `run` gives a different output for the same
///   inputs, parameters and seed, so that outputs stored by the older code are not
///   reused (`--resume`).
/// - A stage whose output stands for a side effect (a sink's `StoredObject`)
///   implements `verifyStored(_:parameters:)`, so that a resumed run does not reuse
///   it when the file or object it names is gone or changed.
/// - A stage that needs something outside the process (credentials, an endpoint, a
///   bucket, a writable directory) implements `checkAccess(parameters:depth:)`, so
///   that a run that cannot finish fails before any stage has done its work.
public protocol Stage: Sendable {
    /// The static description of this stage type.
    static var spec: StageSpec { get }

    /// Creates an instance from checked parameters (defaults applied).
    init(parameters: Parameters) throws

    /// Runs the stage once.
    func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact

    /// Checks, before a resumed run reuses `output` (read back from the artifact
    /// store), that what it stands for outside the store still holds: for a sink, that
    /// the file or object it wrote is still there with the same bytes.
    ///
    /// The default has nothing to verify: a stage whose output is all in the artifact
    /// store (which checks its size and SHA-256 itself) needs no more. It is called
    /// once per reused stage and may do I/O, blocking I/O through `Blocking.run` (as
    /// the `filesystem` and `s3` sinks do); it throws when it cannot find out, which
    /// also makes the stage run again.
    ///
    /// - Parameters:
    ///   - output: The stored output the run would reuse.
    ///   - parameters: The stage's checked parameters (e.g. an endpoint to ask).
    static func verifyStored(_ output: any Artifact, parameters: Parameters) async throws -> StoredOutputCheck

    /// Checks, before a run starts, that what the stage will need outside the process
    /// is there: credentials, an endpoint, a bucket, a directory it can write.
    ///
    /// `runner run` calls it with `.shallow` for every stage after planning and before
    /// the first stage starts, so that a missing credential fails the run in a second
    /// rather than after the compute; `runner validate --check-access` calls it with
    /// `.deep`. The default has nothing to check. It must not need run-time templates
    /// (`{run_id}` and the like have no value yet), must not change anything outside
    /// the process, and returns facts for the run report (an endpoint, a region), never
    /// secrets. It throws an error whose description says what is missing and how to
    /// provide it; the caller names the stage.
    ///
    /// - Parameters:
    ///   - parameters: The stage's checked parameters (defaults applied).
    ///   - depth: `.shallow` resolves what needs no network; `.deep` may also make one
    ///     cheap request proving that the credentials work and the target exists.
    static func checkAccess(parameters: Parameters, depth: AccessCheckDepth) async throws -> AccessReport

    /// What `checkAccess(parameters:depth:)` depends on, as a key: parameters with the
    /// same key are checked once (a sweep's items that write different keys of one
    /// bucket). nil, the default, when every parameter may matter.
    static func accessTarget(parameters: Parameters) -> String?
}

extension Stage {
    public static func verifyStored(_ output: any Artifact, parameters: Parameters) async throws -> StoredOutputCheck {
        .nothingToVerify
    }

    public static func checkAccess(parameters: Parameters, depth: AccessCheckDepth) async throws -> AccessReport {
        .nothingToCheck
    }

    public static func accessTarget(parameters: Parameters) -> String? { nil }
}

/// What `Stage.verifyStored(_:parameters:)` found.
public enum StoredOutputCheck: Sendable, Hashable {
    /// The output has no side effect to check; the store's own checks suffice.
    case nothingToVerify
    /// The side effect is there as recorded (e.g. the file has the recorded SHA-256).
    case verified
    /// The side effect is gone or changed; the reason says how, for the log.
    case changed(String)
}

/// A registered stage type: its spec and a way to build instances.
public struct StageType: Sendable {
    public let spec: StageSpec
    let make: @Sendable (Parameters) throws -> any Stage
    let verify: @Sendable (any Artifact, Parameters) async throws -> StoredOutputCheck
    let access: @Sendable (Parameters, AccessCheckDepth) async throws -> AccessReport
    let target: @Sendable (Parameters) -> String?

    /// For a streaming stage type: how it streams with given parameters.
    public let streaming: (@Sendable (Parameters) -> StreamingSupport)?

    public init<S: Stage>(_ type: S.Type) {
        self.spec = S.spec
        if let streamingType = S.self as? any StreamingStage.Type {
            self.streaming = { streamingType.streaming(parameters: $0) }
        } else {
            self.streaming = nil
        }
        self.make = { try S(parameters: $0) }
        self.verify = { try await S.verifyStored($0, parameters: $1) }
        self.access = { try await S.checkAccess(parameters: $0, depth: $1) }
        self.target = { S.accessTarget(parameters: $0) }
    }

    /// The stage type's `accessTarget(parameters:)`.
    public func accessTarget(parameters: Parameters) -> String? {
        target(parameters)
    }

    /// The stage type's `checkAccess(parameters:depth:)`.
    public func checkAccess(parameters: Parameters, depth: AccessCheckDepth) async throws -> AccessReport {
        try await access(parameters, depth)
    }

    /// The stage type's `verifyStored(_:parameters:)`.
    public func verifyStored(_ output: any Artifact, parameters: Parameters) async throws -> StoredOutputCheck {
        try await verify(output, parameters)
    }

    public var name: String { spec.name }

    /// How the type streams with its default parameters, for listings; nil when it
    /// takes and gives whole artifacts only.
    public var defaultStreaming: StreamingSupport? {
        guard let streaming else { return nil }
        var values: [String: ParameterValue] = [:]
        for parameter in spec.parameters {
            if let value = parameter.defaultValue { values[parameter.name] = value }
        }
        return streaming(Parameters(values))
    }

    /// One line for `runner stages`: what streams, and whether the stage is replayable.
    public var streamingSummary: String {
        guard let support = defaultStreaming, support.input || support.output else {
            return "no: takes and gives whole artifacts"
        }
        var sides: [String] = []
        if support.input { sides.append("its input") }
        if support.output { sides.append("its output") }
        var text = sides.joined(separator: " and ") + " a band (or chunk) at a time"
        if support.replayable { text += "; replayable (may be run twice instead of held)" }
        if support.needsInputRange { text += "; needs its input's range first (a range pass over a replayable upstream), unless given one" }
        return text
    }
}

/// The static description of a stage type: what `runner stages NAME` prints.
public struct StageSpec: Sendable {
    public var name: String
    public var summary: String
    /// Longer text: behaviour, edge cases, examples.
    public var discussion: String
    public var parameters: [ParameterSpec]
    public var inputs: [InputPort]
    /// For stages whose ports a pipeline names (`exec`): what any port not in
    /// `inputs` accepts; nil when the ports are only those in `inputs`.
    public var additionalInputs: TypeRequirement?
    public var output: OutputSpec
    /// The version of the stage's behaviour, 1 or more (default 1). Bump it whenever
    /// the output for the same inputs, parameters and seed changes (a fixed bug, a new
    /// encoder setting): it is part of every stage fingerprint, so outputs an older
    /// version stored are not reused by `--resume` or read by `--only`.
    public var version: Int

    public init(
        name: String, summary: String, discussion: String = "", parameters: [ParameterSpec] = [],
        inputs: [InputPort] = [], additionalInputs: TypeRequirement? = nil, output: OutputSpec, version: Int = 1
    ) {
        self.version = version
        self.name = name
        self.summary = summary
        self.discussion = discussion
        self.parameters = parameters
        self.inputs = inputs
        self.additionalInputs = additionalInputs
        self.output = output
    }

    /// What the port `name` accepts, declared or additional.
    public func requirement(forPort name: String) -> TypeRequirement? {
        inputs.first { $0.name == name }?.accepts ?? additionalInputs
    }

    public func parameter(_ name: String) -> ParameterSpec? {
        parameters.first { $0.name == name }
    }

    /// The parameter that is this stage's seed, if any.
    public var seedParameter: ParameterSpec? {
        parameters.first(where: \.isSeed)
    }
}

/// A named input of a stage and the artifact types it accepts.
public struct InputPort: Sendable, Hashable {
    /// The conventional name of a stage's only port; `input: producer` connects to it.
    public static let defaultName = "input"

    public var name: String
    public var accepts: TypeRequirement
    public var doc: String

    public init(_ name: String = InputPort.defaultName, accepts: TypeRequirement, doc: String) {
        self.name = name
        self.accepts = accepts
        self.doc = doc
    }
}

/// What a stage produces; possibly depending on its parameters and input types.
public struct OutputSpec: Sendable {
    /// For listings: what the output is and what it depends on.
    public var description: String
    /// Every type the stage can produce.
    public var possibleTypes: [ArtifactType]
    let resolve: @Sendable (OutputContext) throws -> ArtifactType

    /// Always the same type.
    public static func fixed(_ type: ArtifactType) -> OutputSpec {
        OutputSpec(description: type.name, possibleTypes: [type]) { _ in type }
    }

    /// A type computed from the parameters and input types.
    public static func computed(
        _ possibleTypes: [ArtifactType], description: String,
        _ resolve: @escaping @Sendable (OutputContext) throws -> ArtifactType
    ) -> OutputSpec {
        OutputSpec(description: description, possibleTypes: possibleTypes, resolve: resolve)
    }

    public func resolve(_ context: OutputContext) throws -> ArtifactType {
        try resolve(context)
    }
}

/// What an output type may depend on.
public struct OutputContext: Sendable {
    public var parameters: Parameters
    /// The type arriving at each connected port.
    public var inputTypes: [String: ArtifactType]
    /// The run-time placeholders the pipeline defines: the built-in ones and its params.
    public var templateNames: Set<String> = Template.builtinNames
    /// For each parameter, the pipeline params that `${name}` put into its value when
    /// the file was loaded (their values are now part of the text).
    public var interpolatedParams: [String: [String]] = [:]

    public init(parameters: Parameters, inputTypes: [String: ArtifactType]) {
        self.parameters = parameters
        self.inputTypes = inputTypes
    }
}

/// A problem with a parameter value that only the stage can see, thrown from
/// `Stage.init(parameters:)` or an output resolver; the planner reports it at the
/// parameter's position.
public struct ParameterError: Error, Sendable, CustomStringConvertible {
    public var parameter: String?
    public var message: String
    public var help: String?

    public init(_ parameter: String?, _ message: String, help: String? = nil) {
        self.parameter = parameter
        self.message = message
        self.help = help
    }

    public var description: String { message }
}
