import Foundation

/// Which edges of a plan stream, how the stages group into streamed segments, and
/// how much memory the run will need: decided before anything runs, from the stages'
/// `StreamingSupport` and estimates.
///
/// An edge from producer P to consumer C streams when both are streaming stages (P's
/// output and C's input can stream), C has that one input, and P's output goes to C
/// alone. When C needs its input's range first (min-max `normalize`), the edge streams
/// only if every stage from the segment's head to P is replayable, so that the
/// executor can run them twice (a range pass, then the real pass); otherwise the edge
/// materialises and the layout says why (`notes`). Stages joined by streamed edges
/// form a segment, which runs as one: each stage on a thread of its own, bands
/// flowing between them through bounded queues.
public struct StreamingLayout: Sendable {
    /// Streamed segments, each a chain of stage ids from head to tail.
    public var segments: [[String]] = []
    /// The producers whose output edge streams.
    public var streamedOutputs: Set<String> = []
    /// For a stage that needs its input's range and gets it by a range pass: the
    /// members of its segment that run in that pass (head to its producer).
    public var rangePasses: [String: [String]] = [:]
    /// Why an edge that could have streamed does not, by consumer stage id.
    public var notes: [String: String] = [:]
    /// What each stage's output is expected to be.
    public var estimates: [String: ArtifactEstimate] = [:]
    /// The memory each stage is expected to hold: its streaming buffers, or its whole
    /// output when that is materialised.
    public var stageMemory: [String: Double] = [:]
    /// Stages whose output is held whole, though the stage itself streams or its
    /// size is known: what a memory limit must make room for.
    public var materialised: [String] = []
    /// Rows per band for each segment (by its head), as the producers should make them.
    public var bandRows: [String: Int] = [:]
    /// Buffers each streaming stage's pool holds.
    public var bandBuffers: Int = 4

    /// What the runner streams: data of 8 MiB or more (a 2896x2896 byte grid). Below
    /// that, whole artifacts are as lean and faster; a range pass is worth it from
    /// twice that.
    public static let defaultMinimumBytes: Double = 8 * 1_048_576

    /// The process's own memory before any stage holds anything (code, libraries,
    /// the Swift runtime): measured on Debian 12 for the runner, rounded up.
    public static let baseBytes: Double = 24 * 1_048_576

    /// The estimated peak memory of the run: the base, plus every stage's streaming
    /// buffers, plus every output held whole whose size is known. An upper bound for
    /// what the layout knows (outputs held at once are counted as if all were), and a
    /// lower bound when a stage's output size is unknown (`unknownSizes`).
    public var peakBytes: Double {
        Self.baseBytes + stageMemory.values.reduce(0, +)
    }

    /// Stages whose output size cannot be estimated before the run (an `exec` stage's).
    public var unknownSizes: [String] = []

    /// The segment `id` belongs to, if any.
    public func segment(of id: String) -> [String]? {
        segments.first { $0.contains(id) }
    }

    public func streams(from producer: String) -> Bool { streamedOutputs.contains(producer) }

    /// No stage streams: every artifact is held whole (`--no-stream`, or a resumed run
    /// with an artifact store).
    public static func whole(_ plan: Plan, bandRows: Int? = nil, jobs: Int = 2) -> StreamingLayout {
        layout(plan, streaming: false, bandRows: bandRows, jobs: jobs)
    }

    /// Decides the layout of `plan`. `bandRows` overrides the rows per band (tests,
    /// tuning); `jobs` sets how many band buffers each stage holds (jobs + 2).
    /// `storing` (a run with an artifact store, which keeps every output) streams an
    /// edge only when the store can write the producer's output as it passes: when its
    /// codec is a built-in one (`ArtifactCodecs.storesStreamed`).
    ///
    /// `minimumBytes` keeps small data whole: an edge whose data is estimated below it
    /// does not stream (threads and queues cost more than they save there), and an
    /// input that would need a range pass is held whole below twice it. The runner
    /// passes `defaultMinimumBytes`; 0 streams every edge that can stream.
    public static func layout(_ plan: Plan, streaming: Bool = true, storing: Bool = false, bandRows: Int? = nil,
                              jobs: Int = 2, minimumBytes: Double = 0) -> StreamingLayout {
        var layout = StreamingLayout()
        layout.bandBuffers = max(2, jobs) + 2
        var consumers: [String: [String]] = [:]
        for stage in plan.stages {
            for producer in stage.inputs.values { consumers[producer, default: []].append(stage.id) }
        }
        func support(_ stage: PlannedStage) -> StreamingSupport? {
            guard let instance = stage.instance as? any StreamingStage else { return nil }
            return type(of: instance).streaming(parameters: stage.parameters)
        }
        func streamable(_ type: ArtifactType) -> Bool {
            ArtifactType.allGrids.contains(type) || type == .encodedImage
        }
        // What each output will be (the outputs do not depend on the band size).
        var outputs: [String: ArtifactEstimate] = [:]
        for stage in plan.stages {
            guard let instance = stage.instance as? any StreamingStage else { continue }
            let input = stage.inputs.count == 1 ? stage.inputs.values.first.flatMap { outputs[$0] } : nil
            outputs[stage.id] = type(of: instance).estimate(parameters: stage.parameters, input: input, bandRows: 64, bandBuffers: 4).output
        }
        // Heads of the segments being built, by member.
        var headOf: [String: String] = [:]
        var members: [String: [String]] = [:]
        for stage in plan.stages {
            guard streaming, let consumerSupport = support(stage), consumerSupport.input, stage.inputs.count == 1,
                  let producerID = stage.inputs.values.first, let producer = plan.stage(producerID),
                  let producerSupport = support(producer), producerSupport.output, streamable(producer.outputType),
                  consumers[producerID]?.count == 1,
                  // A segment's head takes nothing, or one input that can be sliced into a stream.
                  headOf[producerID] != nil || producer.inputs.isEmpty
                    || (producer.inputs.count == 1 && plan.stage(producer.inputs.values.first!).map { streamable($0.outputType) } == true)
            else { continue }
            if storing && !plan.codecs.storesStreamed(producer.outputType) {
                layout.notes[stage.id] = "input materialised: the artifact store keeps '\(producerID)''s output "
                    + "(\(producer.outputType)) through a codec it cannot write while the data streams"
                continue
            }
            // Small data is held whole, unless everything is to stream.
            if let size = outputs[producerID]?.byteCount, size < minimumBytes { continue }
            let head = headOf[producerID] ?? producerID
            let chain = members[head] ?? [producerID]
            if consumerSupport.needsInputRange {
                let replayable = chain.allSatisfy { id in plan.stage(id).flatMap(support)?.replayable == true }
                guard replayable else {
                    let culprit = chain.first { id in plan.stage(id).flatMap(support)?.replayable != true } ?? producerID
                    layout.notes[stage.id] = "input materialised: '\(stage.id)' needs the range of its input before its first band, "
                        + "and '\(culprit)' is not replayable"
                    continue
                }
                // A small input is cheaper to hold than to compute twice.
                if let size = outputs[producerID]?.byteCount, size < 2 * minimumBytes {
                    layout.notes[stage.id] = "input held whole: '\(stage.id)' needs the range of its input before its first band, "
                        + "and at \(ByteCountFormatting.string(size)) holding it costs less than a range pass"
                    continue
                }
                layout.rangePasses[stage.id] = chain
            }
            headOf[producerID] = head
            headOf[stage.id] = head
            members[head] = chain + [stage.id]
            layout.streamedOutputs.insert(producerID)
        }
        for stage in plan.stages where headOf[stage.id] == stage.id {
            layout.segments.append(members[stage.id]!)
        }
        // Estimates in dependency order.
        var held: Set<String> = []
        for stage in plan.stages {
            let input = stage.inputs.count == 1 ? stage.inputs.values.first.flatMap { layout.estimates[$0] } : nil
            var output: ArtifactEstimate?
            if let instance = stage.instance as? any StreamingStage {
                let kind = type(of: instance)
                let segmentHead = headOf[stage.id]
                var rows = bandRows ?? segmentHead.flatMap { layout.bandRows[$0] } ?? 64
                var estimate = kind.estimate(parameters: stage.parameters, input: input, bandRows: rows, bandBuffers: layout.bandBuffers)
                if let head = segmentHead, head == stage.id {
                    // A segment's bands are about 256 KiB of the rows that enter it: its
                    // head's input (sliced from a whole artifact), else its output.
                    rows = bandRows ?? Self.defaultBandRows(for: input ?? estimate.output)
                    layout.bandRows[head] = rows
                    estimate = kind.estimate(parameters: stage.parameters, input: input, bandRows: rows, bandBuffers: layout.bandBuffers)
                }
                output = estimate.output
                if segmentHead != nil { layout.stageMemory[stage.id] = estimate.streamingBytes }
            }
            if let output { layout.estimates[stage.id] = output } else if stage.outputType != .storedObject {
                layout.unknownSizes.append(stage.id)
            }
            if !layout.streamedOutputs.contains(stage.id), let output, output.byteCount > 0, stage.outputType != .storedObject {
                layout.stageMemory[stage.id, default: 0] += output.byteCount
                held.insert(stage.id)
            }
        }
        layout.materialised = plan.stages.map(\.id).filter { held.contains($0) }
        return layout
    }

    /// Counts what a store's progressive writes hold (`ArtifactStore.progressiveWriteBytes`)
    /// for each streamed output, with the stage that makes it.
    public mutating func addStoreWrites(_ store: any ArtifactStore) {
        for id in streamedOutputs {
            stageMemory[id, default: 0] += store.progressiveWriteBytes(byteCount: estimates[id]?.byteCount ?? 0)
        }
    }

    /// About 256 KiB of rows of the segment head's elements, at least 1 row and at
    /// most 4096; 64 rows when the width is not known before the run. Small bands
    /// keep a segment's memory low and still cost little: a band is a queue push and
    /// a pop, microseconds against the milliseconds of work on it.
    public static func defaultBandRows(for estimate: ArtifactEstimate?) -> Int {
        guard let width = estimate?.width, width > 0 else { return 64 }
        let rowBytes = Double(width) * Double(max(1, estimate?.elementType?.byteWidth ?? 1))
        return Int(min(4096, max(1, (Double(256 << 10) / rowBytes).rounded(.down))))
    }

    /// The largest output held whole, for the message of a refused memory limit.
    public var largestMaterialised: (stage: String, bytes: Double)? {
        materialised.compactMap { id in stageMemory[id].map { (id, $0) } }.max { $0.1 < $1.1 }
    }
}

extension StreamingLayout {
    /// The memory a run may use by default: the process's limit (physical memory,
    /// rlimits, cgroup) less a margin for what no estimate covers (1/16, at least
    /// 64 MiB).
    public static func defaultMemoryLimit() -> (bytes: Double, description: String) {
        let limit = MemoryLimit.current
        let bytes = Double(limit.bytes)
        return (max(0, bytes - max(bytes / 16, 64 * 1_048_576)), limit.description)
    }

    /// Why the run cannot fit in `limit` bytes, naming the stage that must hold the
    /// most and how much; nil when it fits.
    public func memoryProblem(_ plan: Plan, limit: Double, limitDescription: String) -> String? {
        guard peakBytes > limit else { return nil }
        var message = "the run needs about \(ByteCountFormatting.string(peakBytes)) of memory, more than the "
            + "\(ByteCountFormatting.string(limit)) it may use (\(limitDescription))"
        if let (stage, bytes) = largestMaterialised, let planned = plan.stage(stage) {
            let shape = estimates[stage].flatMap { estimate in estimate.width.flatMap { w in estimate.height.map { h in " \(w)x\(h)" } } } ?? ""
            message += ": stage '\(stage)' must hold its output (\(planned.outputType)\(shape)) whole, \(ByteCountFormatting.string(bytes))"
            if let note = notes.values.first(where: { $0.contains("'\(stage)'") }) { message += " (\(note))" }
        }
        return message
    }

    /// What `-v` prints: which stages stream together, which edges materialise and
    /// why, and the estimated peak memory.
    public func describe(_ plan: Plan) -> [String] {
        var lines: [String] = []
        for segment in segments {
            var line = "streamed: " + segment.joined(separator: " -> ") + " (bands of \(bandRows[segment[0]] ?? 64) rows"
            for id in segment where rangePasses[id] != nil {
                line += "; a range pass over \(rangePasses[id]!.joined(separator: " -> ")) first, for '\(id)'"
            }
            lines.append(line + ")")
        }
        for stage in plan.stages where notes[stage.id] != nil {
            lines.append("materialised: \(notes[stage.id]!)")
        }
        for id in materialised {
            lines.append("held whole: \(id)'s output, about \(ByteCountFormatting.string(stageMemory[id] ?? 0))")
        }
        var peak = "estimated peak memory: about \(ByteCountFormatting.string(peakBytes))"
        if !unknownSizes.isEmpty {
            peak += ", plus the outputs of \(unknownSizes.map { "'\($0)'" }.joined(separator: ", ")), whose size is known only when they run"
        }
        lines.append(peak)
        return lines
    }
}
