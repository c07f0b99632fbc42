internal import CCurl
import Foundation
import Framework

/// A request body: bytes of its own, a range of shared bytes (a part of an
/// artifact), or shared bytes one after the other (buffers of a streamed upload),
/// sent without a copy.
public enum HTTPBody: Sendable {
    case bytes([UInt8])
    case shared(SharedBytes, Range<Int>)
    case segments([SharedBytes])

    public var count: Int {
        switch self {
        case .bytes(let bytes): bytes.count
        case .shared(_, let range): range.count
        case .segments(let segments): segments.reduce(0) { $0 + $1.count }
        }
    }

    /// The bytes in one piece: for `segments`, a copy (pass the payload hash to avoid it).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .bytes(let bytes): return try bytes.withUnsafeBytes(body)
        case .shared(let shared, let range):
            return try shared.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
        case .segments(let segments):
            return try segments.flatMap { $0 }.withUnsafeBytes(body)
        }
    }

    /// Copies `count` bytes from `offset` on to `destination`, without joining segments.
    func copy(from offset: Int, count: Int, to destination: UnsafeMutableRawPointer) {
        guard case .segments(let segments) = self else {
            withUnsafeBytes { destination.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
            return
        }
        var skip = offset, written = 0
        for segment in segments where written < count {
            if skip >= segment.count { skip -= segment.count; continue }
            let size = min(segment.count - skip, count - written)
            segment.withUnsafeBytes { (destination + written).copyMemory(from: $0.baseAddress! + skip, byteCount: size) }
            written += size
            skip = 0
        }
    }
}

/// An HTTP request for `CurlSession`.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// Header fields in the order they are sent.
    public var headers: [(name: String, value: String)]
    public var body: HTTPBody?
    /// Limit for the whole transfer, connecting included (libcurl's CURLOPT_TIMEOUT_MS):
    /// callers with a deadline pass what is left of it.
    public var timeout: Duration
    public var connectTimeout: Duration
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` is abandoned.
    public var lowSpeedLimit: Int = 1024
    public var lowSpeedTime: Duration = .seconds(30)
    /// Polled during the transfer; returning true aborts it (cancellation, timeouts).
    public var isCancelled: (@Sendable () -> Bool)?
    /// Called during the transfer with the number of body bytes sent so far, when it
    /// grew (from libcurl's progress callback; 0 again if a redirect resends the body).
    public var bodySent: (@Sendable (Int64) -> Void)?

    public init(method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: HTTPBody? = nil,
                timeout: Duration = .seconds(300), connectTimeout: Duration = .seconds(10)) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
    }
}

/// A response: any status, including 4xx and 5xx, is a response, not an error.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header fields of the final response, names lower-cased.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }
}

/// A transfer that did not produce a response: curl's code and message, and what
/// went wrong in terms a user can act on.
public struct CurlError: Error, Sendable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var url: String
    public var failure: Failure

    /// The ways a transfer fails that call for different advice.
    public enum Failure: Sendable, Hashable {
        /// The host name did not resolve (DNS).
        case cannotResolve
        /// Nothing listens on the port: the connection was refused.
        case refused
        /// No connection within the connect timeout (or the system's).
        case connectTimedOut(Duration)
        /// Connected, then no data moved for `idle`; `receivedNothing` when the server
        /// never sent a byte of a response.
        case stalled(idle: Duration, receivedNothing: Bool)
        /// Data was moving, but the transfer did not end within its time limit.
        case timedOut(Duration)
        /// The caller's `isCancelled` said stop.
        case aborted
        /// Anything else (a reset connection, a TLS problem, a malformed URL): curl's message says it.
        case other
    }

    public init(code: Int, message: String, url: String, failure: Failure = .other) {
        self.code = code
        self.message = message
        self.url = url
        self.failure = failure
    }

    /// Connection failures and timeouts, which a retry may overcome.
    public var isTransient: Bool {
        [CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING,
         CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST].map { Int($0.rawValue) }.contains(code)
    }

    /// `host[:port]` of the URL.
    public var host: String { Self.host(of: url) }

    /// What happened, in a sentence fragment: "the server at HOST sent nothing within 3.0 s".
    public var summary: String {
        switch failure {
        case .cannotResolve: "cannot resolve the host name of \(host)"
        case .refused: "connection refused"
        case .connectTimedOut(let limit): "no connection to \(host) within \(Self.seconds(limit))"
        case .stalled(let idle, true): "the server at \(host) accepted the connection but sent nothing within \(Self.seconds(idle))"
        case .stalled(let idle, false): "the server at \(host) stopped responding (no data for \(Self.seconds(idle)))"
        case .timedOut(let limit): "the transfer with \(host) did not finish within \(Self.seconds(limit))"
        case .aborted: "the transfer was cancelled"
        case .other: message
        }
    }

    public var description: String { "\(summary) (\(url))" }

    static func host(of url: String) -> String {
        let rest = url.range(of: "://").map { url[$0.upperBound...] } ?? url[...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return String(authority.split(separator: "@").last ?? authority)
    }

    /// `3.0 s` below ten seconds, `30 s` above.
    static func seconds(_ duration: Duration) -> String {
        let value = Double(duration.milliseconds) / 1000
        if value < 10 { return String(Double((value * 10).rounded()) / 10) + " s" }
        return "\(Int(value.rounded())) s"
    }

    /// Names a failed transfer from curl's code, whether the connection was made
    /// (`connected`), the system's error number, how long no data moved (`idle`),
    /// whether any response byte came (`receivedAny`), how long the attempt ran
    /// (`elapsed`) and its connect timeout.
    static func classify(
        code: Int, osErrno: Int, connected: Bool, idle: Duration, receivedAny: Bool, elapsed: Duration, connectTimeout: Duration
    ) -> Failure {
        switch code {
        case Int(CURLE_COULDNT_RESOLVE_HOST.rawValue), Int(CURLE_COULDNT_RESOLVE_PROXY.rawValue):
            return .cannotResolve
        case Int(CURLE_COULDNT_CONNECT.rawValue):
            if osErrno == Int(ECONNREFUSED) { return .refused }
            if osErrno == Int(ETIMEDOUT) { return .connectTimedOut(elapsed) }
            return .other
        case Int(CURLE_OPERATION_TIMEDOUT.rawValue):
            guard connected else { return .connectTimedOut(min(elapsed, connectTimeout)) }
            // Data moving until shortly before the limit: slow, not stalled.
            return idle >= .seconds(1) || !receivedAny ? .stalled(idle: idle, receivedNothing: !receivedAny) : .timedOut(elapsed)
        case Int(CURLE_ABORTED_BY_CALLBACK.rawValue):
            return .aborted
        default:
            return .other
        }
    }
}

/// One libcurl easy handle, reused across requests so connections are kept alive.
///
/// Not thread-safe: use one session per task. TLS peers are verified (libcurl's
/// default) and the standard proxy variables are honoured (libcurl reads them).
public final class CurlSession {
    private let handle: UnsafeMutableRawPointer

    public init() throws {
        var message = [CChar](repeating: 0, count: 256)
        guard CCurl_load(&message, message.count) == 0 else {
            throw CurlError(code: -1, message: String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), url: "")
        }
        guard let handle = CCurl_easy_init() else {
            throw CurlError(code: -1, message: "cannot create a curl handle", url: "")
        }
        self.handle = handle
    }

    deinit {
        CCurl_easy_cleanup(handle)
    }

    /// State the C callbacks read and write, reached through their context pointer.
    private final class Transfer {
        let body: HTTPBody?
        var offset = 0
        var received: [UInt8] = []
        var headers: [(name: String, value: String)] = []
        var isCancelled: (@Sendable () -> Bool)?
        var bodySent: (@Sendable (Int64) -> Void)?
        var uploaded: Int64 = 0
        /// Whether any byte of a response arrived, or any of the request left.
        var receivedAny = false
        var sentAny = false
        /// When data last moved either way, and the byte counts it was judged by.
        var lastActivity = ContinuousClock.now
        var bytesMoved: Int64 = 0

        init(body: HTTPBody?) {
            self.body = body
        }

        func moved(_ total: Int64) {
            if total != bytesMoved {
                bytesMoved = total
                lastActivity = .now
            }
        }
    }

    public func perform(_ request: HTTPRequest) throws -> HTTPResponse {
        // Every perform resets the handle when it ends (below); this one is a safeguard.
        CCurl_easy_reset(handle)
        let transfer = Transfer(body: request.body)
        transfer.isCancelled = request.isCancelled
        transfer.bodySent = request.bodySent
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { CCurl_slist_free_all(headerList) }
        // The handle points at this call's error buffer, header list and transfer: it
        // forgets them before they go, so that nothing it does between requests (a
        // pooled session's connection closing) touches freed memory. Its connections stay.
        defer { CCurl_easy_reset(handle) }

        func check(_ code: CURLcode) throws {
            if code != CURLE_OK {
                throw CurlError(code: Int(code.rawValue), message: String(cString: CCurl_easy_strerror(code)), url: request.url)
            }
        }

        try errorBuffer.withUnsafeMutableBufferPointer { errors in
            try check(CCurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errors.baseAddress))
            try check(CCurl_setopt_string(handle, CURLOPT_URL, request.url))
            // The path goes out as written (and as signed): never with ./.. resolved.
            try check(CCurl_setopt_long(handle, CURLOPT_PATH_AS_IS, 1))
            try check(CCurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
            try check(CCurl_setopt_cloexec_sockets(handle))
            try check(CCurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(request.timeout.milliseconds)))
            try check(CCurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout.milliseconds)))
            try check(CCurl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, request.lowSpeedLimit))
            // Whole seconds, rounded up: 2.99 s left of a budget must not become a 2 s limit.
            try check(CCurl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, Int((request.lowSpeedTime.milliseconds + 999) / 1000))))
            try check(CCurl_setopt_callback(handle, CURLOPT_WRITEFUNCTION, { data, size, count, context in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                let bytes = size * count
                transfer.receivedAny = true
                data.map { transfer.received.append(contentsOf: UnsafeRawBufferPointer(start: $0, count: bytes)) }
                return bytes
            }))
            try check(CCurl_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
            try check(CCurl_setopt_callback(handle, CURLOPT_HEADERFUNCTION, { data, size, count, context in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                let bytes = size * count
                transfer.receivedAny = true
                guard let data else { return bytes }
                let line = String(decoding: UnsafeRawBufferPointer(start: data, count: bytes), as: UTF8.self)
                if line.hasPrefix("HTTP/") {
                    transfer.headers = []  // a new response (after 100 Continue or a redirect)
                } else if let colon = line.firstIndex(of: ":") {
                    let name = line[..<colon].lowercased()
                    let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                    transfer.headers.append((name, value))
                }
                return bytes
            }))
            try check(CCurl_setopt_pointer(handle, CURLOPT_HEADERDATA, context))
            // The progress callback runs at least about once a second, data or not: it
            // notes when data last moved (to tell a stalled server from a slow one)
            // and aborts the transfer when the caller asks.
            try check(CCurl_setopt_progress(handle, { context, _, downloaded, _, uploaded in
                let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                transfer.moved(Int64(downloaded) + Int64(uploaded))
                if let report = transfer.bodySent, Int64(uploaded) != transfer.uploaded {
                    transfer.uploaded = Int64(uploaded)
                    report(Int64(uploaded))
                }
                return transfer.isCancelled?() == true ? 1 : 0
            }))
            try check(CCurl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context))
            try check(CCurl_setopt_long(handle, CURLOPT_NOPROGRESS, 0))

            let method = request.method.uppercased()
            if request.body != nil {
                try check(CCurl_setopt_callback(handle, CURLOPT_READFUNCTION, { buffer, size, count, context in
                    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
                    guard let body = transfer.body else { return 0 }
                    let length = min(size * count, body.count - transfer.offset)
                    if length > 0, let buffer {
                        body.copy(from: transfer.offset, count: length, to: UnsafeMutableRawPointer(buffer))
                    }
                    transfer.offset += length
                    if length > 0 { transfer.sentAny = true }
                    return length
                }))
                try check(CCurl_setopt_pointer(handle, CURLOPT_READDATA, context))
                // Large reads from the body: fewer, bigger writes to the socket.
                try check(CCurl_setopt_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 2 << 20))
                if method == "POST" {
                    try check(CCurl_setopt_long(handle, CURLOPT_POST, 1))
                    try check(CCurl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body?.count ?? 0)))
                } else {
                    try check(CCurl_setopt_long(handle, CURLOPT_UPLOAD, 1))
                    try check(CCurl_setopt_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body?.count ?? 0)))
                    if method != "PUT" { try check(CCurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)) }
                }
            } else if method == "HEAD" {
                try check(CCurl_setopt_long(handle, CURLOPT_NOBODY, 1))
            } else if method != "GET" {
                try check(CCurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method))
            }

            for (name, value) in request.headers {
                headerList = CCurl_slist_append(headerList, "\(name): \(value)")
            }
            // No "Expect: 100-continue" round trip unless the caller asks for it.
            if !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
                headerList = CCurl_slist_append(headerList, "Expect:")
            }
            try check(CCurl_setopt_headers(handle, headerList))

            let started = ContinuousClock.now
            transfer.lastActivity = started
            let code = CCurl_easy_perform(handle)
            if code != CURLE_OK {
                let detail = String(cString: errors.baseAddress!)
                let now = ContinuousClock.now
                var osErrno = 0, connectTime = 0.0, pretransferTime = 0.0
                _ = CCurl_getinfo_long(handle, CURLINFO_OS_ERRNO, &osErrno)
                _ = CCurl_getinfo_double(handle, CURLINFO_CONNECT_TIME, &connectTime)
                _ = CCurl_getinfo_double(handle, CURLINFO_PRETRANSFER_TIME, &pretransferTime)
                let connected = connectTime > 0 || pretransferTime > 0 || transfer.sentAny || transfer.receivedAny
                let failure = CurlError.classify(
                    code: Int(code.rawValue), osErrno: osErrno, connected: connected, idle: now - transfer.lastActivity,
                    receivedAny: transfer.receivedAny, elapsed: now - started, connectTimeout: request.connectTimeout)
                throw CurlError(code: Int(code.rawValue), message: detail.isEmpty ? String(cString: CCurl_easy_strerror(code)) : detail,
                                url: request.url, failure: failure)
            }
        }
        var status = 0
        try check(CCurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status))
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.received)
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
