import Testing
import Framework

/// How a diagnostic's source line is echoed: cut around the caret when long, control
/// characters escaped, the caret under the character it points at.
@Suite struct DiagnosticRendererTests {
    /// The rendered source line's text (after `N | `) and the caret line's padding.
    func render(_ line: String, column: Int, message: String = "bad") -> (text: String, pad: String, all: String) {
        var sources = SourceTexts()
        sources.add(file: "p.yaml", text: "first\n" + line + "\nlast\n")
        let all = DiagnosticRenderer(sources: sources).render(.error(message, at: SourceLocation(file: "p.yaml", line: 2, column: column)))
        let lines = all.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let index = lines.firstIndex { $0.hasPrefix("2 | ") }!
        return (String(lines[index].dropFirst(4)), String(lines[index + 1].dropFirst(4).dropLast()), all)
    }

    /// The text the caret points at, given tabs kept as tabs in both lines.
    func pointed(_ rendered: (text: String, pad: String, all: String)) -> Substring {
        Substring(String(String.UnicodeScalarView(rendered.text.unicodeScalars.dropFirst(rendered.pad.unicodeScalars.count))))
    }

    @Test func shortLinesAreShownWhole() {
        let rendered = render("  type: normalise", column: 9)
        #expect(rendered.text == "  type: normalise")
        #expect(pointed(rendered).hasPrefix("normalise"))
    }

    @Test(arguments: [1, 60, 5_000, 9_950, 10_000, 10_001])
    func aLongLineIsCutAroundTheCaret(column: Int) {
        // 10,000 characters, each position recognisable: "#" at the column, digits elsewhere.
        var scalars = Array(repeating: Unicode.Scalar("7"), count: 10_000)
        if column <= scalars.count { scalars[column - 1] = "#" }
        let rendered = render(String(String.UnicodeScalarView(scalars)), column: column)
        let count = rendered.text.unicodeScalars.count
        #expect(count <= 122, "\(count) characters shown")
        #expect(rendered.text.hasPrefix("…") == (column > 61))
        #expect(rendered.text.hasSuffix("…") == (column < 10_000 - 59))
        if column <= 10_000 {
            #expect(pointed(rendered).hasPrefix("#"), "\(rendered.text)")
        } else {
            #expect(pointed(rendered) == "", "a caret past the end points just after the text")
        }
    }

    @Test func tabsStayTabsAndControlCharactersAreEscapedWithTheCaretInPlace() {
        let rendered = render("\tkey: \u{1B}[31m value", column: 13)
        #expect(rendered.text == "\tkey: \\u{1B}[31m value")
        #expect(rendered.pad.hasPrefix("\t"))
        #expect(pointed(rendered).hasPrefix("value"))
        #expect(!rendered.all.unicodeScalars.contains("\u{1B}"))
    }

    @Test func messagesHelpAndFileNamesAreEscaped() {
        var sources = SourceTexts()
        sources.add(file: "a\u{7}.yaml", text: "x\n")
        let diagnostic = Diagnostic.error("unknown stage type 'x\u{1B}[2J'", at: SourceLocation(file: "a\u{7}.yaml", line: 1, column: 1),
                                          help: "did you mean 'y\u{1B}'?")
        let text = DiagnosticRenderer(sources: sources).render(diagnostic)
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        #expect(text.hasPrefix("a\\u{07}.yaml:1:1: error: unknown stage type 'x\\u{1B}[2J'"))
        #expect(text.hasSuffix("help: did you mean 'y\\u{1B}'?"))
    }
}
