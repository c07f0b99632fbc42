import Framework
import Testing

extension PipelineHarness {
    /// Expects `marked` (YAML with one `‸` marker) to be refused with a problem whose
    /// message contains `message`, at the marker's line and column; reports at the
    /// caller's position otherwise.
    public func expectProblem(
        _ marked: String, _ message: String, help: String? = nil, profiles: [String] = [], overrides: [String] = [],
        sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        let source = MarkedSource(marked)
        let found = problems(source.text, profiles: profiles, overrides: overrides)
        let match = found.first { $0.message.contains(message) }
        #expect(match != nil, "no problem containing \"\(message)\"; got \(found.map(\.description))", sourceLocation: sourceLocation)
        #expect(match?.location == source.locations.first, "wrong position for \"\(message)\"", sourceLocation: sourceLocation)
        if let help {
            #expect(match?.help?.contains(help) == true, "help was \(String(describing: match?.help))", sourceLocation: sourceLocation)
        }
    }
}
