import Foundation
import Framework
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// `filesystem`: stores a bytes artifact as a file, atomically.
///
/// The bytes go to a temporary file next to the target (`.NAME.tmp-XXXXXX`), which
/// is flushed to disk and then moved into place: readers see the old state or the
/// whole new file, never part of it. Without `overwrite: true` an existing file is
/// never replaced (the move is a hard link, which fails if the target exists), but
/// one that already holds exactly these bytes is a success. The
/// temporary file is removed whatever happens, cancellation included.
public struct FilesystemStage: Stage {
    public static let spec = StageSpec(
        name: "filesystem",
        summary: "Write a bytes artifact (an encoded image) to a file, atomically.",
        discussion: """
            The path is a template: {run_id}, {stage}, {date}, {width}, {height}, {format} and \
            pipeline params are filled in; a filled-in value cannot contain '/' or be '..'. \
            Relative paths are relative to the working directory. Missing directories are created. \
            A file that already holds exactly the bytes to be written (same size, same SHA-256: a re-run \
            meeting its own output) is left as it is and the stage succeeds; one that holds other bytes is \
            an error, whose message quotes the --set that replaces it, unless overwrite is true.
            """,
        parameters: [
            ParameterSpec("path", .template, doc: "file path template, e.g. out/{run_id}/image.{format}"),
            ParameterSpec("overwrite", .boolean, default: .boolean(false), doc: "replace an existing file"),
        ],
        inputs: [InputPort(accepts: .having(.bytes), doc: "bytes to store, e.g. an EncodedImage")],
        output: .fixed(.storedObject))

    public let pathTemplate: String
    public let overwrite: Bool

    public init(parameters: Parameters) throws {
        pathTemplate = parameters.string("path")
        overwrite = parameters.bool("overwrite")
        if let problem = Self.fileNameProblem(pathTemplate) {
            throw ParameterError("path", "'\(FilePaths.printable(pathTemplate))' \(problem)", help: "end the path with a file name, e.g. out/{run_id}/grid.{format}")
        }
    }

    /// Why `path` names no file, or nil: it ends with `/`, or its last component is
    /// `.` or `..` (a directory).
    static func fileNameProblem(_ path: String) -> String? {
        if path.isEmpty { return "is empty: it does not name a file" }
        if path.hasSuffix("/") { return "ends with '/': it names a directory, not a file" }
        let last = path.split(separator: "/").last.map(String.init) ?? ""
        if last == "." || last == ".." { return "ends with '\(last)': it names a directory, not a file" }
        return nil
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        guard let artifact = inputs.input as? any BytesArtifact else {
            throw StageFailure("input is not a bytes artifact", retryable: false)
        }
        let absolute = try Self.target(try context.expand(pathTemplate, with: artifact))
        let bytes = artifact.bytes
        let (overwrite, stageID) = (overwrite, context.stageID)
        let progress = RowProgress(total: bytes.count, report: { context.reportProgress($0) })
        // A re-run that meets its own output: the same bytes are already there.
        let wrote = try await Blocking.run { cancel in
            let sameBytes = {
                try Self.holdsSameBytes(absolute, count: bytes.count, sha256: artifact.sha256, stageID: stageID, isCancelled: cancel.isSet)
            }
            if !overwrite, access(absolute, F_OK) == 0, try sameBytes() { return false }
            do {
                var reported = 0
                try bytes.withUnsafeBytes { buffer in
                    try AtomicFile.write(buffer, to: absolute, overwrite: overwrite, isCancelled: { cancel.isSet() }, written: { count in
                        progress.add(count - reported)
                        reported = count
                    })
                }
            } catch let failure as StageFailure where !overwrite && access(absolute, F_OK) == 0 {
                // The file appeared after the check above (the link found it): compare again.
                guard try sameBytes() else { throw failure }
                return false
            }
            return true
        }
        context.reportProgress(1)
        if wrote {
            context.logger.debug("wrote \(artifact.bytes.count) bytes to \(absolute)")
        } else {
            context.logger.info("'\(FilePaths.printable(absolute))' already holds these \(artifact.bytes.count) bytes; left as it is")
        }
        return StoredObject(uri: StoredObject.fileURI(absolute), byteCount: artifact.bytes.count,
                            sha256: artifact.sha256, mediaType: artifact.mediaType)
    }

    /// The absolute path a filled-in `path` names, checked: no control character, a
    /// file name, not a directory. Taken literally: '~' is a directory name here,
    /// never the home directory.
    static func target(_ path: String) throws -> String {
        if let offset = FilePaths.controlCharacterOffset(in: path) {
            throw StageFailure("path '\(FilePaths.printable(path))' has a control character at offset \(offset)", retryable: false, code: .invalidParameter)
        }
        // A value filled in at run time can still leave no file name.
        if let problem = Self.fileNameProblem(path) {
            throw StageFailure("path '\(FilePaths.printable(path))' \(problem)", retryable: false, code: .invalidParameter)
        }
        let absolute = FilePaths.absolute(path)
        var existing = stat()
        if stat(absolute, &existing) == 0, (existing.st_mode & S_IFMT) == S_IFDIR {
            // No flag replaces a directory with a file: say what to change instead.
            throw StageFailure("'\(FilePaths.printable(absolute))' is a directory; 'path' must name a file", retryable: false,
                               code: .invalidParameter, help: "change 'path' to a file inside it, e.g. \(FilePaths.printable(path))/grid.{format}")
        }
        return absolute
    }

    /// Whether the existing file at `path` holds exactly the bytes to be written: its
    /// size first, then its SHA-256, read in 1 MiB blocks. Throws the "already exists"
    /// failure, quoting the `--set` that allows replacing it, when it holds other bytes.
    static func holdsSameBytes(_ path: String, count: Int, sha256: String, stageID: String,
                               isCancelled: () -> Bool = { false }) throws -> Bool {
        let shown = FilePaths.printable(path)
        let hint = "to replace it, run again with --set stages.\(stageID).with.overwrite=true (or set 'overwrite: true' in the file)"
        func differs(_ why: String) -> StageFailure {
            StageFailure("'\(shown)' already exists and \(why); \(hint)", retryable: false, code: .outputExists)
        }
        let descriptor: Int32
        do {
            descriptor = try FileContents.open(path)
        } catch {
            if error.code == ENOENT { return false }
            throw differs("cannot be read (\(error.reason))")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw differs("is not a regular file") }
        guard Int(info.st_size) == count else { throw differs("holds \(info.st_size) bytes, not the \(count) to be written") }
        var hasher = SHA256()
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: min(max(count, 1), 1 << 20), alignment: 16)
        defer { block.deallocate() }
        var offset = 0
        while offset < count {
            if isCancelled() { throw CancellationError() }
            let size = min(block.count, count - offset)
            let slice = UnsafeMutableRawBufferPointer(rebasing: block[0..<size])
            do {
                try FileContents.readFully(descriptor, into: slice, at: offset, path: path)
            } catch {
                throw differs("cannot be read (\(error))")
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(slice))
            offset += size
        }
        let digest = hasher.finalize().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        guard digest == sha256 else { throw differs("holds other bytes of the same size (another SHA-256)") }
        return true
    }

    /// Before a resumed run reuses this sink: the file is still there with the size
    /// and SHA-256 that were written.
    public static func verifyStored(_ output: any Artifact, parameters: Parameters) async throws -> StoredOutputCheck {
        guard let object = output as? StoredObject else { return .nothingToVerify }
        let path = try FileURI.path(of: object.uri)
        let (count, sha256) = (object.byteCount, object.sha256)
        return try await Blocking.run {
            let bytes: SharedBytes
            do {
                bytes = try FileContents.read(path)
            } catch let error as SystemError where error.code == ENOENT {
                return .changed("'\(FilePaths.printable(path))' no longer exists")
            }
            guard bytes.count == count else {
                return .changed("'\(FilePaths.printable(path))' is \(bytes.count) bytes, \(count) were written")
            }
            guard bytes.withUnsafeBytes({ SHA256Digest.hex(of: $0) }) == sha256 else {
                return .changed("'\(FilePaths.printable(path))' no longer has the SHA-256 of what was written")
            }
            return .verified
        }
    }

    /// Before a run: the directory the path template names before its first run-time
    /// placeholder exists and is writable, or can be created (its nearest existing
    /// ancestor is a writable directory). Nothing is created. Facts: the directory.
    /// The check looks only at the directory before the path's first placeholder.
    public static func accessTarget(parameters: Parameters) -> String? {
        try? fixedDirectory(of: parameters.string("path"))
    }

    public static func checkAccess(parameters: Parameters, depth: AccessCheckDepth) async throws -> AccessReport {
        let template = parameters.string("path")
        let directory = try fixedDirectory(of: template)
        var existing = directory
        while true {
            var info = stat()
            if stat(existing, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw AccessProblem("'\(FilePaths.printable(existing))' is not a directory, so 'path' ('\(FilePaths.printable(template))') cannot be written",
                                        help: "change 'path', or move that file away")
                }
                guard access(existing, W_OK | X_OK) == 0 else {
                    let reason = SystemError("write in", path: existing).reason
                    let what = existing == directory ? "cannot write in directory" : "cannot create '\(FilePaths.printable(directory))' in"
                    throw AccessProblem("\(what) '\(FilePaths.printable(existing))' (\(reason))",
                                        help: "change 'path', or the directory's permissions", code: .io)
                }
                break
            }
            let failure = SystemError("look at", path: existing)
            // A symbolic link to nothing: no directory can be made through it.
            var link = stat()
            if failure.code == ENOENT, lstat(existing, &link) == 0, (link.st_mode & S_IFMT) == S_IFLNK {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: existing)) ?? "?"
                throw AccessProblem("'\(FilePaths.printable(existing))' is a symbolic link to '\(FilePaths.printable(target))', which does not exist, "
                                    + "so 'path' ('\(FilePaths.printable(template))') cannot be written",
                                    help: "create what it points to, change 'path', or remove the link", code: .io)
            }
            guard failure.code == ENOENT || failure.code == ENOTDIR, existing != "/" else {
                throw AccessProblem("cannot look at '\(FilePaths.printable(existing))' (\(failure.reason))", help: "change 'path'", code: .io)
            }
            existing = FilePaths.split(existing).directory
        }
        return AccessReport(facts: ["directory": .string(directory)])
    }

    /// The absolute directory a path template names before its first placeholder:
    /// `out/{run_id}/a.jpg` gives `$PWD/out` (or `base/out`).
    public static func fixedDirectory(of template: String, relativeTo base: String? = nil) throws -> String {
        let placeholders = try Template.placeholders(in: template)
        let scalars = Array(template.unicodeScalars)
        let end = placeholders.first?.offset ?? scalars.count
        // The literal text before the placeholder, its '{{' and '}}' turned into braces.
        let prefix = try Template.expand(String(String.UnicodeScalarView(scalars[..<end])), values: [:])
        let directory = prefix.contains("/") ? String(prefix[...prefix.lastIndex(of: "/")!]) : ""
        return FilePaths.absolute(directory.isEmpty ? "." : directory, relativeTo: base)
    }
}

extension FilesystemStage: StreamingStage {
    public static func streaming(parameters: Parameters) -> StreamingSupport {
        StreamingSupport(input: true, output: false)
    }

    /// As `run`, with the bytes arriving in chunks: each chunk goes to the temporary
    /// file as it arrives (hashed on the way), and the file is flushed and moved into
    /// place once the stream ends. A stream that stops early (a failure upstream, a
    /// cancellation) removes the temporary file. Without `overwrite`, a file already
    /// there is compared with the stream's bytes (hashed, not written) instead.
    public func stream(_ io: StreamIO, context: StageContext) throws -> (any Artifact)? {
        let input = try io.requireBytesInput()
        let info = try input.start()
        let absolute = try Self.target(try context.expand(pathTemplate, adding: info.templateValues))
        var hasher = SHA256()
        var count = 0
        func consume(_ write: (UnsafeRawBufferPointer) throws -> Void) throws {
            while let chunk = try input.next() {
                defer { chunk.release() }
                try io.checkCancellation()
                hasher.update(bufferPointer: chunk.bytes)
                try write(chunk.bytes)
                count += chunk.count
                context.reportProgress(chunk.fraction)
            }
        }
        func digest() -> String { hasher.finalize().map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
        var wrote = true
        if !overwrite, access(absolute, F_OK) == 0 {
            // A re-run that meets its own output succeeds; other bytes are an error.
            try consume { _ in }
            _ = try Self.holdsSameBytes(absolute, count: count, sha256: digest(), stageID: context.stageID, isCancelled: io.cancel.isSet)
            wrote = false
        } else {
            do {
                try AtomicFile.write(to: absolute, overwrite: overwrite, isCancelled: io.cancel.isSet) { descriptor, temporary in
                    try consume { bytes in
                        var offset = 0
                        while offset < bytes.count {
                            let written = try retryingOnInterrupt("write", path: temporary) {
                                Int32(truncatingIfNeeded: Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset))
                            }
                            offset += Int(written)
                        }
                    }
                }
            } catch let failure as StageFailure where !overwrite && access(absolute, F_OK) == 0 {
                // The file appeared meanwhile (the link found it): compare.
                guard try Self.holdsSameBytes(absolute, count: count, sha256: digest(), stageID: context.stageID) else { throw failure }
                wrote = false
            }
        }
        let sha256 = digest()
        if wrote {
            context.logger.debug("wrote \(count) bytes to \(absolute)")
        } else {
            context.logger.info("'\(FilePaths.printable(absolute))' already holds these \(count) bytes; left as it is")
        }
        context.reportProgress(1)
        return StoredObject(uri: StoredObject.fileURI(absolute), byteCount: count, sha256: sha256, mediaType: info.mediaType)
    }
}
