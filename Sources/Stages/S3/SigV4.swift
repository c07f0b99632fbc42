import Crypto
import Foundation
import Framework

/// AWS credentials. `description` never shows the secret or the session token.
public struct AWSCredentials: Sendable, Hashable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working.
    public var expiration: Date?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String {
        "AWSCredentials(\(accessKeyID), secret: <redacted>\(sessionToken == nil ? "" : ", session token: <redacted>"))"
    }
}

/// AWS Signature Version 4, as S3 wants it (written here rather than taken from
/// libcurl, whose CURLOPT_AWS_SIGV4 in 7.88 signs S3 requests wrongly).
///
/// - Every byte of a path segment, query key and query value is percent-encoded
///   except `A-Z a-z 0-9 - . _ ~`; paths are encoded once, segment by segment.
/// - The query is sorted by key, then value; a key without value is `key=`.
/// - Signed headers: `host` and every header the request sends (names lower-cased,
///   values trimmed, inner runs of spaces folded), sorted; `x-amz-content-sha256`
///   carries the real payload hash.
public enum SigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// A request to sign: method, host, path (not yet encoded: `/bucket/key with space`),
    /// query parameters (not encoded) and headers.
    public struct Request: Sendable {
        public var method: String
        public var host: String
        public var path: String
        public var query: [(name: String, value: String)]
        public var headers: [(name: String, value: String)]
        public var payloadHash: String

        public init(method: String, host: String, path: String, query: [(name: String, value: String)] = [],
                    headers: [(name: String, value: String)] = [], payloadHash: String) {
            self.method = method
            self.host = host
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }

        /// The encoded path and query, as they go on the wire and into the signature.
        public var encodedTarget: String {
            let query = canonicalQuery
            return canonicalPath + (query.isEmpty ? "" : "?" + query)
        }

        public var canonicalPath: String {
            let segments = path.split(separator: "/", omittingEmptySubsequences: false).map { uriEncode(String($0)) }
            let joined = segments.joined(separator: "/")
            return joined.hasPrefix("/") ? joined : "/" + joined
        }

        public var canonicalQuery: String {
            let encoded: [(key: String, value: String)] = query.map { (key: uriEncode($0.name), value: uriEncode($0.value)) }
            let sorted = encoded.sorted { (a, b) -> Bool in
                a.key == b.key ? a.value < b.value : a.key < b.key
            }
            return sorted.map { $0.key + "=" + $0.value }.joined(separator: "&")
        }
    }

    /// Percent-encodes every byte but the unreserved characters.
    public static func uriEncode(_ text: String) -> String {
        var result = [UInt8]()
        result.reserveCapacity(text.utf8.count * 3)
        let digits = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                result.append(byte)
            } else {
                result.append(UInt8(ascii: "%"))
                result.append(digits[Int(byte >> 4)])
                result.append(digits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        if byte >= 0x41 && byte <= 0x5A { return true }  // A-Z
        if byte >= 0x61 && byte <= 0x7A { return true }  // a-z
        if byte >= 0x30 && byte <= 0x39 { return true }  // 0-9
        return byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E  // - . _ ~
    }

    /// The signed headers: lower-cased, trimmed, folded, sorted, with `host`.
    static func canonicalHeaders(_ request: Request) -> [(name: String, value: String)] {
        var headers = request.headers.map { (name: $0.name.lowercased(), value: fold($0.value)) }
        if !headers.contains(where: { $0.name == "host" }) {
            headers.append((name: "host", value: request.host))
        }
        return headers.sorted { $0.name < $1.name }
    }

    static func fold(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
    }

    public static func canonicalRequest(_ request: Request) -> String {
        let headers = canonicalHeaders(request)
        return [
            request.method,
            request.canonicalPath,
            request.canonicalQuery,
            headers.map { "\($0.name):\($0.value)\n" }.joined(),
            headers.map(\.name).joined(separator: ";"),
            request.payloadHash,
        ].joined(separator: "\n")
    }

    public static func stringToSign(_ request: Request, timestamp: String, scope: String) -> String {
        [algorithm, timestamp, scope, hex(SHA256.hash(data: Data(canonicalRequest(request).utf8)))].joined(separator: "\n")
    }

    /// `20130524T000000Z`.
    public static func timestamp(_ date: Date) -> String {
        UTCDate(date).compactTimestamp
    }

    /// The Authorization header value for a request whose headers already include
    /// `x-amz-date` (= `timestamp(date)`) and `x-amz-content-sha256`.
    public static func authorization(
        _ request: Request, credentials: AWSCredentials, region: String, service: String = "s3", date: Date
    ) -> String {
        let stamp = timestamp(date)
        let day = String(stamp.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        var key = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign(request, timestamp: stamp, scope: scope).utf8), using: key))
        let signed = canonicalHeaders(request).map(\.name).joined(separator: ";")
        return "\(algorithm) Credential=\(credentials.accessKeyID)/\(scope),SignedHeaders=\(signed),Signature=\(signature)"
    }

    /// Adds `x-amz-date`, `x-amz-content-sha256`, the session token and the
    /// Authorization header to `request.headers`; returns the headers to send.
    public static func sign(
        _ request: Request, credentials: AWSCredentials, region: String, service: String = "s3", date: Date = Date()
    ) -> [(name: String, value: String)] {
        var request = request
        request.headers.removeAll { ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"].contains($0.name.lowercased()) }
        request.headers.append((name: "x-amz-date", value: timestamp(date)))
        request.headers.append((name: "x-amz-content-sha256", value: request.payloadHash))
        if let token = credentials.sessionToken {
            request.headers.append((name: "x-amz-security-token", value: token))
        }
        let authorization = authorization(request, credentials: credentials, region: region, service: service, date: date)
        var headers = request.headers
        if !headers.contains(where: { $0.name.lowercased() == "host" }) {
            headers.append((name: "Host", value: request.host))
        }
        headers.append((name: "Authorization", value: authorization))
        return headers
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// SHA-256 of bytes, hex: the payload hash.
    public static func payloadHash(_ bytes: UnsafeRawBufferPointer) -> String {
        hex(SHA256.hash(data: bytes))
    }
}
