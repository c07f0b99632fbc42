import Foundation

/// A stage that can also take its input and give its output a band of rows (grids)
/// or a chunk of bytes (encoded images) at a time, so that a chain of such stages
/// holds a few bands instead of whole images.
///
/// Opting in is optional: a stage that only implements `run` keeps working, and the
/// planner hands it whole artifacts, materialising a stream in front of it. A
/// streaming stage still implements `run`, which is used when it runs alone (`--only`,
/// `--no-stream`, a resumed run) and must give the same output as `stream`.
///
/// ## Implementation requirements
///
/// - `streaming(parameters:)` says, from the parameters alone, whether the input and
///   the output can stream and whether the stage is replayable. Replayable means
///   deterministic and free of side effects: given the same input stream it gives the
///   same output stream, so the executor may run it twice (a range pass for min-max
///   `normalize`, then the real pass) instead of holding its output.
/// - `stream(_:context:)` runs on a thread of its own. It reads `io.gridInput` or
///   `io.bytesInput` (`start()` for the header, then `next()` until nil, releasing
///   each item when done with it), writes `io.gridOutput` or `io.bytesOutput`
///   (`begin`, then `push` items from a `BufferPool` of its own, then `finish`), and
///   returns the artifact for an output that does not stream (a sink's
///   `StoredObject`), else nil.
/// - Blocking calls on a stream throw once the segment stops; let those errors
///   propagate. Check `io.cancel` between bands.
/// - Bands may have any number of rows; a producer should make bands of about
///   `io.bandRows` rows and hold at most `io.bandBuffers` of them.
/// - Nothing is left half-written on a failure or cancellation, as for `run`.
public protocol StreamingStage: Stage {
    /// How the stage streams with these (checked) parameters.
    static func streaming(parameters: Parameters) -> StreamingSupport

    /// What the stage's output will be and what the stage holds while streaming,
    /// from its parameters and what is known of its input. The default knows nothing
    /// of the output and holds nothing but its buffers.
    static func estimate(parameters: Parameters, input: ArtifactEstimate?, bandRows: Int, bandBuffers: Int) -> StreamingEstimate

    /// Runs the stage once, streaming.
    func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)?
}

extension StreamingStage {
    public static func estimate(parameters: Parameters, input: ArtifactEstimate?, bandRows: Int, bandBuffers: Int) -> StreamingEstimate {
        StreamingEstimate(output: nil, streamingBytes: 0)
    }
}

/// What a streaming stage can do with given parameters.
public struct StreamingSupport: Sendable, Hashable {
    /// Its (one) input can arrive as a stream.
    public var input: Bool
    /// Its output can leave as a stream.
    public var output: Bool
    /// Deterministic and free of side effects: may be run twice.
    public var replayable: Bool
    /// Needs the smallest and largest value of its input before its first output
    /// band (min-max `normalize`): given as `StreamIO.inputRange`, found by a range
    /// pass over a replayable upstream, or by materialising the input.
    public var needsInputRange: Bool

    public init(input: Bool, output: Bool, replayable: Bool = false, needsInputRange: Bool = false) {
        self.input = input
        self.output = output
        self.replayable = replayable
        self.needsInputRange = needsInputRange
    }
}

/// What is known before a run of an artifact's size.
public struct ArtifactEstimate: Sendable, Hashable {
    public var width: Int?
    public var height: Int?
    public var elementType: ElementType?
    /// Bytes when held whole (an upper bound for encoded images).
    public var byteCount: Double

    public init(width: Int? = nil, height: Int? = nil, elementType: ElementType? = nil, byteCount: Double) {
        self.width = width
        self.height = height
        self.elementType = elementType
        self.byteCount = byteCount
    }

    /// A grid of `width x height` elements of `elementType`.
    public static func grid(width: Int, height: Int, elementType: ElementType) -> ArtifactEstimate {
        ArtifactEstimate(width: width, height: height, elementType: elementType,
                         byteCount: Double(width) * Double(height) * Double(elementType.byteWidth))
    }
}

/// A streaming stage's estimate: its output, and the bytes it holds while streaming
/// (its output buffers, its encoders' state), whatever the image's height.
public struct StreamingEstimate: Sendable, Hashable {
    public var output: ArtifactEstimate?
    public var streamingBytes: Double

    public init(output: ArtifactEstimate?, streamingBytes: Double) {
        self.output = output
        self.streamingBytes = streamingBytes
    }
}

/// What a range pass found of a stage's input.
public enum InputRange: Sendable, Hashable {
    /// The smallest and largest value, NaN ignored.
    case values(min: Double, max: Double)
    /// No values but NaN (or none at all).
    case noValues

    /// From a scan's result: nil is "no values".
    public init(_ range: (min: Double, max: Double)?) {
        self = range.map { .values(min: $0.min, max: $0.max) } ?? .noValues
    }
}

/// A streaming stage's streams for one run of `stream(_:context:)`.
public final class StreamIO: @unchecked Sendable {
    public let gridInput: GridStream?
    public let bytesInput: ByteStream?
    public let gridOutput: GridStream?
    public let bytesOutput: ByteStream?
    /// The smallest and largest value of the input (NaN ignored), when the stage
    /// needs it (`StreamingSupport.needsInputRange`); nil otherwise.
    public let inputRange: InputRange?
    /// About how many rows a producer's bands should hold.
    public let bandRows: Int
    /// How many band buffers a producer's pool should hold at most.
    public let bandBuffers: Int
    /// Set when the run is cancelled or the segment stops.
    public let cancel: CancelFlag

    public init(gridInput: GridStream? = nil, bytesInput: ByteStream? = nil, gridOutput: GridStream? = nil, bytesOutput: ByteStream? = nil,
                inputRange: InputRange? = nil, bandRows: Int, bandBuffers: Int, cancel: CancelFlag,
                onStop: (@Sendable (any Error) -> Void)? = nil) {
        self.onStop = onStop
        self.gridInput = gridInput
        self.bytesInput = bytesInput
        self.gridOutput = gridOutput
        self.bytesOutput = bytesOutput
        self.inputRange = inputRange
        self.bandRows = max(1, bandRows)
        self.bandBuffers = max(2, bandBuffers)
        self.cancel = cancel
    }

    /// Throws `CancellationError` once the run is cancelled.
    public func checkCancellation() throws {
        if cancel.isSet() { throw CancellationError() }
    }

    /// The grid input, or a failure naming what was expected (a bug in the plan).
    public func requireGridInput() throws -> GridStream {
        guard let gridInput else { throw PipelineError("expected a streamed grid input", retryable: false, code: .stageBug) }
        return gridInput
    }

    public func requireBytesInput() throws -> ByteStream {
        guard let bytesInput else { throw PipelineError("expected a streamed byte input", retryable: false, code: .stageBug) }
        return bytesInput
    }

    public func requireGridOutput() throws -> GridStream {
        guard let gridOutput else { throw PipelineError("expected a streamed grid output", retryable: false, code: .stageBug) }
        return gridOutput
    }

    public func requireBytesOutput() throws -> ByteStream {
        guard let bytesOutput else { throw PipelineError("expected a streamed byte output", retryable: false, code: .stageBug) }
        return bytesOutput
    }

    private let lock = NSLock()
    private var pools: [BufferPool] = []
    private var outputPools: [BufferPool] = []
    private var stopped: (any Error)?
    /// Called once, first, when the stage stops its own streams (the executor records
    /// the failure as this stage's before a neighbour can receive it).
    private let onStop: (@Sendable (any Error) -> Void)?

    /// A pool for the stage's buffers, stopped with the segment (so that a `take`
    /// waiting for a buffer a stopped consumer will never give back wakes up). Take
    /// every pool a stage uses from here. Time spent waiting for a buffer of an
    /// `output` pool (one whose buffers the consumer gives back) counts as waiting for
    /// room downstream; a pool of the stage's own work (`output: false`) does not.
    public func pool(bufferSize: Int, count: Int? = nil, purpose: String, output: Bool = true) -> BufferPool {
        let pool = BufferPool(bufferSize: bufferSize, count: count ?? bandBuffers, purpose: purpose)
        lock.lock()
        pools.append(pool)
        if output { outputPools.append(pool) }
        let stopped = stopped
        lock.unlock()
        if let stopped { pool.fail(stopped) }
        return pool
    }

    /// Bands of about `bandRows` rows of `rowBytes` bytes, the rows rounded up to a
    /// multiple of `granularity` and at most `height` (the image's): a pool of
    /// `bandBuffers` of them. A band too large to address is an `AllocationError`.
    public func bandPool(rowBytes: Int, height: Int, granularity: Int = 1, purpose: String) throws -> (pool: BufferPool, rows: Int) {
        let unit = max(1, granularity)
        var rows = max(unit, bandRows / unit * unit + (bandRows % unit == 0 ? 0 : unit))
        rows = max(1, min(rows, max(1, height)))
        let (bytes, overflow) = rows.multipliedReportingOverflow(by: max(1, rowBytes))
        guard !overflow else { throw AllocationError(byteCount: Double(rows) * Double(rowBytes), purpose: purpose) }
        return (pool(bufferSize: bytes, purpose: purpose), rows)
    }

    /// A writer for `bytesOutput` with chunks of `chunkSize` bytes.
    public func bytesWriter(chunkSize: Int = ByteStreamWriter.defaultChunkSize) throws -> ByteStreamWriter {
        ByteStreamWriter(stream: try requireBytesOutput(),
                         pool: pool(bufferSize: chunkSize, purpose: "a chunk of \(chunkSize) bytes of a streamed output"))
    }

    /// How long the stage waited for buffers its consumer had not given back yet.
    public var waitedForOutputBuffers: Duration {
        lock.lock()
        let pools = outputPools
        lock.unlock()
        return pools.reduce(.zero) { $0 + $1.waitedForBuffers }
    }

    /// Begins `gridOutput` with `info` and gives a writer that cuts rows into bands
    /// of about `bandRows` rows from a pool of the stage's.
    public func gridWriter(_ info: GridStreamInfo) throws -> GridStreamWriter {
        let output = try requireGridOutput()
        try output.begin(info)
        let (pool, rows) = try bandPool(rowBytes: info.rowBytes, height: info.height, purpose: "a band of \(info.width)-wide rows of \(info.storedElementType.swiftName)")
        return GridStreamWriter(info: info, stream: output, pool: pool, rowsPerBand: rows)
    }

    /// Stops everything of this stage's: its streams and pools wake with `error`.
    /// The first call counts; later ones do nothing.
    public func stop(_ error: any Error) {
        lock.lock()
        guard stopped == nil else {
            lock.unlock()
            return
        }
        stopped = error
        let pools = pools
        lock.unlock()
        onStop?(error)
        cancel.set()
        for pool in pools { pool.fail(error) }
        gridInput?.fail(error)
        bytesInput?.fail(error)
        gridOutput?.fail(error)
        bytesOutput?.fail(error)
    }
}
