import Foundation
import Framework

/// The check `--report FILE` gets before a run starts, so that a report that cannot
/// be written is found in a second rather than after all the work.
enum ReportPath {
    /// Why `path` cannot be written as the report, or `nil` when it looks writable:
    /// it must name a file (not a directory), and the nearest directory that exists
    /// on its way (missing ones are created when the report is written) must take a
    /// new file, which is tried by creating and removing one.
    static func problem(with path: String) -> String? {
        let (directory, name) = FilePaths.split(path)
        guard FilePaths.isBareName(name), !path.hasSuffix("/") else { return "it does not name a file" }
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return "it is a directory" }
        var existing = directory
        while stat(existing, &info) != 0 {
            guard errno == ENOENT else { return "'\(FilePaths.printable(existing))': \(String(cString: strerror(errno)))" }
            let parent = FilePaths.split(existing).directory
            if parent == existing { break }
            existing = parent
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return "'\(FilePaths.printable(existing))' is not a directory" }
        let probe = (existing.hasSuffix("/") ? existing : existing + "/") + ".runner-report-probe-\(getpid())"
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            return "cannot create a file in '\(FilePaths.printable(existing))': \(String(cString: strerror(errno)))"
        }
        close(descriptor)
        unlink(probe)
        return nil
    }
}
