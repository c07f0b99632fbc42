import Foundation
import Framework

/// One upload: a single PUT, or a multipart upload whose parts go out concurrently
/// on threads of their own (transfers block), each with its own connection, taken
/// from `sessions` (by default the process's shared pool, so that one upload after
/// another reuses kept-alive connections; the artifact store passes its own). A multipart upload that fails or
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
public struct S3Upload: S3ObjectRequests {
    /// The most time the best-effort abort of a failed multipart upload may take.
    public static let abortBudget: Duration = .seconds(10)

    let target: S3ObjectTarget
    let bytes: SharedBytes
    let concurrency: Int

    public init(client: S3Client, bucket: String, key: String, bytes: SharedBytes, headers: [(name: String, value: String)],
                checksum: Bool, overwrite: Bool, partSize: Int, concurrency: Int, context: StageContext,
                sessions: CurlSessionPool = .shared) {
        target = S3ObjectTarget(client: client, bucket: bucket, key: key, headers: headers, checksum: checksum, overwrite: overwrite,
                                partSize: partSize, context: context, sessions: sessions)
        self.bytes = bytes
        self.concurrency = concurrency
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
        try acceptingOwnOutput(cancel.isSet, existing: existingDigests) {
            multipart ? try multipartUpload(cancel) : try singlePut(cancel)
        }
    }

    /// The digests of these bytes cut the way a stored object was.
    var existingDigests: ExistingObjectDigests {
        let bytes = bytes
        let partSize = partSize
        func ranges(_ parts: Int?) -> [Range<Int>] {
            parts.map { count in (0..<count).map { ($0 * partSize)..<min(bytes.count, ($0 + 1) * partSize) } } ?? [0..<bytes.count]
        }
        return ExistingObjectDigests(
            byteCount: bytes.count,
            sha256s: { parts in bytes.withUnsafeBytes { buffer in ranges(parts).map { S3Digests.sha256Base64(UnsafeRawBufferPointer(rebasing: buffer[$0])) } } },
            md5s: { parts in bytes.withUnsafeBytes { buffer in ranges(parts).map { S3Digests.md5(UnsafeRawBufferPointer(rebasing: buffer[$0])) } } })
    }

    private func singlePut(_ cancel: CancelFlag) throws -> Result {
        try sessions.withSession { session in
            let digests = bytes.withUnsafeBytes { S3Digests.forRequest($0, checksum: checksum) }
            return try putObject(body: .shared(bytes, 0..<bytes.count), digests: digests, md5Hex: { bytes.withUnsafeBytes { S3Digests.md5Hex($0) } },
                                 progress: UploadProgress(total: bytes.count, context: context), session: session, isCancelled: cancel.isSet)
        }
    }

    private func multipartUpload(_ cancel: CancelFlag) throws -> Result {
        try sessions.withSession { session in
            let uploadID = try createMultipartUpload(session: session, isCancelled: cancel.isSet)
            let (parts, completed) = try abortingOnFailure(uploadID: uploadID, session: session) {
                let parts = try uploadParts(uploadID: uploadID, cancel: cancel)
                return (parts, try completeMultipartUpload(uploadID: uploadID, parts: parts, session: session, isCancelled: cancel.isSet))
            }
            // After a completed upload there is nothing to abort: the object is there,
            // and the error (a checksum the server reports otherwise) says to check it.
            return try verifyCompleted(completed, parts: parts)
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
            let digests = bytes.withUnsafeBytes { S3Digests.forRequest(UnsafeRawBufferPointer(rebasing: $0[range]), checksum: checksum) }
            state.finish(try uploadPart(uploadID: uploadID, number: index + 1, of: count, body: .shared(bytes, range), digests: digests,
                                        progress: progress, session: session, isCancelled: cancel.isSet))
        }
    }
}

/// What `acceptingOwnOutput` compares an object that is already there with: the size
/// of the bytes to be written and, cut into the stored object's parts (nil: whole),
/// their SHA-256s (base64) and MD5s; a function gives nil for digests it cannot tell.
struct ExistingObjectDigests {
    var byteCount: Int
    var sha256s: (_ parts: Int?) -> [String]?
    var md5s: (_ parts: Int?) -> [[UInt8]]?
}

/// The requests and checks of uploading one object, whole (`S3Upload`) or streamed
/// (`S3StreamingUpload`): a single PUT, or CreateMultipartUpload, UploadPart and
/// CompleteMultipartUpload, aborted on a failure; with overwrite false, conditional,
/// and an object already there compared with the bytes.
protocol S3ObjectRequests: Sendable {
    var target: S3ObjectTarget { get }
}

/// Where an object goes and how: what the requests of `S3ObjectRequests` are made of.
struct S3ObjectTarget: Sendable {
    let client: S3Client
    let bucket: String
    let key: String
    /// Of the PUT or CreateMultipartUpload: content type, metadata, storage class.
    let headers: [(name: String, value: String)]
    let checksum: Bool
    let overwrite: Bool
    let partSize: Int
    let context: StageContext
    let sessions: CurlSessionPool
}

extension S3ObjectRequests {
    var client: S3Client { target.client }
    var bucket: String { target.bucket }
    var key: String { target.key }
    var headers: [(name: String, value: String)] { target.headers }
    var checksum: Bool { target.checksum }
    var overwrite: Bool { target.overwrite }
    var partSize: Int { target.partSize }
    var context: StageContext { target.context }
    var sessions: CurlSessionPool { target.sessions }

    /// Runs `upload`; when overwrite is false and the object turns out to exist, the
    /// same bytes (a re-run meeting its own output) are a success.
    func acceptingOwnOutput(_ isCancelled: @escaping @Sendable () -> Bool, existing: @autoclosure () -> ExistingObjectDigests,
                            _ upload: () throws -> S3Upload.Result) throws -> S3Upload.Result {
        do {
            return try upload()
        } catch let error as S3Error where !overwrite && (error.status == 412 || error.code == "PreconditionFailed") {
            // The object exists: a re-run that meets its own output is a success.
            return try existingObject(isCancelled, refused: error, digests: existing())
        }
    }

    /// After `If-None-Match: *` was refused: HEAD the object and compare its size and
    /// its SHA-256 checksum (or, when it has none, its MD5 ETag) with the bytes to be
    /// written. The same bytes are the upload's result; other bytes are the "already
    /// exists" error, with a hint quoting the `--set` that replaces the object.
    func existingObject(_ isCancelled: @escaping @Sendable () -> Bool, refused: S3Error, digests: ExistingObjectDigests) throws -> S3Upload.Result {
        let uri = "s3://\(bucket)/\(key)"
        let byteCount = digests.byteCount
        func differs(_ why: String) -> S3Error {
            S3Error(operation: "upload of \(uri)", code: refused.code, status: refused.status,
                    message: "\(uri) already exists and \(why)",
                    hint: "to replace it, run again with --set stages.\(context.stageID).with.overwrite=true "
                        + "(or set 'overwrite: true' in the file)", isTransient: false)
        }
        let response = try sessions.withSession { session in
            try client.send("HeadObject \(uri)", method: "HEAD", bucket: bucket, key: key,
                            headers: [("x-amz-checksum-mode", "ENABLED")], session: session, isCancelled: isCancelled)
        }
        let size = response.header("Content-Length").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard size == byteCount else {
            throw differs("holds \(size.map(String.init) ?? "an unknown number of") bytes, not the \(byteCount) to be written")
        }
        let etag = (response.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
        let parts = Self.partCount(etag) ?? response.header("x-amz-checksum-sha256").flatMap(Self.partCount)
        // A multipart object's digests depend on how it was cut: with a part size other
        // than this stage's, a match cannot be told and the object counts as different.
        // Checked before the part digests are made: a stored object cut into more parts
        // than these bytes make would give ranges past their end.
        if let parts, parts != (byteCount + partSize - 1) / partSize {
            throw differs("was uploaded in \(parts) parts, so its bytes cannot be compared with these")
        }
        let cannotTell = "has digests that cannot be compared with these bytes (they were not computed while streaming)"
        let same: Bool
        if let stored = response.header("x-amz-checksum-sha256") {
            guard let sums = digests.sha256s(parts) else { throw differs(cannotTell) }
            // S3 gives a multipart object's checksum with its "-N"; some servers (moto) without.
            same = parts.map { count in
                let composite = S3Digests.compositeChecksum(partChecksums: sums)
                return stored == composite || stored + "-\(count)" == composite
            } ?? (stored == sums[0])
        } else if Self.etagIsMD5(response), Self.isMD5Shaped(etag) {
            guard let md5s = digests.md5s(parts) else { throw differs(cannotTell) }
            same = etag.lowercased() == (parts == nil ? SigV4.hex(md5s[0]) : S3Digests.multipartETag(partMD5s: md5s))
        } else {
            throw differs("has neither a SHA-256 checksum nor an MD5 ETag to compare its bytes with")
        }
        guard same else { throw differs("holds other bytes of the same size") }
        context.logger.info("\(uri) already holds these \(byteCount) bytes; left as it is")
        context.reportProgress(1)
        return S3Upload.Result(etag: etag, versionID: response.header("x-amz-version-id"))
    }

    /// The part count at the end of a multipart ETag or checksum (`...-3`), else nil.
    static func partCount(_ digest: String) -> Int? {
        guard let dash = digest.lastIndex(of: "-") else { return nil }
        return Int(digest[digest.index(after: dash)...])
    }

    func conditional() -> [(name: String, value: String)] {
        overwrite ? [] : [("If-None-Match", "*")]
    }

    /// PutObject of `body`, whose digests are `digests`; `md5Hex` gives the body's MD5
    /// when the ETag must be checked and `digests` has none.
    func putObject(body: HTTPBody, digests: S3Digests.Request, md5Hex: () -> String, progress: UploadProgress?,
                   session: CurlSession, isCancelled: @escaping @Sendable () -> Bool) throws -> S3Upload.Result {
        var headers = self.headers + conditional()
        if let sum = digests.checksum { headers.append(("x-amz-checksum-sha256", sum)) }
        let response = try client.send("PutObject s3://\(bucket)/\(key)", method: "PUT", bucket: bucket, key: key, headers: headers,
                                       body: body, payloadHash: digests.payloadHash, session: session,
                                       isCancelled: isCancelled, bodySent: progress?.reporter(part: 0))
        let etag = (response.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
        let echoed = response.header("x-amz-checksum-sha256")
        if Self.etagIsMD5(response) {
            if let md5 = digests.md5 {
                try verify(etag: etag, expected: SigV4.hex(md5))
            } else if echoed == nil {
                // The server did not confirm the checksum: check the ETag instead, one
                // MD5 pass over an object below the multipart threshold.
                try verify(etag: etag, expected: md5Hex())
            }
        }
        try verify(checksum: echoed, expected: digests.checksum)
        context.reportProgress(1)
        return S3Upload.Result(etag: etag, versionID: response.header("x-amz-version-id"))
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

    /// CreateMultipartUpload: the new upload's id.
    func createMultipartUpload(session: CurlSession, isCancelled: @escaping @Sendable () -> Bool) throws -> String {
        var createHeaders = headers
        if checksum { createHeaders.append(("x-amz-checksum-algorithm", "SHA256")) }
        let created = try client.send("CreateMultipartUpload s3://\(bucket)/\(key)", method: "POST", bucket: bucket, key: key,
                                      query: [("uploads", "")], headers: createHeaders, session: session, isCancelled: isCancelled)
        guard let uploadID = XMLText.value(of: "UploadId", in: created.body) else {
            throw S3Error(operation: "CreateMultipartUpload", code: nil, status: created.status, message: "no UploadId in the response",
                          hint: nil, isTransient: false)
        }
        return uploadID
    }

    /// UploadPart `number` (of `count`, when known) of `body`, whose digests are `digests`.
    func uploadPart(uploadID: String, number: Int, of count: Int?, body: HTTPBody, digests: S3Digests.Request, progress: UploadProgress?,
                    session: CurlSession, isCancelled: @escaping @Sendable () -> Bool) throws -> S3Upload.Part {
        var headers: [(name: String, value: String)] = []
        if let sum = digests.checksum { headers.append(("x-amz-checksum-sha256", sum)) }
        let response = try client.send("UploadPart \(number)\(count.map { "/\($0)" } ?? "") of s3://\(bucket)/\(key)", method: "PUT",
                                       bucket: bucket, key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                       headers: headers, body: body, payloadHash: digests.payloadHash,
                                       session: session, isCancelled: isCancelled,
                                       bodySent: progress?.reporter(part: number - 1))
        let etag = (response.header("ETag") ?? "").replacingOccurrences(of: "\"", with: "")
        try verify(checksum: response.header("x-amz-checksum-sha256"), expected: digests.checksum)
        progress?.update(part: number - 1, sent: Int64(body.count))
        return S3Upload.Part(number: number, etag: etag, md5: digests.md5, checksum: digests.checksum)
    }

    /// CompleteMultipartUpload of `parts` (in order), conditional with overwrite false.
    func completeMultipartUpload(uploadID: String, parts: [S3Upload.Part], session: CurlSession, isCancelled: @escaping @Sendable () -> Bool) throws -> HTTPResponse {
        if isCancelled() { throw CancellationError() }
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\"\(XMLText.escape(part.etag))\"</ETag>"
            if let sum = part.checksum { xml += "<ChecksumSHA256>\(sum)</ChecksumSHA256>" }
            xml += "</Part>"
        }
        xml += "</CompleteMultipartUpload>"
        return try client.send("CompleteMultipartUpload s3://\(bucket)/\(key)", method: "POST", bucket: bucket, key: key,
                               query: [("uploadId", uploadID)], headers: [("Content-Type", "application/xml")] + conditional(),
                               body: .bytes(Array(xml.utf8)), session: session, isCancelled: isCancelled)
    }

    /// Checks the response of a completed multipart upload: its ETag, and its checksum.
    func verifyCompleted(_ completed: HTTPResponse, parts: [S3Upload.Part]) throws -> S3Upload.Result {
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
        return S3Upload.Result(etag: etag, versionID: completed.header("x-amz-version-id"))
    }

    /// Runs `body`, the part of a multipart upload before it is complete; when it
    /// fails, aborts the upload (best effort) and rethrows, with a failed abort said
    /// in the failure's hint.
    func abortingOnFailure<R>(uploadID: String, session: CurlSession, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch {
            throw aborted(uploadID: uploadID, session: session, after: error)
        }
    }

    /// Aborts the upload after `error` (best effort): `error`, with a failed abort said
    /// in its hint.
    func aborted(uploadID: String, session: CurlSession, after error: any Error) -> any Error {
        guard let problem = abort(uploadID: uploadID, session: session), var failure = error as? S3Error else { return error }
        // Said with the failure, so that it reaches the user whoever logs it.
        failure.hint = (failure.hint.map { $0 + "; " } ?? "") + problem
        return failure
    }

    /// Best effort, with the client's retries: a failed abort is logged and returned,
    /// for the failure's message; the original error is what the user sees.
    @discardableResult
    func abort(uploadID: String, session: CurlSession) -> String? {
        do {
            let budget = min(S3Upload.abortBudget, client.configuration.retryBudget)
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

    /// A request's `bodySent` for part `part` (0 for a single PUT).
    func reporter(part: Int) -> @Sendable (Int64) -> Void {
        { self.update(part: part, sent: $0) }
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
