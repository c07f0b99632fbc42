import Testing
@testable import Framework

@Suite struct YAMLParserTests {
    @Test func keepsLineAndColumnOfEveryNode() throws {
        let source = Marked("""
            ‸name: demo
            stages:
              ‸gen:
                type: ‸poisson
                list: [‸1, ‸"two"]
            """)
        let result = YAMLParser.parse(source.text, file: "test.yaml")
        #expect(result.diagnostics.isEmpty)
        let root = try #require(result.root)
        let stages = try #require(root["stages"]?.pairs)
        #expect(root.pairs?.first?.key.location == source.locations[0])
        #expect(stages[0].key.location == source.locations[1])
        #expect(stages[0].value["type"]?.location == source.locations[2])
        let items = try #require(stages[0].value["list"]?.items)
        #expect(items.map(\.location) == [source.locations[3], source.locations[4]])
        #expect(items[1].content == .scalar("two", .doubleQuoted))
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let source = Marked("name: \"é€😀\"\nkey: ‸x\n")
        let root = try #require(YAMLParser.parse(source.text, file: "test.yaml").root)
        #expect(root["key"]?.location == source.locations[0])
        let multibyte = Marked("a: \"é€😀\", b: ‸oops: no\n")
        let result = YAMLParser.parse(multibyte.text, file: "test.yaml")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.location?.line == 1)
    }

    @Test func anchorsAndAliasesExpand() throws {
        let text = """
            defaults: &quality {quality: 80}
            stages:
              a: {with: *quality}
            """
        let root = try #require(YAMLParser.parse(text, file: "t").root)
        #expect(root["stages"]?["a"]?["with"]?["quality"]?.scalar == "80")
    }

    @Test func unknownAliasIsAnError() {
        let result = YAMLParser.parse("a: *missing\n", file: "t")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message == "alias '*missing' refers to no anchor defined before it")
    }

    @Test func exponentialExpansionIsRefused() {
        var lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        for index in 1..<9 {
            let previous = Character(UnicodeScalar(UInt8(96 + index)))
            let current = Character(UnicodeScalar(UInt8(97 + index)))
            let refs = Array(repeating: "*\(previous)", count: 10).joined(separator: ", ")
            lines.append("\(current): &\(current) [\(refs)]")
        }
        let result = YAMLParser.parse(lines.joined(separator: "\n"), file: "t")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message.contains("more than 100000 nodes through aliases") == true)
        #expect(result.diagnostics.first?.location?.line == 5)
    }

    @Test func deepNestingIsRefused() {
        let text = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        let result = YAMLParser.parse(text, file: "t")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message == "nesting deeper than 128 levels")
    }

    @Test func invalidUTF8IsReportedWithItsPosition() {
        var bytes = Array("stages:\n  a: x\n  b: ".utf8)
        bytes += [0xC3, 0x28]
        let result = YAMLParser.parse(bytes, file: "t")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message == "file is not valid UTF-8 (byte 0xC3 at offset 20)")
        #expect(result.diagnostics.first?.location == SourceLocation(file: "t", line: 3, column: 6))
    }

    @Test func secondDocumentIsRefused() {
        let result = YAMLParser.parse("a: 1\n---\nb: 2\n", file: "t")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message.contains("one YAML document") == true)
        #expect(result.diagnostics.first?.location?.line == 2)
    }

    @Test func nonScalarKeyIsRefused() {
        let result = YAMLParser.parse("? [a, b]\n: 1\n", file: "t")
        #expect(result.root == nil)
        #expect(result.diagnostics.first?.message == "mapping keys must be plain scalars, not a list")
    }

    @Test func pipelineFileShapes() {
        let empty = diagnostics("")
        #expect(empty.first?.message == "pipeline file is empty")
        #expect(empty.first?.location == SourceLocation(file: "test.yaml", line: 1, column: 1))
        let onlyComment = diagnostics("# nothing here\n")
        #expect(onlyComment.first?.message == "pipeline file is empty")
        let list = diagnostics("- a\n- b\n")
        #expect(list.first?.message == "a pipeline file must be a mapping with 'stages:', not a list")
        let scalar = diagnostics("just text\n")
        #expect(scalar.first?.message == "a pipeline file must be a mapping with 'stages:', not a scalar")
        let noStages = diagnostics("name: x\n")
        #expect(noStages.first?.message == "pipeline has no 'stages'")
    }

    /// A raw control character is reported where it is, not at 1:1.
    @Test(arguments: [("\u{1B}", "U+001B"), ("\u{0}", "U+0000"), ("\u{7F}", "U+007F"), ("\u{85}", nil), ("\u{9B}", "U+009B")])
    func rawControlCharactersArePlaced(character: String, code: String?) {
        let text = "stages:\n  a:\n    type: poisson\n    with: {x: \"é\(character)\"}\n"
        let parsed = YAMLParser.parse(text, file: "c.yaml")
        guard let code else {
            #expect(parsed.diagnostics.isEmpty, "NEL is allowed: \(parsed.diagnostics)")
            return
        }
        #expect(parsed.root == nil)
        #expect(parsed.diagnostics.first?.message == "the control character \(code) cannot appear in a YAML file")
        #expect(parsed.diagnostics.first?.location == SourceLocation(file: "c.yaml", line: 4, column: 17), "\(parsed.diagnostics)")
        // Tabs, CR and LF are fine.
        #expect(YAMLParser.parse("a: 1\r\nb: \"x\ty\"\n", file: "t.yaml").diagnostics.isEmpty)
    }
}
