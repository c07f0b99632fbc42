import Framework
import Stages

/// What `runner --version` prints: the runner's version, then one line per C library
/// it runs on. libcurl, otherwise opened on the first HTTP transfer, is loaded here
/// so its version can be shown.
enum VersionReport {
    static func text() -> String {
        var lines = ["runner \(RunnerVersion.current)"]
        for entry in LibraryVersions.current(loadingCurl: true) {
            lines.append("  \(entry.library) \(entry.version)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
