/// The plan as a graph for Graphviz or Mermaid, with artifact types on the edges.
public enum PlanRendering {
    public enum Format: String, Sendable, CaseIterable {
        case dot, mermaid
    }

    public static func render(_ plan: Plan, as format: Format) -> String {
        switch format {
        case .dot: dot(plan)
        case .mermaid: mermaid(plan)
        }
    }

    static func dot(_ plan: Plan) -> String {
        var lines = ["digraph \(dotString(plan.name)) {", "  rankdir=LR;", "  node [shape=box, style=rounded, fontname=\"Helvetica\"];",
                     "  edge [fontname=\"Helvetica\", fontsize=10];"]
        for stage in plan.stages {
            lines.append("  \(dotString(stage.id)) [label=\(dotString("\(stage.id)\n(\(stage.typeName))"))];")
        }
        for stage in plan.stages {
            for (producer, label) in edgeLabels(plan, stage) {
                lines.append("  \(dotString(producer)) -> \(dotString(stage.id)) [label=\(dotString(label))];")
            }
            for before in stage.after {
                lines.append("  \(dotString(before)) -> \(dotString(stage.id)) [style=dashed, label=\"after\"];")
            }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    static func mermaid(_ plan: Plan) -> String {
        var lines = ["flowchart LR"]
        for stage in plan.stages {
            lines.append("  \(mermaidID(stage.id))[\"\(mermaidText(stage.id))<br/>(\(mermaidText(stage.typeName)))\"]")
        }
        for stage in plan.stages {
            for (producer, label) in edgeLabels(plan, stage) {
                lines.append("  \(mermaidID(producer)) -- \"\(mermaidText(label))\" --> \(mermaidID(stage.id))")
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
