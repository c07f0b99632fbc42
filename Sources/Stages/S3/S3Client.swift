import Crypto
import Foundation
import Framework

/// An S3 error a user can act on: the operation, S3's code and message, and a hint.
public struct S3Error: Error, Sendable, CustomStringConvertible {
    public var operation: String
    /// S3's error code (`NoSuchBucket`), or nil for transport errors.
    public var code: String?
    public var status: Int?
    public var message: String
    public var hint: String?
    /// Whether retrying could help.
    public var isTransient: Bool
    /// The `PipelineError` code, when neither S3's code nor the status says it (a
    /// credential problem found before sending, bytes the server reports otherwise).
    public var kind: PipelineError.Code? = nil

    public var description: String {
        var text = "\(operation) failed: \(message)"
        if let code { text += " (\(code)\(status.map { ", HTTP \($0)" } ?? ""))" }
        if let hint { text += "; \(hint)" }
        return text
    }
}

/// Where and how to reach S3, and how hard to try.
public struct S3Configuration: Sendable {
    /// `http(s)://host[:port]`, or nil for AWS (`https://s3.REGION.amazonaws.com`).
    public var endpoint: String?
    public var region: String
    /// Path-style (`endpoint/bucket/key`) rather than virtual-hosted (`bucket.endpoint/key`).
    public var pathStyle: Bool
    /// Attempts per request (1 = no retries).
    public var maxAttempts: Int = 5
    /// Backoff: full jitter over min(cap, base * 2^attempt).
    public var backoffBase: Duration = .milliseconds(100)
    public var backoffCap: Duration = .seconds(5)
    /// The deadline of one logical request: all its attempts, the backoff waits
    /// between them and each attempt's transfer end within this time (see
    /// `S3RequestDeadline`). A request that needs longer fails, so a body must go
    /// out within it too: at the default 60 s and the default 16 MiB multipart
    /// threshold, at about 300 KB/s or faster.
    public var retryBudget: Duration = .seconds(60)
    /// Each attempt's limits, further capped at what is left of the budget.
    public var connectTimeout: Duration = .seconds(10)
    public var requestTimeout: Duration = .seconds(600)
    /// An attempt during which no data moves for this long is abandoned (the server stalled).
    public var lowSpeedTime: Duration = .seconds(30)

    /// `endpoint`, or AWS's endpoint for `region` when there is none.
    public var resolvedEndpoint: String {
        endpoint ?? "https://s3.\(region).amazonaws.com"
    }

    public init(endpoint: String?, region: String, pathStyle: Bool) {
        self.endpoint = endpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.region = region
        self.pathStyle = pathStyle
    }
}

/// The S3 requests the sink needs, signed with SigV4 and retried with backoff and full
/// jitter on throttling, 5xx and connection errors; never on errors a retry cannot fix.
/// One `CurlSession` per task: pass the session of the calling task.
public struct S3Client: Sendable {
    public let configuration: S3Configuration
    public let credentials: AWSCredentialChain

    public init(configuration: S3Configuration, credentials: AWSCredentialChain) {
        self.configuration = configuration
        self.credentials = credentials
    }

    /// Scheme, host (with port) and path prefix for a bucket.
    func target(bucket: String, key: String) -> (url: String, host: String, path: String) {
        let base = configuration.resolvedEndpoint
        let schemeEnd = base.range(of: "://")?.upperBound ?? base.startIndex
        let scheme = String(base[..<schemeEnd])
        let authority = String(base[schemeEnd...])
        let objectPath = key.isEmpty ? "" : "/" + key
        if configuration.pathStyle || bucket.contains(".") {  // dotted names break the TLS wildcard of virtual hosts
            return (scheme + authority, authority, "/" + bucket + objectPath)
        }
        return (scheme + bucket + "." + authority, bucket + "." + authority, objectPath.isEmpty ? "/" : objectPath)
    }

    /// Sends one signed request with retries; returns a 2xx response or throws S3Error.
    ///
    /// The request ends within `configuration.retryBudget`, or by `deadline` if that
    /// comes first: every attempt's timeouts are capped at the time left, and no retry
    /// starts that could not run. Runs on the caller's thread and blocks it: call it
    /// from a thread of its own (`Blocking.run`), passing its flag as `isCancelled`,
    /// which aborts a transfer within about a second and ends the backoff waits.
    /// `bodySent` receives the body bytes sent so far by the current attempt (each
    /// retry starts again from 0).
    public func send(
        _ operation: String, method: String, bucket: String, key: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [], body: HTTPBody? = nil, payloadHash: String? = nil,
        deadline: ContinuousClock.Instant? = nil,
        session: CurlSession, isCancelled: @escaping @Sendable () -> Bool = { Task.isCancelled },
        bodySent: (@Sendable (Int64) -> Void)? = nil
    ) throws -> HTTPResponse {
        let (base, host, path) = target(bucket: bucket, key: key)
        let hash = payloadHash ?? body.map { $0.withUnsafeBytes(SigV4.payloadHash) } ?? SigV4.emptyPayloadHash
        let clock = ContinuousClock()
        let start = clock.now
        let limit = S3RequestDeadline(start: start, budget: configuration.retryBudget, limit: deadline)
        var attempt = 0
        /// The attempt's limits from now on, or the error of a request out of time.
        func attemptLimits() throws -> (timeout: Duration, connectTimeout: Duration, lowSpeedTime: Duration) {
            guard let limits = limit.attemptLimits(at: clock.now, configuration: configuration) else {
                throw S3Error(operation: operation, code: nil, status: nil,
                              message: "no time was left to send the request (its time budget is \(CurlError.seconds(configuration.retryBudget)))",
                              hint: nil, isTransient: true)
            }
            return limits
        }
        while true {
            _ = try attemptLimits()
            attempt += 1
            let failure: S3Error
            do {
                let creds = try credentials.credentials(deadline: limit.end, isCancelled: isCancelled)
                let request = SigV4.Request(method: method, host: host, path: path, query: query, headers: headers, payloadHash: hash)
                let signed = SigV4.sign(request, credentials: creds, region: configuration.region)
                // Measured after the credentials, which may have taken a request of their own.
                let limits = try attemptLimits()
                var http = HTTPRequest(
                    method: method, url: base + request.encodedTarget, headers: signed, body: body ?? (method == "PUT" || method == "POST" ? .bytes([]) : nil),
                    timeout: limits.timeout, connectTimeout: limits.connectTimeout)
                http.lowSpeedTime = limits.lowSpeedTime
                http.isCancelled = isCancelled
                http.bodySent = bodySent
                let response = try session.perform(http)
                if (200..<300).contains(response.status), !Self.isErrorDocument(response) {
                    return response
                }
                failure = Self.error(operation, response: response, bucket: bucket, key: key, region: configuration.region, credentials: creds)
            } catch let error as CurlError where isCancelled() || error.failure == .aborted {
                throw CancellationError()
            } catch let error as CurlError {
                failure = Self.transportError(operation, error, base: base)
            } catch let error as AWSCredentialError {
                // An endpoint that hiccuped is tried again like any transfer; missing
                // or malformed credentials are not.
                let converted = S3Error(operation: operation, code: nil, status: nil, message: error.message, hint: nil,
                                        isTransient: error.isTransient, kind: error.isTransient ? .network : .credentials)
                guard error.isTransient else { throw converted }
                failure = converted
            }
            if isCancelled() { throw CancellationError() }
            // Full jitter: a uniform wait in [0, min(cap, base * 2^attempt)], shortened
            // to leave the next attempt some time before the deadline.
            let now = clock.now
            let ceiling = min(configuration.backoffCap.seconds, configuration.backoffBase.seconds * Double(1 << min(attempt, 20)))
            let wait = min(Duration.milliseconds(Int64(Double.random(in: 0...ceiling) * 1000)),
                           max(.zero, limit.remaining(at: now) - S3RequestDeadline.shortestAttempt))
            let inTime = limit.allowsRetry(after: wait, at: now)
            guard failure.isTransient, attempt < configuration.maxAttempts, inTime else {
                var final = failure
                if failure.isTransient && !inTime && attempt < configuration.maxAttempts {
                    let attempts = attempt == 1 ? "1 attempt" : "\(attempt) attempts"
                    final.message += " (after \(attempts) in \(CurlError.seconds(now - start)), the request's time budget)"
                } else if failure.isTransient && attempt > 1 {
                    final.message += " (after \(attempt) attempts)"
                }
                throw final
            }
            try Self.sleep(wait, isCancelled: isCancelled)
        }
    }

    /// Waits `duration` in short slices, throwing `CancellationError` soon after
    /// `isCancelled` turns true.
    static func sleep(_ duration: Duration, isCancelled: () -> Bool) throws {
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end {
            if isCancelled() { throw CancellationError() }
            Thread.sleep(forTimeInterval: min(0.05, (end - ContinuousClock.now).seconds))
        }
        if isCancelled() { throw CancellationError() }
    }

    /// A transfer that got no response, worded by what happened: a server that
    /// stalled was reached, one that refused or did not resolve was not.
    static func transportError(_ operation: String, _ error: CurlError, base: String) -> S3Error {
        let message: String
        let hint: String?
        switch error.failure {
        case .stalled, .timedOut:
            message = error.summary
            hint = "the server, or a proxy on the way, may be overloaded or hung; check the endpoint"
        case .refused, .cannotResolve, .connectTimedOut:
            message = "cannot reach \(base): \(error.summary)"
            hint = "check the endpoint and the network"
        case .aborted, .other:
            message = "the connection to \(base) failed: \(error.message)"
            hint = error.isTransient ? "check the endpoint and the network" : nil
        }
        return S3Error(operation: operation, code: nil, status: nil, message: message, hint: hint, isTransient: error.isTransient)
    }

    /// S3 can answer 200 to CompleteMultipartUpload with an error document.
    static func isErrorDocument(_ response: HTTPResponse) -> Bool {
        response.body.count < 4096 && XMLText.value(of: "Code", in: response.body) != nil
            && String(decoding: response.body.prefix(200), as: UTF8.self).contains("<Error>")
    }

    static let transientCodes: Set<String> = ["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "RequestLimitExceeded"]

    static func error(_ operation: String, response: HTTPResponse, bucket: String, key: String, region: String,
                      credentials: AWSCredentials) -> S3Error {
        let code = XMLText.value(of: "Code", in: response.body)
        let serverMessage = XMLText.value(of: "Message", in: response.body)
        let transient = response.status >= 500 || response.status == 429 || code.map(transientCodes.contains) ?? false
        var message = serverMessage ?? "HTTP \(response.status)"
        var hint: String?
        switch code {
        case "NoSuchBucket":
            message = "bucket '\(bucket)' does not exist"
            hint = "create it, or check the stage's 'bucket' (and 'endpoint')"
        case "AccessDenied":
            message = "access denied to s3://\(bucket)/\(key)"
            hint = "the credentials of access key \(credentials.accessKeyID) need s3:PutObject (and the multipart actions) on it"
        case "InvalidAccessKeyId":
            message = "the server does not know access key \(credentials.accessKeyID)"
            hint = "check AWS_ACCESS_KEY_ID or the profile, and that 'endpoint' is the right server"
        case "SignatureDoesNotMatch":
            message = "the server computed a different request signature"
            hint = "the secret key may be wrong, or the region ('\(region)') may not be the bucket's, or the clock may be off"
        case "RequestTimeTooSkewed":
            message = "this machine's clock differs from the server's by more than 15 minutes"
            hint = "set the clock right (NTP)"
        case "PreconditionFailed":
            message = "s3://\(bucket)/\(key) already exists"
            hint = "set 'overwrite: true' to replace it"
        case "EntityTooSmall":
            hint = "parts but the last must be at least 5 MiB; raise 'part_size'"
        default:
            if code == nil && response.status == 412 {
                message = "s3://\(bucket)/\(key) already exists"
                hint = "set 'overwrite: true' to replace it"
            } else if code == nil && response.status == 404 {
                message = "not found (HTTP 404)"
                hint = "check 'bucket' and 'endpoint'"
            }
        }
        return S3Error(operation: operation, code: code, status: response.status, message: message, hint: hint, isTransient: transient)
    }
}

/// The few XML values S3 responses carry (`<UploadId>`, `<ETag>`, `<Code>`): S3's XML
/// is flat enough that the first element of a name is the one wanted.
enum XMLText {
    static func value(of element: String, in body: [UInt8]) -> String? {
        let text = String(decoding: body, as: UTF8.self)
        guard let open = text.range(of: "<\(element)>"), let close = text.range(of: "</\(element)>", range: open.upperBound..<text.endIndex) else {
            return nil
        }
        return unescape(String(text[open.upperBound..<close.lowerBound]))
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// Digests S3 uses for integrity.
enum S3Digests {
    static func md5Hex(_ bytes: UnsafeRawBufferPointer) -> String {
        SigV4.hex(Insecure.MD5.hash(data: bytes))
    }

    static func md5(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        Array(Insecure.MD5.hash(data: bytes))
    }

    static func sha256Base64(_ bytes: UnsafeRawBufferPointer) -> String {
        Data(SHA256.hash(data: bytes)).base64EncodedString()
    }

    /// The digests one upload request needs: the payload hash that is signed
    /// (SHA-256, hex) and, from the same hash, the checksum S3 verifies (base64); or,
    /// without a checksum, the MD5 the returned ETag is checked against instead. The
    /// MD5 is a second full pass over the bytes, slower than the SHA-256 itself, and
    /// adds nothing when S3 already verifies a SHA-256 of them.
    struct Request {
        var payloadHash: String
        var checksum: String?
        var md5: [UInt8]?
    }

    static func forRequest(_ bytes: UnsafeRawBufferPointer, checksum: Bool) -> Request {
        forRequest(sha256: Array(SHA256.hash(data: bytes)), md5: checksum ? nil : md5(bytes), checksum: checksum)
    }

    /// The same from digests computed elsewhere (as the bytes streamed by): the body's
    /// SHA-256 and, without a checksum, its MD5.
    static func forRequest(sha256: [UInt8], md5: [UInt8]?, checksum: Bool) -> Request {
        Request(payloadHash: SigV4.hex(sha256), checksum: checksum ? Data(sha256).base64EncodedString() : nil, md5: checksum ? nil : md5)
    }

    /// The checksum S3 gives a multipart object: base64 SHA-256 of the parts' binary
    /// SHA-256s, "-", part count.
    static func compositeChecksum(partChecksums: [String]) -> String {
        let joined = partChecksums.flatMap { Data(base64Encoded: $0).map(Array.init) ?? [] }
        return Data(SHA256.hash(data: joined)).base64EncodedString() + "-\(partChecksums.count)"
    }

    /// The ETag S3 gives a multipart object: MD5 of the parts' MD5s, "-", part count.
    static func multipartETag(partMD5s: [[UInt8]]) -> String {
        let joined = partMD5s.flatMap { $0 }
        return joined.withUnsafeBytes { md5Hex($0) } + "-\(partMD5s.count)"
    }
}
