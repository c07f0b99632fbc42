/// A pipeline checked against a registry: every stage resolved, instantiated and
/// typed, in an order where each stage comes after everything it depends on.
///
/// `runner validate` stops at a plan; `runner run` executes it. Both get it from
/// `Planner`, so what validates runs.
public struct Plan: Sendable {
    public let name: String
    public let file: String
    public let params: [String: String]
    /// Stages in dependency order (ties keep file order).
    public let stages: [PlannedStage]
    /// How stage outputs are stored and read back when the run has an artifact store:
    /// the registry's codecs (`StageRegistry.codecs`).
    public let codecs: ArtifactCodecs
    /// The environment variables the pipeline file reads (`${env.NAME}`, with the
    /// profiles applied): what a run elsewhere (a container, a pod) must be given too.
    public var environmentNames: [String] = []
    /// The matrix item this plan runs, when it is one of a sweep's (`SweepPlan`).
    public var item: Matrix.Item?
    /// Each stage's position in `stages`, so that lookups by id take constant time.
    private let positions: [String: Int]

    public init(name: String, file: String, params: [String: String], stages: [PlannedStage], codecs: ArtifactCodecs = .builtin) {
        self.codecs = codecs
        self.name = name
        self.file = file
        self.params = params
        self.stages = stages
        var positions: [String: Int] = [:]
        positions.reserveCapacity(stages.count)
        for (position, stage) in stages.enumerated() where positions[stage.id] == nil {
            positions[stage.id] = position
        }
        self.positions = positions
    }

    public func stage(_ id: String) -> PlannedStage? {
        positions[id].map { stages[$0] }
    }

    /// Every data edge: producer, consumer, port and the artifact type carried.
    public var edges: [Edge] {
        stages.flatMap { stage in
            stage.inputs.sorted { $0.key < $1.key }.map { port, producer in
                Edge(from: producer, to: stage.id, port: port, type: self.stage(producer)?.outputType)
            }
        }
    }

    public struct Edge: Sendable, Hashable {
        public var from: String
        public var to: String
        /// nil for an `after` edge, which carries no data.
        public var port: String?
        public var type: ArtifactType?
    }
}

/// One stage of a plan.
public struct PlannedStage: Sendable {
    public let id: String
    public let type: StageType
    public let instance: any Stage
    public let parameters: Parameters
    /// Port name to producer stage id.
    public let inputs: [String: String]
    /// Stages that must finish first without passing data.
    public let after: [String]
    public let outputType: ArtifactType
    public let retry: RetryPolicy
    public let timeout: Duration?

    public var typeName: String { type.name }

    /// Every stage this one waits for, without duplicates, in a stable order.
    public var dependencies: [String] {
        var seen: Set<String> = []
        return (inputs.sorted { $0.key < $1.key }.map(\.value) + after).filter { seen.insert($0).inserted }
    }
}
