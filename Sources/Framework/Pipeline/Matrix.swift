/// A pipeline's `matrix:`: values for its params, whose combinations are the items of
/// a sweep, each run as the pipeline with those values.
///
///     matrix:
///       lambda: [0.5, 3, 30]          # a list of values
///       seed: {range: [0, 1000]}      # 0, 1, ..., 999 (a step may follow: [0, 1000, 10])
///       exclude:
///         - {lambda: 30, seed: 0}     # leaves out the combinations that match
///       include:
///         - {lambda: 3, size: 4096}   # adds size to lambda 3's combinations
///         - {lambda: 100}             # matches none: a combination of its own
///
/// The items are the cross product of the axes in the order written (the first axis
/// varies slowest), less `exclude`, plus `include`, as CI matrices do: an `include`
/// entry adds its other values to every combination whose axis values it matches,
/// without overwriting an axis value, and is an item of its own when it matches none.
/// Each key is a param the pipeline declares, or `seed`: the item's run seed (as
/// `--seed`).
public struct Matrix: Sendable {
    /// One combination: its values in order (axes, then what `include` added).
    public struct Item: Sendable, Hashable {
        public var index: Int
        public var values: [Value]

        public struct Value: Sendable, Hashable {
            public var name: String
            /// The value as written, with its position (a `range` value's position is
            /// the range's).
            public var node: YAMLNode
        }

        public func value(_ name: String) -> YAMLNode? { values.first { $0.name == name }?.node }

        /// `lambda=3 seed=7`, as messages and the console name the item.
        public var label: String {
            values.map { "\($0.name)=\($0.node.scalar ?? "")" }.joined(separator: " ")
        }

        /// The item's run seed, when the matrix sets one.
        public var seed: UInt64? { value(Matrix.seedKey)?.scalar.flatMap { UInt64($0) } }
    }

    /// The key that sets an item's run seed rather than a param.
    public static let seedKey = "seed"
    /// More items than this is a mistake (a range with a forgotten step), not a sweep.
    public static let maximumItems = 100_000
    /// Include entries times the items they are matched against, at most.
    public static let maximumIncludeWork = 10_000_000

    public var location: SourceLocation
    public var axes: [(name: String, values: [YAMLNode])]
    public var items: [Item]

    /// Reads `node` (the `matrix:` value) against the params the pipeline declares.
    /// Problems go to `diagnostics` at their positions; nil when there are any.
    public static func read(_ node: YAMLNode, params: Set<String>, diagnostics: inout [Diagnostic]) -> Matrix? {
        let before = diagnostics.count
        guard let pairs = node.pairs else {
            diagnostics.append(.error("'matrix' must map params to their values, not \(node.kindName)", at: node.location,
                                      help: "for example: matrix: {lambda: [0.5, 3, 30], seed: {range: [0, 10]}}"))
            return nil
        }
        let known = (params.subtracting([seedKey]).sorted() + [seedKey])
        func checkKey(_ name: String, at location: SourceLocation) -> Bool {
            if name == seedKey && params.contains(seedKey) {
                diagnostics.append(.error("matrix key 'seed' sets each item's run seed, but the pipeline also has a param 'seed'",
                                          at: location, help: "rename the param"))
                return false
            }
            guard name == seedKey || params.contains(name) else {
                diagnostics.append(.error("matrix key '\(name)' is not a param of this pipeline", at: location,
                                          help: Suggestions.didYouMean(name, in: known)
                                              ?? "a matrix sweeps params declared under 'params:' (" + known.quotedList() + ")"))
                return false
            }
            return true
        }
        var axes: [(name: String, values: [YAMLNode])] = []
        var include: [YAMLNode] = [], exclude: [YAMLNode] = []
        for pair in pairs {
            switch pair.name {
            case "include", "exclude":
                guard let entries = pair.value.items, entries.allSatisfy({ $0.pairs != nil }) else {
                    diagnostics.append(.error("'\(pair.name)' must be a list of mappings of params to values, not \(pair.value.kindName)",
                                              at: pair.value.location, help: "for example: \(pair.name): [{lambda: 3, seed: 0}]"))
                    continue
                }
                if pair.name == "include" { include = entries } else { exclude = entries }
            default:
                guard checkKey(pair.name, at: pair.key.location) else { continue }
                guard let values = readValues(pair.value, name: pair.name, diagnostics: &diagnostics) else { continue }
                axes.append((pair.name, values))
            }
        }
        let axisNames = Set(axes.map(\.name))
        // Entries: scalar values of known keys; exclude matches axes only.
        func entryValues(_ entry: YAMLNode, of list: String) -> [Item.Value]? {
            var values: [Item.Value] = []
            for pair in entry.pairs ?? [] {
                guard checkKey(pair.name, at: pair.key.location) else { return nil }
                if list == "exclude" && !axisNames.contains(pair.name) {
                    diagnostics.append(.error("'exclude' names '\(pair.name)', which is not a list in the matrix", at: pair.key.location,
                                              help: "exclude leaves out combinations of the matrix's own lists: "
                                                  + (axisNames.isEmpty ? "it has none" : axes.map(\.name).quotedList())))
                    return nil
                }
                guard pair.value.scalar != nil, !pair.value.isNull else {
                    diagnostics.append(.error("'\(list)' value of '\(pair.name)' must be a single value, not \(pair.value.kindName)",
                                              at: pair.value.location))
                    return nil
                }
                if pair.name == seedKey, !checkSeed(pair.value, diagnostics: &diagnostics) { return nil }
                values.append(Item.Value(name: pair.name, node: pair.value))
            }
            if values.isEmpty {
                diagnostics.append(.error("an empty '\(list)' entry", at: entry.location, help: "give it params and values, or remove it"))
                return nil
            }
            return values
        }
        let excludes = exclude.compactMap { entryValues($0, of: "exclude") }
        let includes = include.compactMap { entryValues($0, of: "include") }
        guard diagnostics.count == before else { return nil }
        if axes.isEmpty && includes.isEmpty {
            diagnostics.append(.error("the matrix has no values", at: node.location,
                                      help: "give a param a list of values: lambda: [0.5, 3, 30]"))
            return nil
        }

        // The cross product, counted first: a sweep too large is refused before it is built.
        // Capped at each step, so that no product of many long lists overflows.
        let product = axes.reduce(1) { count, axis in min(count * axis.values.count, maximumItems + 1) }
        if product > maximumItems {
            diagnostics.append(.error("the matrix makes more than \(maximumItems) items", at: node.location,
                                      help: "sweep fewer values (a range takes a step: {range: [0, 1000, 10]})"))
            return nil
        }
        /// The same value: the same text, or the same number written two ways (3 and 3.0).
        func same(_ a: YAMLNode, _ b: YAMLNode) -> Bool {
            if a.scalar == b.scalar { return true }
            guard let x = a.scalar.flatMap(Double.init), let y = b.scalar.flatMap(Double.init) else { return false }
            return x == y
        }
        var combinations: [[Item.Value]] = axes.isEmpty ? [] : [[]]
        for axis in axes {
            combinations = combinations.flatMap { prefix in axis.values.map { prefix + [Item.Value(name: axis.name, node: $0)] } }
        }
        combinations.removeAll { combination in
            excludes.contains { entry in
                entry.allSatisfy { value in combination.contains { $0.name == value.name && same($0.node, value.node) } }
            }
        }
        // include: added to each combination whose axis values it does not contradict;
        // values it added before may be replaced by a later entry.
        let original = combinations.count
        // Each entry is matched against every item: bounded, so that a file of many
        // entries over many items is refused rather than left to run for hours.
        if includes.count > maximumItems || includes.count * max(original, 1) > Self.maximumIncludeWork {
            diagnostics.append(.error("the matrix has \(includes.count) include entries for \(original) items, more than "
                                      + "\(Self.maximumIncludeWork) entry-item pairs to match", at: node.location,
                                      help: "sweep the included values as a list instead, or split the file"))
            return nil
        }
        for entry in includes {
            var matched = false
            for index in 0..<original {
                let contradicts = entry.contains { value in
                    axisNames.contains(value.name) && combinations[index].contains { $0.name == value.name && !same($0.node, value.node) }
                }
                if contradicts { continue }
                matched = true
                for value in entry where !axisNames.contains(value.name) {
                    if let at = combinations[index].firstIndex(where: { $0.name == value.name }) {
                        combinations[index][at] = value
                    } else {
                        combinations[index].append(value)
                    }
                }
            }
            if !matched { combinations.append(entry) }
        }
        if combinations.isEmpty {
            diagnostics.append(.error("'exclude' leaves no items", at: node.location))
            return nil
        }
        if combinations.count > maximumItems {
            diagnostics.append(.error("the matrix makes more than \(maximumItems) items", at: node.location))
            return nil
        }
        // Two items with the same values would run the same thing twice (and write to
        // the same places).
        var seen: [String: Int] = [:]
        var items: [Item] = []
        for (index, values) in combinations.enumerated() {
            let item = Item(index: index, values: values)
            let key = values.map { "\($0.name)=\($0.node.scalar ?? "")" }.sorted().joined(separator: "\u{0}")
            if let first = seen[key] {
                diagnostics.append(.error("matrix items \(first) and \(index) have the same values (\(item.label))",
                                          at: values.last?.node.location ?? node.location,
                                          help: "remove the repeated value or include entry"))
                return nil
            }
            seen[key] = index
            items.append(item)
        }
        return Matrix(location: node.location, axes: axes, items: items)
    }

    /// An axis's values: a non-empty list of single values, or `{range: [start, stop]}`
    /// (whole numbers from start up to but not including stop, by an optional step).
    private static func readValues(_ node: YAMLNode, name: String, diagnostics: inout [Diagnostic]) -> [YAMLNode]? {
        if let items = node.items {
            guard !items.isEmpty else {
                diagnostics.append(.error("matrix list '\(name)' is empty", at: node.location, help: "give it at least one value"))
                return nil
            }
            for item in items where item.scalar == nil || item.isNull {
                diagnostics.append(.error("matrix values of '\(name)' must be single values, not \(item.kindName)", at: item.location))
                return nil
            }
            if name == seedKey, !items.allSatisfy({ checkSeed($0, diagnostics: &diagnostics) }) { return nil }
            return items
        }
        if let pairs = node.pairs, pairs.count == 1, pairs[0].name == "range" {
            let bounds = pairs[0].value
            let numbers = bounds.items?.compactMap { $0.scalar.flatMap { Int($0) } } ?? []
            guard let items = bounds.items, (2...3).contains(items.count), numbers.count == items.count else {
                diagnostics.append(.error("'range' must be [start, stop] or [start, stop, step] of whole numbers", at: bounds.location,
                                          help: "for example: {range: [0, 100]} for 0 to 99"))
                return nil
            }
            let (start, stop, step) = (numbers[0], numbers[1], numbers.count == 3 ? numbers[2] : 1)
            guard step != 0 else {
                diagnostics.append(.error("a range's step cannot be 0", at: items[2].location))
                return nil
            }
            // In unsigned arithmetic: the distance between two Ints, and a step of Int.min,
            // do not fit an Int.
            let distance: UInt = step > 0 ? (stop > start ? UInt(bitPattern: stop &- start) : 0)
                                          : (start > stop ? UInt(bitPattern: start &- stop) : 0)
            let steps = distance == 0 ? 0 : (distance - 1) / step.magnitude + 1
            guard steps > 0 else {
                diagnostics.append(.error("range [\(numbers.map(String.init).joined(separator: ", "))] has no values", at: bounds.location,
                                          help: "the stop is left out: [0, 3] is 0, 1, 2"))
                return nil
            }
            guard steps <= UInt(maximumItems) else {
                diagnostics.append(.error("range [\(numbers.map(String.init).joined(separator: ", "))] has \(steps) values, more than \(maximumItems)",
                                          at: bounds.location))
                return nil
            }
            let count = Int(steps)
            // Every value lies between start and stop, so it is an Int; wrapping
            // arithmetic computes it exactly even where i * step alone would not fit.
            if name == seedKey && min(start, start &+ (count - 1) &* step) < 0 {
                diagnostics.append(.error("seeds are whole numbers from 0 to \(UInt64.max); this range has negative ones", at: bounds.location))
                return nil
            }
            return (0..<count).map { YAMLNode.scalar(String(start &+ $0 &* step), at: bounds.location) }
        }
        diagnostics.append(.error("matrix values of '\(name)' must be a list or {range: [start, stop]}, not \(node.kindName)",
                                  at: node.location, help: "for example: \(name): [1, 2, 3]"))
        return nil
    }

    private static func checkSeed(_ node: YAMLNode, diagnostics: inout [Diagnostic]) -> Bool {
        guard let text = node.scalar, UInt64(text) != nil else {
            diagnostics.append(.error("a seed must be a whole number from 0 to \(UInt64.max), got '\(node.scalar ?? node.kindName)'",
                                      at: node.location))
            return false
        }
        return true
    }
}
