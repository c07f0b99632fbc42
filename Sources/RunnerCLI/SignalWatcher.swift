import Foundation
import Framework
#if canImport(Glibc)
import Glibc
#endif

/// The write end of the self-pipe the signal handler writes to (async-signal-safe).
nonisolated(unsafe) private var signalPipe: Int32 = -1

/// SIGINT and SIGTERM during a run. The handler only writes the signal number to a
/// pipe; a thread of its own reads it. The first signal cancels the run (stages stop,
/// their temporary files and child processes go, the runner exits 130 or 143). A
/// second one kills every child process group with SIGKILL, removes every registered
/// temporary path and exits at once.
///
/// Installed before the pipeline is even planned, so that no moment of a run is
/// without it: a signal that comes before the run task exists is kept and cancels
/// the task as soon as it is given one.
final class SignalWatcher: @unchecked Sendable {
    static let shared = SignalWatcher()

    private let lock = NSLock()
    private var first: Int32?
    private var onSignal: (@Sendable () -> Void)?
    private var installed = false
    private var deferring = false

    /// The first signal received, if any.
    var received: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return first
    }

    /// Installs the handlers (once) and starts the thread that acts on signals.
    func install() {
        lock.lock()
        defer { lock.unlock() }
        guard !installed else { return }
        installed = true
        guard let (readEnd, writeEnd) = try? LibC.makePipe() else { return }
        _ = fcntl(writeEnd, F_SETFL, O_NONBLOCK)
        signalPipe = writeEnd
        // A closed stdout or stderr (a pipe whose reader went) is an EPIPE error, not death.
        Glibc.signal(SIGPIPE, SIG_IGN)
        for number in [SIGINT, SIGTERM] {
            // A signal ignored when the runner started (SIGINT for `runner ... &` in a
            // script: the shell ignores it for background jobs) stays ignored, as shells
            // and other tools leave it.
            var current = sigaction()
            if sigaction(number, nil, &current) == 0,
               unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = Glibc.write(signalPipe, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
        let thread = Thread { [self] in watch(readEnd) }
        thread.stackSize = 1 << 18
        thread.start()
    }

    /// Says that a run is being prepared: a first signal is kept for the handler that
    /// `onFirstSignal` will give, instead of ending the process at once (what it does
    /// for the other commands).
    func deferSignals() {
        lock.lock()
        deferring = true
        lock.unlock()
    }

    /// What the first signal does: called at once if one already came.
    func onFirstSignal(_ handler: @escaping @Sendable () -> Void) {
        lock.lock()
        let already = first != nil
        onSignal = handler
        lock.unlock()
        if already { handler() }
    }

    /// Whether the messages of a signal that ends the process are JSON lines
    /// (`--log-format json`), set before the command runs.
    var jsonMessages: Bool {
        get { lock.withLock { json } }
        set { lock.withLock { json = newValue } }
    }
    private var json = false

    private func watch(_ readEnd: Int32) {
        while true {
            var byte: UInt8 = 0
            let count = Glibc.read(readEnd, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            guard count == 1 else { return }
            let number = Int32(byte)
            lock.lock()
            let isFirst = first == nil
            if isFirst { first = number }
            let handler = onSignal
            let keep = deferring
            lock.unlock()
            if isFirst && handler != nil {
                handler?()
            } else if isFirst && keep {
                continue
            } else {
                let name = number == SIGINT ? "SIGINT" : "SIGTERM"
                let text = isFirst ? "\(name): exiting" : "second \(name): killing child processes and exiting"
                var message = "runner: " + text + "\n"
                if jsonMessages {
                    let line = "{\"event\":\"interrupted\",\"level\":\"error\",\"message\":\"\(text)\",\"signal\":\"\(name)\",\"time\":\"\(Console.timestamp())\"}"
                    message = line + "\n"
                }
                _ = message.withCString { Glibc.write(2, $0, strlen($0)) }
                Cleanup.forceCleanup()
                Cleanup.killOrphans()
                _exit(128 + number)
            }
        }
    }
}
