internal import CCurl
internal import CJPEG
internal import CPNG
import Framework

/// The versions of the C libraries the built-in stages run on, for `runner --version`.
public enum LibraryVersions {
    /// One library's name and version, or why there is none.
    public struct Entry: Sendable, Equatable {
        public var library: String
        public var version: String
    }

    /// libjpeg-turbo (the version built against: it has no run-time call), libpng,
    /// zlib (the one libpng loaded), libyaml and, when `loadingCurl`, libcurl, which
    /// is otherwise opened on the first HTTP transfer only. A libcurl that cannot be
    /// loaded is reported as such rather than failing.
    public static func current(loadingCurl: Bool) -> [Entry] {
        var entries = [
            Entry(library: "libjpeg-turbo", version: String(cString: CJPEG_library_version())),
            Entry(library: "libpng", version: String(cString: CPNG_library_version())),
            Entry(library: "zlib", version: String(cString: CPNG_zlib_version())),
            Entry(library: "libyaml", version: YAMLParser.libraryVersion),
        ]
        guard loadingCurl else {
            entries.append(Entry(library: "libcurl", version: "loaded on first use"))
            return entries
        }
        var message = [CChar](repeating: 0, count: 256)
        if CCurl_load(&message, message.count) == 0 {
            entries.append(Entry(library: "libcurl", version: String(cString: CCurl_version())))
        } else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            entries.append(Entry(library: "libcurl", version: "not available (\(reason))"))
        }
        return entries
    }
}
