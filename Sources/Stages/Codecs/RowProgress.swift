import Foundation

/// Counts the rows an encoder (or its parallel strips) has written, or the bytes a
/// sink has written or sent, and reports the fraction done, at most once per percent,
/// so that reporting stays cheap.
final class RowProgress: @unchecked Sendable {
    private let lock = NSLock()
    private let total: Int
    private let report: @Sendable (Double) -> Void
    private var done = 0
    private var reportedPercent = 0

    init(total: Int, report: @escaping @Sendable (Double) -> Void) {
        self.total = max(1, total)
        self.report = report
    }

    func add(_ rows: Int) {
        lock.lock()
        done += rows
        let percent = done * 100 / total
        let due = percent > reportedPercent
        if due { reportedPercent = percent }
        lock.unlock()
        if due { report(Double(percent) / 100) }
    }
}
