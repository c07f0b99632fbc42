import Foundation
import Framework

/// One run of a stage in a task of its own, timed from outside the cooperative pool:
/// the cancel comes from a Dispatch timer and the end is stamped by the task itself,
/// so a stage that blocks its thread cannot delay the measurement.
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
    private var task: Task<Void, Never>?

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
        lock.withLock { self.task = task }
        if let cancelAfter {
            DispatchQueue.global().asyncAfter(deadline: .now() + cancelAfter.seconds) { [self] in
                lock.withLock { cancelledAt = ContinuousClock.now }
                task.cancel()
            }
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

    /// When the cancel came, relative to the end: nil if no cancel came; negative
    /// values mean the run had ended before it.
    var latencyAfterCancel: Duration? {
        lock.withLock {
            guard let cancelledAt, let endedAt else { return nil }
            return endedAt - cancelledAt
        }
    }

    var wasCancelled: Bool {
        lock.withLock { cancelledAt != nil }
    }
}
