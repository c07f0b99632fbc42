import Foundation

/// A pipeline with a `matrix`: one plan per item, each the pipeline with the item's
/// values in place of its params'. Every item was planned (and checked) once; only
/// the first item's plan is kept, and the others are planned again as they run, so
/// that a sweep's memory does not grow with its items.
public struct SweepPlan: Sendable {
    public let matrix: Matrix
    /// Item `firstIndex`'s plan (item 0's, unless the sweep was planned for one item):
    /// the sweep's name, graph and access checks.
    public let first: Plan
    public let firstIndex: Int
    /// The items after the first whose stages reach something outside that no earlier
    /// item does (a stage type with an access target, or else parameters, not seen
    /// before: `Stage.accessTarget(parameters:)`), with those stages:
    /// what `checkAccess(depth:)` checks besides item 0. Items that only change a
    /// seed or a value no stage's access depends on are not here.
    let accessTargets: [(item: Int, stages: Set<String>)]
    private let planItem: @Sendable (Int) -> Result<Plan, PipelineValidationError>

    init(matrix: Matrix, first: Plan, firstIndex: Int = 0, accessTargets: [(item: Int, stages: Set<String>)] = [],
         planItem: @escaping @Sendable (Int) -> Result<Plan, PipelineValidationError>) {
        self.matrix = matrix
        self.first = first
        self.firstIndex = firstIndex
        self.accessTargets = accessTargets
        self.planItem = planItem
    }

    public var count: Int { matrix.items.count }

    /// Item `index`'s plan (it was checked when the sweep was planned).
    public func plan(ofItem index: Int) throws -> Plan {
        index == firstIndex ? first : try planItem(index).get()
    }

    /// Item `index`'s run id: the sweep's, a dot and the index (`r.7`), so that each
    /// item writes under its own `{run_id}`. Not padded: a sweep that grows or shrinks
    /// keeps its items' ids, so that `--resume` finds them.
    public func runID(ofItem index: Int, in runID: String) -> String {
        runID + "." + String(index)
    }
}

extension SweepPlan {
    /// An item's stage that cannot reach what it needs (`Plan.checkAccess`).
    public struct AccessFailure: Sendable, CustomStringConvertible {
        /// nil when the sweep has one item.
        public let item: Matrix.Item?
        public let failure: AccessCheckFailure

        public var description: String {
            guard let item else { return failure.description }
            return "matrix item \(item.index) (\(item.label)): \(failure)"
        }
    }

    /// Checks every item's access before anything runs: item 0's stages, and each later
    /// item's stages that reach something no earlier item does (`accessTargets`). The
    /// first item's results come back too (the S3 sink's facts for the report); the
    /// failures are in item order, then plan order.
    public func checkAccess(depth: AccessCheckDepth) async
        -> (first: [String: Result<AccessReport, AccessCheckFailure>], failures: [AccessFailure]) {
        let results = await first.checkAccess(depth: depth)
        // Item 0's failures name it too (unless it is the only item): its values may be the cause.
        let firstItem = count > 1 ? matrix.items[firstIndex] : nil
        var failures = first.failures(in: results).map { AccessFailure(item: firstItem, failure: $0) }
        for (index, stages) in accessTargets {
            if Task.isCancelled { break }
            guard let plan = try? plan(ofItem: index) else { continue }  // every item was planned once already
            let checked = await plan.checkAccess(depth: depth, only: stages)
            failures += plan.failures(in: checked).map { AccessFailure(item: matrix.items[index], failure: $0) }
        }
        return (results, failures)
    }
}

extension Planner {
    /// How many items' problems are shown before the rest are counted.
    static let itemsShown = 3
    /// How many of a sweep's problems are shown before the rest are counted.
    static let problemsShown = 20

    /// Plans every item of the matrix in `path`, or nil when the file has none; `check`
    /// sees each item's plan and the number of items (and may throw). A problem every failing item shares is
    /// reported once; one that only some items have names them (`matrix item 2
    /// (lambda=-1)`).
    ///
    /// With `only`, plans that item alone (or item 0, when there is no such item): what
    /// one task of an exported sweep runs, which need not plan the thousands of others.
    public func sweep(contentsOf path: String, loader: PipelineLoader, only: Int? = nil,
                      check: (Plan, _ items: Int) throws -> Void = { _, _ in }) throws -> Result<SweepPlan?, PipelineValidationError> {
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(path).withUnsafeBytes { Array($0.bindMemory(to: UInt8.self)) }
        } catch {
            return plan(loader.load(contentsOf: path)).map { _ in nil }  // its message says why the file cannot be read
        }
        let base = loader.load(bytes: bytes, file: path)
        guard let document = base.document, !base.diagnostics.contains(where: { $0.severity == .error }) else {
            return .failure(PipelineValidationError(Self.sorted(base.diagnostics), sources: base.sources))
        }
        guard let matrix = document.matrix else { return .success(nil) }
        let planner = self
        @Sendable func planItem(_ index: Int) -> (Result<Plan, PipelineValidationError>, SourceTexts) {
            let item = matrix.items[index]
            let loaded = loader.load(bytes: bytes, file: path, item: item)
            return (planner.plan(loaded).map { plan in
                var plan = plan
                plan.item = item
                return plan
            }, loaded.sources)
        }
        var first: Plan?
        // Each stage type with its parameters, as a 64-bit hash: the first item to have it
        // checks its access. A hash, not the parameters, so that a sweep whose every item
        // writes its own path holds 8 bytes per stage and item, not each one's parameters.
        var seenTargets: Set<Int> = []
        var accessTargets: [(item: Int, stages: Set<String>)] = []
        var failing: [(item: Matrix.Item, diagnostics: [Diagnostic])] = []
        var sources = base.sources
        let firstIndex = only.map { matrix.items.indices.contains($0) ? $0 : 0 } ?? 0
        for index in only == nil ? Array(matrix.items.indices) : [firstIndex] {
            let (result, itemSources) = planItem(index)
            sources = itemSources
            switch result {
            case .success(let plan):
                try check(plan, matrix.items.count)
                if index == firstIndex { first = plan }
                var newTargets: Set<String> = []
                for stage in plan.stages {
                    var hasher = Hasher()
                    hasher.combine(stage.typeName)
                    let parameters = plan.accessParameters(of: stage)
                    if let target = stage.type.accessTarget(parameters: parameters) {
                        hasher.combine(target)
                    } else {
                        hasher.combine(parameters)
                    }
                    if seenTargets.insert(hasher.finalize()).inserted && index != firstIndex { newTargets.insert(stage.id) }
                }
                if !newTargets.isEmpty { accessTargets.append((index, newTargets)) }
            case .failure(let error):
                failing.append((matrix.items[index], error.diagnostics))
            }
        }
        if failing.isEmpty, let first {
            return .success(SweepPlan(matrix: matrix, first: first, firstIndex: firstIndex, accessTargets: accessTargets,
                                      planItem: { planItem($0).0 }))
        }
        // Each problem once: as it is when all failing items share it, else with the items that have it.
        var order: [Diagnostic] = []
        var items: [Diagnostic: [Matrix.Item]] = [:]
        for (item, diagnostics) in failing {
            var seen: Set<Diagnostic> = []
            for diagnostic in diagnostics where seen.insert(diagnostic).inserted {
                if items[diagnostic] == nil { order.append(diagnostic) }
                items[diagnostic, default: []].append(item)
            }
        }
        let diagnostics = order.map { diagnostic -> Diagnostic in
            let having = items[diagnostic]!
            guard having.count < matrix.items.count else { return diagnostic }
            var named = diagnostic
            let shown = having.prefix(Self.itemsShown).map { "\($0.index) (\($0.label))" }
            let more = having.count > Self.itemsShown ? " and \(having.count - Self.itemsShown) more" : ""
            named.message = "matrix item\(having.count == 1 ? "" : "s") \(shown.joined(separator: ", "))\(more): \(diagnostic.message)"
            return named
        }
        // One mistake that each item makes with its own value (a range of lambdas that
        // crosses 0) is as many problems as items: the first ones show it.
        let sorted = Self.sorted(diagnostics)
        return .failure(PipelineValidationError(Array(sorted.prefix(Self.problemsShown)), sources: sources,
                                                omitted: max(0, sorted.count - Self.problemsShown)))
    }
}
