/// The shapes of names in the registry and in pipeline files, checked by hand:
/// Regex construction costs about a millisecond at process start.
enum Names {
    private static func isLower(_ c: UInt8) -> Bool { c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") }
    private static func isUpper(_ c: UInt8) -> Bool { c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") }
    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// snake_case or kebab-case: `[a-z][a-z0-9]*([_-][a-z0-9]+)*`.
    static func isTypeName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, isLower(first) else { return false }
        var previousWasSeparator = false
        for c in bytes.dropFirst() {
            if c == UInt8(ascii: "_") || c == UInt8(ascii: "-") {
                if previousWasSeparator { return false }
                previousWasSeparator = true
            } else if isLower(c) || isDigit(c) {
                previousWasSeparator = false
            } else {
                return false
            }
        }
        return !previousWasSeparator
    }

    /// A parameter or port name: `[a-z][a-z0-9_]*`.
    static func isIdentifier(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, isLower(first) else { return false }
        return bytes.dropFirst().allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    /// A stage id or param name in a pipeline: `[A-Za-z_][A-Za-z0-9_-]*`.
    static func isPipelineID(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, isLower(first) || isUpper(first) || first == UInt8(ascii: "_") else { return false }
        return bytes.dropFirst().allSatisfy { isLower($0) || isUpper($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }
}

/// Environment variable names: their shape, and which hold credentials.
public enum EnvironmentNames {
    /// A portable variable name: `[A-Za-z_][A-Za-z0-9_]*`.
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || (first | 0x20 >= UInt8(ascii: "a") && first | 0x20 <= UInt8(ascii: "z"))
        else { return false }
        return name.utf8.allSatisfy { c in
            c == UInt8(ascii: "_") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z"))
        }
    }

    /// Whether a variable's name says it holds a credential: AWS keys and session
    /// tokens, and any name with token, secret, password, credential or a key in it.
    public static func isCredential(_ name: String) -> Bool {
        let upper = name.uppercased()
        if upper.hasPrefix("AWS_") && ["KEY", "SECRET", "TOKEN", "CREDENTIAL", "PASSWORD"].contains(where: upper.contains) { return true }
        if ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE_KEY", "API_KEY", "ACCESS_KEY", "CONNECTION_STRING"]
            .contains(where: upper.contains) { return true }
        // Words of their own: GITHUB_PAT, HTTP_AUTH, DB_PASS (not PWD, the working directory).
        let words = upper.split(separator: "_")
        return words.contains { ["PAT", "AUTH", "PASS", "APIKEY"].contains($0) }
    }

    /// Whether a value carries a password: a URL with one (`postgres://user:pw@host`).
    public static func holdsCredential(_ value: String) -> Bool {
        guard let scheme = value.range(of: "://") else { return false }
        let authority = value[scheme.upperBound...].prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@") else { return false }
        return authority[..<at].contains(":")
    }
}

/// Kubernetes object names.
public enum KubernetesNames {
    /// A DNS label (RFC 1123): at most 63 of `a-z`, `0-9` and `-`, starting and ending
    /// with a letter or digit. Namespaces are labels.
    public static func isLabel(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        func alphanumeric(_ c: UInt8) -> Bool { (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) }
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 63, alphanumeric(first), alphanumeric(last) else { return false }
        return bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    /// A DNS subdomain (RFC 1123): at most 253 characters, labels joined by dots.
    /// Secrets, claims and service accounts are named so.
    public static func isSubdomain(_ name: String) -> Bool {
        name.utf8.count <= 253 && name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel(String($0)) }
    }
}
