import Crypto
import Foundation
import Framework

extension S3Stage: StreamingStage {
    public static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: true, output: false)
    }

    /// The parts in flight and the one filling: `(concurrency + 1) x part_size`.
    public static func estimate(parameters: Parameters, input: ArtifactEstimate?, bandRows: Int, bandBuffers: Int) -> StreamingEstimate {
        StreamingEstimate(output: nil, streamingBytes: Double(parameters.int("concurrency") + 1) * Double(parameters.int("part_size")))
    }

    /// Uploads the bytes as they arrive (`S3StreamingUpload`) and gives the same
    /// `StoredObject` as `run`.
    public func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let input = try io.requireBytesInput()
        let info = try input.start()
        let key = try Self.checkedKey(context.expand(keyTemplate, adding: info.templateValues))
        let target = S3ObjectTarget(client: Self.client(parameters: parameters, environment: environment), bucket: bucket, key: key,
                                    headers: requestHeaders(mediaType: info.mediaType), checksum: checksum, overwrite: overwrite,
                                    partSize: partSize, context: context, sessions: .shared)
        let upload = S3StreamingUpload(target: target, concurrency: concurrency, multipartThreshold: multipartThreshold)
        let result = try upload.run(input, io: io)
        context.logger.debug("streamed \(result.byteCount) bytes (\(info.format) \(info.width)x\(info.height)) to s3://\(bucket)/\(key) (ETag \(result.etag))")
        return StoredObject(uri: "s3://\(bucket)/\(key)", byteCount: result.byteCount, sha256: result.sha256,
                            mediaType: contentType ?? info.mediaType, etag: result.etag, versionID: result.versionID)
    }
}

/// An upload of bytes that arrive chunk by chunk: they fill part buffers of
/// `partSize` bytes from a pool of `concurrency + 1` (stopped with the segment). The
/// object goes up with a single PUT when it ends at `multipartThreshold` bytes or
/// fewer, as `run` would send it; else as a multipart upload, created once the bytes
/// pass the threshold, whose parts go out as they fill, at most `concurrency` at once
/// on worker threads of their own, each with its own connection. The SHA-256 of the
/// whole object and of each part (and, without a checksum, each part's MD5) are
/// computed as the bytes arrive.
///
/// Bytes wait for the threshold in the pool's buffers: when the threshold is more than
/// the pool holds (`(concurrency + 1) x partSize`), the upload turns multipart once the
/// pool is full, whatever size the object ends at.
///
/// On any failure (the input stream's, a part's, a cancellation) the part workers stop,
/// a multipart upload is aborted (best effort, within `S3Upload.abortBudget`), and the
/// error is rethrown: no parts are left behind.
struct S3StreamingUpload: S3ObjectRequests {
    let target: S3ObjectTarget
    let concurrency: Int
    let multipartThreshold: Int

    struct Outcome {
        var byteCount: Int
        /// Of the whole object, hex.
        var sha256: String
        var etag: String
        var versionID: String?
    }

    /// A filled part, not yet sent: its buffer (given back to the pool when the last
    /// reference goes) and its digests.
    struct FilledPart: Sendable {
        var number: Int
        var bytes: SharedBytes
        var digests: S3Digests.Request
    }

    /// Reads `input` to its end and uploads it.
    func run(_ input: ByteStream, io: StreamIO) throws -> Outcome {
        let state = StreamState(checksum: checksum)
        let stop = CancelFlag()
        let isCancelled: @Sendable () -> Bool = { stop.isSet() || io.cancel.isSet() }
        let pool = io.pool(bufferSize: partSize, count: concurrency + 1, purpose: "a part of \(partSize) bytes of the upload to s3://\(bucket)/\(key)")
        var multipart: (uploadID: String, session: CurlSession, workers: PartWorkers)?
        do {
            let result = try acceptingOwnOutput(isCancelled, existing: state.existingDigests) {
                /// Sends `part`: to the workers once the upload is multipart, else held.
                func filled(_ part: FilledPart) throws {
                    if let multipart {
                        try multipart.workers.send(part)
                    } else {
                        state.held.append(part)
                    }
                }
                func startMultipart() throws {
                    let session = try CurlSession()
                    let uploadID = try createMultipartUpload(session: session, isCancelled: isCancelled)
                    let workers = PartWorkers(upload: self, uploadID: uploadID, io: io, stop: stop)
                    multipart = (uploadID, session, workers)
                    workers.start(concurrency)
                    for part in state.held { try workers.send(part) }
                    state.held = []
                }
                var current: BandLease?
                var filledBytes = 0
                while let chunk = try input.next() {
                    defer { chunk.release() }
                    try io.checkCancellation()
                    // The encoder's progress, as the bytes reach the upload.
                    context.reportProgress(chunk.fraction)
                    var offset = 0
                    while offset < chunk.count {
                        if current == nil {
                            // Every buffer held back for the threshold: the object is too
                            // large for them, and the upload multipart from now on.
                            if multipart == nil && state.held.count >= pool.count { try startMultipart() }
                            current = try pool.take()
                            filledBytes = 0
                        }
                        let size = min(partSize - filledBytes, chunk.count - offset)
                        let bytes = UnsafeRawBufferPointer(rebasing: chunk.bytes[offset..<(offset + size)])
                        (current!.pointer + filledBytes).copyMemory(from: bytes.baseAddress!, byteCount: size)
                        state.add(bytes)
                        filledBytes += size
                        offset += size
                        if multipart == nil && state.total > multipartThreshold { try startMultipart() }
                        if filledBytes == partSize {
                            try filled(state.finishPart(current!, count: filledBytes))
                            current = nil
                        }
                    }
                }
                try io.checkCancellation()
                if let lease = current {
                    current = nil
                    try filled(state.finishPart(lease, count: filledBytes))
                }
                if multipart == nil && state.total <= multipartThreshold {
                    return try sessions.withSession { session in
                        let held = state.held.map(\.bytes)
                        let digests = S3Digests.forRequest(sha256: state.wholeSHA256, md5: checksum ? nil : state.md5(of: held), checksum: checksum)
                        return try putObject(body: .segments(held), digests: digests, md5Hex: { SigV4.hex(state.md5(of: held)) }, progress: nil,
                                             session: session, isCancelled: isCancelled)
                    }
                }
                if multipart == nil { try startMultipart() }
                let (uploadID, session, workers) = multipart!
                let parts = try workers.finish()
                multipart = nil
                let completed = try abortingOnFailure(uploadID: uploadID, session: session) {
                    try completeMultipartUpload(uploadID: uploadID, parts: parts, session: session, isCancelled: isCancelled)
                }
                // After a completed upload there is nothing to abort.
                return try verifyCompleted(completed, parts: parts)
            }
            return Outcome(byteCount: state.total, sha256: SigV4.hex(state.wholeSHA256), etag: result.etag, versionID: result.versionID)
        } catch {
            // The failure of a part is what stopped the stream, if one did.
            var failure = error
            if let (uploadID, session, workers) = multipart {
                if let partFailure = workers.failure, !(partFailure is CancellationError) { failure = partFailure }
                workers.stop()
                failure = aborted(uploadID: uploadID, session: session, after: failure)
            }
            state.held = []
            throw failure
        }
    }
}

/// What a streaming upload has seen so far: the bytes' count and digests, and the
/// parts held back while the object may still end up a single PUT.
final class StreamState: @unchecked Sendable {
    let checksum: Bool
    private(set) var total = 0
    private var whole = SHA256()
    private var part = SHA256()
    private var partMD5 = Insecure.MD5()
    private var parts = 0
    /// Each part's SHA-256 (base64) and, without a checksum, MD5.
    private var partSHA256s: [String] = []
    private var partMD5s: [[UInt8]] = []
    private var finalWhole: [UInt8]?
    var held: [S3StreamingUpload.FilledPart] = []

    init(checksum: Bool) {
        self.checksum = checksum
    }

    func add(_ bytes: UnsafeRawBufferPointer) {
        whole.update(bufferPointer: bytes)
        part.update(bufferPointer: bytes)
        if !checksum { partMD5.update(bufferPointer: bytes) }
        total += bytes.count
    }

    /// The part now in `lease` is whole: `count` bytes.
    func finishPart(_ lease: BandLease, count: Int) -> S3StreamingUpload.FilledPart {
        let sha = Array(part.finalize())
        let md5 = checksum ? nil : Array(partMD5.finalize())
        part = SHA256()
        partMD5 = Insecure.MD5()
        parts += 1
        partSHA256s.append(Data(sha).base64EncodedString())
        if let md5 { partMD5s.append(md5) }
        let bytes = SharedBytes(takingOwnershipOf: lease.pointer, count: count) { _ in lease.release() }
        return .init(number: parts, bytes: bytes, digests: S3Digests.forRequest(sha256: sha, md5: md5, checksum: checksum))
    }

    /// The whole object's SHA-256, once every byte was added.
    var wholeSHA256: [UInt8] {
        if let finalWhole { return finalWhole }
        let digest = Array(whole.finalize())
        finalWhole = digest
        return digest
    }

    /// The MD5 of `segments` one after the other.
    func md5(of segments: [SharedBytes]) -> [UInt8] {
        var md5 = Insecure.MD5()
        for segment in segments { segment.withUnsafeBytes { md5.update(bufferPointer: $0) } }
        return Array(md5.finalize())
    }

    /// For an object that is already there: the digests of the parts as they were cut
    /// (the same part size as a stored multipart object's, else it counts as
    /// different), of the whole object; its MD5 only while the bytes are held (a single
    /// PUT) or when it is one part.
    var existingDigests: ExistingObjectDigests {
        ExistingObjectDigests(
            byteCount: total,
            sha256s: { parts in
                if parts == nil { return [Data(self.wholeSHA256).base64EncodedString()] }
                return parts == self.partSHA256s.count ? self.partSHA256s : nil
            },
            md5s: { parts in
                if parts == nil {
                    if !self.held.isEmpty || self.total == 0 { return [self.md5(of: self.held.map(\.bytes))] }
                    return self.partMD5s.count == 1 ? self.partMD5s : nil
                }
                return parts == self.partMD5s.count && !self.checksum ? self.partMD5s : nil
            })
    }
}

/// The part workers of a streaming upload: `send` queues a filled part (there are
/// never more than the pool's buffers), a worker uploads it on its own connection and
/// gives its buffer back. The first failure stops every worker and the whole stage
/// (`StreamIO.stop`, which wakes the reader of the input).
final class PartWorkers: @unchecked Sendable {
    private let upload: S3StreamingUpload
    private let uploadID: String
    private let io: StreamIO
    private let stopFlag: CancelFlag
    private let condition = NSCondition()
    private var queue: [S3StreamingUpload.FilledPart] = []
    private var closed = false
    private var parts: [S3Upload.Part] = []
    private var firstFailure: (any Error)?
    private let group = DispatchGroup()

    init(upload: S3StreamingUpload, uploadID: String, io: StreamIO, stop: CancelFlag) {
        self.upload = upload
        self.uploadID = uploadID
        self.io = io
        self.stopFlag = stop
    }

    var failure: (any Error)? {
        condition.lock(); defer { condition.unlock() }
        return firstFailure
    }

    func start(_ count: Int) {
        let isCancelled: @Sendable () -> Bool = { [stopFlag, io] in stopFlag.isSet() || io.cancel.isSet() }
        for _ in 0..<max(1, count) {
            group.enter()
            let thread = Thread { [self] in
                defer { group.leave() }
                do {
                    try upload.sessions.withSession { session in
                        while let part = take() {
                            let done = try upload.uploadPart(uploadID: uploadID, number: part.number, of: nil, body: .shared(part.bytes, 0..<part.bytes.count),
                                                             digests: part.digests, progress: nil, session: session, isCancelled: isCancelled)
                            finish(done)
                        }
                    }
                } catch {
                    fail(error)
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Queues `part`; throws the first failure instead once there is one.
    func send(_ part: S3StreamingUpload.FilledPart) throws {
        condition.lock()
        defer { condition.unlock() }
        if let firstFailure { throw firstFailure }
        queue.append(part)
        condition.broadcast()
    }

    private func take() -> S3StreamingUpload.FilledPart? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !closed && firstFailure == nil { condition.wait() }
        guard firstFailure == nil, !queue.isEmpty else { return nil }
        return queue.removeFirst()
    }

    private func finish(_ part: S3Upload.Part) {
        condition.lock()
        parts.append(part)
        condition.unlock()
    }

    private func fail(_ error: any Error) {
        condition.lock()
        // Not a failure of the workers' own when `stop` ended them.
        let first = firstFailure == nil && !stopFlag.isSet()
        if first { firstFailure = error }
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
        stopFlag.set()
        if first { io.stop(error) }
    }

    /// No more parts: waits for the workers, then the parts in order, or the failure.
    func finish() throws -> [S3Upload.Part] {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
        group.wait()
        if let failure { throw failure }
        return parts.sorted { $0.number < $1.number }
    }

    /// Stops the workers (their requests end within about a second) and waits for them.
    func stop() {
        stopFlag.set()
        condition.lock()
        closed = true
        queue.removeAll()
        condition.broadcast()
        condition.unlock()
        group.wait()
    }
}
