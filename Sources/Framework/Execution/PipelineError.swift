import Foundation

/// The one error type of a run: a stable code, the stage it happened in, whether
/// running the stage again could help, and a message for people.
///
/// Stages throw it (as `StageFailure`, its other name) when they have something to
/// say; every other error a stage or store throws is turned into one by
/// `PipelineError(_:stage:stageType:)`, which asks the error itself for its code
/// (`CodedError`) and never looks at message text. The code is what programs match
/// on (the report's `error_code`, the `stage_failed` event); the message is for
/// people and may change between versions.
public struct PipelineError: Error, Sendable, CustomStringConvertible, Hashable {
    /// What kind of failure: a stable, documented name (`s3_access_denied`). The set
    /// is open: an extension package may declare codes of its own.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }
        public var description: String { rawValue }

        public init(from decoder: any Decoder) throws {
            rawValue = try decoder.singleValueContainer().decode(String.self)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }
    }

    public var code: Code
    /// The stage that failed, once the executor knows it.
    public var stage: String?
    /// The stage's type, once the executor knows it.
    public var stageType: String?
    /// Whether another attempt could succeed (a timeout, a dropped connection): the
    /// executor retries only these, as many times as the stage's `retries` allow.
    public var isRetryable: Bool
    public var message: String
    /// What to do about it, when there is something to say.
    public var help: String?

    /// A failure for the user, as a stage reports it: `retryable: false` when another
    /// attempt cannot help (bad data, a file that exists).
    public init(_ message: String, retryable: Bool = true, code: Code = .stageFailed, help: String? = nil) {
        self.code = code
        self.isRetryable = retryable
        self.message = message
        self.help = help
    }

    /// `error` as a pipeline error: itself (with the stage filled in), or its own code
    /// and retryability when it is a `CodedError`, `cancelled` for a cancellation, and
    /// otherwise `stage_failed`, retryable, with the error's readable description.
    public init(_ error: any Error, stage: String? = nil, stageType: String? = nil) {
        switch error {
        case let error as PipelineError:
            self = error
        case let error as any CodedError:
            self.init(ErrorDescription.readable(error), retryable: error.isRetryable, code: error.errorCode)
        case is CancellationError:
            self.init("cancelled", retryable: false, code: .cancelled)
        case let error as DecodingError:
            self.init("cannot decode the data: " + ArtifactCodec.reason(error), retryable: false, code: .invalidData)
        case is EncodingError:
            self.init("cannot encode the data: \(ErrorDescription.readable(error))", retryable: false, code: .invalidData)
        case is CocoaError, is POSIXError:
            // Foundation's file errors: what the system said, in words.
            self.init(ErrorDescription.readable(error), retryable: false, code: .io)
        default:
            self.init(ErrorDescription.readable(error), retryable: true, code: .stageFailed)
        }
        if let stage { self.stage = stage }
        if let stageType { self.stageType = stageType }
    }

    /// The same error, with `isRetryable` set: a stage that knows better than the
    /// error's type whether another attempt could help.
    public func with(retryable: Bool) -> PipelineError {
        var copy = self
        copy.isRetryable = retryable
        return copy
    }

    /// The message, and the help on a line of its own when there is some.
    public var description: String {
        help.map { message + "\n  help: " + $0 } ?? message
    }

    /// `stage 'jpg' (jpeg) failed: MESSAGE`, or the message alone when no stage is known.
    public var summary: String {
        guard let stage else { return description }
        return "stage '\(FilePaths.printable(stage))'" + (stageType.map { " (\($0))" } ?? "") + " failed: " + description
    }
}

/// The name stages use when they throw: `throw StageFailure("input is empty", retryable: false)`.
public typealias StageFailure = PipelineError

/// An error that knows its `PipelineError` code and whether retrying could help, so
/// that nothing has to guess from its message. Error types of extension packages
/// conform to it to get codes of their own.
public protocol CodedError: Error {
    var errorCode: PipelineError.Code { get }
    var isRetryable: Bool { get }
}

/// The codes the framework and the built-in stages use. The README lists them all;
/// a new one is added there in the same change.
extension PipelineError.Code {
    /// A stage failed and said no more precise code (the default of `StageFailure`).
    public static let stageFailed: Self = "stage_failed"
    /// The run or stage was cancelled: a signal, or another stage failed first.
    public static let cancelled: Self = "cancelled"
    /// An attempt ran past the stage's `timeout`.
    public static let timeout: Self = "timeout"
    /// Input data the stage cannot use: a malformed file, an unsupported shape.
    public static let invalidData: Self = "invalid_data"
    /// A parameter value the stage can only reject at run time.
    public static let invalidParameter: Self = "invalid_parameter"
    /// The target a sink writes already exists with other bytes, and overwriting is off.
    public static let outputExists: Self = "output_exists"
    /// A system call failed (a file, a directory, a pipe).
    public static let io: Self = "io"
    /// Memory for the stage's data could not be allocated.
    public static let outOfMemory: Self = "out_of_memory"
    /// An image library rejected the data or failed.
    public static let codec: Self = "codec"
    /// A program an `exec` stage runs failed, or could not be started.
    public static let childFailed: Self = "child_failed"
    /// A network transfer failed (no connection, a stalled or timed-out transfer).
    public static let network: Self = "network"
    /// No credentials were found, or the ones found cannot be used.
    public static let credentials: Self = "credentials"
    /// S3 refused the request for lack of permission (HTTP 403).
    public static let accessDenied: Self = "access_denied"
    /// The bucket does not exist.
    public static let noSuchBucket: Self = "no_such_bucket"
    /// Any other S3 error response.
    public static let s3: Self = "s3_error"
    /// The artifact store could not be read or written, or holds a damaged artifact.
    public static let storeIO: Self = "store_io"
    /// `--artifact-store` names something that cannot be a store.
    public static let invalidStoreLocation: Self = "invalid_store_location"
    /// `--resume` names a run the store does not hold.
    public static let unknownRun: Self = "unknown_run"
    /// A run's `run.json` in the store cannot be read.
    public static let damagedRun: Self = "damaged_run"
    /// `--resume` with a `--seed` other than the one the run was made with.
    public static let conflictingSeed: Self = "conflicting_seed"
    /// A stage's output type has no codec, so it cannot go into an artifact store.
    public static let noCodec: Self = "no_codec"
    /// `--only` needs a stored input that is missing or was made differently.
    public static let inputNotStored: Self = "input_not_stored"
    /// A stage broke its contract (returned another type than its spec promised): a bug.
    public static let stageBug: Self = "stage_bug"
}

extension StageTimeoutError: CodedError {
    public var errorCode: PipelineError.Code { .timeout }
    public var isRetryable: Bool { true }
}

extension AllocationError: CodedError {
    public var errorCode: PipelineError.Code { .outOfMemory }
    public var isRetryable: Bool { false }
}

extension SystemError: CodedError {
    public var errorCode: PipelineError.Code { code == ENOMEM ? .outOfMemory : .io }
    /// Only the errors that say "try again" are worth another attempt.
    public var isRetryable: Bool { [EAGAIN, EBUSY, EINTR, ETIMEDOUT, ECONNRESET].contains(code) }
}

extension NPY.FormatError: CodedError {
    public var errorCode: PipelineError.Code { .invalidData }
    public var isRetryable: Bool { false }
}

extension Grid.SizeError: CodedError {
    public var errorCode: PipelineError.Code { .outOfMemory }
    public var isRetryable: Bool { false }
}

extension ParameterError: CodedError {
    public var errorCode: PipelineError.Code { .invalidParameter }
    public var isRetryable: Bool { false }
}

extension ArtifactStoreError: CodedError {
    public var errorCode: PipelineError.Code { cause ?? PipelineError.Code(rawValue: code.rawValue) }
    /// Only a store that could not be reached may pass on another attempt: not one
    /// that lacks credentials or permission, or is not there.
    public var isRetryable: Bool { cause.map { $0 == .network || $0 == .s3 } ?? (code == .io) }
}
