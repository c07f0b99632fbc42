#if canImport(Glibc)
import Glibc
#endif

/// glibc functions that its headers declare only under `_GNU_SOURCE`, which Swift's
/// Glibc module does not define, so they do not import. Each is looked up once by
/// name in the C library already loaded; nil where the C library lacks it.
public enum LibC {
    private static func symbol<T>(_ name: String, as type: T.Type) -> T? {
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }  // RTLD_DEFAULT
        return unsafeBitCast(address, to: type)
    }

    /// `pipe2(fds, flags)`.
    public static let pipe2 = symbol("pipe2", as: (@convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32).self)

    /// `posix_spawn_file_actions_addclosefrom_np(actions, from)` (glibc 2.34).
    public static let addCloseFrom = symbol(
        "posix_spawn_file_actions_addclosefrom_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)

    /// `posix_spawn_file_actions_addchdir_np(actions, path)` (glibc 2.29).
    public static let addChdir = symbol(
        "posix_spawn_file_actions_addchdir_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32).self)

    /// `pidfd_open(pid, flags)` (glibc 2.36): a descriptor that polls readable when
    /// the process exits.
    public static let pidfdOpen = symbol("pidfd_open", as: (@convention(c) (pid_t, UInt32) -> Int32).self)

    /// `prctl(option, arg2, arg3, arg4, arg5)`; variadic in C, called with five longs,
    /// which the x86-64 and AArch64 calling conventions pass alike.
    private static let prctlFunction = symbol("prctl", as: (@convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32).self)

    /// Makes this process the reaper of its orphaned descendants
    /// (`PR_SET_CHILD_SUBREAPER`), so that a program's children that escape into a
    /// session of their own still have this process as an ancestor. True on success.
    @discardableResult
    public static func becomeChildSubreaper() -> Bool {
        prctlFunction?(36, 1, 0, 0, 0) == 0  // PR_SET_CHILD_SUBREAPER
    }

    /// A pipe whose two ends are close-on-exec from the start.
    public static func makePipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        if let pipe2 {
            let result = fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress!, O_CLOEXEC) }
            guard result == 0 else { throw SystemError("create a pipe") }
        } else {
            guard pipe(&fds) == 0 else { throw SystemError("create a pipe") }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        return (fds[0], fds[1])
    }
}
