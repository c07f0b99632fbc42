import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An artifact store in a directory.
public struct FileArtifactStore: ArtifactStore {
    public let root: String

    public init(root: String) {
        // Taken literally: '~' is a directory name here, never the home directory.
        self.root = FilePaths.absolute(root)
    }

    public var description: String { root }

    /// A store at `path`, after checking that it can be one: it is a directory, or
    /// does not exist yet (it is created on the first write).
    public static func open(_ path: String) throws -> FileArtifactStore {
        let store = FileArtifactStore(root: path)
        var info = stat()
        if stat(store.root, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw ArtifactStoreError(message: "artifact store '\(FilePaths.printable(path))' is a file, not a directory",
                                         code: .invalidLocation)
            }
        } else if errno == ENOTDIR {
            throw ArtifactStoreError(message: "artifact store '\(FilePaths.printable(path))' cannot be a directory: part of its path is a file",
                                     code: .invalidLocation)
        }
        return store
    }

    func directory(_ runID: String, _ stage: String) -> String { "\(root)/\(runID)/\(stage)" }

    public func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String) throws {
        try write(data, manifest: manifest, runID: runID, stage: stage, cancel: CancelFlag())
    }

    public func write(_ data: Data, manifest: ArtifactManifest, runID: String, stage: String, cancel: CancelFlag) throws {
        let directory = directory(runID, stage)
        try FilePaths.createDirectories(directory)
        try Self.removeManifest(in: directory)
        let artifact = directory + "/" + manifest.file
        try AtomicFile.write(data, to: artifact, overwrite: true, isCancelled: cancel.isSet)
        do {
            // The manifest goes last: its presence says the artifact is complete.
            if cancel.isSet() { throw CancellationError() }
            try Self.atomicWrite(try ArtifactCodec.encoder.encode(manifest), to: directory + "/manifest.json")
        } catch {
            unlink(artifact)
            throw error
        }
    }

    /// Writes the bytes to a temporary file in the stage's directory as they come;
    /// `commit` flushes it, moves it into place and writes the manifest, as `write` does.
    public func beginWrite(runID: String, stage: String, manifest: ArtifactManifest, cancel: CancelFlag) throws -> any ArtifactStoreWriter {
        let directory = directory(runID, stage)
        try FilePaths.createDirectories(directory)
        try Self.removeManifest(in: directory)
        let file = try AtomicFileWriter(path: directory + "/" + manifest.file, overwrite: true)
        return DigestingStoreWriter(manifest: manifest, cancel: cancel, append: file.append, commit: { manifest in
            try file.commit(isCancelled: cancel.isSet)
            do {
                // The manifest goes last: its presence says the artifact is complete.
                if cancel.isSet() { throw CancellationError() }
                try Self.atomicWrite(try ArtifactCodec.encoder.encode(manifest), to: directory + "/manifest.json")
            } catch {
                unlink(file.path)
                throw error
            }
        }, abort: file.abort)
    }

    /// Nothing but the system's page cache: the bytes go to the file as they come.
    public func progressiveWriteBytes(byteCount: Double) -> Double { 0 }

    /// Removes a stage's older manifest, first, so that no manifest ever stands beside
    /// bytes it does not describe (a write replaced halfway, cancelled or killed).
    static func removeManifest(in directory: String) throws {
        if unlink(directory + "/manifest.json") != 0 && errno != ENOENT {
            throw SystemError("remove the old manifest", path: directory + "/manifest.json")
        }
    }

    public func manifest(runID: String, stage: String) throws -> ArtifactManifest? {
        let path = directory(runID, stage) + "/manifest.json"
        guard let data = try Self.contents(path) else { return nil }
        return try ArtifactCodec.decodeManifest(data, name: path)
    }

    public func read(runID: String, stage: String) throws -> (data: Data, manifest: ArtifactManifest)? {
        guard let manifest = try manifest(runID: runID, stage: stage) else { return nil }
        let path = directory(runID, stage) + "/" + manifest.file
        guard let data = try Self.contents(path) else {
            throw ArtifactStoreError(message: "\(path) is missing, though its manifest is there")
        }
        try manifest.check(data, name: path)
        return (data, manifest)
    }

    public func recordedSeed(runID: String) throws -> UInt64? {
        let path = "\(root)/\(runID)/run.json"
        let data: Data?
        do {
            data = try Self.contents(path)
        } catch let error as SystemError where error.code == EISDIR || error.explanation != nil {
            // Something that is not a file where the record should be: the run is damaged.
            throw ArtifactStoreError(message: "'\(FilePaths.printable(path))' is damaged: \(error.code == EISDIR ? "it is a directory" : error.reason)"
                + RunRecord.damagedHelp, code: .damagedRun)
        }
        return try data.map { try RunRecord.seed(in: $0, name: path) }
    }

    /// The directories under the root that hold a `run.json`.
    public func runIDs() throws -> [String]? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return names.filter { access("\(root)/\($0)/run.json", F_OK) == 0 }.sorted()
    }
    public func recordSeed(_ seed: UInt64, runID: String) throws {
        try FilePaths.createDirectories("\(root)/\(runID)")
        try Self.atomicWrite(RunRecord.data(seed: seed), to: "\(root)/\(runID)/run.json")
    }

    static func atomicWrite(_ data: Data, to path: String) throws {
        try AtomicFile.write(data, to: path, overwrite: true)
    }

    /// A stored file's bytes, or nil when it does not exist.
    static func contents(_ path: String) throws -> Data? {
        let bytes: SharedBytes
        do {
            bytes = try FileContents.read(path)
        } catch let error as SystemError where error.code == ENOENT {
            return nil
        }
        // No copy: the Data keeps the malloc'd bytes alive.
        return bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress, buffer.count > 0 else { return Data() }
            return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: buffer.count, deallocator: .custom { _, _ in _ = bytes })
        }
    }
}
