import Foundation
import Framework

/// Where AWS settings come from: environment variables and the home directory.
/// A value, so tests can give their own.
public struct AWSEnvironment: Sendable {
    public var variables: [String: String]

    public init(variables: [String: String] = ProcessInfo.processInfo.environment) {
        self.variables = variables
    }

    public subscript(name: String) -> String? {
        variables[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    public var profile: String { self["AWS_PROFILE"] ?? "default" }

    var home: String { self["HOME"] ?? NSHomeDirectory() }

    public var credentialsFile: String { self["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials" }
    public var configFile: String { self["AWS_CONFIG_FILE"] ?? home + "/.aws/config" }

    /// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in the
    /// config file, else nil.
    public var region: String? {
        if let region = self["AWS_REGION"] ?? self["AWS_DEFAULT_REGION"] { return region }
        return (try? INIFile(path: configFile))?.section(configSection)?["region"]
    }

    var configSection: String { profile == "default" ? "default" : "profile \(profile)" }
}

/// A problem finding credentials, with where the chain looked.
public struct AWSCredentialError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// When the chain found nothing: each place it looked and what it found there.
    public var looked: [String] = []
    /// When the chain found nothing: how to provide credentials.
    public var remedy: String?
    /// A credentials endpoint that could not be reached or answered 5xx/429: another
    /// try may pass (unlike credentials that are missing or malformed).
    public var isTransient = false
    public var description: String { message }
}

/// Where the chain found credentials, for logs and reports (never the keys).
public enum AWSCredentialSource: Sendable, Hashable, CustomStringConvertible {
    case environment
    /// The shared credentials or config file, and the section read.
    case sharedFile(path: String, section: String)
    case containerEndpoint(url: String)
    case instanceMetadata(role: String)

    public var description: String {
        switch self {
        case .environment: "environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        case .sharedFile(let path, let section): "\(path) [\(section)]"
        case .containerEndpoint(let url): "container credentials endpoint \(url)"
        case .instanceMetadata(let role): "EC2 instance metadata role '\(role)'"
        }
    }
}

/// The credential chain in the order AWS SDKs use: environment variables, the shared
/// credentials and config files (`AWS_PROFILE`), the container credentials endpoint,
/// EC2 instance metadata (IMDSv2). Temporary credentials are cached and fetched again
/// five minutes before they expire.
public final class AWSCredentialChain: @unchecked Sendable {
    public let environment: AWSEnvironment
    private let lock = NSLock()
    private var cached: AWSCredentials?

    /// Refresh temporary credentials this long before they expire.
    public static let refreshMargin: TimeInterval = 300

    public init(environment: AWSEnvironment = AWSEnvironment()) {
        self.environment = environment
    }

    /// Current credentials, from the cache while they are fresh. Requests to the
    /// container endpoint or instance metadata end by `deadline` (their own timeouts
    /// capped at it) and abort when `isCancelled` turns true.
    public func credentials(now: Date = Date(), deadline: ContinuousClock.Instant? = nil,
                            isCancelled: (@Sendable () -> Bool)? = nil) throws -> AWSCredentials {
        lock.lock()
        defer { lock.unlock() }
        if let cached, cached.expiration.map({ $0.timeIntervalSince(now) > Self.refreshMargin }) ?? true {
            return cached
        }
        let fresh = try resolve(deadline: deadline, isCancelled: isCancelled)
        cached = fresh
        return fresh
    }

    /// Walks the chain once, without the cache.
    public func resolve(deadline: ContinuousClock.Instant? = nil, isCancelled: (@Sendable () -> Bool)? = nil) throws -> AWSCredentials {
        try resolveWithSource(deadline: deadline, isCancelled: isCancelled).credentials
    }

    /// Walks the chain once, without the cache, and says where the credentials came
    /// from. Throws `AWSCredentialError`, whose `looked` and `remedy` are set when the
    /// chain found nothing.
    public func resolveWithSource(deadline: ContinuousClock.Instant? = nil, isCancelled: (@Sendable () -> Bool)? = nil) throws
        -> (credentials: AWSCredentials, source: AWSCredentialSource) {
        var looked: [String] = []
        let limits = RequestLimits(deadline: deadline, isCancelled: isCancelled)
        if let found = try fromEnvironment(&looked) { return (found, .environment) }
        if let found = try fromSharedFiles(&looked) { return found }
        if let found = try fromContainer(&looked, limits: limits) { return found }
        if let found = try fromInstanceMetadata(&looked, limits: limits) { return found }
        let remedy = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile in \(environment.credentialsFile)"
        throw AWSCredentialError(message: "no AWS credentials found; looked in:\n" + looked.map { "  - \($0)" }.joined(separator: "\n")
            + "\n" + remedy, looked: looked, remedy: remedy)
    }

    func fromEnvironment(_ looked: inout [String]) throws -> AWSCredentials? {
        let id = environment["AWS_ACCESS_KEY_ID"], secret = environment["AWS_SECRET_ACCESS_KEY"]
        switch (id, secret) {
        case let (id?, secret?):
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
        case (.some, nil):
            throw AWSCredentialError(message: "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        case (nil, .some):
            throw AWSCredentialError(message: "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        case (nil, nil):
            looked.append("environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: not set")
            return nil
        }
    }

    func fromSharedFiles(_ looked: inout [String]) throws -> (AWSCredentials, AWSCredentialSource)? {
        let profile = environment.profile
        for (path, section) in [(environment.credentialsFile, profile), (environment.configFile, environment.configSection)] {
            guard FileManager.default.fileExists(atPath: path) else {
                looked.append("\(path): no such file")
                continue
            }
            let file = try INIFile(path: path)
            guard let values = file.section(section) else {
                looked.append("\(path): no [\(section)] section")
                continue
            }
            guard let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] else {
                looked.append("\(path) [\(section)]: no aws_access_key_id / aws_secret_access_key")
                continue
            }
            return (AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"]),
                    .sharedFile(path: path, section: section))
        }
        return nil
    }

    /// The caller's deadline and cancellation, applied to each metadata request.
    struct RequestLimits {
        var deadline: ContinuousClock.Instant?
        var isCancelled: (@Sendable () -> Bool)?

        func apply(_ request: HTTPRequest) -> HTTPRequest {
            var limited = request
            if let deadline {
                let left = max(.milliseconds(1), deadline - .now)
                limited.timeout = min(request.timeout, left)
                limited.connectTimeout = min(request.connectTimeout, left)
            }
            limited.isCancelled = isCancelled
            return limited
        }
    }

    func fromContainer(_ looked: inout [String], limits: RequestLimits = RequestLimits()) throws -> (AWSCredentials, AWSCredentialSource)? {
        let url: String
        if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] {
            url = "http://169.254.170.2" + relative
        } else if let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] {
            url = full
        } else {
            looked.append("container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI not set")
            return nil
        }
        var headers: [(name: String, value: String)] = []
        if let token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"] {
            headers.append(("Authorization", token))
        } else if let file = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] {
            guard let token = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw AWSCredentialError(message: "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE '\(file)'")
            }
            headers.append(("Authorization", token.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let response = try fetch(limits.apply(HTTPRequest(url: url, headers: headers, timeout: .seconds(5), connectTimeout: .seconds(2))),
                                 what: "container credentials endpoint \(url)")
        return (try Self.parseCredentialsJSON(response, source: "container credentials endpoint \(url)"), .containerEndpoint(url: url))
    }

    func fromInstanceMetadata(_ looked: inout [String], limits: RequestLimits = RequestLimits()) throws -> (AWSCredentials, AWSCredentialSource)? {
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" {
            looked.append("EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED")
            return nil
        }
        let base = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
            ?? "http://169.254.169.254"
        let session = try CurlSession()
        // IMDSv2: a session token first, then the role, then its credentials.
        let tokenResponse: HTTPResponse
        do {
            tokenResponse = try session.perform(limits.apply(HTTPRequest(
                method: "PUT", url: base + "/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
                body: .bytes([]), timeout: .seconds(2), connectTimeout: .seconds(1))))
        } catch {
            looked.append("EC2 instance metadata at \(base): unreachable (\(error))")
            return nil
        }
        guard tokenResponse.status == 200 else {
            looked.append("EC2 instance metadata at \(base): token request answered \(tokenResponse.status)")
            return nil
        }
        let token = String(decoding: tokenResponse.body, as: UTF8.self)
        let roles = try session.perform(limits.apply(HTTPRequest(url: base + "/latest/meta-data/iam/security-credentials/",
                                                                 headers: [("X-aws-ec2-metadata-token", token)], timeout: .seconds(2))))
        guard roles.status == 200, let role = String(decoding: roles.body, as: UTF8.self).split(separator: "\n").first else {
            looked.append("EC2 instance metadata at \(base): no instance role (status \(roles.status))")
            return nil
        }
        let response = try session.perform(limits.apply(HTTPRequest(url: base + "/latest/meta-data/iam/security-credentials/" + role,
                                                                    headers: [("X-aws-ec2-metadata-token", token)], timeout: .seconds(2))))
        guard response.status == 200 else {
            throw AWSCredentialError(message: "EC2 instance metadata: credentials for role '\(role)' answered \(response.status)",
                                     isTransient: response.status >= 500 || response.status == 429)
        }
        return (try Self.parseCredentialsJSON(response.body, source: "EC2 instance metadata role '\(role)'"), .instanceMetadata(role: String(role)))
    }

    private func fetch(_ request: HTTPRequest, what: String) throws -> [UInt8] {
        let response: HTTPResponse
        do {
            response = try CurlSession().perform(request)
        } catch {
            throw AWSCredentialError(message: "cannot reach the \(what): \(error)", isTransient: true)
        }
        guard response.status == 200 else {
            throw AWSCredentialError(message: "the \(what) answered HTTP \(response.status)",
                                     isTransient: response.status >= 500 || response.status == 429)
        }
        return response.body
    }

    /// The JSON the container endpoint and IMDS return.
    static func parseCredentialsJSON(_ body: [UInt8], source: String) throws -> AWSCredentials {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let id = object["AccessKeyId"] as? String, let secret = object["SecretAccessKey"] as? String else {
            throw AWSCredentialError(message: "the \(source) returned no AccessKeyId / SecretAccessKey")
        }
        var expiration: Date?
        if let text = object["Expiration"] as? String {
            expiration = ISO8601DateFormatter().date(from: text)
        }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: object["Token"] as? String, expiration: expiration)
    }
}

/// The INI dialect of `~/.aws/credentials` and `~/.aws/config`: `[section]` headers,
/// `key = value` lines, `#` and `;` comments.
struct INIFile {
    var sections: [String: [String: String]] = [:]

    init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AWSCredentialError(message: "cannot read '\(path)'")
        }
        self.init(text: text)
    }

    init(text: String) {
        var current: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                    .split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
                continue
            }
            guard let section = current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[section]?[key] = value
        }
    }

    func section(_ name: String) -> [String: String]? { sections[name] }
}
