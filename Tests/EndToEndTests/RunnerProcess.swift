import Foundation
import Framework
import Testing

/// Runs the built `runner` executable as a user would.
struct RunnerProcess {
    /// The package root, from this file's path.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `runner` next to the test bundle (both are built into the same directory), or RUNNER_PATH.
    static var executable: URL {
        if let path = ProcessInfo.processInfo.environment["RUNNER_PATH"] { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("runner")
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// From start to exit.
        var elapsed: Duration = .zero
        /// The runner was still running at the `limit` and was killed.
        var hung = false
    }

    /// Runs `runner arguments` in `directory` and waits for it.
    static func run(_ arguments: [String], in directory: URL, environment: [String: String] = [:],
                    signal: (Int32, after: Duration)? = nil) throws -> Result {
        try run(arguments, in: directory, environment: environment, signals: signal.map { [$0] } ?? [])
    }

    /// Runs `runner arguments` in `directory`, sends `signals` (each `after` the start),
    /// and waits for it, but no longer than `limit`: a runner still running then is
    /// killed with SIGKILL and reported as `hung`. `shell` runs first in `/bin/sh`
    /// (e.g. `ulimit -v 1000000`) before the runner replaces it.
    static func run(_ arguments: [String], in directory: URL, environment: [String: String] = [:],
                    signals: [(Int32, after: Duration)], limit: Duration = .seconds(120), shell: String? = nil,
                    timeSignalsFromHandler: Bool = false) throws -> Result {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw RunnerMissing(path: executable.path)
        }
        let process = Process()
        if let shell {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", shell + "; exec \"$0\" \"$@\"", executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let clock = ContinuousClock()
        let start = clock.now
        try process.run()
        let pid = process.processIdentifier
        let hung = LockedFlag()
        let watchdog = DispatchWorkItem {
            hung.set()
            kill(pid, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit.seconds, execute: watchdog)
        // Optionally, delays count from when the runner catches SIGTERM (its handler is
        // installed), or from 300 ms after the start if it never does.
        var origin = start
        if timeSignalsFromHandler {
            while clock.now - start < .milliseconds(300) && !catchesSIGTERM(pid) { usleep(200) }
            origin = clock.now
        }
        for (number, delay) in signals.sorted(by: { $0.after < $1.after }) {
            let wait = delay - (clock.now - origin)
            if wait > .zero { Thread.sleep(forTimeInterval: wait.seconds) }
            kill(pid, number)
        }
        // Read both pipes while waiting so a full pipe cannot block the child.
        let stderrData = LockedData()
        let done = DispatchSemaphore(value: 0)
        Thread {
            stderrData.set(err.fileHandleForReading.readDataToEndOfFile())
            done.signal()
        }.start()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        process.waitUntilExit()
        let elapsed = clock.now - start
        watchdog.cancel()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderrData.get(), as: UTF8.self), elapsed: elapsed, hung: hung.isSet())
    }

    /// Whether process `pid` has a handler for SIGTERM (SigCgt in /proc/PID/status).
    static func catchesSIGTERM(_ pid: pid_t) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
              let mask = UInt64(line.dropFirst("SigCgt:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << (UInt64(SIGTERM) - 1)) != 0
    }

    struct RunnerMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "runner executable not found at \(path); run `swift build` before `swift test`" }
    }
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Every regular file below `directory`, relative paths, sorted.
func files(below directory: URL) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: directory.path) else { return [] }
    var result: [String] = []
    while let path = enumerator.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent(path).path, isDirectory: &isDirectory), !isDirectory.boolValue {
            result.append(path)
        }
    }
    return result.sorted()
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    func isSet() -> Bool { lock.lock(); defer { lock.unlock() }; return value }
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Data()
    func set(_ data: Data) { lock.lock(); value = data; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return value }
}
