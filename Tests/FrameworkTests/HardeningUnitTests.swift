import Foundation
import Testing
@testable import Framework

/// Sizes from outside data, allocation, memory limits and the store's file names.
@Suite struct HardeningUnitTests {
    /// A version 1.0 `.npy` header declaring `shape`, followed by `dataBytes` zero bytes.
    static func npy(shape: String, descr: String = "<f4", dataBytes: Int = 16) -> [UInt8] {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        header += String(repeating: " ", count: 63 - (10 + header.utf8.count) % 64) + "\n"
        let length = header.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(header.utf8)
            + [UInt8](repeating: 0, count: dataBytes)
    }

    @Test(arguments: ["(4611686018427387904, 4)", "(9223372036854775807, 9223372036854775807)", "(3037000500, 3037000500)"])
    func anOverflowingShapeIsAFormatErrorNotACrash(shape: String) throws {
        let bytes = Self.npy(shape: shape)
        let error = #expect(throws: NPY.FormatError.self) {
            try bytes.withUnsafeBytes { try NPY.layout(of: $0, name: "x.npy") }
        }
        #expect(error?.message.contains("claims") == true, "\(String(describing: error))")
    }

    @Test func aShapeLargerThanTheFileIsAnErrorForThatFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("x.npy").path
        try Data(Self.npy(shape: "(1000, 1000)")).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: NPY.FormatError.self) { try NPY.read(contentsOf: path) }
        #expect(error?.message.contains("truncated: 1000x1000 float32 needs 4000000 bytes of data, found 16") == true)
    }

    @Test func anAllocationThatFailsIsAnErrorNamingTheSize() throws {
        // 2^40 x 2^18 floats: 2^60 bytes fits in Int, not in memory.
        let error = #expect(throws: AllocationError.self) {
            _ = try Grid<Float>(width: 1 << 40, height: 1 << 18) { _ in Issue.record("fill was called") }
        }
        #expect(error?.description.hasPrefix("cannot allocate 1.2 EB for a 1099511627776x262144 grid of Float32") == true,
                "\(String(describing: error))")
        #expect(throws: AllocationError.self) { _ = try SharedBytes.allocate(count: 1 << 60, purpose: "a test") }
    }

    @Test func blockingWorkSeesItsOwnCancelFlagAndNoOtherThreadDoes() async throws {
        #expect(CancelFlag.current == nil)
        let same = try await Blocking.run { (flag: CancelFlag) -> Bool in
            // Another thread started from this one has no flag of its own.
            CancelFlag.current === flag && Thread.detachNewThreadAndWait { CancelFlag.current == nil }
        }
        #expect(same)
        // Two at once each see their own.
        async let first = Blocking.run { (flag: CancelFlag) in CancelFlag.current === flag }
        async let second = Blocking.run { (flag: CancelFlag) in CancelFlag.current === flag }
        let both = try await (first, second)
        #expect(both.0 && both.1)
    }

    @Test func sizesAreShownWithoutWrapping() {
        #expect(ByteCountFormatting.string(Double(UInt64.max)) == "18.4 EB")
        #expect(ByteCountFormatting.string(1e30) == "1000.0 YB" || ByteCountFormatting.string(1e30) == "more than 1000 YB")
        #expect(ByteCountFormatting.string(812) == "812 B")
        #expect(ByteCountFormatting.string(-5.0) == "an invalid size")
    }

    @Test func theMemoryLimitReadsCgroupV1AndV2LimitsOfEveryAncestor() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        func write(_ text: String, _ relative: String) throws {
            let url = root.appendingPathComponent(relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        try write("0::/app/job\n4:memory:/box\n", "proc-self-cgroup")
        try write("max\n", "fs/unified/app/job/memory.max")
        try write("536870912\n", "fs/unified/app/memory.max")       // the parent's limit counts
        try write("9223372036854771712\n", "fs/memory/box/memory.limit_in_bytes")  // v1 "unlimited"
        try write("268435456\n", "fs/memory/memory.limit_in_bytes")
        let limits = MemoryLimit.cgroupLimits(procSelfCgroup: root.appendingPathComponent("proc-self-cgroup").path,
                                              root: root.appendingPathComponent("fs").path)
        #expect(limits.map(\.0).sorted() == [268_435_456, 536_870_912, 9_223_372_036_854_771_712])
        #expect(Set(limits.map(\.1)) == ["memory.max", "memory.limit_in_bytes"])
        // The process's own limit is never more than physical memory.
        #expect(MemoryLimit.current.bytes <= ProcessInfo.processInfo.physicalMemory)
    }

    @Test(arguments: ["../../etc/passwd", "/etc/passwd", "..", "a/b.npy", "x\u{0}.npy", ""])
    func aManifestWhoseFileIsNotABareNameIsDamaged(file: String) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let store = FileArtifactStore(root: root.path)
        let manifest = ArtifactManifest(artifactType: "EncodedImage", file: "artifact.png", byteCount: 0, sha256: "", stageType: "png",
                                        parameters: [:], parametersHash: "", inputFingerprints: [:], fingerprint: "f")
        try store.save(EncodedImage(bytes: SharedBytes([1, 2, 3]), format: "png", mediaType: "image/png", width: 1, height: 1),
                       manifest: manifest, runID: "r", stage: "s")
        let manifestPath = root.appendingPathComponent("r/s/manifest.json")
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: manifestPath)) as! [String: Any]
        object["file"] = file
        try JSONSerialization.data(withJSONObject: object).write(to: manifestPath)
        let error = #expect(throws: ArtifactStoreError.self) { _ = try store.load(runID: "r", stage: "s") }
        #expect(error?.message.contains("is damaged: its 'file' field") == true, "\(String(describing: error))")
    }

    @Test func pathsAreTakenLiterally() {
        #expect(FilePaths.absolute("~/x", relativeTo: "/w") == "/w/~/x")
        #expect(FilePaths.absolute("a/./b/../c//d", relativeTo: "/w") == "/w/a/c/d")
        #expect(FilePaths.absolute("/../..") == "/")
        #expect(FilePaths.controlCharacterOffset(in: "ab\u{0}c") == 2)
        #expect(FilePaths.controlCharacterOffset(in: "é\u{7F}") == 1)
        #expect(FilePaths.controlCharacterOffset(in: "plain/~name") == nil)
    }
}

extension Thread {
    /// Runs `body` on a new thread and waits for its result.
    fileprivate static func detachNewThreadAndWait(_ body: @escaping @Sendable () -> Bool) -> Bool {
        final class Box: @unchecked Sendable { var value = false }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { box.value = body(); done.signal() }
        done.wait()
        return box.value
    }
}
