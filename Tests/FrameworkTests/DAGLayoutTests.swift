import Foundation
import Testing
@testable import Framework

/// The report's DAG drawing: no box overlaps another and no edge crosses a box, for
/// every pipeline the project ships and for a generated 30-stage DAG.
@Suite struct DAGLayoutTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The stages and edges of a pipeline file (its document: no registry needed).
    static func graph(of path: String) throws -> (nodes: [(id: String, width: Double, height: Double)], edges: [(from: String, to: String)]) {
        let result = PipelineLoader(environment: ["OUTPUT_S3_BUCKET": "b"]).load(contentsOf: path)
        let document = try #require(result.document, "\(result.diagnostics)")
        let nodes = document.stages.map { (id: $0.id, width: 60 + 7 * Double($0.id.count), height: 40.0) }
        var edges: [(from: String, to: String)] = []
        for stage in document.stages {
            for input in stage.inputs { edges.append((input.producer, stage.id)) }
            for after in stage.after { edges.append((after.stage, stage.id)) }
        }
        return (nodes, edges)
    }

    /// Whether the segment from `a` to `b` passes through the inside of `box`
    /// (touching its border does not count): Liang-Barsky clipping.
    static func crosses(_ a: DAGLayout.Point, _ b: DAGLayout.Point, _ box: DAGLayout.Box) -> Bool {
        let inset = 0.5
        let (minX, maxX, minY, maxY) = (box.x + inset, box.maxX - inset, box.y + inset, box.maxY - inset)
        var low = 0.0, high = 1.0
        let dx = b.x - a.x, dy = b.y - a.y
        for (p, q) in [(-dx, a.x - minX), (dx, maxX - a.x), (-dy, a.y - minY), (dy, maxY - a.y)] {
            if p == 0 {
                if q < 0 { return false }
            } else {
                let t = q / p
                if p < 0 { low = max(low, t) } else { high = min(high, t) }
                if low > high { return false }
            }
        }
        return true
    }

    static func check(_ layout: DAGLayout, edges: Int, _ name: String) {
        #expect(layout.edges.count == edges, "\(name): \(layout.edges.count) of \(edges) edges drawn")
        for (i, a) in layout.boxes.enumerated() {
            #expect(a.x >= 0 && a.y >= 0 && a.maxX <= layout.width && a.maxY <= layout.height, "\(name): \(a.id) outside the drawing")
            for b in layout.boxes.dropFirst(i + 1) {
                let apart = a.maxX <= b.x || b.maxX <= a.x || a.maxY <= b.y || b.maxY <= a.y
                #expect(apart, "\(name): boxes \(a.id) and \(b.id) overlap")
            }
        }
        let byID = Dictionary(uniqueKeysWithValues: layout.boxes.map { ($0.id, $0) })
        for edge in layout.edges {
            let from = byID[edge.from]!, to = byID[edge.to]!
            // It leaves the right side of its source and enters the left side of its target.
            #expect(edge.points.first == DAGLayout.Point(x: from.maxX, y: from.y + from.height / 2), "\(name): \(edge.from) -> \(edge.to) start")
            #expect(edge.points.last == DAGLayout.Point(x: to.x, y: to.y + to.height / 2), "\(name): \(edge.from) -> \(edge.to) end")
            // It runs left to right.
            for (a, b) in zip(edge.points, edge.points.dropFirst()) {
                #expect(b.x >= a.x, "\(name): \(edge.from) -> \(edge.to) turns back")
            }
            for (a, b) in zip(edge.points, edge.points.dropFirst()) {
                for box in layout.boxes where Self.crosses(a, b, box) {
                    Issue.record("\(name): edge \(edge.from) -> \(edge.to) crosses box \(box.id) between \(a) and \(b)")
                }
            }
        }
    }

    @Test func everyShippedPipelineIsDrawnWithoutOverlaps() throws {
        var files = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("pipelines").path)
            .filter { $0.hasSuffix(".yaml") }.map { Self.root.appendingPathComponent("pipelines/\($0)").path }
        files.append(Self.root.appendingPathComponent("Examples/CustomStage/pipelines/threshold.yaml").path)
        #expect(files.count >= 2)
        for file in files {
            let graph = try Self.graph(of: file)
            let layout = DAGLayout.make(nodes: graph.nodes, edges: graph.edges)
            Self.check(layout, edges: graph.edges.count, file)
            #expect(layout.boxes.map(\.id) == graph.nodes.map(\.id))
        }
    }

    /// 30 stages: a few sources, each later stage fed by one to three earlier ones
    /// (fan-in), some stages feeding many (fan-out), long edges across columns.
    @Test(arguments: [1, 2, 3, 4, 5])
    func aGenerated30StageDAGIsDrawnWithoutOverlaps(seed: UInt64) {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        let nodes = (0..<30).map { (id: "stage_\($0)", width: 70.0 + Double(next(5) * 12), height: 40.0) }
        var edges: [(from: String, to: String)] = []
        for target in 3..<30 {
            var sources: Set<Int> = []
            for _ in 0..<(1 + next(3)) { sources.insert(next(target)) }
            // A hub that many read.
            if target % 4 == 0 { sources.insert(1) }
            for source in sources.sorted() { edges.append(("stage_\(source)", "stage_\(target)")) }
        }
        let layout = DAGLayout.make(nodes: nodes, edges: edges)
        Self.check(layout, edges: edges.count, "seed \(seed)")
        let fanOut = Dictionary(grouping: edges, by: \.from).values.map(\.count).max() ?? 0
        let fanIn = Dictionary(grouping: edges, by: \.to).values.map(\.count).max() ?? 0
        #expect(fanOut >= 5 && fanIn >= 3, "fan-out \(fanOut), fan-in \(fanIn)")
    }

    @Test func aChainIsOneRowOfStraightEdges() {
        let nodes = ["a", "b", "c", "d"].map { (id: $0, width: 80.0, height: 40.0) }
        let layout = DAGLayout.make(nodes: nodes, edges: [("a", "b"), ("b", "c"), ("c", "d")])
        #expect(Set(layout.boxes.map(\.y)).count == 1)
        #expect(layout.boxes.map(\.column) == [0, 1, 2, 3])
        for edge in layout.edges { #expect(Set(edge.points.map(\.y)).count == 1, "\(edge)") }
    }

    /// A diamond with a long edge: the long edge bends around the middle column's box
    /// through a slot of its own, and the layout has no crossings to remove.
    @Test func aLongEdgePassesTheColumnsBetweenBesideTheirBoxes() {
        let nodes = ["source", "middle", "sink"].map { (id: $0, width: 80.0, height: 40.0) }
        let layout = DAGLayout.make(nodes: nodes, edges: [("source", "middle"), ("middle", "sink"), ("source", "sink")])
        Self.check(layout, edges: 3, "diamond")
        #expect(layout.boxes.map(\.column) == [0, 1, 2])
        let long = layout.edges.first { $0.from == "source" && $0.to == "sink" }!
        #expect(long.points.count > 2)
    }

    @Test func edgesThatWouldCloseACycleOrNameNoNodeAreLeftOut() {
        let nodes = ["a", "b"].map { (id: $0, width: 50.0, height: 30.0) }
        let layout = DAGLayout.make(nodes: nodes, edges: [("a", "b"), ("b", "a"), ("a", "ghost")])
        #expect(layout.boxes.count == 2)
        #expect(layout.edges.isEmpty)
    }
}
