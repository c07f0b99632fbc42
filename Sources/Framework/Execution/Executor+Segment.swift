import Foundation
import Logging

/// How a stage's data flowed while it streamed: what came in and went out, and how
/// long it waited on each side. The stage that waits least is the bottleneck.
public struct StageFlow: Sendable, Hashable, Codable {
    public var bandsIn: Int
    public var bytesIn: Int
    public var bandsOut: Int
    public var bytesOut: Int
    /// Seconds spent waiting for input (the producer was behind).
    public var waitingForInputSeconds: Double
    /// Seconds spent waiting for room downstream (the consumer was behind).
    public var waitingForOutputSeconds: Double
    /// The rest of the stage's time: working.
    public var busySeconds: Double
    /// Whether its input was materialised before it, and why (`StreamingLayout.notes`).
    public var note: String?
    /// Seconds the range pass over the stages before it took (min-max `normalize`):
    /// they ran twice, and this stage waited for the first run.
    public var rangePassSeconds: Double?

    public init(bandsIn: Int = 0, bytesIn: Int = 0, bandsOut: Int = 0, bytesOut: Int = 0, waitingForInputSeconds: Double = 0,
                waitingForOutputSeconds: Double = 0, busySeconds: Double = 0, note: String? = nil) {
        self.bandsIn = bandsIn
        self.bytesIn = bytesIn
        self.bandsOut = bandsOut
        self.bytesOut = bytesOut
        self.waitingForInputSeconds = waitingForInputSeconds
        self.waitingForOutputSeconds = waitingForOutputSeconds
        self.busySeconds = busySeconds
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case bandsIn = "bands_in", bytesIn = "bytes_in", bandsOut = "bands_out", bytesOut = "bytes_out"
        case waitingForInputSeconds = "waiting_for_input_seconds", waitingForOutputSeconds = "waiting_for_output_seconds"
        case busySeconds = "busy_seconds", note, rangePassSeconds = "range_pass_seconds"
    }
}

/// The first failure of a segment attempt, and who had it.
private final class SegmentFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var first: (index: Int, error: any Error)?
    private var ios: [StreamIO] = []
    private var ended = false

    /// Every member has returned: a timer that fires now is too late to fail them.
    func end() {
        lock.lock(); ended = true; lock.unlock()
    }

    /// Fails the attempt with a timeout, unless every member has already returned.
    func timeOut(_ index: Int, _ error: any Error) {
        lock.lock()
        let late = ended
        lock.unlock()
        if !late { fail(index, error) }
    }

    func register(_ io: StreamIO) {
        lock.lock(); ios.append(io); lock.unlock()
    }

    /// Records `error` for member `index` if nothing failed before, and stops every
    /// stream and pool of the segment with it.
    func fail(_ index: Int, _ error: any Error) {
        lock.lock()
        if first == nil { first = (index, error) }
        let stopping = first!.error
        let ios = ios
        lock.unlock()
        for io in ios { io.stop(stopping) }
    }

    var failure: (index: Int, error: any Error)? {
        lock.lock(); defer { lock.unlock() }
        return first
    }
}

extension Executor {
    /// What ends a streamed output: the next member, a materialiser, or a range reducer.
    private enum TaskEnd: Sendable {
        case member(Int, Duration)
        case adapter
        case timer
    }

    private enum Tail {
        case materialise
        case reduceRange
    }

    /// One pass over members `chain` of a segment; the tail's output is materialised
    /// (the real pass) or reduced to its value range (a range pass).
    private struct ChainResult: @unchecked Sendable {
        var outputs: [(any Artifact)?]
        var flows: [StageFlow]
        var range: InputRange?
        /// The report's digests of the streamed grids, by member index.
        var digests: [Int: StreamedGridDigest] = [:]
    }

    private static func streamable(_ type: ArtifactType) -> Bool {
        ArtifactType.allGrids.contains(type) || type == .encodedImage
    }

    /// Runs a streamed segment with its retries: every member on a thread of its own,
    /// bands flowing between them. A failure anywhere stops the whole segment, and a
    /// retry (when the failing stage's `retries` allow) runs it again from its head.
    func executeSegment(_ members: [PlannedStage], inputs: StageInputs, layout: StreamingLayout, fingerprints: [String: String] = [:],
                        events: Events) async -> [Completion] {
        let clock = ContinuousClock()
        let startedAt = Date()
        let start = clock.now
        var attempt = 0
        while true {
            attempt += 1
            for member in members {
                events.emit(.stageStarted(RunEvent.StageStarted(stage: member.id, type: member.typeName, attempt: attempt)))
            }
            let contexts = members.map { context(for: $0, attempt: attempt, events: events) }
            var ranges: [Int: InputRange] = [:]
            var result: Result<ChainResult, SegmentError>
            let tees = storeTees(fingerprints: fingerprints)  // a run with a store: Executor+StoreTee
            // One deadline for the whole attempt, range passes included.
            let deadline = members.enumerated().compactMap { index, member in member.timeout.map { (index, $0) } }
                .min { $0.1 < $1.1 }.map { Deadline(index: $0.0, limit: $0.1, at: clock.now + $0.1) }
            var rangePassSeconds: [Int: Double] = [:]
            do {
                // A head that needs its input's range and gets it whole scans it.
                if let head = members.first?.instance as? any StreamingStage,
                   type(of: head).streaming(parameters: members[0].parameters).needsInputRange,
                   let grid = inputs.artifacts.values.first?.asGrid {
                    ranges[0] = InputRange(try await Self.within(deadline) { try await Blocking.run { try Self.valueRange(of: grid) } })
                }
                for (index, member) in members.enumerated() where layout.rangePasses[member.id] != nil {
                    let passStart = clock.now
                    let pass = try await runChain(members, count: index, tail: .reduceRange, inputs: inputs, ranges: ranges,
                                                  contexts: contexts, layout: layout, deadline: deadline)
                    rangePassSeconds[index] = (clock.now - passStart).seconds
                    let range = pass.range ?? .noValues
                    ranges[index] = range
                    let found = if case .values(let low, let high) = range { "[\(low), \(high)]" } else { "no values" }
                    events.emit(.log(RunEvent.LogRecord(level: .debug, message: "range pass over \(members[..<index].map(\.id).joined(separator: ", ")): "
                        + found, stage: member.id)))
                }
                result = .success(try await runChain(members, count: members.count, tail: .materialise, inputs: inputs, ranges: ranges,
                                                     contexts: contexts, layout: layout, deadline: deadline, tees: tees))
            } catch let error as SegmentError {
                result = .failure(error)
            } catch {
                result = .failure(SegmentError(index: 0, error: error))
            }
            // Store hook: commit the streamed outputs' writes and save the tail's output, or abort them all.
            if let error = await storeSegment(members, outputs: (try? result.get())?.outputs, tees: tees, fingerprints: fingerprints,
                                              events: events) {
                result = .failure(error)
            }
            switch result {
            case .success(let chain):
                var completions: [Completion] = []
                for (index, member) in members.enumerated() {
                    var output = chain.outputs[index]
                    if let artifact = output, artifact.artifactType != member.outputType {
                        let failure = PipelineError("returned \(artifact.artifactType), but its spec promised \(member.outputType) (a bug in the stage type)",
                                                    retryable: false, code: .stageBug)
                        output = nil
                        completions.append(Completion(id: member.id, result: .failure(failure), attempts: attempt, startedAt: startedAt,
                                                      duration: clock.now - start))
                        continue
                    }
                    guard let output else {
                        let failure = PipelineError("streamed no output (a bug in the stage type)", retryable: false, code: .stageBug)
                        completions.append(Completion(id: member.id, result: .failure(failure), attempts: attempt, startedAt: startedAt,
                                                      duration: clock.now - start))
                        continue
                    }
                    var completion = Completion(id: member.id, result: .success(output), attempts: attempt, startedAt: startedAt,
                                                duration: clock.now - start)
                    completion.summary = output.summary()
                    // The report's digest: from the bands as they went by, or of the whole grid.
                    if let streamed = chain.digests[index] {
                        digest(streamed, of: member.id)
                    } else {
                        digest(output, of: member.id)
                    }
                    // A range pass over a streamed output found its range: the report has it.
                    if index + 1 < members.count, case .values(let low, let high)? = ranges[index + 1],
                       layout.rangePasses[members[index + 1].id] != nil {
                        completion.summary?.min = low
                        completion.summary?.max = high
                    }
                    var flow = chain.flows[index]
                    flow.note = layout.notes[member.id]
                    flow.rangePassSeconds = rangePassSeconds[index]
                    completion.flow = flow
                    completions.append(completion)
                }
                return completions
            case .failure(let failed):
                // A store write that failed is not retried, as in whole mode.
                let storeFailed = PipelineError(failed.error).code == .storeIO
                let (failure, retry) = await failedAttempt(failed.error, of: members[failed.index], attempt: attempt,
                                                           retryable: !storeFailed, events: events)
                if retry { continue }
                let duration = clock.now - start
                return members.enumerated().map { index, stage in
                    let result: any Error = index == failed.index && !Task.isCancelled ? failure : CancellationError()
                    return Completion(id: stage.id, result: .failure(result), attempts: attempt, startedAt: startedAt, duration: duration)
                }
            }
        }
    }

    /// The value range of a whole grid, NaN ignored.
    static func valueRange(of grid: any AnyGrid) throws -> (min: Double, max: Double)? {
        switch grid {
        case let grid as Grid<UInt8>: try grid.cancellableValueRange()
        case let grid as Grid<UInt16>: try grid.cancellableValueRange()
        case let grid as Grid<UInt32>: try grid.cancellableValueRange()
        case let grid as Grid<Float>: try grid.cancellableValueRange()
        case let grid as Grid<Double>: try grid.cancellableValueRange()
        default: nil
        }
    }

    /// When a segment attempt times out: the smallest `timeout` of its members, from
    /// the attempt's start (range passes included).
    struct Deadline: Sendable {
        var index: Int
        var limit: Duration
        var at: ContinuousClock.Instant
    }

    /// `body`, or a timeout of the stage `deadline` names if it comes first.
    static func within<T: Sendable>(_ deadline: Deadline?, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let deadline else { return try await body() }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(until: deadline.at, clock: .continuous)
                throw SegmentError(index: deadline.index, error: StageTimeoutError(timeout: deadline.limit))
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw CancellationError()
        }
    }

    /// A segment attempt's failure: the member that failed first, and how.
    struct SegmentError: Error {
        var index: Int
        var error: any Error
    }

    /// Runs `members[..<count]` once, each on a thread of its own.
    private func runChain(_ members: [PlannedStage], count: Int, tail: Tail, inputs: StageInputs,
                          ranges: [Int: InputRange], contexts: [StageContext], layout: StreamingLayout,
                          deadline: Deadline? = nil, tees: StoreTees? = nil) async throws -> ChainResult {
        let chain = Array(members[..<count])
        let capacity = layout.bandBuffers
        let bandRows = options.bandRows ?? layout.bandRows[members[0].id] ?? 64
        // streams[k] runs from chain[k] to chain[k + 1]; the last one (when there is
        // one) from the tail to its materialiser or reducer.
        var gridStreamList: [GridStream?] = []
        var byteStreamList: [ByteStream?] = []
        for (index, member) in chain.enumerated() {
            let isLast = index == chain.count - 1
            let streams = !isLast || Self.streamable(member.outputType)
            if streams, ArtifactType.allGrids.contains(member.outputType) {
                gridStreamList.append(GridStream(capacity: capacity))
                byteStreamList.append(nil)
            } else if streams && member.outputType == .encodedImage {
                gridStreamList.append(nil)
                byteStreamList.append(ByteStream(capacity: capacity))
            } else {
                gridStreamList.append(nil)
                byteStreamList.append(nil)
            }
        }
        let gridStreams = gridStreamList, byteStreams = byteStreamList
        tees?.insert(chain, gridStreams: gridStreams, byteStreams: byteStreams, capacity: capacity)
        // The report's digests of streamed grids, from the bands as their consumers take
        // them (on the real pass only, not a range pass).
        var digests: [Int: StreamedGridDigest] = [:]
        if options.digests, case .materialise = tail {
            for (index, stream) in gridStreams.enumerated() {
                if let stream { digests[index] = StreamedGridDigest(tapping: stream) }
            }
        }
        // The head's whole input, sliced into a stream.
        let headInput = inputs.artifacts.values.first
        let headGrid = headInput?.asGrid.map { _ in GridStream(capacity: capacity) }
        let headBytes = headGrid == nil ? (headInput as? any BytesArtifact).map { _ in ByteStream(capacity: capacity) } : nil
        let failures = SegmentFailure()
        // A stage that stops its own streams (its threads failed) records the failure
        // as its own first, before a neighbour receives it through a stream.
        let ios = chain.indices.map { index in
            StreamIO(gridInput: index == 0 ? headGrid : gridStreams[index - 1], bytesInput: index == 0 ? headBytes : byteStreams[index - 1],
                     gridOutput: tees?.gridOutput(index, gridStreams[index]) ?? gridStreams[index],
                     bytesOutput: tees?.bytesOutput(index, byteStreams[index]) ?? byteStreams[index], inputRange: ranges[index],
                     bandRows: bandRows, bandBuffers: capacity, cancel: CancelFlag(), onStop: { failures.fail(index, $0) })
        }
        let adapterIO = StreamIO(gridInput: gridStreams.last ?? nil, bytesInput: byteStreams.last ?? nil, gridOutput: headGrid, bytesOutput: headBytes,
                                 bandRows: bandRows, bandBuffers: capacity, cancel: CancelFlag())
        let teeList = tees?.tees ?? []
        for io in ios + [adapterIO] + teeList.map(\.io) { failures.register(io) }

        final class Outputs: @unchecked Sendable {
            let lock = NSLock()
            var artifacts: [(any Artifact)?]
            var tail: (any Artifact)?
            var range: InputRange?
            init(count: Int) { artifacts = Array(repeating: nil, count: count) }
        }
        let outputs = Outputs(count: chain.count)
        let clock = ContinuousClock()
        let started = clock.now
        var ended: [Duration] = Array(repeating: .zero, count: chain.count)

        await withTaskCancellationHandler {
            await withTaskGroup(of: TaskEnd.self) { group in
                for (index, member) in chain.enumerated() {
                    let io = ios[index], context = contexts[index]
                    guard let instance = member.instance as? any StreamingStage else { continue }
                    group.addTask {
                        do {
                            let artifact = try await Blocking.run { _ in try instance.stream(io, context: context) }
                            outputs.lock.withLock { outputs.artifacts[index] = artifact }
                            // A stage that returns must have sent all of its output and
                            // taken all of its input, or its neighbour would wait forever.
                            if let output = io.gridOutput.map({ $0.isFinished }) ?? io.bytesOutput.map({ $0.isFinished }), !output {
                                throw PipelineError("returned without finishing its output stream (a bug in the stage type: call finish())",
                                                    retryable: false, code: .stageBug)
                            }
                            if let input = io.gridInput.map({ $0.isDrained }) ?? io.bytesInput.map({ $0.isDrained }), !input {
                                throw PipelineError("returned before reading all of its input stream (a bug in the stage type)",
                                                    retryable: false, code: .stageBug)
                            }
                        } catch {
                            failures.fail(index, error)
                        }
                        return .member(index, clock.now - started)
                    }
                }
                if let headInput {
                    group.addTask {
                        do {
                            try await Blocking.run { _ in
                                if let grid = headInput.asGrid, let stream = headGrid {
                                    try StreamAdapters.sliceGrid(grid, into: stream, io: adapterIO)
                                } else if let bytes = headInput as? any BytesArtifact, let stream = headBytes {
                                    try StreamAdapters.sliceBytes(bytes, into: stream, io: adapterIO)
                                }
                            }
                        } catch {
                            failures.fail(0, error)
                        }
                        return .adapter
                    }
                }
                for tee in teeList {
                    group.addTask {
                        do {
                            try await Blocking.run { _ in try tees!.run(tee) }
                        } catch {
                            failures.fail(tee.index, error)
                        }
                        return .adapter
                    }
                }
                let last = chain.count - 1
                if gridStreams[last] != nil || byteStreams[last] != nil {
                    group.addTask {
                        do {
                            switch tail {
                            case .materialise:
                                let artifact = try await Blocking.run { _ in
                                    if let stream = gridStreams[last] { return try StreamAdapters.materializeGrid(stream, cancel: adapterIO.cancel) }
                                    return try StreamAdapters.materializeBytes(byteStreams[last]!, cancel: adapterIO.cancel)
                                }
                                outputs.lock.withLock { outputs.tail = artifact }
                            case .reduceRange:
                                let range = try await Blocking.run { _ in
                                    let stream = gridStreams[last]!
                                    let info = try stream.start()
                                    var accumulator = ValueRangeAccumulator()
                                    while let band = try stream.next() {
                                        accumulator.add(band, info: info)
                                        band.release()
                                    }
                                    return accumulator.range.map { [$0.min, $0.max] }
                                }
                                outputs.lock.withLock { outputs.range = InputRange(range.map { ($0[0], $0[1]) }) }
                            }
                        } catch {
                            failures.fail(last, error)
                        }
                        return .adapter
                    }
                }
                let workers = chain.count + teeList.count + (headInput != nil ? 1 : 0) + (gridStreams[last] != nil || byteStreams[last] != nil ? 1 : 0)
                if let deadline {
                    group.addTask {
                        do {
                            try await Task.sleep(until: deadline.at, clock: .continuous)
                            failures.timeOut(deadline.index, StageTimeoutError(timeout: deadline.limit))
                        } catch {}
                        return .timer
                    }
                }
                var finished = 0
                while let end = await group.next() {
                    switch end {
                    case .member(let index, let time):
                        ended[index] = time
                        finished += 1
                    case .adapter:
                        finished += 1
                    case .timer:
                        break
                    }
                    // Everything has ended: the timer has nothing left to time.
                    if finished == workers {
                        failures.end()
                        group.cancelAll()
                    }
                }
            }
        } onCancel: {
            failures.fail(0, CancellationError())
        }
        if let failure = failures.failure { throw SegmentError(index: failure.index, error: failure.error) }

        // Outputs: a streamed output is described by its stream; the tail's is what
        // its stage returned, or the materialised stream.
        var artifacts: [(any Artifact)?] = []
        var flows: [StageFlow] = []
        for index in chain.indices {
            if let stream = gridStreams[index], index < chain.count - 1, let info = stream.currentHeader {
                artifacts.append(StreamedOutput(grid: info, statistics: stream.statistics))
            } else if let stream = byteStreams[index], index < chain.count - 1, let info = stream.currentHeader {
                artifacts.append(StreamedOutput(bytes: info, statistics: stream.statistics))
            } else if index == chain.count - 1, let materialised = outputs.tail {
                artifacts.append(materialised)
            } else {
                artifacts.append(outputs.artifacts[index])
            }
            let input = ios[index].gridInput?.statistics ?? ios[index].bytesInput?.statistics
            let output = ios[index].gridOutput?.statistics ?? ios[index].bytesOutput?.statistics
            let waitingIn = input?.consumerWaited.seconds ?? 0
            let waitingOut = (output?.producerWaited ?? .zero).seconds + ios[index].waitedForOutputBuffers.seconds
            flows.append(StageFlow(bandsIn: input?.items ?? 0, bytesIn: input?.bytes ?? 0, bandsOut: output?.items ?? 0,
                                   bytesOut: output?.bytes ?? 0, waitingForInputSeconds: waitingIn, waitingForOutputSeconds: waitingOut,
                                   busySeconds: max(0, ended[index].seconds - waitingIn - waitingOut)))
        }
        return ChainResult(outputs: artifacts, flows: flows, range: outputs.range, digests: digests)
    }
}
