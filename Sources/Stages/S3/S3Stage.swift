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
            S3 returns is checked against the MD5 of the bytes sent instead. crc32c is not offered.
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

    let bucket: String
    let keyTemplate: String
    let region: String?
    let endpoint: String?
    let addressing: String
    let contentType: String?
    let metadata: [String: String]
    let storageClass: String?
    let multipartThreshold: Int
    let partSize: Int
    let concurrency: Int
    let checksum: Bool
    let overwrite: Bool

    public init(parameters: Parameters) throws {
        bucket = parameters.string("bucket")
        keyTemplate = parameters.string("key")
        region = parameters.optionalString("region")
        endpoint = parameters.optionalString("endpoint")
        addressing = parameters.string("addressing")
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
        if let endpoint, !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw ParameterError("endpoint", "must start with http:// or https://, got '\(endpoint)'")
        }
        for name in metadata.keys where !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            throw ParameterError("metadata", "name '\(name)' must be ASCII letters, digits, '-' or '_'")
        }
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
        let key = try context.expand(keyTemplate, with: artifact)
        guard !key.isEmpty, key.utf8.count <= 1024 else {
            throw StageFailure("object key must be 1 to 1024 bytes long, got \(key.utf8.count)", retryable: false)
        }
        let environment = AWSEnvironment()
        let endpoint = self.endpoint ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"]
        let region = self.region ?? environment.region ?? "us-east-1"
        let pathStyle = addressing == "path" || (addressing == "auto" && endpoint != nil)
        let client = S3Client(configuration: S3Configuration(endpoint: endpoint, region: region, pathStyle: pathStyle),
                              credentials: AWSCredentialChain(environment: environment))
        let bytes = artifact.bytes
        var headers: [(name: String, value: String)] = [("Content-Type", contentType ?? artifact.mediaType)]
        for (name, value) in metadata.sorted(by: { $0.key < $1.key }) {
            headers.append(("x-amz-meta-\(name.lowercased())", value))
        }
        if let storageClass { headers.append(("x-amz-storage-class", storageClass)) }
        let upload = S3Upload(client: client, bucket: bucket, key: key, bytes: bytes, headers: headers, checksum: checksum,
                              overwrite: overwrite, partSize: partSize, concurrency: concurrency, context: context)
        // The client already retried what could pass; the stage's own 'retries' only
        // repeat transient failures (an S3Error is retryable when it is transient).
        let result = try await upload.run(multipart: bytes.count > multipartThreshold)
        context.logger.debug("uploaded \(bytes.count) bytes to s3://\(bucket)/\(key) (ETag \(result.etag))")
        return StoredObject(uri: "s3://\(bucket)/\(key)", byteCount: bytes.count, sha256: artifact.sha256,
                            mediaType: contentType ?? artifact.mediaType, etag: result.etag, versionID: result.versionID)
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
        let environment = AWSEnvironment()
        let endpoint = parameters.optionalString("endpoint") ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"]
        let region = parameters.optionalString("region") ?? environment.region ?? "us-east-1"
        let addressing = parameters.optionalString("addressing") ?? "auto"
        let client = S3Client(configuration: S3Configuration(endpoint: endpoint, region: region,
                                                             pathStyle: addressing == "path" || (addressing == "auto" && endpoint != nil)),
                              credentials: AWSCredentialChain(environment: environment))
        let uri = object.uri
        let response: HTTPResponse
        do {
            response = try await Blocking.run { cancel in
                try client.send("HeadObject \(uri)", method: "HEAD", bucket: bucket, key: key, session: CurlSession(),
                                isCancelled: { cancel.isSet() })
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
}
