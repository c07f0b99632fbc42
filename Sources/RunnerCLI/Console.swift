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

    /// Writes one record: a text line or a JSON object.
    func log(_ level: Logger.Level, _ message: String, _ fields: [String: JSONValue] = [:], time: Date = Date()) {
        guard level >= self.level else { return }
        let line: String
        switch format {
        case .text:
            let prefix = level >= .warning ? "\(level == .warning ? "warning" : "error"): " : (level <= .debug ? "debug: " : "")
            line = prefix + Self.printable(message)
        case .json:
            var object = fields
            object["time"] = .string(Self.timestamp(time))
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

    /// Draws `text` on the terminal's last line (a sweep's progress), replacing what was there.
    func status(_ text: String) {
        guard isTerminal, level <= .info else { return }
        lock.lock()
        defer { lock.unlock() }
        lastBar = nil
        FileHandle.standardError.write(Data("\r\u{1B}[2K  \(Self.printable(text))".utf8))
        barShown = true
    }

    /// Writes `lines` to stdout at once, clearing a progress line first (the two may
    /// share a terminal).
    func output(_ lines: [String]) {
        lock.lock()
        defer { lock.unlock() }
        clearBar()
        FileHandle.standardOutput.write(Data(lines.map { $0 + "\n" }.joined().utf8))
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

    static func timestamp(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

/// Shows a run's events: in text, one line per stage start and finish (with its
/// duration), retries, failures and the stages' log records, and the progress bar
/// on a terminal; in JSON, one object per event (without progress), with its name
/// under `event` and its fields (`error_code` for failures).
struct ConsoleEvents: RunEventHandler {
    let console: Console

    func handle(_ event: RunEvent) {
        if case .stageProgress(let progress) = event.kind {
            console.progress(stage: progress.stage, fraction: progress.fraction)
            return
        }
        guard let message = event.message else { return }
        var fields = event.fields
        fields["event"] = .string(event.name)
        console.log(event.level, message, fields, time: event.time)
    }
}
