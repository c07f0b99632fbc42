import Foundation

/// Idle `CurlSession`s for reuse across threads, so that requests made one after
/// another (or a few at a time) keep their connections alive.
///
/// A `CurlSession` is not thread-safe; the pool hands each one to one caller at a
/// time (`withSession`) and takes it back when the caller is done, creating a new
/// one when none is idle. It keeps at most `capacity` idle sessions.
public final class CurlSessionPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [CurlSession] = []
    /// The most idle sessions kept; more are closed when returned.
    public let capacity: Int

    public init(capacity: Int = 8) {
        self.capacity = max(1, capacity)
    }

    /// The process's pool, for requests that need no pool of their own: the S3 sink's
    /// uploads, so that the items of a sweep (hundreds of small uploads) keep their
    /// connections, and with them their TLS sessions, instead of opening one each.
    /// Sessions are reset before every request, so callers share them safely.
    public static let shared = CurlSessionPool(capacity: 32)

    /// Runs `body` with a session no other caller uses meanwhile, then takes it back.
    public func withSession<R>(_ body: (CurlSession) throws -> R) throws -> R {
        let session = try checkOut()
        defer { checkIn(session) }
        return try body(session)
    }

    /// How many sessions are idle now.
    public var idleCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.count
    }

    private func checkOut() throws -> CurlSession {
        lock.lock()
        let session = idle.popLast()
        lock.unlock()
        return try session ?? CurlSession()
    }

    private func checkIn(_ session: CurlSession) {
        lock.lock()
        defer { lock.unlock() }
        if idle.count < capacity { idle.append(session) }
    }
}
