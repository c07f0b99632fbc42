/// A pipeline file after overlays and interpolation, with every value still
/// carrying its position. The planner checks it against a registry.
public struct PipelineDocument: Sendable {
    public var file: String
    public var name: String
    /// Pipeline params after interpolation, as text.
    public var params: [String: String]
    /// Stages in file order.
    public var stages: [StageDeclaration]
    /// Values whose `${...}` could not be filled (already reported); not checked again.
    public var unresolvedValues: Set<SourceLocation> = []
    /// The pipeline params put into each value, by the value's location.
    public var substitutions: [SourceLocation: [ParamSubstitution]] = [:]
    /// The environment variables the file reads (`${env.NAME}`), in the order first read.
    public var environmentNames: [String] = []
    /// Params whose value a `--set` gave, by name: problems with values made from
    /// them are reported at the argument.
    public var paramsFromCommandLine: [String: CommandLineSetting] = [:]
    /// The file's `matrix`, when it has one: a sweep of `items`.
    public var matrix: Matrix?
    /// The matrix item this document is, when it was loaded as one.
    public var item: Matrix.Item?

    public func stage(_ id: String) -> StageDeclaration? {
        stages.first { $0.id == id }
    }
}

/// One entry of `stages:`.
public struct StageDeclaration: Sendable {
    public var id: String
    /// The position of the stage's key.
    public var location: SourceLocation
    public var type: String?
    public var typeLocation: SourceLocation?
    /// Connections to producers. `port` is nil for the `input:` shorthand.
    public var inputs: [InputReference]
    /// The `with:` mapping, unconverted; the planner converts it against the spec.
    public var parameters: [YAMLPair]
    public var parametersLocation: SourceLocation?
    public var after: [Reference]
    public var retry: RetryPolicy
    public var timeout: Duration?
    /// Stage keys the file probably meant to give but mistyped (`inptu:`) or indented
    /// wrongly (`with:` at the level of stage ids); already reported. Checks that a
    /// key is missing stay quiet for these, so one slip is one error.
    public var keysInDoubt: Set<String> = []

    public struct Reference: Sendable, Hashable {
        public var stage: String
        public var location: SourceLocation
    }

    public struct InputReference: Sendable, Hashable {
        public var port: String?
        public var portLocation: SourceLocation?
        public var producer: String
        public var location: SourceLocation
    }
}

/// How often and how patiently a stage is retried.
///
/// `retries: 3` retries up to three times after the first failure, waiting `delay`
/// (1 s) and multiplying the wait by `factor` (2) each time, up to `maxDelay` (60 s).
/// The long form is `retries: {count: 3, delay: 500ms, factor: 2, max_delay: 10s}`.
public struct RetryPolicy: Sendable, Hashable {
    public var count: Int
    public var delay: Duration
    public var factor: Double
    public var maxDelay: Duration

    public init(count: Int = 0, delay: Duration = .seconds(1), factor: Double = 2, maxDelay: Duration = .seconds(60)) {
        self.count = count
        self.delay = delay
        self.factor = factor
        self.maxDelay = maxDelay
    }

    public static let none = RetryPolicy()

    /// The wait before retry number `retry` (1-based).
    public func delay(beforeRetry retry: Int) -> Duration {
        let seconds = delay.seconds * pow2(factor, retry - 1)
        return .milliseconds(Int64(min(seconds, maxDelay.seconds) * 1000))
    }

    private func pow2(_ base: Double, _ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<max(0, exponent) { result *= base }
        return result
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Parses `30s`, `1.5s`, `500ms`, `5m`, `1h`, `1m30s`, or a plain number of seconds.
    public static func parse(_ text: String) -> Duration? {
        if let seconds = Double(text), seconds.isFinite, seconds >= 0 {
            return seconds * 1000 < 9.0e18 ? .milliseconds(Int64((seconds * 1000).rounded())) : nil
        }
        var total = 0.0
        var number = ""
        var index = text.startIndex
        var sawUnit = false
        while index < text.endIndex {
            let character = text[index]
            if character.isNumber || character == "." {
                number.append(character)
                index = text.index(after: index)
                continue
            }
            var unit = ""
            while index < text.endIndex, text[index].isLetter {
                unit.append(text[index])
                index = text.index(after: index)
            }
            guard let value = Double(number) else { return nil }
            let scale: Double
            switch unit {
            case "ms": scale = 0.001
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            default: return nil
            }
            total += value * scale
            number = ""
            sawUnit = true
        }
        guard sawUnit, number.isEmpty, total.isFinite, total * 1000 < 9.0e18 else { return nil }
        return .milliseconds(Int64((total * 1000).rounded()))
    }

    /// `1.25s`, `350ms`, `2m05s`.
    public var humanDescription: String {
        let seconds = self.seconds
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 60 { return String(format2: seconds) + "s" }
        let whole = Int(seconds.rounded())
        let remainder = whole % 60
        return "\(whole / 60)m" + (remainder < 10 ? "0" : "") + "\(remainder)s"
    }
}

extension String {
    /// Two decimal places, without Foundation.
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
    }
}
