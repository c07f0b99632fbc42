/// A layered drawing of a DAG, left to right (Sugiyama's method): each node goes in
/// the column of its longest path from a source; an edge that spans several columns
/// passes through a placeholder in each column between, so that it can bend around
/// the boxes there; the order within each column is improved by barycentre sweeps
/// (fewer crossings); then nodes move towards their neighbours' centres as far as the
/// spacing allows. Edges are polylines: from a box's right side, through the gaps
/// between columns and the placeholders' own slots, to the next box's left side. No
/// box overlaps another, and no edge crosses a box, by construction.
public struct DAGLayout: Sendable, Equatable {
    public struct Point: Sendable, Equatable {
        public var x: Double
        public var y: Double

        public init(x: Double, y: Double) {
            self.x = x
            self.y = y
        }
    }

    public struct Box: Sendable, Equatable {
        public var id: String
        public var column: Int
        public var x: Double
        public var y: Double
        public var width: Double
        public var height: Double

        public var maxX: Double { x + width }
        public var maxY: Double { y + height }
    }

    public struct Edge: Sendable, Equatable {
        public var from: String
        public var to: String
        /// From the middle of `from`'s right side to the middle of `to`'s left side.
        public var points: [Point]
    }

    public var boxes: [Box]
    public var edges: [Edge]
    public var width: Double
    public var height: Double

    /// The spacing the layout keeps.
    public struct Spacing: Sendable {
        /// Between columns: where edges run.
        public var column: Double = 56
        /// Between boxes in a column.
        public var row: Double = 22
        /// Around the drawing.
        public var margin: Double = 12
        /// The height of a placeholder's slot (an edge passing through a column).
        public var passage: Double = 10

        public init() {}
    }

    /// Lays out nodes (`id`, box size) in their given order, joined by `edges` (from,
    /// to). Edges to unknown nodes and edges that would close a cycle are left out.
    public static func make(nodes: [(id: String, width: Double, height: Double)], edges: [(from: String, to: String)],
                            spacing: Spacing = Spacing()) -> DAGLayout {
        // Nodes and placeholders alike, by index.
        struct Vertex {
            var id: String?
            var width: Double
            var height: Double
            var column = 0
            var y = 0.0
        }
        var vertices = nodes.map { Vertex(id: $0.id, width: $0.width, height: $0.height) }
        var index: [String: Int] = [:]
        for (position, node) in nodes.enumerated() where index[node.id] == nil { index[node.id] = position }
        var successors = [[Int]](repeating: [], count: vertices.count)
        var kept: [(Int, Int)] = []
        for edge in edges {
            guard let from = index[edge.from], let to = index[edge.to], from != to else { continue }
            kept.append((from, to))
            successors[from].append(to)
        }
        // Columns: the longest path from a source, in a topological order (Kahn's);
        // edges into nodes already placed (a cycle) are dropped.
        var indegree = [Int](repeating: 0, count: vertices.count)
        for (_, to) in kept { indegree[to] += 1 }
        var queue = (0..<vertices.count).filter { indegree[$0] == 0 }
        var order: [Int] = []
        var head = 0
        while head < queue.count {
            let vertex = queue[head]
            head += 1
            order.append(vertex)
            for next in successors[vertex] {
                vertices[next].column = max(vertices[next].column, vertices[vertex].column + 1)
                indegree[next] -= 1
                if indegree[next] == 0 { queue.append(next) }
            }
        }
        let placed = Set(order)
        kept = kept.filter { placed.contains($0.0) && placed.contains($0.1) }
        for vertex in 0..<vertices.count where !placed.contains(vertex) { vertices[vertex].column = 0 }
        // Long edges become chains through placeholders, one per column crossed.
        var chains: [(from: Int, to: Int, path: [Int])] = []
        for (from, to) in kept {
            var path = [from]
            var column = vertices[from].column + 1
            while column < vertices[to].column {
                vertices.append(Vertex(id: nil, width: 0, height: spacing.passage, column: column))
                path.append(vertices.count - 1)
                column += 1
            }
            path.append(to)
            chains.append((from, to, path))
        }
        let columnCount = (vertices.map(\.column).max() ?? -1) + 1
        var columns = [[Int]](repeating: [], count: columnCount)
        for vertex in 0..<vertices.count { columns[vertices[vertex].column].append(vertex) }
        // Neighbours across one column, from the chains.
        var left = [[Int]](repeating: [], count: vertices.count)
        var right = [[Int]](repeating: [], count: vertices.count)
        for chain in chains {
            for (a, b) in zip(chain.path, chain.path.dropFirst()) {
                right[a].append(b)
                left[b].append(a)
            }
        }
        // Crossing reduction: barycentre sweeps left to right and back, keeping the
        // best order found.
        // Crossings between two columns: the edges sorted by their left end (then their
        // right end); each pair whose right ends come in the other order crosses.
        // Counted as inversions with a Fenwick tree: O(E log E), not O(E²).
        func crossings(_ columns: [[Int]]) -> Int {
            var total = 0
            for c in columns.indices.dropLast() {
                var position: [Int: Int] = [:]
                for (p, v) in columns[c + 1].enumerated() { position[v] = p }
                var ends: [(Int, Int)] = []
                for (p, v) in columns[c].enumerated() { for w in right[v] { ends.append((p, position[w]!)) } }
                ends.sort { $0 < $1 }
                var tree = [Int](repeating: 0, count: columns[c + 1].count + 1)
                for (seen, end) in ends.enumerated() {
                    // Edges already seen whose right end is at or before this one's.
                    var index = end.1 + 1, atOrBefore = 0
                    while index > 0 { atOrBefore += tree[index]; index -= index & -index }
                    total += seen - atOrBefore
                    index = end.1 + 1
                    while index < tree.count { tree[index] += 1; index += index & -index }
                }
            }
            return total
        }
        func sweep(_ columns: inout [[Int]], forward: Bool) {
            let range = forward ? Array(columns.indices.dropFirst()) : Array(columns.indices.dropLast().reversed())
            for c in range {
                let fixed = columns[forward ? c - 1 : c + 1]
                var position: [Int: Double] = [:]
                for (p, v) in fixed.enumerated() { position[v] = Double(p) }
                let current = columns[c]
                let keys: [(Double, Int, Int)] = current.enumerated().map { p, v in
                    let neighbours = (forward ? left[v] : right[v]).compactMap { position[$0] }
                    let centre = neighbours.isEmpty ? Double(p) : neighbours.reduce(0, +) / Double(neighbours.count)
                    return (centre, p, v)
                }
                columns[c] = keys.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2)
            }
        }
        var best = columns
        var fewest = crossings(columns)
        var trial = columns
        for round in 0..<12 where fewest > 0 {
            sweep(&trial, forward: round % 2 == 0)
            let count = crossings(trial)
            if count < fewest {
                fewest = count
                best = trial
            }
        }
        columns = best
        // Vertical positions: stacked, then pulled towards the neighbours' centres
        // (alternating directions), never closer than the row spacing.
        func gap(_ a: Int, _ b: Int) -> Double {
            vertices[a].id == nil || vertices[b].id == nil ? spacing.row / 2 : spacing.row
        }
        for column in columns {
            var y = 0.0
            for (p, v) in column.enumerated() {
                if p > 0 { y += gap(column[p - 1], v) }
                vertices[v].y = y
                y += vertices[v].height
            }
        }
        func centre(_ v: Int) -> Double { vertices[v].y + vertices[v].height / 2 }
        for round in 0..<8 {
            let forward = round % 2 == 0
            for c in (forward ? Array(columns.indices) : Array(columns.indices.reversed())) {
                let column = columns[c]
                // Wished-for tops.
                var wish = column.map { v -> Double in
                    let neighbours = forward ? left[v] : right[v]
                    guard !neighbours.isEmpty else { return vertices[v].y }
                    return neighbours.map(centre).reduce(0, +) / Double(neighbours.count) - vertices[v].height / 2
                }
                // Keep the order and the spacing: push down, then pull back up.
                for p in column.indices.dropFirst() {
                    wish[p] = max(wish[p], wish[p - 1] + vertices[column[p - 1]].height + gap(column[p - 1], column[p]))
                }
                for (p, v) in column.enumerated() { vertices[v].y = wish[p] }
            }
        }
        // Columns side by side, as wide as their widest box; everything moved inside the margin.
        var columnX: [Double] = []
        var x = spacing.margin
        for column in columns {
            columnX.append(x)
            x += (column.map { vertices[$0].width }.max() ?? 0) + spacing.column
        }
        let top = vertices.map(\.y).min() ?? 0
        for v in vertices.indices { vertices[v].y += spacing.margin - top }
        let columnWidth = columns.map { column in column.map { vertices[$0].width }.max() ?? 0 }
        var boxes: [Box] = []
        for v in 0..<nodes.count {
            let vertex = vertices[v]
            // A box is centred in its column.
            let boxX = columnX[vertex.column] + (columnWidth[vertex.column] - vertex.width) / 2
            boxes.append(Box(id: vertex.id!, column: vertex.column, x: boxX, y: vertex.y, width: vertex.width, height: vertex.height))
        }
        var drawn: [Edge] = []
        for chain in chains {
            let from = boxes[chain.from], to = boxes[chain.to]
            var points = [Point(x: from.maxX, y: from.y + from.height / 2)]
            // Out of the source's column at the box's height, then through each
            // placeholder's slot straight across its column.
            points.append(Point(x: columnX[from.column] + columnWidth[from.column], y: points[0].y))
            for placeholder in chain.path.dropFirst().dropLast() {
                let vertex = vertices[placeholder]
                let y = vertex.y + vertex.height / 2
                points.append(Point(x: columnX[vertex.column], y: y))
                points.append(Point(x: columnX[vertex.column] + columnWidth[vertex.column], y: y))
            }
            let end = Point(x: to.x, y: to.y + to.height / 2)
            points.append(Point(x: columnX[to.column], y: end.y))
            points.append(end)
            drawn.append(Edge(from: from.id, to: to.id, points: points.reduce(into: []) { list, point in
                if list.last != point { list.append(point) }
            }))
        }
        let height = (vertices.map { $0.y + $0.height }.max() ?? 0) + spacing.margin
        let width = max(spacing.margin * 2, x - spacing.column + spacing.margin)
        return DAGLayout(boxes: boxes, edges: drawn, width: width, height: height)
    }
}
