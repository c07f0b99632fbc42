import Framework

// The codes of the built-in stages' errors (see `PipelineError.Code`), given by each
// error's type and fields, never by its message.

extension S3Error: CodedError {
    public var errorCode: PipelineError.Code {
        if let kind { return kind }
        return switch (code, status) {
        case ("NoSuchBucket", _): .noSuchBucket
        // Credentials S3 rejects come with 403 too: their codes say so first.
        case ("InvalidAccessKeyId", _), ("SignatureDoesNotMatch", _), ("ExpiredToken", _), ("InvalidToken", _),
             ("TokenRefreshRequired", _): .credentials
        case ("AccessDenied", _), (_, 403): .accessDenied
        // A conditional write refused because the object exists (overwrite: false).
        case ("PreconditionFailed", _), (_, 412): .outputExists
        case (nil, nil): .network
        default: .s3
        }
    }

    public var isRetryable: Bool { isTransient }
}

extension AWSCredentialError: CodedError {
    /// An endpoint that could not be reached is a network problem; missing or
    /// malformed credentials are `credentials`.
    public var errorCode: PipelineError.Code { isTransient ? .network : .credentials }
    public var isRetryable: Bool { isTransient }
}

extension CurlError: CodedError {
    public var errorCode: PipelineError.Code { .network }
    /// A transfer that was asked to stop is not worth repeating; the others may pass.
    public var isRetryable: Bool { failure != .aborted }
}

extension CodecError: CodedError {
    public var errorCode: PipelineError.Code { .codec }
    public var isRetryable: Bool { false }
}
