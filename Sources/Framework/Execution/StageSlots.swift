import Foundation

/// A count of stages that may run at once, shared by the executors of a sweep's items
/// (`RunOptions.stageSlots`): `--jobs` bounds the stages running across all items, not
/// in each. Waiters are served in order; a waiter whose task is cancelled stops
/// waiting.
public final class StageSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var free: Int
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
    private var nextID: UInt64 = 0

    public init(_ count: Int) {
        free = max(1, count)
    }

    /// Takes a slot, waiting for one; false (and no slot) when the task was cancelled
    /// while it waited.
    public func acquire() async -> Bool {
        let id: UInt64 = lock.withLock {
            nextID += 1
            return nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                lock.lock()
                if Task.isCancelled {
                    lock.unlock()
                    continuation.resume(returning: false)
                } else if free > 0 {
                    free -= 1
                    lock.unlock()
                    continuation.resume(returning: true)
                } else {
                    waiters.append((id, continuation))
                    lock.unlock()
                }
            }
        } onCancel: {
            lock.lock()
            let index = waiters.firstIndex { $0.id == id }
            let waiter = index.map { waiters.remove(at: $0) }
            lock.unlock()
            waiter?.continuation.resume(returning: false)
        }
    }

    /// Gives a slot back: to the first waiter, or to the count.
    public func release() {
        lock.lock()
        if waiters.isEmpty {
            free += 1
            lock.unlock()
        } else {
            let waiter = waiters.removeFirst()
            lock.unlock()
            waiter.continuation.resume(returning: true)
        }
    }
}
