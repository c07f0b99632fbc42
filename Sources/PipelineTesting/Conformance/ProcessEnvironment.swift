import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process environment, changed for a while and put back.
///
/// Stages read credentials from the process environment, which is shared
/// by every thread, so conformance checks hold `ConformanceLock` while they change it:
/// two checks never run at once in one process.
enum ProcessEnvironment {
    /// Sets `variables` (an empty value unsets the variable); returns what to pass to
    /// `restore` to undo it.
    static func apply(_ variables: [String: String]) -> [String: String?] {
        var saved: [String: String?] = [:]
        for (name, value) in variables {
            // updateValue, not subscript assignment: assigning nil would drop the entry,
            // and an unset variable would then never be unset again.
            saved.updateValue(getenv(name).map { String(cString: $0) }, forKey: name)
            if value.isEmpty { unsetenv(name) } else { setenv(name, value, 1) }
        }
        return saved
    }

    static func restore(_ saved: [String: String?]) {
        for (name, value) in saved {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
    }

    /// Runs `body` with `variables` set, and puts the environment back afterwards.
    static func with<T>(_ variables: [String: String], _ body: () async throws -> T) async rethrows -> T {
        let saved = apply(variables)
        defer { restore(saved) }
        return try await body()
    }
}
