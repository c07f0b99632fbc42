import Foundation
import Framework
#if canImport(Glibc)
import Glibc
#endif

/// A child process in its own process group, so that a timeout or cancellation can
/// stop it and everything it started. Its stderr (and stdout) lines are handed to a
/// callback as they arrive; the last stderr lines are kept for error messages.
final class ChildProcess: @unchecked Sendable {
    struct Outcome {
        var status: Int32
        var signal: Int32?
        var lastErrorLines: [String]
    }

    let pid: pid_t
    private let lock = NSLock()
    private var errorLines: [String] = []
    private var readers: [Thread] = []
    private let readersDone = DispatchGroup()

    /// Starts `arguments[0]` (looked up in PATH) with `arguments`, `environment`, in `directory`.
    init(arguments: [String], environment: [String: String], directory: String,
         onLine: @escaping @Sendable (_ line: String, _ fromStderr: Bool) -> Void) throws {
        var out: [Int32] = [0, 0], err: [Int32] = [0, 0]
        guard pipe(&out) == 0, pipe(&err) == 0 else { throw SystemError("create a pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        for fd in out + err { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)

        // The working directory is set by a tiny sh trampoline (glibc's
        // posix_spawn_file_actions_addchdir_np is not visible from Swift); the
        // program itself gets its arguments untouched, with no shell parsing.
        let command = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + arguments
        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let status = posix_spawn(&child, "/bin/sh", &actions, &attributes, argv, envp)
        close(out[1])
        close(err[1])
        guard status == 0 else {
            close(out[0])
            close(err[0])
            throw StageFailure("cannot start '\(arguments[0])': \(String(cString: strerror(status)))", retryable: false)
        }
        pid = child
        for (fd, isError) in [(out[0], false), (err[0], true)] {
            readersDone.enter()
            let thread = Thread { [self] in
                readLines(fd) { line in
                    if isError { self.remember(line) }
                    onLine(line, isError)
                }
                close(fd)
                readersDone.leave()
            }
            thread.start()
        }
    }

    private func remember(_ line: String) {
        lock.lock()
        errorLines.append(line)
        if errorLines.count > 20 { errorLines.removeFirst() }
        lock.unlock()
    }

    private func readLines(_ fd: Int32, _ emit: (String) -> Void) {
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            pending += buffer[0..<count]
            while let newline = pending.firstIndex(of: 10) {
                emit(String(decoding: pending[..<newline], as: UTF8.self))
                pending.removeSubrange(...newline)
            }
        }
        if !pending.isEmpty { emit(String(decoding: pending, as: UTF8.self)) }
    }

    /// Waits for the process (blocking) and for its output to be read.
    func wait() -> Outcome {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        readersDone.wait()
        lock.lock()
        defer { lock.unlock() }
        let signaled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
        return Outcome(status: (status >> 8) & 0xFF, signal: signaled ? status & 0x7F : nil, lastErrorLines: errorLines)
    }

    /// SIGTERM to the whole group, then SIGKILL after `grace` if anything is left.
    func terminateGroup(grace: TimeInterval = 2) {
        kill(-pid, SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + grace) { [pid] in
            kill(-pid, SIGKILL)
        }
    }
}
