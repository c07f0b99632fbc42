#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call, with what it was doing and the OS's reason.
/// The one place where errno becomes a Swift error.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String?
    public var code: Int32
    /// Words that say more than the errno's text (`it is a FIFO, not a regular file`).
    public var explanation: String?

    public init(_ operation: String, path: String? = nil, code: Int32 = errno, explanation: String? = nil) {
        self.operation = operation
        self.path = path
        self.code = code
        self.explanation = explanation
    }

    public var reason: String { explanation ?? String(cString: strerror(code)) }

    public var description: String {
        if let path { return "cannot \(operation) '\(FilePaths.printable(path))': \(reason)" }
        return "cannot \(operation): \(reason)"
    }
}

/// Calls `body` until it does not fail with EINTR; throws a `SystemError` on -1.
@discardableResult
public func retryingOnInterrupt(_ operation: String, path: String? = nil, _ body: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = body()
        if result != -1 { return result }
        if errno == EINTR { continue }
        throw SystemError(operation, path: path)
    }
}
