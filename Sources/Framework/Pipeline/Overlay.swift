/// Edits of the YAML tree before a pipeline is read: profiles here, `--set` in
/// `SetArgument.swift`.
enum Overlay {
    /// Keys of a stage that a profile inherits when it replaces the stage with one of
    /// another type: the stage's place in the graph and its run policy.
    static let inheritedStageKeys: Set<String> = ["input", "inputs", "after", "retries", "timeout"]

    /// Applies a profile (`params:` and `stages:` overlays) to the document root.
    ///
    /// A profile stage with a `type` other than the base stage's replaces it, keeping
    /// the base's `input`, `inputs`, `after`, `retries` and `timeout` unless it sets
    /// them; with the same type (or none) it is merged key by key. A stage set to
    /// `null` is removed; a stage the base lacks is added.
    static func apply(profile: YAMLNode, to root: YAMLNode) -> YAMLNode {
        var result = root
        if let params = profile["params"], params.pairs != nil {
            result = result.setting("params", to: merge(root["params"], params), keyAt: params.location)
        }
        if let stages = profile["stages"], let overlayStages = stages.pairs {
            var base = MappingEditor(root["stages"] ?? YAMLNode(.mapping([]), at: stages.location))
            for pair in overlayStages {
                if let replaced = replaceStage(base[pair.name], with: pair.value) {
                    base.set(pair.name, to: replaced, keyAt: pair.key.location)
                } else {
                    base.remove(pair.name)
                }
            }
            result = result.setting("stages", to: base.node, keyAt: stages.location)
        }
        return result
    }

    private static func replaceStage(_ base: YAMLNode?, with overlay: YAMLNode) -> YAMLNode? {
        if overlay.isNull { return nil }
        guard let base, let basePairs = base.pairs, let overlayPairs = overlay.pairs else { return overlay }
        if let newType = overlay["type"]?.scalar, newType != base["type"]?.scalar {
            let kept = basePairs.filter { inheritedStageKeys.contains($0.name) && overlay[$0.name] == nil }
            return YAMLNode(.mapping(overlayPairs + kept), at: overlay.location)
        }
        return merge(base, overlay)
    }

    /// Deep merge: mappings merge key by key, anything else is replaced.
    static func merge(_ base: YAMLNode?, _ overlay: YAMLNode) -> YAMLNode {
        guard let base, base.pairs != nil, let overlayPairs = overlay.pairs else { return overlay }
        var result = MappingEditor(base)
        for pair in overlayPairs {
            result.set(pair.name, to: merge(result[pair.name], pair.value), keyAt: pair.key.location)
        }
        return result.node
    }
}

extension YAMLNode {
    /// This mapping with `key` set to `value` (replaced in place or appended).
    func setting(_ key: String, to value: YAMLNode, keyAt keyLocation: SourceLocation) -> YAMLNode {
        var pairs = self.pairs ?? []
        if let index = pairs.firstIndex(where: { $0.name == key }) {
            pairs[index].value = value
        } else {
            pairs.append(YAMLPair(key: .scalar(key, at: keyLocation), value: value))
        }
        return YAMLNode(.mapping(pairs), at: location)
    }

    /// This mapping without `key`.
    func removing(_ key: String) -> YAMLNode {
        YAMLNode(.mapping((pairs ?? []).filter { $0.name != key }), at: location)
    }
}

/// A mapping being edited key by key: lookups, replacements, additions and removals
/// in constant time, so that an overlay touching every one of thousands of stages
/// stays linear. Keys keep their order; added keys go at the end.
struct MappingEditor {
    private let location: SourceLocation
    /// The pairs, with removed ones left as nil until `node` compacts them.
    private var pairs: [YAMLPair?]
    /// Where each key's pairs are (a key appears once unless the file repeats it,
    /// which the parser has reported).
    private var positions: [String: [Int]] = [:]

    init(_ mapping: YAMLNode) {
        location = mapping.location
        let pairs = mapping.pairs ?? []
        self.pairs = pairs
        for (position, pair) in pairs.enumerated() {
            positions[pair.name, default: []].append(position)
        }
    }

    /// The value of the first pair with `key`, as `YAMLNode`'s subscript.
    subscript(key: String) -> YAMLNode? {
        positions[key]?.first.flatMap { pairs[$0]?.value }
    }

    /// Replaces the value of the first pair with `key`, or appends a pair.
    mutating func set(_ key: String, to value: YAMLNode, keyAt keyLocation: SourceLocation) {
        if let first = positions[key]?.first {
            pairs[first]?.value = value
        } else {
            positions[key] = [pairs.count]
            pairs.append(YAMLPair(key: .scalar(key, at: keyLocation), value: value))
        }
    }

    /// Removes every pair with `key`.
    mutating func remove(_ key: String) {
        for position in positions.removeValue(forKey: key) ?? [] {
            pairs[position] = nil
        }
    }

    var node: YAMLNode {
        YAMLNode(.mapping(pairs.compactMap { $0 }), at: location)
    }
}
