import Foundation

/// A run with an artifact store keeps every stage's output, streamed ones included:
/// each streamed edge of a segment gets a tee, a thread between producer and consumer
/// that appends every band or chunk to a progressive store write
/// (`ArtifactStore.beginWrite`) before passing it on. What is written is exactly what
/// the built-in codec stores for the whole artifact: a grid's `.npy` (its header from
/// the shape, known before the first band; a dictionary-encoded grid's bands decoded
/// through the table, as the codec stores the decoded elements), an image's bytes.
/// The layout streams an edge with a store only for those codecs' types
/// (`StreamingLayout.layout(_:storing:)`).
///
/// The writes are committed once the whole segment succeeded, in member order, each
/// with its `artifactStored` event; the tail's own output (a sink's `StoredObject`,
/// a materialised artifact) is saved whole, as a stage's that runs alone. A failure or
/// cancellation anywhere in the segment aborts every write: no manifest, no temporary
/// file, no multipart upload left.
final class StoreTees: @unchecked Sendable {
    /// One streamed edge: from member `index`'s output stream to its consumer's input.
    final class Tee: @unchecked Sendable {
        let index: Int
        let stage: PlannedStage
        let manifest: ArtifactManifest
        let gridInput: GridStream?
        let bytesInput: ByteStream?
        let gridOutput: GridStream?
        let bytesOutput: ByteStream?
        /// Registered with the segment, so that a failure anywhere stops the tee.
        let io: StreamIO

        init(index: Int, stage: PlannedStage, manifest: ArtifactManifest, gridOutput: GridStream?, bytesOutput: ByteStream?, capacity: Int) {
            self.index = index
            self.stage = stage
            self.manifest = manifest
            gridInput = gridOutput.map { _ in GridStream(capacity: capacity) }
            bytesInput = bytesOutput.map { _ in ByteStream(capacity: capacity) }
            self.gridOutput = gridOutput
            self.bytesOutput = bytesOutput
            io = StreamIO(gridInput: gridInput, bytesInput: bytesInput, gridOutput: gridOutput, bytesOutput: bytesOutput,
                          bandRows: 1, bandBuffers: 2, cancel: CancelFlag())
        }
    }

    let store: any ArtifactStore
    let runID: String
    let codecs: ArtifactCodecs
    /// A member's manifest, without the codec's fields.
    let manifest: @Sendable (PlannedStage) -> ArtifactManifest
    private(set) var tees: [Tee] = []
    private let lock = NSLock()
    /// The writes begun, by member index.
    private var writers: [Int: any ArtifactStoreWriter] = [:]

    init(store: any ArtifactStore, runID: String, codecs: ArtifactCodecs, manifest: @escaping @Sendable (PlannedStage) -> ArtifactManifest) {
        self.store = store
        self.runID = runID
        self.codecs = codecs
        self.manifest = manifest
    }

    /// Puts a tee on every streamed output but the tail's (`gridStreams[k]` and
    /// `byteStreams[k]` run from member k to member k + 1).
    func insert(_ chain: [PlannedStage], gridStreams: [GridStream?], byteStreams: [ByteStream?], capacity: Int) {
        for (index, stage) in chain.enumerated().dropLast() where gridStreams[index] != nil || byteStreams[index] != nil {
            tees.append(Tee(index: index, stage: stage, manifest: manifest(stage), gridOutput: gridStreams[index],
                            bytesOutput: byteStreams[index], capacity: capacity))
        }
    }

    /// The stream member `index` writes its grid output to: its tee's, if it has one.
    func gridOutput(_ index: Int, _ stream: GridStream?) -> GridStream? {
        tees.first { $0.index == index }?.gridInput ?? stream
    }

    func bytesOutput(_ index: Int, _ stream: ByteStream?) -> ByteStream? {
        tees.first { $0.index == index }?.bytesInput ?? stream
    }

    private func begin(_ tee: Tee, _ encoded: ArtifactCodec.Encoded) throws -> any ArtifactStoreWriter {
        let manifest = try codecs.describe(tee.manifest, type: tee.stage.outputType.name, encoded)
        let writer = try store.beginWrite(runID: runID, stage: tee.stage.id, manifest: manifest, cancel: tee.io.cancel)
        lock.withLock { writers[tee.index] = writer }
        return writer
    }

    /// A failed store write, as the run reports it: `store_io`.
    private func storing<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CancellationError {
            throw error
        } catch {
            let cause = PipelineError(error)
            throw PipelineError("cannot store the output in \(store): \(cause.message)", retryable: cause.isRetryable, code: .storeIO)
        }
    }

    /// Runs `tee` to the end of its stream, on a thread of its own.
    func run(_ tee: Tee) throws {
        if let input = tee.gridInput, let output = tee.gridOutput {
            let info = try input.start()
            try output.begin(info)
            let writer = try storing {
                let writer = try begin(tee, ArtifactCodecs.gridForm(Data(), elementType: info.elementType, width: info.width, height: info.height))
                try NPY.header(elementType: info.elementType, width: info.width, height: info.height).withUnsafeBytes { try writer.append($0) }
                return writer
            }
            var decoded: [Float] = []
            var row = 0
            while let band = try input.next() {
                do {
                    try tee.io.checkCancellation()
                    guard band.rows.lowerBound == row, band.rows.upperBound <= info.height else {
                        throw PipelineError("streamed rows \(band.rows) after row \(row) of \(info.height) (a bug in the stage type)",
                                            retryable: false, code: .stageBug)
                    }
                    try storing {
                        if let table = info.table {
                            // The codec stores a dictionary-encoded grid's elements, decoded.
                            let indices = band.elements(UInt8.self, width: info.width)
                            decoded.removeAll(keepingCapacity: true)
                            decoded.append(contentsOf: indices.lazy.map { table[Int($0)] })
                            try decoded.withUnsafeBytes { try writer.append($0) }
                        } else {
                            try writer.append(UnsafeRawBufferPointer(start: band.pointer, count: band.rows.count * info.rowBytes))
                        }
                    }
                    row = band.rows.upperBound
                } catch {
                    band.release()
                    throw error
                }
                try output.push(band, byteCount: band.rows.count * info.rowBytes)
            }
            guard row == info.height else {
                throw PipelineError("streamed \(row) of \(info.height) rows (a bug in the stage type)", retryable: false, code: .stageBug)
            }
            output.finish()
        } else if let input = tee.bytesInput, let output = tee.bytesOutput {
            let info = try input.start()
            try output.begin(info)
            let writer = try storing {
                try begin(tee, ArtifactCodecs.imageForm(Data(), format: info.format, mediaType: info.mediaType, width: info.width,
                                                        height: info.height))
            }
            while let chunk = try input.next() {
                do {
                    try tee.io.checkCancellation()
                    try storing { try writer.append(chunk.bytes) }
                } catch {
                    chunk.release()
                    throw error
                }
                try output.push(chunk, byteCount: chunk.count)
            }
            output.finish()
        }
    }

    /// Commits every write, in member order; the manifests as written, or the index of
    /// the member whose write failed and why (the writes not committed are aborted).
    func commit() -> Result<[(index: Int, manifest: ArtifactManifest)], Executor.SegmentError> {
        let writers = lock.withLock { self.writers.sorted { $0.key < $1.key } }
        var committed: [(index: Int, manifest: ArtifactManifest)] = []
        for (position, (index, writer)) in writers.enumerated() {
            do {
                committed.append((index, try writer.commit()))
            } catch {
                for (_, rest) in writers[(position + 1)...] { rest.abort() }
                lock.withLock { self.writers = [:] }
                return .failure(Executor.SegmentError(index: index, error: error))
            }
        }
        lock.withLock { self.writers = [:] }
        return .success(committed)
    }

    /// Aborts every write begun and not committed.
    func abort() {
        let writers = lock.withLock {
            defer { self.writers = [:] }
            return self.writers
        }
        for writer in writers.values { writer.abort() }
    }
}

extension Executor {
    /// The tees of one attempt of a segment, when the run has a store.
    func storeTees(fingerprints: [String: String]) -> StoreTees? {
        options.store.map { store in
            StoreTees(store: store, runID: options.runID, codecs: plan.codecs) { stage in
                manifest(for: stage, type: stage.outputType, fingerprints: fingerprints)
            }
        }
    }

    /// After a segment attempt: commits its streamed outputs' writes (or aborts them
    /// after a failure) and saves the tail's output whole, each with its
    /// `artifactStored` event. The failure, with the member it belongs to, if storing
    /// failed; the run does not retry it (as a stage's whole output, a store write is
    /// not retried).
    func storeSegment(_ members: [PlannedStage], outputs: [(any Artifact)?]?, tees: StoreTees?, fingerprints: [String: String],
                      events: Events) async -> SegmentError? {
        guard let tees else { return nil }
        guard let outputs else {
            await Self.blocking { tees.abort() }
            return nil
        }
        let committed = await Self.blocking { tees.commit() }
        switch committed {
        case .success(let manifests):
            for (index, manifest) in manifests { emitStored(members[index], manifest, in: tees.store, events: events) }
        case .failure(let failed):
            return SegmentError(index: failed.index, error: storeFailure(failed.error, in: tees.store))
        }
        let last = members.count - 1
        if let output = outputs[last], output.artifactType == members[last].outputType,
           let failure = await storeOutput(members[last], output, in: tees.store, fingerprints: fingerprints, events: events) {
            return SegmentError(index: last, error: failure)
        }
        return nil
    }

    /// Runs `body` on a thread of its own (store I/O blocks).
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        // Never throws: `body` does not.
        try! await Blocking.run { body() }
    }
}
