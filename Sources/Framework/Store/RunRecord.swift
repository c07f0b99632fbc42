import Foundation

/// `run.json`: what a store records about a run (its seed).
public enum RunRecord {
    public static func data(seed: UInt64) -> Data { Data("{\"seed\": \(seed)}\n".utf8) }

    /// What a message about a damaged record ends with.
    public static let damagedHelp = "; the run's stored outputs were left as they are: repair it as {\"seed\": N} or remove the run"

    /// The seed in a `run.json`; `name` says where it came from in the error, which
    /// has the code `.damagedRun` when the record is not JSON or holds no seed.
    public static func seed(in data: Data, name: String) throws -> UInt64 {
        let help = damagedHelp
        struct Record: Decodable { var seed: UInt64 }
        let seed: UInt64
        do {
            seed = try JSONDecoder().decode(Record.self, from: data).seed
        } catch let error as DecodingError {
            let reason: String
            switch error {
            case .dataCorrupted(let context) where context.codingPath.isEmpty:
                // Foundation says the same of a seed it cannot hold (-1, 1.5, 2^64) as of
                // text that is not JSON: tell them apart.
                switch try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) {
                case let object as [String: Any]:
                    reason = object["seed"] == nil ? "it has no 'seed'" : "its 'seed' is not a whole number from 0 to 2^64-1"
                case .some: reason = "not a JSON object"
                case nil: reason = "not JSON"
                }
            case .typeMismatch(_, let context) where context.codingPath.isEmpty: reason = "not a JSON object"
            case .keyNotFound: reason = "it has no 'seed'"
            default: reason = "its 'seed' is not a whole number from 0 to 2^64-1"
            }
            throw ArtifactStoreError(message: "'\(FilePaths.printable(name))' is damaged: " + reason + help, code: .damagedRun)
        } catch {
            throw ArtifactStoreError(message: "'\(FilePaths.printable(name))' is damaged" + help, code: .damagedRun)
        }
        return seed
    }
}

/// How a run uses the runs already in a store.
public enum RunStart: Sendable, Hashable {
    /// A run of its own (`--run-id`, or a new id): it continues a run of that id if
    /// the store has one, with that run's seed.
    case run
    /// `--resume`: the run must be in the store.
    case resume
    /// `--only`: one stage of a run; a run the store does not hold yet gets a seed
    /// derived from its id, so that every stage of it agrees.
    case only
}

extension ArtifactStore {
    /// Finds the seed run `runID` uses with this store and records it in the run's
    /// `run.json` (unless it is already there), before anything runs.
    ///
    /// The seed is `seed` if given, else the one the store recorded for the run, else
    /// `newSeed` (or, for `.only`, one derived from the run id). A damaged `run.json`
    /// is an error (`.damagedRun`) that leaves the run alone, and so is `.resume` of a
    /// run the store does not hold (`.unknownRun`, naming the runs it does hold when
    /// they are few).
    public func startRun(_ runID: String, _ start: RunStart, seed: UInt64?, newSeed: UInt64) throws -> UInt64 {
        let recorded = try recordedSeed(runID: runID)
        if recorded == nil && start == .resume {
            var message = "no run '\(FilePaths.printable(runID))' in the artifact store '\(FilePaths.printable(description))'"
            if let runs = try? runIDs() {
                switch runs.count {
                case 0: message += "; it holds no runs"
                case 1...8: message += "; runs there: " + runs.map(FilePaths.printable).joined(separator: ", ")
                default: message += "; it holds \(runs.count) runs"
                }
            }
            throw ArtifactStoreError(message: message, code: .unknownRun)
        }
        // A resumed run reuses what its seed made; another seed would silently recompute
        // (and overwrite) every seeded output.
        if start != .run, let seed, let recorded, seed != recorded {
            let option = start == .resume ? "--resume \(FilePaths.printable(runID))" : "--only with --run-id \(FilePaths.printable(runID))"
            throw ArtifactStoreError(message: "\(option) continues a run made with seed \(recorded); "
                + "leave out --seed \(seed), or start a new run with another --run-id", code: .conflictingSeed)
        }
        let chosen = seed ?? recorded ?? (start == .only ? SeedDerivation.seed(runSeed: 0, stageID: runID) : newSeed)
        if chosen != recorded {
            try recordSeed(chosen, runID: runID)
        }
        return chosen
    }
}
