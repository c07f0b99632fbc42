internal import CYAML

/// Reads one YAML document with libyaml's event API into `YAMLNode`s that keep
/// their line and column.
///
/// Policy, so that a pipeline file means one thing and cannot hurt the runner:
/// - the input must be UTF-8 (checked first, with the position of the first bad byte);
/// - one document per file;
/// - mapping keys are scalars, and a key may appear once per mapping;
/// - anchors and aliases work; an alias expands to a copy of its anchored node. The
///   nodes those copies add are counted, and a document whose aliases would add more
///   than `maximumAliasNodes` nodes, or more nodes than the file has bytes if that is
///   larger, is refused ("billion laughs"). Nodes written out in the file cost nothing
///   against this limit, so a large plain file loads;
/// - nesting deeper than `maximumDepth` is refused.
public enum YAMLParser {
    /// The nodes aliases may add to any document; a larger file may add as many as it
    /// has bytes, which keeps the expanded tree linear in the size of the input.
    public static let maximumAliasNodes = 100_000
    public static let maximumDepth = 128

    /// The result of parsing: the root node (nil for an empty document) and every
    /// problem found. A fatal problem (a syntax error) leaves `root` nil.
    public struct Result: Sendable {
        public var root: YAMLNode?
        public var diagnostics: [Diagnostic]
    }

    public static func parse(_ text: String, file: String) -> Result {
        parse(Array(text.utf8), file: file)
    }

    public static func parse(_ bytes: [UInt8], file: String) -> Result {
        if let bad = firstInvalidUTF8(in: bytes) {
            return Result(root: nil, diagnostics: [.error(
                "file is not valid UTF-8 (byte 0x\(String(bad.byte, radix: 16, uppercase: true)) at offset \(bad.offset))",
                at: SourceLocation(file: file, line: bad.line, column: bad.column),
                help: "save the pipeline file as UTF-8"
            )])
        }
        if bytes.isEmpty {
            return Result(root: nil, diagnostics: [])
        }
        // libyaml refuses these too, but says where only as a byte offset.
        if let control = firstControlCharacter(in: bytes) {
            let code = String(format: "U+%04X", control.scalar.value)
            return Result(root: nil, diagnostics: [.error(
                "the control character \(code) cannot appear in a YAML file",
                at: SourceLocation(file: file, line: control.line, column: control.column),
                help: "remove it, or write it as an escape in a double-quoted string (\"\\x\(String(format: "%02X", control.scalar.value))\")"
            )])
        }
        var builder = TreeBuilder(file: file, aliasNodeLimit: max(maximumAliasNodes, bytes.count))
        bytes.withUnsafeBufferPointer { buffer in
            builder.run(buffer)
        }
        return Result(root: builder.root, diagnostics: builder.diagnostics)
    }

    struct InvalidByte {
        var offset: Int
        var byte: UInt8
        var line: Int
        var column: Int
    }

    /// The first character YAML does not allow in a file, raw: a C0 control other than
    /// tab, line feed and carriage return, DEL, or a C1 control (U+0080 to U+009F other
    /// than NEL), with its line and column (in Unicode scalars). `bytes` is valid UTF-8.
    static func firstControlCharacter(in bytes: [UInt8]) -> (scalar: Unicode.Scalar, line: Int, column: Int)? {
        func disallowed(_ value: UInt32) -> Bool {
            (value < 0x20 && value != 0x09 && value != 0x0A && value != 0x0D) || value == 0x7F
                || (value >= 0x80 && value <= 0x9F && value != 0x85)
        }
        // Fast path: no byte that could start such a character.
        if !bytes.contains(where: { $0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D || $0 == 0x7F || $0 == 0xC2 }) { return nil }
        var line = 1, column = 1
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            if disallowed(scalar.value) { return (scalar, line, column) }
            if scalar == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return nil
    }

    static func firstInvalidUTF8(in bytes: [UInt8]) -> InvalidByte? {
        // The standard library's validation is fast; the walk below, which finds the
        // bad byte's line and column, only runs for a file that fails it.
        if String(validating: bytes, as: UTF8.self) != nil { return nil }
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0, line = 1, column = 1
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                offset += encoded.count
                if encoded.count == 1 && encoded.first == UInt8(ascii: "\n") {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
            case .error:
                return InvalidByte(offset: offset, byte: bytes[offset], line: line, column: column)
            case .emptyInput:
                return nil
            }
        }
    }
}

/// Builds the node tree from libyaml events.
private struct TreeBuilder {
    let file: String
    var root: YAMLNode?
    var diagnostics: [Diagnostic] = []

    private enum FrameKind {
        case mapping(pairs: [YAMLPair], pendingKey: YAMLNode?, seen: [String: SourceLocation])
        case sequence(items: [YAMLNode])
    }

    private struct Frame {
        var kind: FrameKind
        var location: SourceLocation
        var anchor: String?
        var weight: Int
    }

    private var stack: [Frame] = []
    private var anchors: [String: (node: YAMLNode, weight: Int)] = [:]
    /// Nodes added by alias expansion so far, and how many may be.
    private var aliasNodes = 0
    private let aliasNodeLimit: Int
    private var documents = 0

    init(file: String, aliasNodeLimit: Int) {
        self.file = file
        self.aliasNodeLimit = aliasNodeLimit
    }

    private func location(_ mark: yaml_mark_t) -> SourceLocation {
        SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    private static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int? = nil) -> String? {
        guard let pointer else { return nil }
        if let length {
            return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
        }
        return String(cString: pointer)
    }

    private static func cString(_ pointer: UnsafePointer<CChar>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    mutating func run(_ input: UnsafeBufferPointer<UInt8>) {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            diagnostics.append(.error("cannot initialise the YAML parser (out of memory)", at: nil))
            return
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, input.baseAddress, input.count)
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else {
                reportSyntaxError(parser)
                root = nil
                return
            }
            let keepGoing = handle(event)
            let isEnd = event.type == YAML_STREAM_END_EVENT
            yaml_event_delete(&event)
            if !keepGoing {
                root = nil
                return
            }
            if isEnd { return }
        }
    }

    private mutating func reportSyntaxError(_ parser: yaml_parser_t) {
        let problem = Self.cString(parser.problem) ?? "unknown error"
        var help: String?
        if let context = Self.cString(parser.context) {
            help = "\(context) at line \(Int(parser.context_mark.line) + 1), column \(Int(parser.context_mark.column) + 1)"
        }
        if problem.contains("cannot start any token") || problem.contains("found a tab character") {
            help = "YAML does not allow tab characters for indentation; indent with spaces"
        } else if problem == "mapping values are not allowed in this context" {
            help = "check this line's indentation against the lines above; a value containing ': ' needs quotes"
        } else if problem.contains("did not find expected key") {
            help = (help.map { $0 + "; " } ?? "") + "check the indentation: keys of one mapping line up"
        }
        diagnostics.append(.error("invalid YAML: \(problem)", at: location(parser.problem_mark), help: help))
    }

    /// Returns false on a fatal problem.
    private mutating func handle(_ event: yaml_event_t) -> Bool {
        let start = location(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                diagnostics.append(.error(
                    "a pipeline file holds one YAML document; found a second one", at: start,
                    help: "remove the '---' separator and merge the documents, or split them into two files"))
                return false
            }
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = Self.string(scalar.value, length: Int(scalar.length)) ?? ""
            let style: YAMLNode.ScalarStyle
            switch scalar.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            return complete(.scalar(text, at: start, style: style), weight: 1, anchor: Self.string(scalar.anchor))
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let (node, weight) = anchors[name] else {
                diagnostics.append(.error("alias '*\(name)' refers to no anchor defined before it", at: start,
                                          help: "define '&\(name)' on a node above this line"))
                return false
            }
            // The copy adds its anchored node's whole weight (the node and everything
            // below it, aliases inside it already expanded).
            aliasNodes += weight
            if aliasNodes > aliasNodeLimit {
                diagnostics.append(.error(
                    "document expands to more than \(aliasNodeLimit) nodes through aliases; refusing to load it",
                    at: start, help: "a file built to expand exponentially (a 'billion laughs' document) is never a valid pipeline"))
                return false
            }
            var copy = node
            copy.location = start
            return complete(copy, weight: weight, anchor: nil)
        case YAML_MAPPING_START_EVENT:
            return push(Frame(kind: .mapping(pairs: [], pendingKey: nil, seen: [:]), location: start,
                              anchor: Self.string(event.data.mapping_start.anchor), weight: 1))
        case YAML_SEQUENCE_START_EVENT:
            return push(Frame(kind: .sequence(items: []), location: start,
                              anchor: Self.string(event.data.sequence_start.anchor), weight: 1))
        case YAML_MAPPING_END_EVENT, YAML_SEQUENCE_END_EVENT:
            guard let frame = stack.popLast() else { return true }
            let node: YAMLNode
            switch frame.kind {
            case .mapping(let pairs, _, _): node = YAMLNode(.mapping(pairs), at: frame.location)
            case .sequence(let items): node = YAMLNode(.sequence(items), at: frame.location)
            }
            return complete(node, weight: frame.weight, anchor: frame.anchor)
        default:
            break
        }
        return true
    }

    private mutating func push(_ frame: Frame) -> Bool {
        if stack.count >= YAMLParser.maximumDepth {
            diagnostics.append(.error("nesting deeper than \(YAMLParser.maximumDepth) levels", at: frame.location,
                                      help: "a pipeline file never needs this much nesting; flatten it"))
            return false
        }
        stack.append(frame)
        return true
    }

    /// Attaches a finished node of `weight` nodes (itself and all below it) to its parent.
    private mutating func complete(_ node: YAMLNode, weight: Int, anchor: String?) -> Bool {
        if let anchor {
            anchors[anchor] = (node, weight)
        }
        guard var parent = stack.popLast() else {
            root = node
            return true
        }
        parent.weight += weight
        // Move the arrays out of the frame, leaving no second reference, so the
        // appends below do not copy them (which would make long lists quadratic).
        var kind = FrameKind.sequence(items: [])
        swap(&kind, &parent.kind)
        switch consume kind {
        case .sequence(var items):
            items.append(node)
            parent.kind = .sequence(items: items)
        case .mapping(var pairs, let pendingKey, var seen):
            if let key = pendingKey {
                pairs.append(YAMLPair(key: key, value: node))
                parent.kind = .mapping(pairs: pairs, pendingKey: nil, seen: seen)
            } else {
                guard let name = node.scalar else {
                    diagnostics.append(.error("mapping keys must be plain scalars, not \(node.kindName)", at: node.location))
                    stack.append(parent)
                    return false
                }
                if let first = seen[name] {
                    diagnostics.append(.error(
                        "duplicate key '\(name)' (first defined at line \(first.line), column \(first.column))",
                        at: node.location, help: "remove one of the two entries"))
                } else {
                    seen[name] = node.location
                }
                parent.kind = .mapping(pairs: pairs, pendingKey: node, seen: seen)
            }
        }
        stack.append(parent)
        return true
    }
}
