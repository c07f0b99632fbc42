import Foundation
import Framework
#if canImport(Glibc)
import Glibc
#endif

/// `filesystem`: stores a bytes artifact as a file, atomically.
///
/// The bytes go to a temporary file next to the target (`.NAME.tmp-XXXXXX`), which
/// is flushed to disk and then moved into place: readers see the old state or the
/// whole new file, never part of it. Without `overwrite: true` an existing file is
/// never replaced (the move is a hard link, which fails if the target exists). The
/// temporary file is removed whatever happens, cancellation included.
public struct FilesystemStage: Stage {
    public static let spec = StageSpec(
        name: "filesystem",
        summary: "Write a bytes artifact (an encoded image) to a file, atomically.",
        discussion: """
            The path is a template: {run_id}, {stage}, {date}, {width}, {height}, {format} and \
            pipeline params are filled in; a filled-in value cannot contain '/' or be '..'. \
            Relative paths are relative to the working directory. Missing directories are created. \
            An existing file is an error unless overwrite is true.
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
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        guard let artifact = inputs.input as? any BytesArtifact else {
            throw StageFailure("input is not a bytes artifact", retryable: false)
        }
        let path = try context.expand(pathTemplate, with: artifact)
        let url = URL(fileURLWithPath: path).standardizedFileURL
        try artifact.bytes.withUnsafeBytes { bytes in
            try AtomicFile.write(bytes, to: url.path, overwrite: overwrite, isCancelled: { Task.isCancelled })
        }
        context.logger.debug("wrote \(artifact.bytes.count) bytes to \(url.path)")
        return StoredObject(uri: url.absoluteString, byteCount: artifact.bytes.count,
                            sha256: artifact.sha256, mediaType: artifact.mediaType)
    }
}

/// Atomic file writes: temporary file, fsync, move into place, fsync the directory.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, overwrite: Bool, isCancelled: () -> Bool = { false }) throws {
        try bytes.withUnsafeBytes { try write($0, to: path, overwrite: overwrite, isCancelled: isCancelled) }
    }

    public static func write(_ buffer: UnsafeRawBufferPointer, to path: String, overwrite: Bool, isCancelled: () -> Bool = { false }) throws {
        let parent = (path as NSString).deletingLastPathComponent
        let directory = parent.isEmpty ? "." : parent
        let name = (path as NSString).lastPathComponent
        guard !name.isEmpty, name != ".", name != ".." else {
            throw StageFailure("'\(path)' does not name a file", retryable: false)
        }
        if !overwrite, FileManager.default.fileExists(atPath: path) {
            throw StageFailure("'\(path)' already exists; set 'overwrite: true' to replace it", retryable: false)
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StageFailure("cannot create directory '\(directory)': \(reason(error))", retryable: false)
        }
        var template = Array("\(directory)/.\(name).tmp-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw StageFailure(SystemError("create a temporary file in", path: directory).description, retryable: false)
        }
        let temporary = String(cString: template)
        var linked = false
        defer {
            if !linked { unlink(temporary) }
        }
        do {
            defer { close(descriptor) }
            var offset = 0
            while offset < buffer.count {
                let written = try retryingOnInterrupt("write", path: temporary) {
                    Int32(truncatingIfNeeded: Glibc.write(descriptor, buffer.baseAddress! + offset, min(buffer.count - offset, 1 << 30)))
                }
                offset += Int(written)
            }
            try retryingOnInterrupt("flush", path: temporary) { fsync(descriptor) }
            try retryingOnInterrupt("set permissions of", path: temporary) { fchmod(descriptor, 0o644) }
        }
        if isCancelled() { throw CancellationError() }
        if overwrite {
            try retryingOnInterrupt("move into place", path: path) { rename(temporary, path) }
            linked = true
        } else {
            // link() fails with EEXIST if the target appeared meanwhile: no overwrite race.
            if link(temporary, path) != 0 {
                if errno == EEXIST {
                    throw StageFailure("'\(path)' already exists; set 'overwrite: true' to replace it", retryable: false)
                }
                throw SystemError("move into place", path: path)
            }
            unlink(temporary)
            linked = true
        }
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileWriteNoPermissionError {
            return "permission denied"
        }
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileWriteFileExistsError {
            return "a file is in the way"
        }
        return nsError.localizedDescription
    }
}
