import Foundation
import Testing
import Framework
@testable import Stages

/// The arithmetic of a request's time budget and the words for each way a transfer
/// fails, without waiting for either.
@Suite struct S3DeadlineTests {
    let start = ContinuousClock.now

    @Test func defaultBudgetKeepsTheReadmesPromise() {
        let configuration = S3Configuration(endpoint: nil, region: "us-east-1", pathStyle: false)
        #expect(configuration.maxAttempts == 5)
        #expect(configuration.retryBudget == .seconds(60))
        let deadline = S3RequestDeadline(start: start, budget: configuration.retryBudget)
        #expect(deadline.end == start + .seconds(60))
        // The first attempt may use its full limits except the transfer timeout,
        // which cannot outlast the budget.
        let first = deadline.attemptLimits(at: start, configuration: configuration)
        #expect(first?.timeout == .seconds(60))
        #expect(first?.connectTimeout == .seconds(10))
        #expect(first?.lowSpeedTime == .seconds(30))
    }

    @Test func everyLimitIsCappedAtTheTimeLeft() throws {
        var configuration = S3Configuration(endpoint: nil, region: "us-east-1", pathStyle: false)
        configuration.retryBudget = .seconds(60)
        let deadline = S3RequestDeadline(start: start, budget: configuration.retryBudget)
        // A stalled first attempt used 30 s (the low-speed limit), the backoff 2 s.
        let late = try #require(deadline.attemptLimits(at: start + .seconds(32), configuration: configuration))
        #expect(late.timeout == .seconds(28) && late.lowSpeedTime == .seconds(28) && late.connectTimeout == .seconds(10))
        let last = try #require(deadline.attemptLimits(at: start + .milliseconds(59_500), configuration: configuration))
        #expect(last.timeout == .milliseconds(500) && last.connectTimeout == .milliseconds(500))
        // Attempt start + timeout never passes the deadline.
        for offset in stride(from: 0, through: 59_900, by: 700) {
            let now = start + .milliseconds(offset)
            if let limits = deadline.attemptLimits(at: now, configuration: configuration) {
                #expect(now + limits.timeout <= deadline.end)
            }
        }
        #expect(deadline.attemptLimits(at: start + .milliseconds(59_950), configuration: configuration) == nil)
        #expect(deadline.attemptLimits(at: start + .seconds(61), configuration: configuration) == nil)
        #expect(deadline.remaining(at: start + .seconds(61)) == .zero)
    }

    @Test func noRetryWaitsPastTheDeadline() {
        let deadline = S3RequestDeadline(start: start, budget: .seconds(3))
        #expect(deadline.allowsRetry(after: .seconds(1), at: start + .seconds(1)))
        #expect(!deadline.allowsRetry(after: .seconds(1), at: start + .milliseconds(1950)))
        #expect(!deadline.allowsRetry(after: .zero, at: start + .seconds(3)))
    }

    @Test func anEarlierLimitWins() {
        let deadline = S3RequestDeadline(start: start, budget: .seconds(60), limit: start + .seconds(10))
        #expect(deadline.end == start + .seconds(10))
        #expect(S3RequestDeadline(start: start, budget: .seconds(3), limit: start + .seconds(10)).end == start + .seconds(3))
    }

    @Test func failuresAreNamedByWhatHappened() {
        let timedOut = Int(28), couldNotConnect = Int(7), couldNotResolve = Int(6)
        func classify(_ code: Int, errno: Int = 0, connected: Bool = true, idle: Duration = .seconds(3), received: Bool = false) -> CurlError.Failure {
            CurlError.classify(code: code, osErrno: errno, connected: connected, idle: idle, receivedAny: received,
                               elapsed: .seconds(3), connectTimeout: .seconds(10))
        }
        #expect(classify(couldNotResolve) == .cannotResolve)
        #expect(classify(couldNotConnect, errno: Int(ECONNREFUSED), connected: false) == .refused)
        #expect(classify(couldNotConnect, errno: Int(ETIMEDOUT), connected: false) == .connectTimedOut(.seconds(3)))
        #expect(classify(timedOut, connected: false) == .connectTimedOut(.seconds(3)))
        #expect(classify(timedOut) == .stalled(idle: .seconds(3), receivedNothing: true))
        #expect(classify(timedOut, idle: .seconds(30), received: true) == .stalled(idle: .seconds(30), receivedNothing: false))
        #expect(classify(timedOut, idle: .milliseconds(200), received: true) == .timedOut(.seconds(3)))

        let url = "http://127.0.0.1:9000/bucket/key"
        let stalled = CurlError(code: timedOut, message: "Operation timed out", url: url, failure: .stalled(idle: .seconds(3), receivedNothing: true))
        #expect(stalled.summary == "the server at 127.0.0.1:9000 accepted the connection but sent nothing within 3.0 s")
        let quiet = CurlError(code: timedOut, message: "", url: url, failure: .stalled(idle: .seconds(30), receivedNothing: false))
        #expect(quiet.summary == "the server at 127.0.0.1:9000 stopped responding (no data for 30 s)")
        let base = "http://127.0.0.1:9000"
        #expect(S3Client.transportError("PutObject", stalled, base: base).message.hasPrefix("the server at 127.0.0.1:9000"))
        let refused = CurlError(code: couldNotConnect, message: "Failed to connect", url: url, failure: .refused)
        #expect(S3Client.transportError("PutObject", refused, base: base).message == "cannot reach http://127.0.0.1:9000: connection refused")
        let dns = CurlError(code: couldNotResolve, message: "Could not resolve host", url: "https://nowhere.invalid/x", failure: .cannotResolve)
        #expect(S3Client.transportError("PutObject", dns, base: "https://nowhere.invalid").message
                == "cannot reach https://nowhere.invalid: cannot resolve the host name of nowhere.invalid")
    }
}
