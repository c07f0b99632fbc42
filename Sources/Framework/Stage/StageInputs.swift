/// The artifacts connected to a stage's input ports for one run.
public struct StageInputs: Sendable {
    public let artifacts: [String: any Artifact]

    public init(_ artifacts: [String: any Artifact]) {
        self.artifacts = artifacts
    }

    public subscript(port: String) -> (any Artifact)? {
        artifacts[port]
    }

    /// The artifact on `port` as a concrete type. The planner has checked the edge
    /// types, so a mismatch here is a bug in the stage's spec; it is reported as an
    /// error, not a crash.
    public func get<T>(_ type: T.Type, port: String = InputPort.defaultName) throws -> T {
        guard let artifact = artifacts[port] else {
            throw StageFailure("no artifact on input port '\(port)'")
        }
        guard let typed = artifact as? T else {
            throw StageFailure("input '\(port)' is \(artifact.artifactType), not \(T.self)")
        }
        return typed
    }

    /// The artifact on the default port `input`.
    public var input: (any Artifact)? { artifacts[InputPort.defaultName] }
}
