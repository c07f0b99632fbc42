import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a forced exit must not leave behind: temporary files and directories, and
/// child process groups. Stages register them while they exist; a second SIGINT or
/// SIGTERM (`forceCleanup`) kills every registered group and removes every registered
/// path before the process exits. Normal runs clean up after themselves and only
/// unregister.
public enum Cleanup {
    /// A registration, to be given back to `unregister`.
    public struct Token: Hashable, Sendable {
        fileprivate let value: UInt64
    }

    private struct Entry {
        var path: String?
        var processGroup: pid_t?
        /// Marks the environment of a program's processes (`PIPELINE_SUPERVISOR_TOKEN`),
        /// so that descendants that left the process group are still found.
        var marker: String?
    }

    nonisolated(unsafe) private static var entries: [UInt64: Entry] = [:]
    nonisolated(unsafe) private static var next: UInt64 = 0
    private static let lock = NSLock()

    private static func add(_ entry: Entry) -> Token {
        lock.lock()
        defer { lock.unlock() }
        next += 1
        entries[next] = entry
        return Token(value: next)
    }

    /// Registers a temporary file or directory (removed with its contents on a forced exit).
    public static func registerTemporary(_ path: String) -> Token {
        add(Entry(path: path))
    }

    /// Registers a child's process group and the environment marker of its processes.
    public static func registerProcessGroup(_ group: pid_t, marker: String?) -> Token {
        add(Entry(processGroup: group, marker: marker))
    }

    public static func unregister(_ token: Token) {
        lock.lock()
        entries[token.value] = nil
        lock.unlock()
    }

    /// The paths registered now (for tests).
    public static var registeredPaths: [String] {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.compactMap(\.path)
    }

    /// Kills every registered process group and marked process with SIGKILL, and
    /// removes every registered path. For a forced exit: call it, then `_exit`.
    public static func forceCleanup() {
        lock.lock()
        let snapshot = Array(entries.values)
        lock.unlock()
        let markers = Set(snapshot.compactMap(\.marker))
        for entry in snapshot {
            if let group = entry.processGroup { kill(-group, SIGKILL) }
        }
        if !markers.isEmpty {
            for pid in ProcessTable.processes(markedWithAnyOf: markers) { kill(pid, SIGKILL) }
        }
        for entry in snapshot {
            if let path = entry.path { try? FileManager.default.removeItem(atPath: path) }
        }
    }
}

extension Cleanup {
    /// Kills and reaps every child process left (with this process as their
    /// subreaper, descendants that escaped their stage end up here). For the end of
    /// a run, when no stage is running.
    public static func killOrphans() {
        let me = getpid()
        for _ in 0..<20 {
            let children = ProcessTable.children(of: me)
            if children.isEmpty { return }
            for pid in children {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(pid, &status, 0)
            }
        }
    }
}

/// Looks at other processes through /proc.
public enum ProcessTable {
    /// The environment variable that marks a supervised program's processes.
    public static let markerVariable = "PIPELINE_SUPERVISOR_TOKEN"

    /// Processes (other than this one) whose initial environment holds
    /// `PIPELINE_SUPERVISOR_TOKEN=` one of `markers`. Processes that exited, or
    /// whose environment cannot be read, are skipped.
    public static func processes(markedWithAnyOf markers: Set<String>) -> [pid_t] {
        let needles = markers.map { Array("\(markerVariable)=\($0)".utf8) }
        let me = getpid()
        var result: [pid_t] = []
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), pid != me else { continue }
            guard let environment = readSmallFile("/proc/\(pid)/environ", limit: 1 << 20) else { continue }
            for variable in environment.split(separator: 0) where needles.contains(where: { variable.elementsEqual($0) }) {
                result.append(pid)
                break
            }
        }
        return result
    }

    /// The processes whose parent is `parent`.
    public static func children(of parent: pid_t) -> [pid_t] {
        var result: [pid_t] = []
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), self.parent(of: pid) == parent else { continue }
            result.append(pid)
        }
        return result
    }

    /// The parent of `pid`, from /proc/PID/stat, or nil.
    public static func parent(of pid: pid_t) -> pid_t? {
        guard let bytes = readSmallFile("/proc/\(pid)/stat", limit: 4096),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After "pid (comm) ": state, then ppid.
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 1 else { return nil }
        return pid_t(String(decoding: fields[1], as: UTF8.self))
    }

    static func readSmallFile(_ path: String, limit: Int) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while result.count < limit {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            result += buffer[0..<count]
        }
        return result
    }
}
