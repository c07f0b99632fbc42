import Foundation

/// A flag that is set once, from any thread, and polled by blocking work (a libcurl
/// progress callback, an encoder between bands, a read loop).
public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    public init() {}

    public func set() {
        lock.lock(); value = true; lock.unlock()
    }

    public func isSet() -> Bool {
        lock.lock(); defer { lock.unlock() }
        return value
    }

    /// A thread-specific slot rather than `Thread.threadDictionary`, whose boxing of
    /// Swift values costs a scan of the runtime's conformance records the first time
    /// in a process (a tenth of a millisecond of every short run).
    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key, nil)
        precondition(status == 0, "pthread_key_create failed (\(status))")
        return key
    }()

    /// The flag of the `Blocking.run` whose thread this is, or nil on any other
    /// thread: what blocking code deep in a call (a store's request) polls without a
    /// flag passed to it, as `Task.isCancelled` is for tasks.
    public static var current: CancelFlag? {
        pthread_getspecific(threadKey).map { Unmanaged<CancelFlag>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Makes this the thread's flag for the duration of `body` (which holds it).
    fileprivate func installed<T>(_ body: () throws -> T) rethrows -> T {
        pthread_setspecific(Self.threadKey, Unmanaged.passUnretained(self).toOpaque())
        defer { pthread_setspecific(Self.threadKey, nil) }
        return try withExtendedLifetime(self) { try body() }
    }
}

/// Blocking work (system calls that may wait, libcurl transfers, long C calls) on
/// threads of its own, off Swift's cooperative pool, which has one thread per core
/// and must never wait on I/O or a child process.
public enum Blocking {
    /// Runs `body` on a new thread and returns its result. When the calling task is
    /// cancelled, the flag passed to `body` is set; `body` should poll it and stop
    /// (throwing `CancellationError`) within about 100 ms.
    public static func run<T: Sendable>(_ body: @escaping @Sendable (CancelFlag) throws -> T) async throws -> T {
        let flag = CancelFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    continuation.resume(with: flag.installed { Result { try body(flag) } })
                }
                thread.stackSize = 1 << 20
                thread.start()
            }
        } onCancel: {
            flag.set()
        }
    }

    /// Runs `body` on a new thread, without a cancellation flag.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await run { (_: CancelFlag) in try body() }
    }

    /// Runs `body(0..<count)` on `count` threads of their own and waits for all.
    public static func parallel(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                body(index)
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
    }

    /// Runs `body(0..<count)` on `count` threads of their own and waits for all. The
    /// first error any of them throws is passed to `stop` at once (so that it can wake
    /// the others, e.g. by failing their queues) and thrown when all have ended.
    public static func parallel(_ count: Int, stop: @escaping @Sendable (any Error) -> Void,
                                _ body: @escaping @Sendable (Int) throws -> Void) throws {
        final class First: @unchecked Sendable {
            let lock = NSLock()
            var error: (any Error)?
        }
        let first = First()
        parallel(count) { index in
            do {
                try body(index)
            } catch {
                first.lock.lock()
                let isFirst = first.error == nil
                if isFirst { first.error = error }
                first.lock.unlock()
                if isFirst { stop(error) }
            }
        }
        if let error = first.error { throw error }
    }
}
