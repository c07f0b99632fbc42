import ArgumentParser
import Foundation
import Framework

struct StagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stages", abstract: "List the registered stage types, or describe one in full.")

    @Argument(help: "A stage type to describe.")
    var name: String?

    @Option(help: "text or json.")
    var format: Format = .text

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    func run() async throws {
        let registry = RunnerContext.registry
        var types = registry.types.sorted { $0.name < $1.name }
        if let name {
            guard let type = registry[name] else {
                let help = Suggestions.didYouMean(name, in: registry.names) ?? "`runner stages` lists them"
                FileHandle.standardError.write(Data("error: unknown stage type '\(FilePaths.printable(name))'\n  help: \(FilePaths.printable(help))\n".utf8))
                throw ExitCode(RunnerMain.ExitStatus.invalid)
            }
            types = [type]
        }
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let value: JSONValue = name == nil ? .array(types.map { StageDocumentation.json($0) }) : StageDocumentation.json(types[0])
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        case .text:
            print(types.map { StageDocumentation.text($0, full: name != nil) }.joined(separator: "\n"))
        }
    }
}

/// Renders stage specs for people (gst-inspect style) and for programs (JSON).
enum StageDocumentation {
    static func text(_ type: StageType, full: Bool) -> String {
        let spec = type.spec
        var lines = ["\(spec.name): \(spec.summary)"]
        if full, !spec.discussion.isEmpty {
            lines.append("")
            lines += wrap(spec.discussion, width: 78, indent: "  ")
            lines.append("")
        }
        if let additional = spec.additionalInputs {
            lines.append("  inputs:")
            for port in spec.inputs {
                lines.append("    \(port.name): \(port.accepts)" + (full ? "  (\(port.doc))" : ""))
            }
            lines.append("    any port the pipeline names: \(additional)")
        } else if spec.inputs.isEmpty {
            lines.append("  inputs:  none (a source)")
        } else {
            lines.append("  inputs:")
            for port in spec.inputs {
                lines.append("    \(port.name): \(port.accepts)" + (full ? "  (\(port.doc))" : ""))
            }
        }
        lines.append("  output:  \(spec.output.description)")
        lines.append("  streams: \(type.streamingSummary)")
        if full { lines.append("  version: \(spec.version)  (part of every stored output's fingerprint)") }
        if spec.parameters.isEmpty {
            lines.append("  parameters: none")
        } else {
            lines.append("  parameters:")
            let width = spec.parameters.map(\.name.count).max() ?? 0
            for parameter in spec.parameters {
                var detail = "\(parameter.type)"
                if let range = parameter.range, !parameter.isSeed { detail += ", \(range)" }
                if let value = parameter.defaultValue {
                    detail += ", default \(value)"
                } else if parameter.isSeed {
                    detail += ", default: derived from the run seed"
                } else if parameter.isOptional {
                    detail += ", optional"
                } else {
                    detail += ", required"
                }
                let name = parameter.name.padding(toLength: width, withPad: " ", startingAt: 0)
                lines.append("    \(name)  \(detail)" + (full ? "\n    \(String(repeating: " ", count: width))    \(parameter.doc)" : ""))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func json(_ type: StageType) -> JSONValue {
        let spec = type.spec
        let support = type.defaultStreaming
        return .object([
            "streaming": .object([
                "input": .boolean(support?.input ?? false), "output": .boolean(support?.output ?? false),
                "replayable": .boolean(support?.replayable ?? false), "needs_input_range": .boolean(support?.needsInputRange ?? false),
            ]),
            "name": .string(spec.name),
            "summary": .string(spec.summary),
            "version": .integer(spec.version),
            "discussion": .string(spec.discussion),
            "inputs": .array(spec.inputs.map { port in
                .object([
                    "name": .string(port.name),
                    "accepts": .array(port.accepts.types.map { .string($0.name) }),
                    "accepts_traits": .array(port.accepts.traits.map { .string($0.name) }),
                    "doc": .string(port.doc),
                ])
            }),
            "additional_inputs": spec.additionalInputs.map { requirement in
                JSONValue.object(["accepts": .array(requirement.types.map { .string($0.name) }),
                                  "accepts_traits": .array(requirement.traits.map { .string($0.name) })])
            } ?? .null,
            "output": .object([
                "description": .string(spec.output.description),
                "types": .array(spec.output.possibleTypes.map { .string($0.name) }),
            ]),
            "parameters": .array(spec.parameters.map { parameter in
                var object: [String: JSONValue] = [
                    "name": .string(parameter.name),
                    "type": .string(parameter.type.name),
                    "required": .boolean(parameter.isRequired),
                    "doc": .string(parameter.doc),
                ]
                if let value = parameter.defaultValue { object["default"] = value.jsonValue }
                if case .choice(let words) = parameter.type { object["choices"] = .array(words.map { .string($0) }) }
                if case .list(let element, let count) = parameter.type {
                    object["element_type"] = .string(element.name)
                    if let count { object["count"] = .integer(count) }
                }
                if let range = parameter.range {
                    var bounds: [String: JSONValue] = [:]
                    if let lower = range.lower { bounds[range.lowerInclusive ? "minimum" : "exclusive_minimum"] = .number(lower) }
                    if let upper = range.upper { bounds[range.upperInclusive ? "maximum" : "exclusive_maximum"] = .number(upper) }
                    object["range"] = .object(bounds)
                }
                if parameter.isSeed { object["seed"] = .boolean(true) }
                return .object(object)
            }),
        ])
    }

    static func wrap(_ text: String, width: Int, indent: String) -> [String] {
        var lines: [String] = []
        var line = indent
        for word in text.split(separator: " ") {
            if line.count + word.count + 1 > width, line != indent {
                lines.append(line)
                line = indent
            }
            line += (line == indent ? "" : " ") + word
        }
        if line != indent { lines.append(line) }
        return lines
    }
}
