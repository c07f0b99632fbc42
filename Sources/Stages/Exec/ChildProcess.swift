import Foundation
import Framework
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program under supervision and waits for it, on the calling thread (call it
/// through `Blocking.run`).
///
/// - The program runs in a process group of its own, with stdin from /dev/null, its
///   stdout and stderr read line by line, and no descriptor of the runner but those
///   three (every other one is closed in the child).
/// - It ends when the program exits, even if its descendants keep stdout or stderr
///   open: the rest of its group, and every process that still carries its
///   environment marker (descendants that left the group with `setsid`), is killed
///   with SIGKILL, and the pipes are drained for at most `drainTime`.
/// - On timeout or cancellation: SIGTERM to the group and the marked processes, then
///   SIGKILL after `grace`. Nothing outlives the call, and no timer either.
/// - Lines longer than `LineSplitter.limit` bytes are cut and marked as cut; reading
///   is linear in the bytes read.
struct ChildProcess {
    struct Outcome {
        var status: Int32
        var signal: Int32?
        var timedOut = false
        var cancelled = false
        /// The last stderr lines, at most 20.
        var lastErrorLines: [String]
    }

    var arguments: [String]
    var environment: [String: String]
    var directory: String
    var timeout: Double?
    var grace: Double = 2
    var drainTime: Double = 0.5

    private static let subreaper: Bool = LibC.becomeChildSubreaper()

    func run(cancel: CancelFlag, onLine: (_ line: String, _ fromStderr: Bool) -> Void) throws -> Outcome {
        _ = Self.subreaper
        let marker = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let output = try LibC.makePipe()
        let errors: (read: Int32, write: Int32)
        do {
            errors = try LibC.makePipe()
        } catch {
            close(output.read); close(output.write)
            throw error
        }
        let pid: pid_t
        do {
            defer { close(output.write); close(errors.write) }
            pid = try spawn(stdout: output.write, stderr: errors.write, marker: marker)
        } catch {
            close(output.read); close(errors.read)
            throw error
        }
        let registration = Cleanup.registerProcessGroup(pid, marker: marker)
        defer { Cleanup.unregister(registration) }
        return supervise(pid: pid, marker: marker, streams: [output.read, errors.read], cancel: cancel, onLine: onLine)
    }

    private func spawn(stdout: Int32, stderr: Int32, marker: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // Belt and braces: every descriptor of the runner is close-on-exec, and the
        // child closes whatever is above 2 anyway.
        if let closeFrom = LibC.addCloseFrom { _ = closeFrom(&actions, 3) }
        var command = arguments
        if let addChdir = LibC.addChdir {
            _ = addChdir(&actions, directory)
        } else {
            command = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory] + arguments
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)

        var variables = environment
        variables[ProcessTable.markerVariable] = marker
        let argv = command.map { strdup($0) } + [nil]
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let status = posix_spawnp(&child, command[0], &actions, &attributes, argv, envp)
        guard status == 0 else {
            if status == ENOENT || status == ENOTDIR, LibC.addChdir != nil, access(directory, F_OK) != 0 {
                throw StageFailure("working directory '\(directory)' does not exist", retryable: false, code: .childFailed)
            }
            if status == ENOENT {
                let program = arguments[0]
                let hint: String
                if program.contains("/") {
                    // posix_spawnp runs a path with a slash as it is, from the working directory.
                    hint = program.hasPrefix("/") ? "no such file" : "looked for it in the working directory '\(FilePaths.printable(directory))', "
                        + "against which a relative program path is resolved (see 'workdir')"
                } else if program.contains(" ") {
                    hint = "a program's name with a space: without shell: true, command is a list of words, [program, argument, ...]"
                } else {
                    hint = "looked for it on PATH; check the spelling, or give its path"
                }
                throw StageFailure("command '\(FilePaths.printable(program))' not found (\(hint))", retryable: false, code: .childFailed)
            }
            throw StageFailure("cannot start '\(arguments[0])': \(String(cString: strerror(status)))", retryable: false, code: .childFailed)
        }
        return child
    }

    private func supervise(pid: pid_t, marker: String, streams: [Int32], cancel: CancelFlag,
                           onLine: (_ line: String, _ fromStderr: Bool) -> Void) -> Outcome {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = timeout.map { start + .milliseconds(Int64($0 * 1000)) }
        var open = streams                       // stdout, stderr; -1 once closed
        var splitters = [LineSplitter(), LineSplitter()]
        var lastErrors = RecentLines()
        let pidfd = LibC.pidfdOpen?(pid, 0) ?? -1
        defer { if pidfd >= 0 { close(pidfd) } }
        var exitStatus: Int32?
        var terminatingSince: ContinuousClock.Instant?
        var timedOut = false, cancelled = false
        var drainUntil: ContinuousClock.Instant?
        var buffer = [UInt8](repeating: 0, count: 65536)

        func signalAll(_ signal: Int32) {
            kill(-pid, signal)
            for other in ProcessTable.processes(markedWithAnyOf: [marker]) { kill(other, signal) }
        }
        func emit(_ line: String, _ index: Int) {
            if index == 1 { lastErrors.append(line) }
            onLine(line, index == 1)
        }

        while true {
            // Read what is there, wait at most 50 ms for more or for the exit.
            var fds = open.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if pidfd >= 0 && exitStatus == nil { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            let wait: Int32 = (exitStatus == nil && pidfd < 0) ? 20 : 50
            if fds.isEmpty {
                usleep(UInt32(wait) * 1000)
            } else {
                _ = poll(&fds, nfds_t(fds.count), wait)
            }
            for index in 0..<2 where open[index] >= 0 {
                // Read until the pipe is empty (non-blocking via poll), one chunk per turn.
                var probe = pollfd(fd: open[index], events: Int16(POLLIN), revents: 0)
                guard poll(&probe, 1, 0) > 0 else { continue }
                let count = buffer.withUnsafeMutableBytes { read(open[index], $0.baseAddress, $0.count) }
                if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if count <= 0 {
                    splitters[index].finish { emit($0, index) }
                    close(open[index])
                    open[index] = -1
                } else {
                    buffer.withUnsafeBytes { splitters[index].feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) { emit($0, index) } }
                }
            }
            if exitStatus == nil && Self.hasExited(pid) {
                // The program is done: what is left of its group, and of its marked
                // descendants, goes now, while the exited program is not yet reaped (so
                // neither its pid nor its group id can have been reused); then it is
                // reaped and the pipes are drained for a bounded time.
                signalAll(SIGKILL)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                exitStatus = status
                drainUntil = clock.now + .milliseconds(Int64(drainTime * 1000))
            }
            if let drainUntil, open.allSatisfy({ $0 < 0 }) || clock.now >= drainUntil {
                break
            }
            if exitStatus == nil {
                if terminatingSince == nil {
                    if cancel.isSet() { cancelled = true }
                    if let deadline, clock.now >= deadline { timedOut = true }
                    if cancelled || timedOut {
                        signalAll(SIGTERM)
                        terminatingSince = clock.now
                    }
                } else if let since = terminatingSince, clock.now - since >= .milliseconds(Int64(grace * 1000)) {
                    signalAll(SIGKILL)
                }
            }
        }
        for index in 0..<2 where open[index] >= 0 {
            splitters[index].finish { emit($0, index) }
            close(open[index])
        }
        reapMarked(marker)
        let status = exitStatus ?? 0
        let signaled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
        return Outcome(status: (status >> 8) & 0xFF, signal: signaled ? status & 0x7F : nil, timedOut: timedOut,
                       cancelled: cancelled, lastErrorLines: lastErrors.lines)
    }

    /// Whether `pid` has exited, without reaping it (`waitid` with WNOWAIT).
    private static func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        let result = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        if result == -1 { return errno == ECHILD }
        return info._sifields._sigchld.si_pid == pid
    }

    /// Kills and reaps the program's marked descendants that became this process's
    /// children (this process is their subreaper), so that none is left as a zombie.
    private func reapMarked(_ marker: String) {
        let me = getpid()
        for _ in 0..<50 {
            let left = ProcessTable.processes(markedWithAnyOf: [marker])
            if left.isEmpty { return }
            for pid in left {
                kill(pid, SIGKILL)
                if ProcessTable.parent(of: pid) == me {
                    var status: Int32 = 0
                    _ = waitpid(pid, &status, 0)
                }
            }
        }
    }
}

/// Splits a byte stream into lines, in time linear in the bytes: a line longer than
/// `limit` bytes keeps its first `limit` bytes and is marked with how much was cut.
struct LineSplitter {
    static let limit = 4096
    private var pending: [UInt8] = []
    private var cut = 0

    init() {
        pending.reserveCapacity(Self.limit)
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (String) -> Void) {
        var start = 0
        while start < bytes.count {
            let found = memchr(bytes.baseAddress! + start, 10, bytes.count - start)
            let newline = found.map { bytes.baseAddress!.distance(to: UnsafeRawPointer($0)) }
            let end = newline ?? bytes.count
            let room = Self.limit - pending.count
            let taken = min(room, end - start)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + taken)]))
            cut += (end - start) - taken
            if let newline {
                emit(line())
                start = newline + 1
            } else {
                start = end
            }
        }
    }

    mutating func finish(emit: (String) -> Void) {
        if !pending.isEmpty || cut > 0 { emit(line()) }
    }

    private mutating func line() -> String {
        var text = String(decoding: pending, as: UTF8.self)
        if cut > 0 { text += " [line cut: \(cut) more bytes]" }
        pending.removeAll(keepingCapacity: true)
        cut = 0
        return text
    }
}

/// The last lines of a stream, for an error message: at most 20 lines and about 4 KiB.
struct RecentLines {
    static let maxLines = 20
    static let maxBytes = 4096
    private(set) var lines: [String] = []

    mutating func append(_ line: String) {
        lines.append(line)
        if lines.count > Self.maxLines { lines.removeFirst(lines.count - Self.maxLines) }
    }

    /// The tail to quote: the most recent lines that fit in `maxBytes`, the oldest of
    /// them cut at the front if it alone is too long.
    static func quote(_ lines: [String]) -> String {
        var picked: [String] = []
        var bytes = 0
        for line in lines.reversed() {
            let size = line.utf8.count + 1
            if bytes + size > maxBytes {
                let room = maxBytes - bytes
                if room > 40 {
                    picked.append("[...] " + String(decoding: line.utf8.suffix(room - 7), as: UTF8.self))
                }
                break
            }
            picked.append(line)
            bytes += size
        }
        return picked.reversed().joined(separator: "\n")
    }
}
