import Framework

// The codes of the built-in stages' errors (see `PipelineError.Code`), given by each
// error's type and fields, never by its message.

extension S3Error: CodedError {
    public var errorCode: PipelineError.Code {
        switch (code, status) {
        case ("NoSuchBucket", _): .noSuchBucket
        case ("AccessDenied", _), (_, 403): .accessDenied
        case ("InvalidAccessKeyId", _), ("SignatureDoesNotMatch", _), ("ExpiredToken", _), ("InvalidToken", _): .credentials
        case (nil, nil): .network
        default: .s3
        }
    }

    public var isRetryable: Bool { isTransient }
}

extension AWSCredentialError: CodedError {
    public var errorCode: PipelineError.Code { .credentials }
    public var isRetryable: Bool { false }
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
