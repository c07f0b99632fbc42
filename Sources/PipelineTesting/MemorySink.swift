import Foundation
import Framework

/// `memory`: a sink for tests that keeps the bytes it is given in a `MemoryStore`
/// instead of writing them anywhere.
public struct MemorySink: Stage {
    public static let spec = StageSpec(
        name: "memory",
        summary: "Keep a bytes artifact in memory (for tests).",
        discussion: "Stores the bytes under the template 'name' in MemoryStore.shared; the StoredObject's URI is memory://NAME. "
            + "The default name starts with the run id, so runs with their own ids (PipelineHarness.run gives each one) never collide.",
        parameters: [ParameterSpec("name", .template, default: .string("{run_id}/{stage}"), doc: "name to store the bytes under")],
        inputs: [InputPort(accepts: .having(.bytes), doc: "bytes to keep")],
        output: .fixed(.storedObject))

    let name: String

    public init(parameters: Parameters) throws {
        name = parameters.string("name")
    }

    public func run(inputs: StageInputs, context: StageContext) async throws -> any Artifact {
        guard let artifact = inputs.input as? any BytesArtifact else {
            throw StageFailure("input is not a bytes artifact", retryable: false)
        }
        let key = try context.expand(name, with: artifact)
        MemoryStore.shared.put(Array(artifact.bytes), at: key)
        return StoredObject(uri: MemoryStore.scheme + key, byteCount: artifact.bytes.count, sha256: artifact.sha256, mediaType: artifact.mediaType)
    }
}

/// What `memory` sinks have stored, by name. Thread-safe.
public final class MemoryStore: @unchecked Sendable {
    public static let shared = MemoryStore()
    private let lock = NSLock()
    private var objects: [String: [UInt8]] = [:]

    public init() {}

    public func put(_ bytes: [UInt8], at name: String) {
        lock.lock(); objects[name] = bytes; lock.unlock()
    }

    public subscript(name: String) -> [UInt8]? {
        lock.lock(); defer { lock.unlock() }
        return objects[name]
    }

    /// The bytes a `memory` sink stored for `object`, the `StoredObject` it returned.
    public func bytes(of object: StoredObject) -> [UInt8]? {
        guard object.uri.hasPrefix(Self.scheme) else { return nil }
        return self[String(object.uri.dropFirst(Self.scheme.count))]
    }

    static let scheme = "memory://"

    public var names: [String] {
        lock.lock(); defer { lock.unlock() }
        return objects.keys.sorted()
    }
}
