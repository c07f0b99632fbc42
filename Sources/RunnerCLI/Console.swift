import ArgumentParser
import Foundation
import Framework
import Logging

enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text, json
}

/// Everything the runner prints on stderr: log records, stage lines and, on a
/// terminal, a progress bar, serialised through one lock.
final class Console: @unchecked Sendable {
    let format: LogFormat
    let level: Logger.Level
    let isTerminal: Bool
    private let lock = NSLock()
    private var barShown = false
    private var lastBar: (stage: String, percent: Int)?

    init(format: LogFormat, level: Logger.Level) {
        self.format = format
        self.level = level
        self.isTerminal = isatty(STDERR_FILENO) == 1 && format == .text
    }

    func handler() -> ConsoleLogHandler {
        ConsoleLogHandler(console: self, logLevel: level)
    }

    /// Writes one record: a text line or a JSON object.
    func log(_ level: Logger.Level, _ message: String, _ fields: [String: JSONValue] = [:]) {
        guard level >= self.level else { return }
        let line: String
        switch format {
        case .text:
            let prefix = level >= .warning ? "\(level == .warning ? "warning" : "error"): " : (level <= .debug ? "debug: " : "")
            line = prefix + Self.printable(message)
        case .json:
            var object = fields
            object["time"] = .string(Self.timestamp())
            object["level"] = .string(level.rawValue)
            object["message"] = .string(message)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            line = (try? String(decoding: encoder.encode(JSONValue.object(object)), as: UTF8.self)) ?? message
        }
        lock.lock()
        defer { lock.unlock() }
        clearBar()
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Draws `stage [#####-----] 42%` on the terminal's last line.
    func progress(stage: String, fraction: Double) {
        guard isTerminal, level <= .info else { return }
        let percent = Int(fraction * 100)
        lock.lock()
        defer { lock.unlock() }
        if let last = lastBar, last.stage == stage, last.percent == percent { return }
        lastBar = (stage, percent)
        let filled = percent * 30 / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled)
        FileHandle.standardError.write(Data("\r\u{1B}[2K  \(FilePaths.printable(stage)) [\(bar)] \(percent)%".utf8))
        barShown = true
    }

    private func clearBar() {
        if barShown {
            FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
            barShown = false
            lastBar = nil
        }
    }

    /// `text` with control characters escaped (`\u{1B}`), line breaks kept: what is
    /// safe to send to a terminal when `text` may quote a user's value or a child
    /// program's output.
    static func printable(_ text: String) -> String {
        guard FilePaths.controlCharacterOffset(in: text) != nil else { return text }
        return text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { FilePaths.printable(String($0)) }.joined(separator: "\n")
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}

/// swift-log handler writing through the console (stage loggers carry `stage` metadata).
struct ConsoleLogHandler: LogHandler {
    let console: Console
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var fields: [String: JSONValue] = [:]
        for (key, value) in merged { fields[key] = .string("\(value)") }
        let prefix = merged["stage"].map { "\($0): " } ?? ""
        console.log(event.level, prefix + "\(event.message)", fields)
    }
}

/// Prints one line per stage start and finish (with duration), failures and retries,
/// and the progress bar.
struct ConsoleObserver: RunObserver {
    let console: Console

    func runStarted(plan: Plan, runID: String, seed: UInt64) {
        console.log(.info, "run \(runID) of '\(plan.name)' (\(plan.stages.count) stages, seed \(seed))",
                    ["event": .string("run_started"), "run_id": .string(runID), "seed": .string(String(seed)), "pipeline": .string(plan.name)])
    }

    func stageStarted(id: String, type: String, attempt: Int) {
        let retry = attempt > 1 ? " (attempt \(attempt))" : ""
        console.log(.info, "▸ \(id) (\(type)) started\(retry)",
                    ["event": .string("stage_started"), "stage": .string(id), "type": .string(type), "attempt": .integer(attempt)])
    }

    func stageProgress(id: String, fraction: Double) {
        console.progress(stage: id, fraction: fraction)
    }

    func stageSucceeded(id: String, type: String, duration: Duration, output: ArtifactSummary) {
        console.log(.info, "✓ \(id) (\(type)) finished in \(duration.humanDescription): \(output.shortDescription)",
                    ["event": .string("stage_finished"), "stage": .string(id), "type": .string(type),
                     "duration_seconds": .number(duration.seconds), "output": .string(output.shortDescription)])
    }

    func stageFailed(id: String, type: String, attempt: Int, error: any Error, retryIn: Duration?) {
        if let retryIn {
            console.log(.warning, "\(id) (\(type)) attempt \(attempt) failed: \(ErrorDescription.readable(error)); retrying in \(retryIn.humanDescription)",
                        ["event": .string("stage_retry"), "stage": .string(id), "type": .string(type), "attempt": .integer(attempt),
                         "error": .string(ErrorDescription.readable(error))])
        } else {
            console.log(.error, "stage '\(id)' (\(type)) failed: \(ErrorDescription.readable(error))",
                        ["event": .string("stage_failed"), "stage": .string(id), "type": .string(type), "attempt": .integer(attempt),
                         "error": .string(ErrorDescription.readable(error))])
        }
    }

    func runFinished(report: RunReport) {
        let duration = Duration.milliseconds(Int64(report.durationSeconds * 1000)).humanDescription
        let fields: [String: JSONValue] = ["event": .string("run_finished"), "run_id": .string(report.runID),
                                           "status": .string(report.status.rawValue), "duration_seconds": .number(report.durationSeconds)]
        switch report.status {
        case .succeeded: console.log(.info, "run \(report.runID) succeeded in \(duration)", fields)
        case .failed: console.log(.error, "run \(report.runID) failed after \(duration)", fields)
        case .cancelled: console.log(.error, "run \(report.runID) cancelled after \(duration)", fields)
        }
    }
}
