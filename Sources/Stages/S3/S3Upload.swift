import Foundation
import Framework

/// One upload: a single PUT, or a multipart upload whose parts go out concurrently
/// on threads of their own (transfers block), each with its own connection, taken
/// from `sessions` (by default a pool of the upload's own; the artifact store passes
/// its pool so that its uploads reuse connections). A multipart upload that fails or
/// is cancelled is aborted, so no parts are left.
///
/// Deadlines: every request (the PUT; or CreateMultipartUpload, each UploadPart and
/// CompleteMultipartUpload) has the client's retry budget, its retries and
/// transfer included. A multipart upload as a whole is not limited while its
/// requests succeed, since a large object on a slow link may rightly take long; the
/// first request that fails for good (a stalled server: after one budget) fails the
/// upload at once, cancelling the parts in flight, and the abort that follows gets
/// `abortBudget` (at most the retry budget). So a server that stalls ends an upload
/// within one budget, or one budget plus `abortBudget` when parts were already sent.
public struct S3Upload: Sendable {
    /// The most time the best-effort abort of a failed multipart upload may take.
    public static let abortBudget: Duration = .seconds(10)

    let client: S3Client
    let bucket: String
    let key: String
    let bytes: SharedBytes
    let headers: [(name: String, value: String)]
    let checksum: Bool
    let overwrite: Bool
    let partSize: Int
    let concurrency: Int
    let context: StageContext
    let sessions: CurlSessionPool

    public init(client: S3Client, bucket: String, key: String, bytes: SharedBytes, headers: [(name: String, value: String)],
                checksum: Bool, overwrite: Bool, partSize: Int, concurrency: Int, context: StageContext,
                sessions: CurlSessionPool = CurlSessionPool()) {
        self.sessions = sessions
        self.client = client
        self.bucket = bucket
        self.key = key
        self.bytes = bytes
        self.headers = headers
        self.checksum = checksum
        self.overwrite = overwrite
        self.partSize = partSize
        self.concurrency = concurrency
        self.context = context
    }

    public struct Result: Sendable {
        public var etag: String
        public var versionID: String?
    }

    public func run(multipart: Bool) async throws -> Result {
        try await Blocking.run { cancel in
            try run(multipart: multipart, cancel: cancel)
        }
    }

    /// The upload on the calling thread, which it blocks until done; setting `cancel`
    /// stops it (`CancellationError`) within about a second.
    func run(multipart: Bool, cancel: CancelFlag) throws -> Result {
        do {
            return multipart ? try multipartUpload(cancel) : try singlePut(cancel)
        } catch let error as S3Error where !overwrite && (error.status == 412 || error.code == "PreconditionFailed") {
            // The object exists: a re-run that meets its own output is a success.
            return try existingObject(cancel, refused: error)
        }
    }

    /// After `If-None-Match: *` was refused: HEAD the object and compare its size and
    /// its SHA-256 checksum (or, when it has none, its MD5 ETag) with the bytes to be
    /// written. The same bytes are the upload's result; other bytes are the "already
    /// exists" error, with a hint quoting the `--set` that replaces the object.
    func existingObject(_ cancel: CancelFlag, refused: S3Error) throws -> Result {
        let uri = "s3://\(bucket)/\(key)"
        func differs(_ why: String) -> S3Error {
            S3Error(operation: "upload of \(uri)", code: refused.code, status: refused.status,
                    message: "\(uri) already exists and \(why)",
                    hint: "to replace it, run again with --set stages.\(context.stageID).with.overwrite=true "
                        + "(or set 'overwrite: true' in the file)", isTransient: false)
        }
        let response = try sessions.withSession { session in
            try client.send("HeadObject \(uri)", method: "HEAD", bucket: bucket, key: key,
                            headers: [("x-amz-checksum-mode", "ENABLED")], session: session, isCancelled: cancel.isSet)
        }
        let size = response.header("Content-Length").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard size == bytes.count else {
            throw differs("holds \(size.map(String.init) ?? "an unknown number of") bytes, not the \(bytes.count) to be written")
        }
        let etag = (response.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
        let parts = Self.partCount(etag) ?? response.header("x-amz-checksum-sha256").flatMap(Self.partCount)
        // A multipart object's digests depend on how it was cut: with a part size other
        // than this stage's, a match cannot be told and the object counts as different.
        // Checked before the part ranges are made: a stored object cut into more parts
        // than these bytes make would give ranges past their end.
        if let parts, parts != (bytes.count + partSize - 1) / partSize {
            throw differs("was uploaded in \(parts) parts, so its bytes cannot be compared with these")
        }
        let ranges: [Range<Int>] = parts.map { count in
            (0..<count).map { ($0 * partSize)..<min(bytes.count, ($0 + 1) * partSize) }
        } ?? [0..<bytes.count]
        let same: Bool
        if let stored = response.header("x-amz-checksum-sha256") {
            let sums = bytes.withUnsafeBytes { buffer in ranges.map { S3Digests.sha256Base64(UnsafeRawBufferPointer(rebasing: buffer[$0])) } }
            // S3 gives a multipart object's checksum with its "-N"; some servers (moto) without.
            same = parts.map { count in
                let composite = S3Digests.compositeChecksum(partChecksums: sums)
                return stored == composite || stored + "-\(count)" == composite
            } ?? (stored == sums[0])
        } else if Self.etagIsMD5(response), Self.isMD5Shaped(etag) {
            let md5s = bytes.withUnsafeBytes { buffer in ranges.map { S3Digests.md5(UnsafeRawBufferPointer(rebasing: buffer[$0])) } }
            same = etag.lowercased() == (parts == nil ? SigV4.hex(md5s[0]) : S3Digests.multipartETag(partMD5s: md5s))
        } else {
            throw differs("has neither a SHA-256 checksum nor an MD5 ETag to compare its bytes with")
        }
        guard same else { throw differs("holds other bytes of the same size") }
        context.logger.info("\(uri) already holds these \(bytes.count) bytes; left as it is")
        context.reportProgress(1)
        return Result(etag: etag, versionID: response.header("x-amz-version-id"))
    }

    /// The part count at the end of a multipart ETag or checksum (`...-3`), else nil.
    static func partCount(_ digest: String) -> Int? {
        guard let dash = digest.lastIndex(of: "-") else { return nil }
        return Int(digest[digest.index(after: dash)...])
    }

    private func conditional() -> [(name: String, value: String)] {
        overwrite ? [] : [("If-None-Match", "*")]
    }

    private func singlePut(_ cancel: CancelFlag) throws -> Result {
        try sessions.withSession { session in try singlePut(cancel, session: session) }
    }

    private func singlePut(_ cancel: CancelFlag, session: CurlSession) throws -> Result {
        var headers = self.headers + conditional()
        let digests = bytes.withUnsafeBytes { S3Digests.forRequest($0, checksum: checksum) }
        if let sum = digests.checksum { headers.append(("x-amz-checksum-sha256", sum)) }
        let progress = UploadProgress(total: bytes.count, context: context)
        let response = try client.send("PutObject s3://\(bucket)/\(key)", method: "PUT", bucket: bucket, key: key, headers: headers,
                                       body: .shared(bytes, 0..<bytes.count), payloadHash: digests.payloadHash, session: session,
                                       isCancelled: cancel.isSet, bodySent: { progress.update(part: 0, sent: $0) })
        let etag = (response.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
        let echoed = response.header("x-amz-checksum-sha256")
        if Self.etagIsMD5(response) {
            if let md5 = digests.md5 {
                try verify(etag: etag, expected: SigV4.hex(md5))
            } else if echoed == nil {
                // The server did not confirm the checksum: check the ETag instead, one
                // MD5 pass over an object below the multipart threshold.
                try verify(etag: etag, expected: bytes.withUnsafeBytes { S3Digests.md5Hex($0) })
            }
        }
        try verify(checksum: echoed, expected: digests.checksum)
        context.reportProgress(1)
        return Result(etag: etag, versionID: response.header("x-amz-version-id"))
    }

    /// ETags are MD5s of the bytes (multipart: of the parts' MD5s) unless the object is
    /// encrypted with SSE-KMS or SSE-C, where S3 returns something else of the same shape.
    static func etagIsMD5(_ response: HTTPResponse) -> Bool {
        let encryption = response.header("x-amz-server-side-encryption") ?? ""
        return !encryption.hasPrefix("aws:kms") && response.header("x-amz-server-side-encryption-customer-algorithm") == nil
    }

    /// Compares an MD5-shaped ETag with the MD5 of what was sent.
    func verify(etag: String, expected: String) throws {
        if Self.isMD5Shaped(etag) && etag.lowercased() != expected {
            throw S3Error(operation: "upload of s3://\(bucket)/\(key)", code: nil, status: nil,
                          message: "the server's ETag \(etag) does not match the bytes sent (\(expected))",
                          hint: "the object may be corrupt; upload again", isTransient: false, kind: .s3)
        }
    }

    /// Whether an ETag starts with 32 hex digits, as MD5-based ones (plain or multipart) do.
    static func isMD5Shaped(_ etag: String) -> Bool {
        etag.count >= 32 && etag.prefix(32).allSatisfy(\.isHexDigit)
    }

    /// A multipart object's MD5-shaped ETag ends in "-" and its part count: one that
    /// does not belongs to some other object or upload.
    func verify(multipartETag etag: String, parts: Int) throws {
        if Self.isMD5Shaped(etag) && etag.dropFirst(32) != "-\(parts)" {
            throw S3Error(operation: "upload of s3://\(bucket)/\(key)", code: nil, status: nil,
                          message: "the server's ETag \(etag) is not that of an object of \(parts) parts",
                          hint: "the object may not be the one uploaded; upload again", isTransient: false, kind: .s3)
        }
    }

    /// S3 echoes the checksum it verified; one that differs means corrupt bytes.
    func verify(checksum: String?, expected: String?) throws {
        if let checksum, let expected, checksum != expected {
            throw S3Error(operation: "upload of s3://\(bucket)/\(key)", code: nil, status: nil,
                          message: "the server's SHA-256 checksum \(checksum) does not match the bytes sent (\(expected))",
                          hint: "the object may be corrupt; upload again", isTransient: false, kind: .s3)
        }
    }

    private func multipartUpload(_ cancel: CancelFlag) throws -> Result {
        try sessions.withSession { session in try multipartUpload(cancel, session: session) }
    }

    private func multipartUpload(_ cancel: CancelFlag, session: CurlSession) throws -> Result {
        var createHeaders = headers
        if checksum { createHeaders.append(("x-amz-checksum-algorithm", "SHA256")) }
        let created = try client.send("CreateMultipartUpload s3://\(bucket)/\(key)", method: "POST", bucket: bucket, key: key,
                                      query: [("uploads", "")], headers: createHeaders, session: session, isCancelled: cancel.isSet)
        guard let uploadID = XMLText.value(of: "UploadId", in: created.body) else {
            throw S3Error(operation: "CreateMultipartUpload", code: nil, status: created.status, message: "no UploadId in the response",
                          hint: nil, isTransient: false)
        }
        var finished = false
        do {
            let parts = try uploadParts(uploadID: uploadID, cancel: cancel)
            if cancel.isSet() { throw CancellationError() }
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for part in parts {
                xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\"\(XMLText.escape(part.etag))\"</ETag>"
                if let sum = part.checksum { xml += "<ChecksumSHA256>\(sum)</ChecksumSHA256>" }
                xml += "</Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let completed = try client.send("CompleteMultipartUpload s3://\(bucket)/\(key)", method: "POST", bucket: bucket, key: key,
                                            query: [("uploadId", uploadID)], headers: [("Content-Type", "application/xml")] + conditional(),
                                            body: .bytes(Array(xml.utf8)), session: session, isCancelled: cancel.isSet)
            finished = true
            let etag = (XMLText.value(of: "ETag", in: completed.body) ?? completed.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
            if Self.etagIsMD5(completed) {
                try verify(multipartETag: etag, parts: parts.count)
                if !checksum { try verify(etag: etag, expected: S3Digests.multipartETag(partMD5s: parts.compactMap(\.md5))) }
            }
            if checksum {
                // S3's checksum of a multipart object: SHA-256 of the parts' SHA-256s, "-", part count.
                let composite = S3Digests.compositeChecksum(partChecksums: parts.compactMap(\.checksum))
                try verify(checksum: XMLText.value(of: "ChecksumSHA256", in: completed.body), expected: composite)
            }
            return Result(etag: etag, versionID: completed.header("x-amz-version-id"))
        } catch {
            // After a completed upload there is nothing to abort: the object is there,
            // and the error (a checksum the server reports otherwise) says to check it.
            guard !finished else { throw error }
            if let problem = abort(uploadID: uploadID, session: session), var failure = error as? S3Error {
                // Said with the failure, so that it reaches the user whoever logs it.
                failure.hint = (failure.hint.map { $0 + "; " } ?? "") + problem
                throw failure
            }
            throw error
        }
    }

    /// Best effort, with the client's retries: a failed abort is logged and returned,
    /// for the failure's message; the original error is what the user sees.
    @discardableResult
    private func abort(uploadID: String, session: CurlSession) -> String? {
        do {
            let budget = min(Self.abortBudget, client.configuration.retryBudget)
            _ = try client.send("AbortMultipartUpload s3://\(bucket)/\(key)", method: "DELETE", bucket: bucket, key: key,
                                query: [("uploadId", uploadID)], deadline: .now + budget, session: session, isCancelled: { false })
            context.logger.info("aborted multipart upload \(uploadID) of s3://\(bucket)/\(key)")
            return nil
        } catch let error as S3Error where error.code == "NoSuchUpload" {
            // Gone already: completed just before the cancellation arrived (the object
            // is whole), or aborted. Nothing remains either way.
            context.logger.info("multipart upload \(uploadID) of s3://\(bucket)/\(key) had already ended (\(error.code ?? "")); no parts remain")
            return nil
        } catch {
            let problem = "could not abort multipart upload \(uploadID) of s3://\(bucket)/\(key) (\(ErrorDescription.readable(error))); "
                + "its parts may remain: list them with ListMultipartUploads and abort them"
            context.logger.error("\(problem)")
            return problem
        }
    }

    struct Part: Sendable {
        var number: Int
        var etag: String
        var md5: [UInt8]?
        var checksum: String?
    }

    private func uploadParts(uploadID: String, cancel: CancelFlag) throws -> [Part] {
        let count = (bytes.count + partSize - 1) / partSize
        let state = PartState(count: count)
        let progress = UploadProgress(total: bytes.count, context: context)
        let workers = min(concurrency, count)
        Blocking.parallel(workers) { _ in
            do {
                try sessions.withSession { session in
                    try uploadParts(uploadID: uploadID, count: count, state: state, progress: progress, session: session, cancel: cancel)
                }
            } catch {
                state.fail(error)
                cancel.set()
            }
        }
        if let error = state.error { throw error }
        if cancel.isSet() { throw CancellationError() }
        return state.parts.sorted { $0.number < $1.number }
    }

    /// One part worker: uploads parts with `session` until none is left.
    private func uploadParts(uploadID: String, count: Int, state: PartState, progress: UploadProgress, session: CurlSession,
                             cancel: CancelFlag) throws {
        while let index = state.next(), !cancel.isSet() {
            let range = (index * partSize)..<min(bytes.count, (index + 1) * partSize)
            var headers: [(name: String, value: String)] = []
            let digests = bytes.withUnsafeBytes { S3Digests.forRequest(UnsafeRawBufferPointer(rebasing: $0[range]), checksum: checksum) }
            if let sum = digests.checksum { headers.append(("x-amz-checksum-sha256", sum)) }
            let response = try client.send("UploadPart \(index + 1)/\(count) of s3://\(bucket)/\(key)", method: "PUT", bucket: bucket,
                                           key: key, query: [("partNumber", String(index + 1)), ("uploadId", uploadID)],
                                           headers: headers, body: .shared(bytes, range), payloadHash: digests.payloadHash,
                                           session: session, isCancelled: cancel.isSet,
                                           bodySent: { progress.update(part: index, sent: $0) })
            let etag = (response.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
            try verify(checksum: response.header("x-amz-checksum-sha256"), expected: digests.checksum)
            state.finish(Part(number: index + 1, etag: etag, md5: digests.md5, checksum: digests.checksum))
            progress.update(part: index, sent: Int64(range.count))
        }
    }
}

/// Shared bookkeeping of the part workers.
final class PartState: @unchecked Sendable {
    private let lock = NSLock()
    private let count: Int
    private var nextIndex = 0
    private(set) var parts: [S3Upload.Part] = []
    private(set) var error: (any Error)?

    init(count: Int) {
        self.count = count
    }

    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard error == nil, nextIndex < count else { return nil }
        nextIndex += 1
        return nextIndex - 1
    }

    func finish(_ part: S3Upload.Part) {
        lock.lock()
        defer { lock.unlock() }
        parts.append(part)
    }

    func fail(_ error: any Error) {
        lock.lock()
        if self.error == nil { self.error = error }
        lock.unlock()
    }
}

/// The bytes an upload's requests have sent, reported to the stage as one fraction
/// of the object, at most once per percent. Each part's count only grows: a retried
/// part counts again only past what its earlier attempt sent, so the fraction never
/// goes back.
final class UploadProgress: @unchecked Sendable {
    private let lock = NSLock()
    private var sent: [Int: Int64] = [:]
    private let counter: RowProgress

    init(total: Int, context: StageContext) {
        counter = RowProgress(total: total, report: { context.reportProgress($0) })
    }

    /// Part `part` (0 for a single PUT) has sent `bytes` of its body so far.
    func update(part: Int, sent bytes: Int64) {
        lock.lock()
        let grown = bytes - (sent[part] ?? 0)
        if grown > 0 { sent[part] = bytes }
        lock.unlock()
        if grown > 0 { counter.add(Int(grown)) }
    }
}
