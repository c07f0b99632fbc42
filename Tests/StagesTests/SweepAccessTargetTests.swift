import Foundation
import Framework
import Stages
import Testing
@testable import Framework

/// A sweep checks each distinct access target once: a sink's directory or bucket, not
/// every item's path or key (`Stage.accessTarget(parameters:)`).
@Suite struct SweepAccessTargetTests {
    static func targets(_ stages: String) throws -> [Int: Set<String>] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("targets-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sweep.yaml")
        try """
        params: {size: 8, bucket: aaa}
        matrix:
          size: [8, 16, 24]
          bucket: [aaa, bbb]
        stages:
          generate: {type: poisson, with: {width: "${size}", height: "${size}", lambda: 3}}
          encode: {type: png, input: generate}
        \(stages)
        """.write(to: file, atomically: true, encoding: .utf8)
        let sweep = try #require(try Planner(registry: try BuiltinStages.registry()).sweep(contentsOf: file.path, loader: PipelineLoader()).get())
        var result: [Int: Set<String>] = [:]
        for (item, stages) in sweep.accessTargets { result[item] = stages.subtracting(["generate", "encode"]) }
        return result.filter { !$0.value.isEmpty }
    }

    @Test func aPathThatChangesAfterItsDirectoryIsCheckedOnce() throws {
        #expect(try Self.targets("  file: {type: filesystem, input: encode, with: {path: \"out/{run_id}-${size}.png\"}}") == [:])
    }

    @Test func aDirectoryPerValueIsCheckedPerValue() throws {
        // Items: (8,a) (8,b) (16,a) (16,b) (24,a) (24,b); the directory follows size.
        #expect(try Self.targets("  file: {type: filesystem, input: encode, with: {path: \"out/${size}/{run_id}.png\"}}")
            == [2: ["file"], 4: ["file"]])
    }

    @Test func anS3KeyPerItemIsCheckedOncePerBucket() throws {
        #expect(try Self.targets("  up: {type: s3, input: encode, with: {bucket: \"${bucket}\", key: \"k/${size}/{run_id}.png\"}}")
            == [1: ["up"]])
    }
}
