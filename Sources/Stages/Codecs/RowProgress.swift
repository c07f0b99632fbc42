import Foundation

/// Counts the rows an encoder (or its parallel strips) has written, the blocks a
/// generator has filled, or the bytes a sink has written or sent, and reports the
/// fraction done, at most once per percent, so that reporting stays cheap. The
/// fractions only grow, whichever thread adds.
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

    /// Reports inside the lock, so that reports from several threads arrive in order
    /// and a progress bar never goes back; `report` must not call `add`.
    func add(_ rows: Int) {
        lock.lock()
        defer { lock.unlock() }
        done += rows
        let percent = done * 100 / total
        guard percent > reportedPercent else { return }
        reportedPercent = percent
        report(Double(percent) / 100)
    }
}
