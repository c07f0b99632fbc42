import Foundation

/// How far `Stage.checkAccess(parameters:depth:)` goes.
public enum AccessCheckDepth: String, Sendable, Hashable, CaseIterable {
    /// Only what needs no network: credentials found through their chain, the
    /// endpoint, region and bucket name worked out, a directory that exists or can be
    /// made. What `runner run` checks before the first stage starts.
    case shallow
    /// The shallow check plus one cheap request proving that the credentials work and
    /// the target exists (for S3, a listing of at most one key of the bucket). What
    /// `runner validate --check-access` checks.
    case deep
}

/// What a stage's access check found: facts for the run report, never secrets.
public struct AccessReport: Sendable, Hashable {
    /// Whether the stage checked anything; false for stages that need nothing outside
    /// the process.
    public var checked: Bool
    /// What the stage will use, e.g. `["endpoint": "https://s3.eu-west-1.amazonaws.com",
    /// "region": "eu-west-1", "bucket": "images", "credentials": "environment variables"]`.
    public var facts: [String: JSONValue]

    public init(facts: [String: JSONValue]) {
        self.checked = true
        self.facts = facts
    }

    /// The facts as `name=value` pairs in name order, for a console line.
    public var summary: String {
        facts.sorted { $0.key < $1.key }.map { name, value in
            let text: String
            switch value {
            case .string(let string): text = FilePaths.printable(string)
            case .boolean(let boolean): text = String(boolean)
            case .integer(let integer): text = String(integer)
            case .number(let number): text = String(number)
            case .null, .array, .object:
                text = (try? String(decoding: JSONEncoder().encode(value), as: UTF8.self)) ?? "?"
            }
            return "\(name)=\(text)"
        }.joined(separator: ", ")
    }

    /// The report of a stage with nothing to check.
    public static let nothingToCheck = AccessReport(checked: false)

    private init(checked: Bool) {
        self.checked = checked
        self.facts = [:]
    }
}

/// A stage's access check found something missing. Thrown by stages from
/// `checkAccess(parameters:depth:)`; the plan's check adds the stage's name.
public struct AccessProblem: Error, Sendable, CustomStringConvertible, CodedError {
    /// What is missing or wrong, naming the parameter or value at fault.
    public var message: String
    /// How to provide it, if there is something to say.
    public var help: String?
    /// What kind of problem (`invalid_parameter` for a value that cannot work, `io` for
    /// a directory that cannot be written, `credentials`, ...).
    public var errorCode: PipelineError.Code
    public var isRetryable: Bool { false }

    public init(_ message: String, help: String? = nil, code: PipelineError.Code = .invalidParameter) {
        self.message = message
        self.help = help
        self.errorCode = code
    }

    public var description: String { help.map { "\(message); \($0)" } ?? message }
}

/// A stage whose access check failed: the stage, its type, and the reason on one line.
public struct AccessCheckFailure: Error, Sendable, CustomStringConvertible {
    public var stageID: String
    public var stageType: String
    /// What the check found, from the stage's error (`ErrorDescription.readable`),
    /// line breaks folded so that it prints as one line.
    public var reason: String
    /// The code of the stage's error (`credentials`, `no_such_bucket`, ...).
    public var code: PipelineError.Code

    public init(stageID: String, stageType: String, reason: String, code: PipelineError.Code = .stageFailed) {
        self.stageID = stageID
        self.stageType = stageType
        self.reason = reason
        self.code = code
    }

    public var description: String {
        "stage '\(FilePaths.printable(stageID))' (\(stageType)) cannot run: \(reason)"
    }
}

extension Plan {
    /// Runs every stage's access check (`Stage.checkAccess(parameters:depth:)`) at
    /// once, or only those of the stages in `only`.
    ///
    /// The result holds one entry per checked stage, keyed by stage id: the facts a
    /// stage reported (for the run report: an S3 sink's endpoint, region and bucket),
    /// or why it cannot run. Stages with nothing to check report
    /// `AccessReport.nothingToCheck`. `failures(in:)` lists the failures in plan order.
    public func checkAccess(depth: AccessCheckDepth, only: Set<String>? = nil) async
        -> [String: Result<AccessReport, AccessCheckFailure>] {
        let chosen = stages.filter { only?.contains($0.id) ?? true }
        return await withTaskGroup(of: (String, Result<AccessReport, AccessCheckFailure>).self) { group in
            for stage in chosen {
                group.addTask {
                    do {
                        return (stage.id, .success(try await stage.type.checkAccess(parameters: accessParameters(of: stage), depth: depth)))
                    } catch {
                        let reason = ErrorDescription.readable(error).split(whereSeparator: \.isNewline)
                            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
                        return (stage.id, .failure(AccessCheckFailure(stageID: stage.id, stageType: stage.typeName, reason: reason,
                                                                              code: PipelineError(error).code)))
                    }
                }
            }
            var results: [String: Result<AccessReport, AccessCheckFailure>] = [:]
            for await (id, result) in group { results[id] = result }
            return results
        }
    }

    /// `stage`'s parameters as its access check sees them: with the plan's params in
    /// their run-time `{param}` placeholders (a sweep's item fills `{tag}` in a
    /// directory), and what only the run knows (`{run_id}`, `{date}`) left as it is.
    public func accessParameters(of stage: PlannedStage) -> Parameters {
        let known = params.filter { !Template.builtinNames.contains($0.key) }
        guard !known.isEmpty else { return stage.parameters }
        return Parameters(stage.parameters.values.mapValues { value in
            guard case .string(let text) = value, text.contains("{") else { return value }
            return .string(Template.filling(text, values: known))
        })
    }

    /// The failures among `results` (from `checkAccess(depth:only:)`), in plan order.
    public func failures(in results: [String: Result<AccessReport, AccessCheckFailure>]) -> [AccessCheckFailure] {
        stages.compactMap { stage in
            guard case .failure(let failure)? = results[stage.id] else { return nil }
            return failure
        }
    }
}
