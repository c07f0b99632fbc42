import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Memory that could not be allocated, with its size and what it was for.
public struct AllocationError: Error, Sendable, CustomStringConvertible {
    /// The size asked for, as a Double so that a size that overflows Int is still
    /// reported as what it is.
    public var byteCount: Double
    public var purpose: String

    public init(byteCount: Double, purpose: String) {
        self.byteCount = byteCount
        self.purpose = purpose
    }

    public var description: String {
        "cannot allocate \(ByteCountFormatting.string(byteCount)) for \(purpose): not enough memory "
            + "(the limit here is \(MemoryLimit.current.description))"
    }
}

/// How much memory this process may use: the smallest of physical memory,
/// RLIMIT_AS, RLIMIT_DATA and the cgroup memory limits (v2 `memory.max`, v1
/// `memory.limit_in_bytes`) of this process's cgroup and its ancestors.
public struct MemoryLimit: Sendable, CustomStringConvertible {
    public var bytes: UInt64
    /// What sets the limit: "physical memory", "RLIMIT_AS", "cgroup memory.max", ...
    public var source: String

    public var description: String { "\(ByteCountFormatting.string(Double(bytes))), \(source)" }

    /// The limit now (read each time: limits can change while a process runs).
    public static var current: MemoryLimit {
        var limit = MemoryLimit(bytes: ProcessInfo.processInfo.physicalMemory, source: "physical memory")
        func consider(_ bytes: UInt64?, _ source: String) {
            if let bytes, bytes > 0, bytes < limit.bytes { limit = MemoryLimit(bytes: bytes, source: source) }
        }
        var resource = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &resource) == 0, resource.rlim_cur != rlim_t.max {
            consider(UInt64(resource.rlim_cur), "RLIMIT_AS (ulimit -v)")
        }
        if getrlimit(Int32(RLIMIT_DATA.rawValue), &resource) == 0, resource.rlim_cur != rlim_t.max {
            consider(UInt64(resource.rlim_cur), "RLIMIT_DATA (ulimit -d)")
        }
        for (bytes, file) in cgroupLimits() { consider(bytes, "cgroup \(file)") }
        return limit
    }

    /// The memory limits of this process's cgroups (every ancestor's counts too).
    static func cgroupLimits(procSelfCgroup: String = "/proc/self/cgroup", root: String = "/sys/fs/cgroup") -> [(UInt64, String)] {
        guard let text = try? String(contentsOfFile: procSelfCgroup, encoding: .utf8) else { return [] }
        var result: [(UInt64, String)] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let controllers = fields[1].split(separator: ",")
            let path = String(fields[2])
            let candidates: [(String, String)]
            if fields[0] == "0" && controllers.isEmpty {
                candidates = [(root, "memory.max"), (root + "/unified", "memory.max")]  // v2, or v2 beside v1 (hybrid)
            } else if controllers.contains("memory") {
                candidates = [(root + "/memory", "memory.limit_in_bytes")]
            } else {
                continue
            }
            for (mount, file) in candidates {
                var directory = path
                while true {
                    let limitPath = FilePaths.absolute(mount + "/" + directory + "/" + file)
                    if let value = try? String(contentsOfFile: limitPath, encoding: .utf8)
                        .trimmingCharacters(in: .whitespacesAndNewlines), let bytes = UInt64(value) {
                        result.append((bytes, file))
                    }
                    if directory == "/" || directory.isEmpty { break }
                    directory = FilePaths.split(directory).directory
                }
            }
        }
        return result
    }
}

/// The process's peak resident set size so far.
public enum PeakMemory {
    /// VmHWM from /proc/self/status: the high-water mark of this program's own
    /// memory. `getrusage`'s ru_maxrss is not: Linux carries into it the resident
    /// size of the process before `exec`, which for a program started by a large
    /// parent through `fork` is the parent's. getrusage is the fallback elsewhere.
    public static var residentBytes: Double {
        if let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kilobytes = Double(line.dropFirst("VmHWM:".count).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") {
            return kilobytes * 1024
        }
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
        return Double(usage.ru_maxrss) * 1024  // kilobytes on Linux
    }
}
