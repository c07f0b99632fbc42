internal import CYAML

extension YAMLParser {
    /// The version of the libyaml loaded at run time ("0.2.5").
    public static var libraryVersion: String {
        String(cString: yaml_get_version_string())
    }
}
