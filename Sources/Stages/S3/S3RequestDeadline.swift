/// The time one logical S3 request may take: every attempt (connecting, sending,
/// waiting for and reading the response) and every backoff wait between attempts.
///
/// An attempt's timeouts are capped at what is left, so no part of a request runs
/// past the deadline: a stalled server costs at most the budget, never the budget
/// plus a last attempt's transfer timeout.
public struct S3RequestDeadline: Sendable, Hashable {
    /// When the request must have ended.
    public let end: ContinuousClock.Instant

    /// An attempt is not started with less time than this left: it could not do
    /// anything useful and would only turn the budget's end into a different error.
    public static let shortestAttempt: Duration = .milliseconds(100)

    /// A deadline `budget` after `start`, or `limit` if that comes first.
    public init(start: ContinuousClock.Instant, budget: Duration, limit: ContinuousClock.Instant? = nil) {
        let end = start + budget
        self.end = limit.map { min($0, end) } ?? end
    }

    /// Time left at `now`, never negative.
    public func remaining(at now: ContinuousClock.Instant) -> Duration {
        max(.zero, end - now)
    }

    /// The limits of an attempt that starts at `now`: each of the configured ones,
    /// capped at the time left. Nil when too little time is left to start one.
    public func attemptLimits(at now: ContinuousClock.Instant, configuration: S3Configuration)
        -> (timeout: Duration, connectTimeout: Duration, lowSpeedTime: Duration)? {
        let left = remaining(at: now)
        guard left >= Self.shortestAttempt else { return nil }
        return (min(configuration.requestTimeout, left), min(configuration.connectTimeout, left),
                min(configuration.lowSpeedTime, left))
    }

    /// Whether waiting `wait` at `now` before another attempt still leaves time for it.
    public func allowsRetry(after wait: Duration, at now: ContinuousClock.Instant) -> Bool {
        remaining(at: now) >= wait + Self.shortestAttempt
    }
}
