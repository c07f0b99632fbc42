import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Atomic file writes, the one writer for the filesystem sink, the artifact store,
/// reports and exports: a temporary file next to the target, fsync, move into place,
/// fsync the directory. Readers see the old state or the whole new file. The
/// temporary file is close-on-exec, registered for removal on a forced exit, and
/// removed whatever happens, cancellation included.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, overwrite: Bool, isCancelled: () -> Bool = { false }) throws {
        try bytes.withUnsafeBytes { try write($0, to: path, overwrite: overwrite, isCancelled: isCancelled) }
    }

    public static func write(_ data: Data, to path: String, overwrite: Bool, isCancelled: () -> Bool = { false }) throws {
        try data.withUnsafeBytes { try write($0, to: path, overwrite: overwrite, isCancelled: isCancelled) }
    }

    /// Writes `buffer` to `path`. Without `overwrite` an existing file is never
    /// replaced (the move is a hard link, which fails if the target exists).
    /// `written` receives the bytes written so far after each write of at most
    /// `writeSize` bytes (before the flush to disk); `isCancelled` is polled between them.
    public static func write(_ buffer: UnsafeRawBufferPointer, to path: String, overwrite: Bool, isCancelled: () -> Bool = { false },
                             written: (Int) -> Void = { _ in }) throws {
        try write(to: path, overwrite: overwrite, isCancelled: isCancelled) { descriptor, temporary in
            var offset = 0
            while offset < buffer.count {
                if isCancelled() { throw CancellationError() }
                let count = try retryingOnInterrupt("write", path: temporary) {
                    Int32(truncatingIfNeeded: Glibc.write(descriptor, buffer.baseAddress! + offset, min(buffer.count - offset, writeSize)))
                }
                offset += Int(count)
                written(offset)
            }
        }
    }

    /// The most bytes one `write` call of `write(_:to:overwrite:isCancelled:written:)`
    /// passes: small enough for progress and cancellation between calls.
    public static let writeSize = 1 << 20

    /// Writes what `fill` writes to the descriptor it is given (the temporary file's,
    /// whose path is the second argument) to `path`, atomically.
    public static func write(to path: String, overwrite: Bool, isCancelled: () -> Bool = { false },
                             fill: (_ descriptor: Int32, _ temporaryPath: String) throws -> Void) throws {
        let writer = try AtomicFileWriter(path: path, overwrite: overwrite)
        defer { writer.abort() }
        try fill(writer.descriptor, writer.temporaryPath)
        try writer.commit(isCancelled: isCancelled)
    }

    /// Creates `.NAME.tmp-XXXXXX` in `directory`, exclusively and close-on-exec. NAME
    /// is shortened (at a character boundary) so the whole name stays within NAME_MAX
    /// (255 bytes) for any legal target name.
    static func createTemporary(in directory: String, for name: String) throws -> (descriptor: Int32, path: String) {
        var prefix = ""
        var bytes = 0
        for character in name {
            bytes += character.utf8.count
            if bytes > 200 { break }
            prefix.append(character)
        }
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        for _ in 0..<100 {
            let suffix = String((0..<6).map { _ in alphabet.randomElement()! })
            let temporary = "\(directory)/.\(prefix).tmp-\(suffix)"
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if descriptor >= 0 { return (descriptor, temporary) }
            if errno == EEXIST || errno == EINTR { continue }
            throw SystemError("create a temporary file in", path: directory)
        }
        throw StageFailure("cannot create a temporary file in '\(directory)': every name tried exists", retryable: false, code: .io)
    }
}

/// An atomic write whose bytes come a piece at a time (`append`), for writers that
/// are handed their bytes rather than asked for them (a streamed artifact going to a
/// store): a temporary file next to the target until `commit` flushes it and moves it
/// into place; `abort` (or a failed `commit`) removes it. One thread at a time.
public final class AtomicFileWriter: @unchecked Sendable {
    public let path: String
    public let temporaryPath: String
    /// The temporary file's descriptor, open until `commit` or `abort`.
    public let descriptor: Int32
    private let overwrite: Bool
    private let directory: String
    /// The directories made for the file: removed again, if empty, when it does not land.
    private let madeDirectories: [String]
    private let registration: Cleanup.Token
    private var open = true
    private var linked = false

    /// Creates the temporary file for `path` (and its directory). Without `overwrite`
    /// an existing file is an `output_exists` failure, now and at `commit`.
    public init(path: String, overwrite: Bool) throws {
        let (directory, name) = FilePaths.split(path)
        guard FilePaths.isBareName(name) else {
            throw StageFailure("'\(FilePaths.printable(path))' does not name a file", retryable: false, code: .invalidParameter)
        }
        if !overwrite, access(path, F_OK) == 0 {
            throw StageFailure("'\(path)' already exists; set 'overwrite: true' to replace it", retryable: false,
                                       code: .outputExists)
        }
        do {
            madeDirectories = try FilePaths.createDirectories(directory)
        } catch {
            throw StageFailure("cannot create directory '\(directory)': \(error.reason)", retryable: false, code: .io)
        }
        do {
            (descriptor, temporaryPath) = try AtomicFile.createTemporary(in: directory, for: name)
        } catch {
            FilePaths.removeEmptyDirectories(madeDirectories)
            throw error
        }
        registration = Cleanup.registerTemporary(temporaryPath)
        self.path = path
        self.overwrite = overwrite
        self.directory = directory
    }

    /// Writes `buffer` to the temporary file, at most `AtomicFile.writeSize` bytes a call.
    public func append(_ buffer: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            let count = try retryingOnInterrupt("write", path: temporaryPath) {
                Int32(truncatingIfNeeded: Glibc.write(descriptor, buffer.baseAddress! + offset, min(buffer.count - offset, AtomicFile.writeSize)))
            }
            offset += Int(count)
        }
    }

    private func closeFile() {
        if open { close(descriptor) }
        open = false
    }

    /// Flushes the file to disk and moves it into place (`isCancelled` is checked just
    /// before), then flushes the directory. On a failure the temporary file is removed.
    public func commit(isCancelled: () -> Bool = { false }) throws {
        defer { abort() }
        do {
            defer { closeFile() }
            try retryingOnInterrupt("flush", path: temporaryPath) { fsync(descriptor) }
            try retryingOnInterrupt("set permissions of", path: temporaryPath) { fchmod(descriptor, 0o644) }
        }
        if isCancelled() { throw CancellationError() }
        if overwrite {
            try retryingOnInterrupt("move into place", path: path) { rename(temporaryPath, path) }
            linked = true
        } else {
            // link() fails with EEXIST if the target appeared meanwhile: no overwrite race.
            if link(temporaryPath, path) != 0 {
                if errno == EEXIST {
                    throw StageFailure("'\(path)' already exists; set 'overwrite: true' to replace it", retryable: false,
                                       code: .outputExists)
                }
                throw SystemError("move into place", path: path)
            }
            unlink(temporaryPath)
            linked = true
        }
        try FilePaths.syncDirectory(directory)
    }

    /// Closes and removes the temporary file (nothing once `commit` moved it into place).
    public func abort() {
        closeFile()
        if !linked {
            unlink(temporaryPath)
            FilePaths.removeEmptyDirectories(madeDirectories)
            linked = true
        }
        Cleanup.unregister(registration)
    }

    deinit { abort() }
}

/// Reading whole files without Foundation's `Data`, whose allocation failure is a
/// crash: the memory comes from `malloc`, and a failure is an error naming the size.
public enum FileContents {
    /// The bytes of the regular file at `path`.
    public static func read(_ path: String) throws -> SharedBytes {
        let descriptor = try open(path)
        defer { close(descriptor) }
        let size = try size(of: descriptor, path: path)
        let bytes = try SharedBytes.allocate(count: size, purpose: "the contents of '\(FilePaths.printable(path))'")
        try bytes.withUnsafeMutableBytes { try readFully(descriptor, into: $0, at: 0, path: path) }
        return bytes
    }

    /// Opens a file for reading, close-on-exec. Non-blocking, so that opening a FIFO
    /// never waits for a writer (`size(of:path:)` then refuses it); reads of regular
    /// files are not affected.
    public static func open(_ path: String) throws(SystemError) -> Int32 {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw SystemError("open", path: path) }
        return descriptor
    }

    /// The size of an open regular file; a directory, FIFO, socket or device is an
    /// error that says which it is.
    public static func size(of descriptor: Int32, path: String) throws(SystemError) -> Int {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw SystemError("read the size of", path: path) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return Int(info.st_size)
        case S_IFDIR: throw SystemError("read", path: path, code: EISDIR)
        case S_IFIFO: throw SystemError("read", path: path, code: EINVAL, explanation: "it is a FIFO (a pipe), not a regular file")
        case S_IFSOCK: throw SystemError("read", path: path, code: EINVAL, explanation: "it is a socket, not a regular file")
        default: throw SystemError("read", path: path, code: EINVAL, explanation: "it is a device, not a regular file")
        }
    }

    /// Fills `buffer` from `offset` of the file; a file that ends early is an error.
    public static func readFully(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws {
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + done, min(buffer.count - done, 1 << 30), off_t(offset + done))
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw SystemError("read", path: path) }
            if count == 0 { throw SystemError("read all of", path: path, code: ENODATA) }
            done += count
        }
    }
}
