import Foundation
import Framework

/// `s3`: uploads a bytes artifact to S3 or an S3-compatible server.
public struct S3Stage: Stage {
    public static let spec = StageSpec(
        name: "s3",
        summary: "Upload a bytes artifact (an encoded image) to S3.",
        discussion: """
            Signs requests with AWS Signature Version 4. Credentials come from the standard chain: \
            AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the shared credentials and \
            config files (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE), the container \
            credentials endpoint, EC2 instance metadata (IMDSv2). The region comes from 'region', \
            AWS_REGION, AWS_DEFAULT_REGION or the profile; the endpoint from 'endpoint', \
            AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL. Objects above multipart_threshold are uploaded in \
            parts, concurrently; a failed or cancelled multipart upload is aborted. Throttling, 5xx \
            and connection errors are retried with exponential backoff and full jitter. With overwrite \
            false the upload is conditional (If-None-Match: *); when an object is already there, a HEAD \
            request compares its size and SHA-256 checksum (or MD5 ETag) with the bytes: the same bytes (a \
            re-run meeting its own output) are a success, other bytes an error whose message quotes the \
            --set that replaces the object. checksum sha256 sends \
            x-amz-checksum-sha256 so S3 verifies the bytes, and the checksums S3 echoes are compared; \
            with checksum none (or, for a single PUT, when the server echoes no checksum) the ETag \
            S3 returns is checked against the MD5 of the bytes sent instead. crc32c is not offered. \
            Streamed input (bytes from a streaming encoder) is uploaded as it arrives: parts go out as they fill, at \
            most concurrency at once, from (concurrency + 1) buffers of part_size bytes; an object that ends at \
            multipart_threshold bytes or fewer goes up with a single PUT (when the threshold is more than those \
            buffers hold, the upload turns multipart once they are full); checksums are computed on the fly, and \
            a failure or cancellation aborts the multipart upload.
            """,
        parameters: [
            ParameterSpec("bucket", .string, doc: "bucket name"),
            ParameterSpec("key", .template, doc: "object key template, e.g. images/{run_id}/grid.{format}"),
            ParameterSpec("region", .string, optional: true, doc: "AWS region; default from AWS_REGION, AWS_DEFAULT_REGION, the profile, else us-east-1"),
            ParameterSpec("endpoint", .string, optional: true, doc: "http(s)://host[:port] of an S3-compatible server; default from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL"),
            ParameterSpec("addressing", .choice(["auto", "virtual", "path"]), default: .string("auto"),
                          doc: "virtual-hosted (bucket.host) or path (host/bucket) URLs; auto is path when an endpoint is set"),
            ParameterSpec("content_type", .string, optional: true, doc: "Content-Type; default the artifact's media type"),
            ParameterSpec("metadata", .mapping, optional: true, doc: "user metadata, sent as x-amz-meta-NAME headers"),
            ParameterSpec("storage_class", .string, optional: true, doc: "x-amz-storage-class, e.g. STANDARD_IA"),
            ParameterSpec("multipart_threshold", .integer, default: .integer(16 << 20), range: .atLeast(Double(5 << 20)),
                          doc: "bytes above which the upload is multipart"),
            ParameterSpec("part_size", .integer, default: .integer(8 << 20), range: .closed(Double(5 << 20), Double(5 << 30)),
                          doc: "bytes per part (S3 needs at least 5 MiB)"),
            ParameterSpec("concurrency", .integer, default: .integer(8), range: .closed(1, 64), doc: "parts uploaded at once"),
            ParameterSpec("checksum", .choice(["sha256", "none"]), default: .string("sha256"), doc: "integrity checksum S3 verifies"),
            ParameterSpec("overwrite", .boolean, default: .boolean(false), doc: "replace an existing object"),
        ],
        inputs: [InputPort(accepts: .having(.bytes), doc: "bytes to upload, e.g. an EncodedImage")],
        output: .fixed(.storedObject))

    let parameters: Parameters
    let bucket: String
    let keyTemplate: String
    let contentType: String?
    let metadata: [String: String]
    let storageClass: String?
    let multipartThreshold: Int
    let partSize: Int
    let concurrency: Int
    let checksum: Bool
    let overwrite: Bool
    /// Where the client's credentials, region and endpoint come from: tests give their
    /// own; otherwise the process environment when the stage runs, not when it was made.
    var environmentOverride: AWSEnvironment?
    var environment: AWSEnvironment {
        get { environmentOverride ?? AWSEnvironment() }
        set { environmentOverride = newValue }
    }

    public init(parameters: Parameters) throws {
        self.parameters = parameters
        bucket = parameters.string("bucket")
        keyTemplate = parameters.string("key")
        contentType = parameters.optionalString("content_type")
        metadata = parameters.mapping("metadata") ?? [:]
        storageClass = parameters.optionalString("storage_class")
        multipartThreshold = parameters.int("multipart_threshold")
        partSize = parameters.int("part_size")
        concurrency = parameters.int("concurrency")
        checksum = parameters.string("checksum") == "sha256"
        overwrite = parameters.bool("overwrite")
        if let problem = Self.bucketNameProblem(bucket) {
            throw ParameterError("bucket", "is '\(bucket)', which \(problem)", help: "bucket names are 3-63 characters: a-z, 0-9, '.' and '-'")
        }
        if let endpoint = parameters.optionalString("endpoint"), !Self.isHTTPURL(endpoint) {
            throw ParameterError("endpoint", "must start with http:// or https://, got '\(endpoint)'")
        }
        if let problem = Self.keyProblem(keyTemplate) {
            throw ParameterError("key", "is '\(FilePaths.printable(keyTemplate))', which \(problem)",
                                 help: "write the key without '.' and '..' segments or empty ones ('a//b')")
        }
        for name in metadata.keys where !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            throw ParameterError("metadata", "name '\(name)' must be ASCII letters, digits, '-' or '_'")
        }
    }

    /// Why an object key (or a store's prefix) cannot be used as written, or nil: a
    /// `.` or `..` segment, which HTTP clients and servers may resolve as a path (and
    /// so write elsewhere than named), or an empty segment.
    static func keyProblem(_ key: String) -> String? {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        if hasDotSegment(key) {
            return "has a '.' or '..' segment: it would not name the object as written"
        }
        if key.hasPrefix("/") { return "starts with '/'" }
        if segments.dropLast().contains(where: \.isEmpty) { return "has an empty segment ('//')" }
        if key.isEmpty || key.hasSuffix("/") { return "names no object (it is empty or ends with '/')" }
        return nil
    }

    /// Whether `path` has a `.` or `..` segment.
    static func hasDotSegment(_ path: some StringProtocol) -> Bool {
        path.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == "." || $0 == ".." }
    }

    static func isHTTPURL(_ text: String) -> Bool {
        text.hasPrefix("http://") || text.hasPrefix("https://")
    }

    /// Where the stage's requests go: the endpoint ('endpoint', AWS_ENDPOINT_URL_S3,
    /// AWS_ENDPOINT_URL, else AWS's), the region ('region', AWS_REGION,
    /// AWS_DEFAULT_REGION, the profile, else us-east-1) and the addressing.
    static func configuration(parameters: Parameters, environment: AWSEnvironment) -> S3Configuration {
        let endpoint = parameters.optionalString("endpoint") ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"]
        let region = parameters.optionalString("region") ?? environment.region ?? "us-east-1"
        let addressing = parameters.optionalString("addressing") ?? "auto"
        return S3Configuration(endpoint: endpoint, region: region, pathStyle: addressing == "path" || (addressing == "auto" && endpoint != nil))
    }

    /// A client for the stage's endpoint and region, with the standard credential chain.
    static func client(parameters: Parameters, environment: AWSEnvironment = AWSEnvironment()) -> S3Client {
        S3Client(configuration: configuration(parameters: parameters, environment: environment),
                 credentials: AWSCredentialChain(environment: environment))
    }

    static func bucketNameProblem(_ name: String) -> String? {
        if name.count < 3 || name.count > 63 { return "must be 3 to 63 characters long" }
        if !name.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" }) {
            return "may hold only lower-case letters, digits, '.' and '-'"
        }
        if let first = name.first, let last = name.last, !(first.isLetter || first.isNumber) || !(last.isLetter || last.isNumber) {
            return "must start and end with a letter or digit"
        }
        return nil
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        guard let artifact = inputs.input as? any BytesArtifact else {
            throw StageFailure("input is not a bytes artifact", retryable: false)
        }
        let key = try Self.checkedKey(context.expand(keyTemplate, with: artifact))
        let client = Self.client(parameters: parameters, environment: environment)
        let bytes = artifact.bytes
        let headers = requestHeaders(mediaType: artifact.mediaType)
        let upload = S3Upload(client: client, bucket: bucket, key: key, bytes: bytes, headers: headers, checksum: checksum,
                              overwrite: overwrite, partSize: partSize, concurrency: concurrency, context: context)
        // The client already retried what could pass; the stage's own 'retries' only
        // repeat transient failures (an S3Error is retryable when it is transient).
        let result = try await upload.run(multipart: bytes.count > multipartThreshold)
        context.logger.debug("uploaded \(bytes.count) bytes to s3://\(bucket)/\(key) (ETag \(result.etag))")
        return StoredObject(uri: "s3://\(bucket)/\(key)", byteCount: bytes.count, sha256: artifact.sha256,
                            mediaType: contentType ?? artifact.mediaType, etag: result.etag, versionID: result.versionID)
    }

    /// An expanded key, once it is 1 to 1024 bytes long.
    static func checkedKey(_ key: String) throws -> String {
        guard !key.isEmpty, key.utf8.count <= 1024 else {
            throw StageFailure("object key must be 1 to 1024 bytes long, got \(key.utf8.count)", retryable: false)
        }
        return key
    }

    /// The headers of the PUT or CreateMultipartUpload: the content type ('content_type',
    /// else `mediaType`), the metadata and the storage class.
    func requestHeaders(mediaType: String) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [("Content-Type", contentType ?? mediaType)]
        for (name, value) in metadata.sorted(by: { $0.key < $1.key }) {
            headers.append(("x-amz-meta-\(name.lowercased())", value))
        }
        if let storageClass { headers.append(("x-amz-storage-class", storageClass)) }
        return headers
    }

    /// Before a resumed run reuses this sink: the object is still there (a HEAD
    /// request, with the stage's endpoint, region and addressing) with the size and
    /// ETag that were recorded.
    public static func verifyStored(_ output: any Artifact, parameters: Parameters) async throws -> StoredOutputCheck {
        guard let object = output as? StoredObject else { return .nothingToVerify }
        guard object.uri.hasPrefix("s3://") else { return .changed("'\(FilePaths.printable(object.uri))' is not an s3:// URI") }
        let path = object.uri.dropFirst("s3://".count)
        let bucket = String(path.prefix { $0 != "/" })
        let key = String(path.dropFirst(bucket.count + 1))
        let client = Self.client(parameters: parameters)
        let uri = object.uri
        let response: HTTPResponse
        do {
            response = try await Blocking.run { cancel in
                try CurlSessionPool.shared.withSession { session in
                    try client.send("HeadObject \(uri)", method: "HEAD", bucket: bucket, key: key, session: session,
                                    isCancelled: { cancel.isSet() })
                }
            }
        } catch let error as S3Error where error.status == 404 {
            return .changed("\(uri) no longer exists")
        }
        let size = response.header("Content-Length").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard size == object.byteCount else {
            return .changed("\(uri) is \(size.map(String.init) ?? "of unknown size") bytes, \(object.byteCount) were uploaded")
        }
        func bare(_ etag: String) -> String { etag.replacingOccurrences(of: "\"", with: "") }
        if let recorded = object.etag, let current = response.header("ETag"), bare(recorded) != bare(current) {
            return .changed("\(uri) has the ETag \(bare(current)), not the recorded \(bare(recorded)): it was replaced")
        }
        return .verified
    }

    /// Before a run: credentials from the chain (environment, shared files, and the
    /// container or instance metadata endpoints when configured, within 5 seconds), an
    /// endpoint that is an http(s) URL, the region and bucket. The deep check also
    /// lists at most one key of the bucket (ListObjectsV2, max-keys 1), which proves
    /// that the credentials are accepted and the bucket exists. Facts: endpoint,
    /// region, bucket, addressing, and where the credentials came from.
    public static func checkAccess(parameters: Parameters, depth: AccessCheckDepth) async throws -> AccessReport {
        try await checkAccess(parameters: parameters, depth: depth, environment: AWSEnvironment())
    }

    /// The check resolves credentials and lists the bucket: the key does not matter.
    public static func accessTarget(parameters: Parameters) -> String? {
        ["bucket", "region", "endpoint", "addressing"].map { parameters.optionalString($0) ?? "" }.joined(separator: "\u{0}")
    }

    static func checkAccess(parameters: Parameters, depth: AccessCheckDepth, environment: AWSEnvironment) async throws -> AccessReport {
        // The 'endpoint' parameter was checked with the pipeline; the variable that
        // stands in for it was not.
        if parameters.optionalString("endpoint") == nil,
           let name = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].first(where: { environment[$0] != nil }),
           let value = environment[name], !isHTTPURL(value) {
            throw AccessProblem("the endpoint from \(name) is '\(FilePaths.printable(value))', which does not start with http:// or https://",
                                help: "set \(name) to http(s)://host[:port], or give the stage an 'endpoint'")
        }
        var configuration = configuration(parameters: parameters, environment: environment)
        // A check, not an upload: fail soon rather than retry for a minute.
        configuration.maxAttempts = 2
        configuration.retryBudget = .seconds(15)
        configuration.connectTimeout = .seconds(5)
        let bucket = parameters.string("bucket")
        let chain = AWSCredentialChain(environment: environment)
        let client = S3Client(configuration: configuration, credentials: chain)
        let source: AWSCredentialSource = try await Blocking.run { cancel in
            do {
                return try chain.resolveWithSource(deadline: .now + .seconds(5), isCancelled: cancel.isSet).source
            } catch let error as AWSCredentialError {
                // Nothing found anywhere: what to do first, then where the chain looked, on one line.
                guard let remedy = error.remedy else { throw error }
                throw AccessProblem("no AWS credentials found", help: remedy + " (looked in: " + error.looked.joined(separator: "; ") + ")",
                                    code: .credentials)
            }
        }
        var facts: [String: JSONValue] = [
            "endpoint": .string(configuration.resolvedEndpoint),
            "region": .string(configuration.region),
            "bucket": .string(bucket),
            "addressing": .string(configuration.pathStyle || bucket.contains(".") ? "path" : "virtual"),
            "credentials": .string(source.description),
        ]
        if depth == .deep {
            do {
                _ = try await Blocking.run { cancel in
                    try client.send("ListObjectsV2 s3://\(bucket)", method: "GET", bucket: bucket, key: "",
                                    query: [("list-type", "2"), ("max-keys", "1")], session: try CurlSession(), isCancelled: cancel.isSet)
                }
            } catch let error as S3Error where error.code == "AccessDenied" {
                // S3's error code, not its text: the credentials work, the listing is not allowed.
                throw AccessProblem("the credentials (from \(source)) may not list bucket '\(bucket)' (AccessDenied, HTTP 403)",
                                    help: "the check lists at most one key, which needs s3:ListBucket on the bucket; uploads need "
                                        + "s3:PutObject (and the multipart actions) instead, so without s3:ListBucket run without --check-access",
                                    code: .accessDenied)
            }
            facts["bucket_listed"] = .boolean(true)
        }
        return AccessReport(facts: facts)
    }
}
