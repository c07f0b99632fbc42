/// The plan as a graph for Graphviz or Mermaid, with artifact types on the edges.
public enum PlanRendering {
    public enum Format: String, Sendable, CaseIterable {
        case dot, mermaid
    }

    /// With `layout`, streamed edges are drawn bold (DOT) or thick (Mermaid) and
    /// labelled "streamed", and the estimated peak memory is noted.
    public static func render(_ plan: Plan, as format: Format, layout: StreamingLayout? = nil) -> String {
        switch format {
        case .dot: dot(plan, layout: layout)
        case .mermaid: mermaid(plan, layout: layout)
        }
    }

    private static func peakNote(_ layout: StreamingLayout) -> String {
        "estimated peak memory: about \(ByteCountFormatting.string(layout.peakBytes))"
            + (layout.segments.isEmpty ? "" : "; bold edges stream a band at a time")
    }

    static func dot(_ plan: Plan, layout: StreamingLayout? = nil) -> String {
        var lines = ["digraph \(dotString(plan.name)) {", "  rankdir=LR;", "  node [shape=box, style=rounded, fontname=\"Helvetica\"];",
                     "  edge [fontname=\"Helvetica\", fontsize=10];"]
        if let layout { lines.append("  label=\(dotString(peakNote(layout))); labelloc=b; fontname=\"Helvetica\"; fontsize=10;") }
        for stage in plan.stages {
            lines.append("  \(dotString(stage.id)) [label=\(dotString("\(stage.id)\n(\(stage.typeName))"))];")
        }
        for stage in plan.stages {
            for (producer, label) in edgeLabels(plan, stage) {
                if layout?.streams(from: producer) == true {
                    lines.append("  \(dotString(producer)) -> \(dotString(stage.id)) [label=\(dotString(label + " (streamed)")), style=bold, penwidth=2];")
                } else {
                    lines.append("  \(dotString(producer)) -> \(dotString(stage.id)) [label=\(dotString(label))];")
                }
            }
            for before in stage.after {
                lines.append("  \(dotString(before)) -> \(dotString(stage.id)) [style=dashed, label=\"after\"];")
            }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    static func mermaid(_ plan: Plan, layout: StreamingLayout? = nil) -> String {
        var lines = ["flowchart LR"]
        if let layout { lines.append("  %% " + peakNote(layout)) }
        for stage in plan.stages {
            lines.append("  \(mermaidID(stage.id))[\"\(mermaidText(stage.id))<br/>(\(mermaidText(stage.typeName)))\"]")
        }
        for stage in plan.stages {
            for (producer, label) in edgeLabels(plan, stage) {
                if layout?.streams(from: producer) == true {
                    lines.append("  \(mermaidID(producer)) == \"\(mermaidText(label + " (streamed)"))\" ==> \(mermaidID(stage.id))")
                } else {
                    lines.append("  \(mermaidID(producer)) -- \"\(mermaidText(label))\" --> \(mermaidID(stage.id))")
                }
            }
            for before in stage.after {
                lines.append("  \(mermaidID(before)) -. after .-> \(mermaidID(stage.id))")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Each data edge into `stage`: producer and label (the artifact type, with the
    /// port name for named ports).
    private static func edgeLabels(_ plan: Plan, _ stage: PlannedStage) -> [(producer: String, label: String)] {
        stage.inputs.sorted { $0.key < $1.key }.map { port, producer in
            let type = plan.stage(producer)?.outputType.name ?? "?"
            return (producer, port == InputPort.defaultName ? type : "\(port): \(type)")
        }
    }

    private static func dotString(_ text: String) -> String {
        "\"" + text.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n") + "\""
    }

    /// Mermaid ids: stage ids are letters, digits, '_' and '-', which Mermaid takes,
    /// prefixed so that words like 'end' are not keywords.
    private static func mermaidID(_ id: String) -> String { "s_" + id.replacingAll("-", with: "_") }

    private static func mermaidText(_ text: String) -> String {
        text.replacingAll("\"", with: "#quot;").replacingAll("<", with: "#lt;").replacingAll(">", with: "#gt;")
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}
