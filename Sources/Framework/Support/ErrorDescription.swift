import Foundation

/// The one rendering of an error for people: console lines, the report's `error`
/// fields, `PipelineError` messages.
///
/// Foundation's errors print as `Error Domain=NSCocoaErrorDomain Code=260 ...
/// UserInfo={...}`; here they become a short line in the style of `SystemError`:
/// `cannot read 'PATH': No such file or directory` when the error names a file and
/// has a POSIX cause, otherwise Foundation's `localizedDescription`. Every other
/// error keeps its own description.
public enum ErrorDescription {
    public static func readable(_ error: any Error) -> String {
        if let error = error as? CocoaError {
            return foundation(domain: NSCocoaErrorDomain, code: error.errorCode, userInfo: error.errorUserInfo,
                              localized: error.localizedDescription)
        }
        if let error = error as? DecodingError {
            return "cannot decode the data: " + ArtifactCodec.reason(error)
        }
        if let error = error as? POSIXError {
            return SystemError("complete the operation", code: error.code.rawValue).reason
        }
        if let error = error as? URLError {
            return foundation(domain: NSURLErrorDomain, code: error.errorCode, userInfo: error.errorUserInfo,
                              localized: error.localizedDescription)
        }
        // A real NSError instance (not a Swift error that could be bridged to one).
        if type(of: error) is NSError.Type {
            let error = error as NSError
            return foundation(domain: error.domain, code: error.code, userInfo: error.userInfo,
                              localized: error.localizedDescription)
        }
        return String(describing: error)
    }

    private static func foundation(domain: String, code: Int, userInfo: [String: Any], localized: String) -> String {
        let path = (userInfo[NSFilePathErrorKey] as? String) ?? (userInfo[NSURLErrorKey] as? URL).flatMap { $0.isFileURL ? $0.path : nil }
        let errno: Int32? = domain == NSPOSIXErrorDomain ? Int32(truncatingIfNeeded: code) : posixCode(userInfo[NSUnderlyingErrorKey])
        guard let errno else { return localized }
        return SystemError(operation(domain: domain, code: code), path: path, code: errno).description
    }

    /// The errno of an underlying POSIX error, whichever form Foundation stored it in.
    private static func posixCode(_ underlying: Any?) -> Int32? {
        if let error = underlying as? POSIXError { return error.code.rawValue }
        if let error = underlying as? NSError, error.domain == NSPOSIXErrorDomain { return Int32(truncatingIfNeeded: error.code) }
        return nil
    }

    /// What the failed call was doing, from the Cocoa error code ranges
    /// (file reading 256..<512, file writing 512..<1024).
    private static func operation(domain: String, code: Int) -> String {
        guard domain == NSCocoaErrorDomain else { return "access" }
        switch code {
        case 256..<512: return "read"
        case 512..<1024: return "write"
        default: return "access"
        }
    }
}
