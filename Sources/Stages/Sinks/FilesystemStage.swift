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
        if let offset = FilePaths.controlCharacterOffset(in: path) {
            throw StageFailure("path '\(FilePaths.printable(path))' has a control character at offset \(offset)", retryable: false)
        }
        // Taken literally: '~' is a directory name here, never the home directory.
        let absolute = FilePaths.absolute(path)
        let bytes = artifact.bytes
        try await Blocking.run { cancel in
            try bytes.withUnsafeBytes { buffer in
                try AtomicFile.write(buffer, to: absolute, overwrite: overwrite, isCancelled: { cancel.isSet() })
            }
        }
        context.logger.debug("wrote \(artifact.bytes.count) bytes to \(absolute)")
        return StoredObject(uri: StoredObject.fileURI(absolute), byteCount: artifact.bytes.count,
                            sha256: artifact.sha256, mediaType: artifact.mediaType)
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
}
