import Foundation
import Framework

/// One run of a stage in a task of its own, timed from outside the cooperative pool:
/// the cancel comes from a thread of its own and the end is stamped by the task
/// itself, so a stage that blocks its thread cannot delay the measurement.
final class TimedRun: @unchecked Sendable {
    enum Ending {
        case returned(any Artifact)
        case threw(any Error)
    }

    private let lock = NSLock()
    private var ending: Ending?
    private var endedAt: ContinuousClock.Instant?
    private var cancelledAt: ContinuousClock.Instant?
    private var waiter: CheckedContinuation<Void, Never>?
    private let startedAt: ContinuousClock.Instant

    /// Starts `stage.run(inputs:context:)`; with `cancelAfter`, cancels it then.
    init(_ stage: any Stage, inputs: StageInputs, context: StageContext, cancelAfter: Duration? = nil) {
        startedAt = ContinuousClock.now
        let task = Task { [self] in
            let ending: Ending
            do {
                ending = .returned(try await stage.run(inputs: inputs, context: context))
            } catch {
                ending = .threw(error)
            }
            finish(ending)
        }
        if let cancelAfter {
            // A thread of its own: Dispatch's global queues share threads with the
            // cooperative pool, which a stage that blocks can starve.
            let due = startedAt + cancelAfter
            let timer = Thread { [self] in
                let wait = due - ContinuousClock.now
                if wait > .zero { Thread.sleep(forTimeInterval: wait.seconds) }
                lock.withLock { cancelledAt = ContinuousClock.now }
                task.cancel()
            }
            timer.stackSize = 1 << 18
            timer.start()
        }
    }

    private func finish(_ ending: Ending) {
        let waiter = lock.withLock {
            self.ending = ending
            endedAt = ContinuousClock.now
            defer { self.waiter = nil }
            return self.waiter
        }
        waiter?.resume()
    }

    /// Waits until the run ends or `limit` has passed, whichever comes first; nil in
    /// the second case (the run goes on in the background).
    func wait(limit: Duration) async -> Ending? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ended = lock.withLock {
                if ending != nil { return true }
                waiter = continuation
                return false
            }
            if ended {
                continuation.resume()
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + limit.seconds) { [self] in
                let waiter = lock.withLock {
                    defer { self.waiter = nil }
                    return self.waiter
                }
                waiter?.resume()
            }
        }
        return lock.withLock { ending }
    }

    /// How long the run took; nil while it runs.
    var duration: Duration? {
        lock.withLock { endedAt.map { $0 - startedAt } }
    }

    /// How long after the cancel the run ended: nil if no cancel came (yet) or the run
    /// has not ended; negative when the run had ended before the cancel.
    var latencyAfterCancel: Duration? {
        lock.withLock {
            guard let cancelledAt, let endedAt else { return nil }
            return endedAt - cancelledAt
        }
    }

}
