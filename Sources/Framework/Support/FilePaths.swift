#if canImport(Glibc)
import Glibc
#endif

/// Path rules, in one place. Paths are taken literally: `~` is a name like any
/// other, never a home directory (Foundation's `URL(fileURLWithPath:)` expands it,
/// so it is not used for paths); control characters are refused where paths are
/// checked; `..` is resolved lexically, as a user reading the path would.
public enum FilePaths {
    /// `path` made absolute against the working directory and normalised lexically
    /// (`.` dropped, `a/..` removed, repeated `/` joined). Never expands `~`.
    public static func absolute(_ path: String, relativeTo base: String? = nil) -> String {
        let full = path.hasPrefix("/") ? path : (base ?? currentDirectory()) + "/" + path
        var components: [Substring] = []
        for component in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..": if !components.isEmpty { components.removeLast() }
            default: components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }

    /// `path` with its symbolic links resolved (`realpath`), or as it is when it cannot be.
    public static func resolved(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(validatingCString: resolved) ?? path
    }

    /// Whether `a` and `b` name the same existing file (the same device and inode,
    /// whatever links or `..` lead there). False when either does not exist.
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var first = stat(), second = stat()
        guard stat(a, &first) == 0, stat(b, &second) == 0 else { return false }
        return first.st_dev == second.st_dev && first.st_ino == second.st_ino
    }

    /// Whether the absolute, normalised `path` is `directory` or below it.
    public static func isWithin(_ path: String, directory: String) -> Bool {
        directory == "/" || path == directory || path.hasPrefix(directory + "/")
    }

    /// The working directory (`/` if it cannot be read).
    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The offset, in Unicode scalars, of the first control character (U+0000-U+001F,
    /// U+007F-U+009F), or nil.
    public static func controlCharacterOffset(in text: String) -> Int? {
        for (offset, scalar) in text.unicodeScalars.enumerated() where scalar.properties.generalCategory == .control {
            return offset
        }
        return nil
    }

    /// `text` with control characters written as `\u{0}` escapes, for messages.
    public static func printable(_ text: String) -> String {
        guard controlCharacterOffset(in: text) != nil else { return text }
        return text.unicodeScalars.map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
    }

    /// The directory part and the last component of a path (`a/b/c` -> `a/b`, `c`).
    public static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// Whether `name` is one bare file name: not empty, not `.` or `..`, no `/`, no
    /// control character.
    public static func isBareName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && controlCharacterOffset(in: name) == nil
    }

    /// Creates `path` and its missing parents (mode 0755), like `mkdir -p`, and
    /// returns the directories it made, outermost first.
    @discardableResult
    public static func createDirectories(_ path: String) throws(SystemError) -> [String] {
        var isDirectory = stat()
        if stat(path, &isDirectory) == 0 {
            guard (isDirectory.st_mode & S_IFMT) == S_IFDIR else { throw SystemError("create directory", path: path, code: ENOTDIR) }
            return []
        }
        let (parent, _) = split(path)
        var made: [String] = []
        if parent != path && parent != "." && parent != "/" { made = try createDirectories(parent) }
        if mkdir(path, 0o755) != 0 {
            if errno != EEXIST { throw SystemError("create directory", path: path) }
        } else {
            made.append(path)
        }
        return made
    }

    /// Removes the directories `createDirectories` made, innermost first, as far as
    /// they are empty: what a write that did not land leaves behind.
    public static func removeEmptyDirectories(_ made: [String]) {
        for directory in made.reversed() where rmdir(directory) != 0 { return }
    }

    /// fsyncs a directory, so that a rename in it survives a crash.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SystemError("open directory", path: path) }
        defer { close(descriptor) }
        // Some file systems cannot sync a directory (EINVAL): nothing more can be done there.
        if fsync(descriptor) != 0 && errno != EINVAL && errno != EROFS {
            throw SystemError("flush directory", path: path)
        }
    }
}
