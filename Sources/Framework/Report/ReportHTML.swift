import Foundation

/// A run report as one self-contained HTML page: inline CSS, SVG and a little
/// JavaScript, nothing fetched, so it opens from `file://`, can be mailed or attached
/// to a ticket, prints legibly and follows the reader's light or dark scheme.
///
/// It shows the run (pipeline, run id, seed, status, duration, runner, machine), the
/// DAG (boxes coloured by status, edges labelled with artifact type and size, streamed
/// edges dashed), a timeline (each stage's attempts, busy against waiting, share of
/// the run), and a card per stage: its output, parameters (secrets redacted) and log.
/// With a second report it adds what changed between the two runs.
public enum ReportHTML {
    /// The page for `report`, compared with `other` when given.
    public static func render(_ report: RunReport, comparedWith other: RunReport? = nil) -> String {
        var page = Page()
        page.line("<!DOCTYPE html>")
        page.line("<html lang=\"en\"><head><meta charset=\"utf-8\">")
        page.line("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        page.line("<meta name=\"color-scheme\" content=\"light dark\">")
        page.line("<title>\(escape(report.pipeline)) — run \(escape(report.runID))</title>")
        page.line("<style>\(style)</style></head><body>")
        header(report, into: &page)
        dag(report, into: &page)
        timeline(report, into: &page)
        if let other { comparison(report, other, into: &page) }
        stages(report, into: &page)
        page.line("<footer>Made by runner \(escape(RunnerVersion.current)) from a report of schema \(report.schemaVersion).</footer>")
        page.line("<script>\(script)</script>")
        page.line("</body></html>")
        return page.text
    }

    struct Page {
        var text = ""
        mutating func line(_ line: String) { text += line + "\n" }
    }

    /// Text for HTML content and attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                if character.properties.generalCategory == .control && character != "\n" && character != "\t" {
                    out += character.escaped(asASCII: true)
                } else {
                    out.unicodeScalars.append(character)
                }
            }
        }
        return out
    }

    /// An id usable in `id=` and `#` links: the stage id's letters, digits, `-` and `_`,
    /// and a number for any other character.
    static func anchor(_ stage: String) -> String {
        "stage-" + stage.unicodeScalars.map { scalar in
            (scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "_"))
                ? String(scalar) : "." + String(scalar.value, radix: 16)
        }.joined()
    }

    static func seconds(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "—" }
        if value < 0.001 { return "<1 ms" }
        if value < 1 { return String(format: "%.0f ms", value * 1000) }
        if value < 120 { return String(format: "%.2f s", value) }
        return String(format: "%.0f min %.0f s", (value / 60).rounded(.down), value.truncatingRemainder(dividingBy: 60))
    }

    static func number(_ value: Double, digits: Int = 1) -> String {
        String(format: "%.\(digits)f", value)
    }

    // MARK: header

    static func header(_ report: RunReport, into page: inout Page) {
        page.line("<header class=\"run \(report.status.rawValue)\">")
        page.line("<h1>\(escape(report.pipeline)) <span class=\"status \(report.status.rawValue)\">\(report.status.rawValue)</span></h1>")
        var facts: [(String, String)] = [
            ("run id", report.runID), ("seed", String(report.seed)), ("duration", seconds(report.durationSeconds)),
            ("started", RunReport.dateStyle.format(report.startedAt)), ("file", report.file),
            ("runner", report.runnerVersion),
        ]
        if let machine = report.machine {
            facts.append(("machine", "\(machine.cores) cores, \(ByteCountFormatting.string(machine.memoryBytes)), \(machine.system)"))
        }
        if let memory = report.memory {
            facts.append(("memory", "peak \(ByteCountFormatting.string(memory.measuredPeakBytes)) "
                + "(estimated \(ByteCountFormatting.string(memory.estimatedPeakBytes)))"))
        }
        if let invocation = report.invocation {
            facts.append(("command", (["runner"] + invocation.arguments).joined(separator: " ")))
        }
        page.line("<dl class=\"facts\">" + facts.map { "<dt>\(escape($0.0))</dt><dd>\(escape($0.1))</dd>" }.joined() + "</dl>")
        if let error = report.error {
            page.line("<p class=\"error\">\(escape(error))</p>")
        }
        page.line("</header>")
    }

    // MARK: DAG

    /// The most stages the page draws: a layered drawing's size grows with the
    /// columns each edge crosses, up to the square of the stage count.
    static let mostStagesDrawn = 400

    /// The stages as boxes in layers, joined by the edges each stage's `inputs` give.
    static func dag(_ report: RunReport, into page: inout Page) {
        guard report.stages.count <= mostStagesDrawn else {
            page.line("<section id=\"dag\"><h2>Stages</h2><p class=\"note\">\(report.stages.count) stages: more than the "
                + "\(mostStagesDrawn) this page draws; each has its card below.</p></section>")
            return
        }
        let boxWidth = { (stage: StageReport) -> Double in 24 + 7.2 * Double(max(stage.id.count, stage.type.count + 2)) }
        let nodes = report.stages.map { (id: $0.id, width: min(260, boxWidth($0)), height: 44.0) }
        var edges: [(from: String, to: String)] = []
        for stage in report.stages {
            for input in (stage.inputs ?? [:]).values.sorted() { edges.append((input, stage.id)) }
        }
        var spacing = DAGLayout.Spacing()
        spacing.column = 150
        spacing.row = 40
        let layout = DAGLayout.make(nodes: nodes, edges: edges, spacing: spacing)
        let byID = Dictionary(report.stages.map { ($0.id, $0) }) { first, _ in first }
        page.line("<section id=\"dag\"><h2>Stages</h2>")
        page.line("<svg class=\"dag\" role=\"img\" aria-label=\"the pipeline's stages and edges\" viewBox=\"0 0 \(number(layout.width, digits: 0)) "
            + "\(number(layout.height + 14, digits: 0))\" width=\"\(number(layout.width, digits: 0))\" height=\"\(number(layout.height + 14, digits: 0))\">")
        page.line("<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">"
            + "<path d=\"M0,0 L8,4 L0,8 z\" class=\"arrowhead\"/></marker></defs>")
        for edge in layout.edges {
            let output = byID[edge.from]?.output
            let streamed = output?.streamed == true
            let path = edge.points.enumerated().map { "\($0 == 0 ? "M" : "L")\(number($1.x)),\(number($1.y))" }.joined(separator: " ")
            page.line("<path class=\"edge\(streamed ? " streamed" : "")\" d=\"\(path)\" marker-end=\"url(#arrow)\"/>")
            // Two lines over the first stretch between columns (the first long
            // segment): the type, then the size (and whether it streamed).
            if let output, let (a, b) = zip(edge.points, edge.points.dropFirst()).first(where: { $1.x - $0.x > 40 }) {
                let x = number((a.x + b.x) / 2), y = (a.y + b.y) / 2
                let size = [output.byteCount.map { ByteCountFormatting.string($0) }, streamed ? "streamed" : nil].compactMap { $0 }
                page.line("<text class=\"edge-label\" x=\"\(x)\" y=\"\(number(y - 17))\" text-anchor=\"middle\">\(escape(output.type))</text>"
                    + (size.isEmpty ? "" : "<text class=\"edge-label\" x=\"\(x)\" y=\"\(number(y - 5))\" text-anchor=\"middle\">"
                        + "\(escape(size.joined(separator: " · ")))</text>"))
            }
        }
        for box in layout.boxes {
            guard let stage = byID[box.id] else { continue }
            page.line("<a href=\"#\(anchor(stage.id))\"><g class=\"box \(stage.status.rawValue)\" data-stage=\"\(escape(stage.id))\">"
                + "<title>\(escape(stage.id)): \(stage.status.rawValue)</title>"
                + "<rect x=\"\(number(box.x))\" y=\"\(number(box.y))\" width=\"\(number(box.width))\" height=\"\(number(box.height))\" rx=\"6\"/>"
                + "<text class=\"name\" x=\"\(number(box.x + box.width / 2))\" y=\"\(number(box.y + 18))\" text-anchor=\"middle\">\(escape(stage.id))</text>"
                + "<text class=\"type\" x=\"\(number(box.x + box.width / 2))\" y=\"\(number(box.y + 34))\" text-anchor=\"middle\">\(escape(stage.type))</text>"
                + "</g></a>")
        }
        page.line("</svg>")
        page.line("<p class=\"legend\"><span class=\"key succeeded\"></span>succeeded <span class=\"key failed\"></span>failed "
            + "<span class=\"key cancelled\"></span>cancelled <span class=\"key skipped\"></span>not run "
            + "<span class=\"dash\"></span>streamed a band at a time</p>")
        page.line("</section>")
    }

    // MARK: timeline

    static func timeline(_ report: RunReport, into page: inout Page) {
        let start = report.startedAt
        let total = max(report.durationSeconds, report.stages.compactMap { stage in
            stage.startedAt.map { $0.timeIntervalSince(start) + (stage.durationSeconds ?? 0) }
        }.max() ?? 0, 1e-6)
        let rowHeight = 26.0, labelWidth = 170.0, chartWidth = 640.0
        let height = Double(report.stages.count) * rowHeight + 30
        page.line("<section id=\"timeline\"><h2>Timeline</h2>")
        page.line("<svg class=\"timeline\" role=\"img\" aria-label=\"when each stage ran\" viewBox=\"0 0 \(number(labelWidth + chartWidth + 70, digits: 0)) "
            + "\(number(height, digits: 0))\" width=\"\(number(labelWidth + chartWidth + 70, digits: 0))\" height=\"\(number(height, digits: 0))\">")
        // Ticks: five, in seconds from the start.
        for tick in 0...4 {
            let x = labelWidth + chartWidth * Double(tick) / 4
            page.line("<line class=\"tick\" x1=\"\(number(x))\" y1=\"0\" x2=\"\(number(x))\" y2=\"\(number(height - 18))\"/>"
                + "<text class=\"tick-label\" x=\"\(number(x))\" y=\"\(number(height - 4))\" text-anchor=\"middle\">\(seconds(total * Double(tick) / 4))</text>")
        }
        for (row, stage) in report.stages.enumerated() {
            let y = Double(row) * rowHeight + 4
            page.line("<text class=\"row-label\" x=\"\(number(labelWidth - 8))\" y=\"\(number(y + 15))\" text-anchor=\"end\">\(escape(stage.id))</text>")
            guard let began = stage.startedAt, let duration = stage.durationSeconds else { continue }
            let share = duration / total
            let spans = stage.attemptSpans ?? [StageReport.AttemptSpan(startedAt: began, durationSeconds: duration)]
            for (attempt, span) in spans.enumerated() {
                let x = labelWidth + chartWidth * span.startedAt.timeIntervalSince(start) / total
                let width = max(2, chartWidth * (span.durationSeconds ?? 0) / total)
                let failed = span.error != nil
                var title = "\(stage.id): attempt \(attempt + 1) of \(spans.count), \(seconds(span.durationSeconds))"
                if let error = span.error { title += " — \(error)" }
                page.line("<a href=\"#\(anchor(stage.id))\"><rect class=\"bar \(failed ? "failed" : stage.status.rawValue)\" data-stage=\"\(escape(stage.id))\" "
                    + "x=\"\(number(x))\" y=\"\(number(y))\" width=\"\(number(width))\" height=\"18\" rx=\"3\"><title>\(escape(title))</title></rect></a>")
            }
            // A streamed stage's time waiting (for input or for room downstream) is drawn
            // as a hatched part of its bar.
            if let flow = stage.flow, duration > 0 {
                let waiting = flow.waitingForInputSeconds + flow.waitingForOutputSeconds
                let x = labelWidth + chartWidth * (began.timeIntervalSince(start) + duration - min(waiting, duration)) / total
                let width = chartWidth * min(waiting, duration) / total
                if width >= 1 {
                    page.line("<rect class=\"waiting\" x=\"\(number(x))\" y=\"\(number(y))\" width=\"\(number(width))\" height=\"18\">"
                        + "<title>\(escape(stage.id)): busy \(seconds(flow.busySeconds)), waiting \(seconds(waiting))</title></rect>")
                }
            }
            let end = labelWidth + chartWidth * (began.timeIntervalSince(start) + duration) / total
            page.line("<text class=\"share\" x=\"\(number(min(end + 6, labelWidth + chartWidth + 4)))\" y=\"\(number(y + 14))\">"
                + "\(number(share * 100))%</text>")
        }
        page.line("</svg>")
        page.line("<p class=\"legend\">Each bar is an attempt (a failed one is red); the paler part of a streamed stage's bar is time "
            + "spent waiting for its input or for room downstream; the figure is the stage's share of the run. Hover for details; "
            + "click to go to the stage.</p>")
        page.line("<div id=\"details\" class=\"details\" hidden></div>")
        page.line("</section>")
    }

    // MARK: comparison

    static func comparison(_ report: RunReport, _ other: RunReport, into page: inout Page) {
        page.line("<section id=\"comparison\"><h2>Compared with run \(escape(other.runID))</h2>")
        var rows: [String] = []
        if report.seed != other.seed { rows.append(row("seed", String(other.seed), String(report.seed))) }
        rows.append(row("duration", seconds(other.durationSeconds), seconds(report.durationSeconds), delta: report.durationSeconds - other.durationSeconds))
        let others = Dictionary(other.stages.map { ($0.id, $0) }) { first, _ in first }
        for stage in report.stages {
            guard let before = others[stage.id] else {
                rows.append(row("stage \(stage.id)", "—", "new"))
                continue
            }
            for name in Set(stage.parameters.keys).union(before.parameters.keys).sorted() where stage.parameters[name] != before.parameters[name] {
                rows.append(row("\(stage.id).\(name)", display(name, before.parameters[name]), display(name, stage.parameters[name])))
            }
            if let now = stage.durationSeconds, let then = before.durationSeconds {
                rows.append(row("\(stage.id) time", seconds(then), seconds(now), delta: now - then))
            }
            if let now = stage.output?.sha256, let then = before.output?.sha256, now != then {
                rows.append(row("\(stage.id) output", "sha256 " + then.prefix(12) + "…", "sha256 " + now.prefix(12) + "…", changed: true))
            } else if stage.output?.sha256 != nil && stage.output?.sha256 == before.output?.sha256 {
                rows.append(row("\(stage.id) output", "same bytes", "same bytes"))
            }
        }
        let current = Set(report.stages.map(\.id))
        for stage in other.stages where !current.contains(stage.id) {
            rows.append(row("stage \(stage.id)", "ran", "gone"))
        }
        page.line("<table class=\"compare\"><thead><tr><th></th><th>\(escape(other.runID))</th><th>\(escape(report.runID))</th><th>change</th></tr></thead>")
        page.line("<tbody>" + rows.joined() + "</tbody></table></section>")
    }

    static func row(_ name: String, _ before: String, _ after: String, delta: Double? = nil, changed: Bool = false) -> String {
        var change = before == after && !changed ? "" : "changed"
        if let delta { change = (delta >= 0 ? "+" : "−") + seconds(abs(delta)) }
        let mark = changed || (delta == nil && before != after) ? " class=\"changed\"" : ""
        return "<tr\(mark)><th>\(escape(name))</th><td>\(escape(before))</td><td>\(escape(after))</td><td>\(escape(change))</td></tr>"
    }

    // MARK: stages

    /// A parameter's value as shown: a secret's replaced by a mark, in an object or
    /// array too (by its key, or a password in a URL).
    static func display(_ name: String, _ value: JSONValue?) -> String {
        guard let value else { return "—" }
        return redacted(name, value).displayText
    }

    static let redactionMark = "•••• (redacted)"

    static func redacted(_ name: String, _ value: JSONValue) -> JSONValue {
        if EnvironmentNames.isCredential(name) { return .string(redactionMark) }
        switch value {
        case .string(let text): return EnvironmentNames.holdsCredential(text) ? .string(redactionMark) : value
        case .array(let items): return .array(items.map { redacted("", $0) })
        case .object(let members): return .object(Dictionary(uniqueKeysWithValues: members.map { ($0, redacted($0, $1)) }))
        default: return value
        }
    }

    static func stages(_ report: RunReport, into page: inout Page) {
        page.line("<section id=\"stages\"><h2>Stages and artifacts</h2>")
        let outputs = Dictionary(report.stages.compactMap { stage in stage.output.map { (stage.id, $0) } }) { first, _ in first }
        for stage in report.stages {
            page.line("<article class=\"card \(stage.status.rawValue)\" id=\"\(anchor(stage.id))\">")
            page.line("<h3>\(escape(stage.id)) <small>\(escape(stage.type))</small> <span class=\"status \(stage.status.rawValue)\">"
                + "\(stage.status.rawValue)\(stage.reused == true ? ", reused" : "")</span></h3>")
            var facts: [(String, String)] = [("time", seconds(stage.durationSeconds)), ("attempts", String(stage.attempts))]
            if let seed = stage.seed { facts.append(("seed", String(seed))) }
            if let flow = stage.flow {
                facts.append(("flow", "\(flow.bandsIn) bands in (\(ByteCountFormatting.string(flow.bytesIn))), \(flow.bandsOut) out "
                    + "(\(ByteCountFormatting.string(flow.bytesOut))); busy \(seconds(flow.busySeconds)), waiting "
                    + "\(seconds(flow.waitingForInputSeconds + flow.waitingForOutputSeconds))"))
            }
            page.line("<dl class=\"facts\">" + facts.map { "<dt>\($0.0)</dt><dd>\(escape($0.1))</dd>" }.joined() + "</dl>")
            if let error = stage.error { page.line("<p class=\"error\">\(escape(error))</p>") }
            if let output = stage.output { artifact(output, of: stage, outputs: outputs, into: &page) }
            if !stage.parameters.isEmpty {
                page.line("<details class=\"parameters\" open><summary>Parameters</summary><table>"
                    + stage.parameters.keys.sorted().map { name in
                        "<tr><th>\(escape(name))</th><td>\(escape(display(name, stage.parameters[name])))</td></tr>"
                    }.joined() + "</table></details>")
            }
            if let logs = stage.logs, !logs.isEmpty {
                let omitted = stage.logsOmitted.map { " (\($0) more lines left out in the middle)" } ?? ""
                page.line("<details class=\"log\"\(logs.contains { $0.level == "warning" || $0.level == "error" || $0.level == "critical" } ? " open" : "")>"
                    + "<summary>Log: \(logs.count) lines\(omitted)</summary><pre>"
                    + logs.map { "<span class=\"level-\(escape($0.level))\">\(escape($0.message))</span>" }.joined(separator: "\n")
                    + "</pre></details>")
            }
            page.line("</article>")
        }
        page.line("</section>")
    }

    /// `outputs`: every stage's output, by stage id (an encoded image's thumbnail is its input's preview).
    static func artifact(_ output: ArtifactSummary, of stage: StageReport, outputs: [String: ArtifactSummary], into page: inout Page) {
        var facts: [(String, String)] = [("type", output.type)]
        if let width = output.width, let height = output.height { facts.append(("size", "\(width) × \(height)")) }
        if let element = output.elementType { facts.append(("elements", element + (output.encoding.map { ", \($0)-encoded" } ?? ""))) }
        if let min = output.min, let max = output.max { facts.append(("values", "\(min) to \(max)")) }
        if let format = output.format { facts.append(("format", format)) }
        if let count = output.byteCount {
            facts.append(("bytes", ByteCountFormatting.string(count)))
            if output.format != nil, let width = output.width, let height = output.height, width > 0, height > 0 {
                facts.append(("bits per pixel", number(Double(count) * 8 / Double(width) / Double(height), digits: 2)))
            }
        }
        if let sha = output.sha256 { facts.append(("SHA-256", sha)) }
        if let uri = output.uri { facts.append(("URI", uri)) }
        if let etag = output.etag { facts.append(("ETag", etag)) }
        if output.streamed == true { facts.append(("held", "never whole: streamed a band at a time")) }
        page.line("<div class=\"artifact\"><h4>Output</h4><dl class=\"facts\">"
            + facts.map { "<dt>\(escape($0.0))</dt><dd>\(escape($0.1))</dd>" }.joined() + "</dl>")
        if let digest = output.digest {
            page.line("<div class=\"plots\">")
            heatmap(digest.preview, caption: "Preview, \(digest.preview.width) × \(digest.preview.height) samples", into: &page)
            histogram(digest.histogram, of: stage, into: &page)
            page.line("</div>")
        } else if output.format != nil, let producer = stage.inputs?.values.sorted().first,
                  let preview = outputs[producer]?.digest?.preview {
            // An encoded image: a thumbnail of the pixels it encodes (its input's preview).
            page.line("<div class=\"plots\">")
            heatmap(preview, caption: "Thumbnail of the encoded pixels (from '\(producer)'), \(preview.width) × \(preview.height)",
                    gray: true, into: &page)
            page.line("</div>")
        } else if output.type.hasPrefix("Grid") {
            page.line("<p class=\"note\">No preview or histogram: the run gathered no digest of this grid.</p>")
        }
        page.line("</div>")
    }

    /// A preview drawn into a canvas by the page's script (viridis, or gray for a
    /// thumbnail), with its colour scale.
    static func heatmap(_ preview: GridDigest.Preview, caption: String, gray: Bool = false, into page: inout Page) {
        let scale = gray ? "gray" : "viridis"
        let displayWidth = min(320, max(preview.width, 1) * 320 / max(preview.width, preview.height, 1))
        page.line("<figure class=\"heatmap\"><canvas class=\"preview \(scale)\" width=\"\(preview.width)\" height=\"\(preview.height)\" "
            + "style=\"width:\(displayWidth)px\" data-bytes=\"\(preview.bytes)\"></canvas>"
            + "<div class=\"scale \(scale)\"><span>\(escape(short(preview.low)))</span><span>\(escape(short(preview.high)))</span></div>"
            + "<figcaption>\(escape(caption))</figcaption></figure>")
    }

    static func short(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e12 { return String(Int(value)) }
        return String(format: abs(value) >= 0.01 && abs(value) < 1e6 ? "%.4g" : "%.3e", value)
    }

    /// The histogram as bars; for a `poisson` stage's output, the Poisson(λ) pmf over
    /// it and Pearson's chi-square test of the fit.
    static func histogram(_ histogram: GridDigest.Histogram, of stage: StageReport, into page: inout Page) {
        let centres = histogram.centres
        guard !centres.isEmpty, let lowest = centres.first, let highest = centres.last else { return }
        let total = histogram.counts.reduce(0, +)
        let width = 460.0, height = 200.0, left = 46.0, bottom = 24.0, top = 10.0
        // The pmf, when the values are whole numbers from a poisson stage.
        var expected: [(Double, Double)] = []
        var fit: Statistics.PoissonFit?
        if stage.type == "poisson", let values = histogram.values, values.allSatisfy({ $0 >= 0 && $0 == $0.rounded() && $0 < 1_048_576 }),
           let lambda = stage.parameters["lambda"].flatMap(\.numberValue), lambda > 0 {
            var counts = [Int](repeating: 0, count: Int(values.last ?? 0) + 1)
            for (value, count) in zip(values, histogram.counts) { counts[Int(value)] = count }
            fit = Statistics.poissonFit(counts: counts, lambda: lambda)
            expected = (0...Int(highest) + 1).map { (Double($0), Double(total) * Statistics.poissonPMF($0, lambda: lambda)) }
        }
        let peak = max(Double(histogram.counts.max() ?? 1), expected.map(\.1).max() ?? 0, 1)
        let span = max(highest - lowest, 1e-12)
        let slots = histogram.values != nil ? Double(max(centres.count, Int(span) + 1)) : Double(histogram.counts.count)
        let barWidth = max(1, (width - left - 8) / max(slots, 1) * 0.8)
        func x(_ value: Double) -> Double { left + 4 + barWidth / 2 + (value - lowest) / span * (width - left - 8 - barWidth) }
        func y(_ count: Double) -> Double { top + (height - top - bottom) * (1 - count / peak) }
        var svg = "<svg class=\"histogram\" role=\"img\" aria-label=\"histogram of the values\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" "
            + "width=\"\(Int(width))\" height=\"\(Int(height))\">"
        svg += "<line class=\"axis\" x1=\"\(number(left))\" y1=\"\(number(height - bottom))\" x2=\"\(number(width - 4))\" y2=\"\(number(height - bottom))\"/>"
        for (centre, count) in zip(centres, histogram.counts) {
            let top = y(Double(count))
            svg += "<rect class=\"hbar\" x=\"\(number(x(centre) - barWidth / 2))\" y=\"\(number(top))\" width=\"\(number(barWidth))\" "
                + "height=\"\(number(height - bottom - top))\"><title>\(escape(short(centre))): \(count)</title></rect>"
        }
        if !expected.isEmpty {
            let points = expected.filter { $0.0 <= highest + 1 }.map { "\(number(x($0.0))),\(number(y($0.1)))" }
            svg += "<polyline class=\"pmf\" points=\"\(points.joined(separator: " "))\"/>"
            for (value, count) in expected where value <= highest + 1 {
                svg += "<circle class=\"pmf\" cx=\"\(number(x(value)))\" cy=\"\(number(y(count)))\" r=\"2.5\"/>"
            }
        }
        for label in [lowest, (lowest + highest) / 2, highest] {
            svg += "<text class=\"tick-label\" x=\"\(number(x(label)))\" y=\"\(number(height - 6))\" text-anchor=\"middle\">\(escape(short(label)))</text>"
        }
        svg += "<text class=\"tick-label\" x=\"\(number(left - 4))\" y=\"\(number(top + 8))\" text-anchor=\"end\">\(Int(peak))</text>"
        svg += "</svg>"
        var caption = "Histogram of all \(total) values"
        if let fit {
            caption += String(format: "; the line is Poisson(λ = %@)'s pmf. Chi-square %.2f on %d degrees of freedom, p = %@",
                              short(fit.lambda), fit.statistic, fit.degreesOfFreedom, fit.pValue < 1e-4 ? String(format: "%.1e", fit.pValue) : String(format: "%.3f", fit.pValue))
        }
        page.line("<figure class=\"histogram\">\(svg)<figcaption>\(escape(caption))</figcaption></figure>")
    }

    // MARK: style and script

    static let style = """
        :root{--bg:#fff;--fg:#1d2126;--muted:#5d6670;--line:#c9d0d8;--card:#f6f8fa;--ok:#2e8b57;--bad:#c62828;--warn:#b26a00;--off:#8a949e;--accent:#1f6feb}
        @media (prefers-color-scheme: dark){:root{--bg:#111418;--fg:#e6e9ed;--muted:#9aa4ae;--line:#3a424b;--card:#1a1f25;--ok:#3fb27f;--bad:#ef5350;--warn:#e0a030;--off:#6b747d;--accent:#58a6ff}}
        *{box-sizing:border-box}body{margin:0 auto;max-width:1100px;padding:20px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
        h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:0 0 6px}h4{margin:8px 0 4px;font-size:13px}
        small{color:var(--muted);font-weight:normal}.status{font-size:12px;padding:1px 8px;border-radius:10px;color:#fff;vertical-align:middle}
        .status.succeeded{background:var(--ok)}.status.failed{background:var(--bad)}.status.cancelled{background:var(--warn)}.status.skipped{background:var(--off)}
        dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
        .error{color:var(--bad);white-space:pre-wrap}svg{max-width:100%;height:auto;display:block}
        svg text{font:12px system-ui,sans-serif;fill:var(--fg)}svg .type,svg .edge-label,svg .tick-label{fill:var(--muted);font-size:11px}
        .box rect{fill:var(--card);stroke-width:2}.box.succeeded rect{stroke:var(--ok)}.box.failed rect{stroke:var(--bad);fill:color-mix(in srgb,var(--bad) 12%,var(--card))}
        .box.cancelled rect{stroke:var(--warn)}.box.skipped rect{stroke:var(--off);stroke-dasharray:4 3}.box .name{font-weight:600}
        .edge{fill:none;stroke:var(--muted);stroke-width:1.5}.edge.streamed{stroke-dasharray:6 4;stroke:var(--accent)}.arrowhead{fill:var(--muted)}
        .tick{stroke:var(--line)}.bar.succeeded{fill:var(--ok)}.bar.failed{fill:var(--bad)}.bar.cancelled{fill:var(--warn)}.bar.skipped{fill:var(--off)}
        .bar{cursor:pointer}.bar:hover,.bar.active{stroke:var(--fg);stroke-width:2}.waiting{fill:var(--bg);opacity:.55;pointer-events:none}.share{fill:var(--muted);font-size:11px}
        .legend{color:var(--muted);font-size:12px}.key{display:inline-block;width:12px;height:12px;border:2px solid;border-radius:3px;margin:0 4px 0 10px;vertical-align:-2px}
        .key.succeeded{border-color:var(--ok)}.key.failed{border-color:var(--bad)}.key.cancelled{border-color:var(--warn)}.key.skipped{border-color:var(--off);border-style:dashed}
        .dash{display:inline-block;width:26px;border-top:2px dashed var(--accent);margin:0 6px 0 12px;vertical-align:middle}
        .card{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--off);border-radius:6px;padding:12px 14px;margin:12px 0;break-inside:avoid}
        .card.succeeded{border-left-color:var(--ok)}.card.failed{border-left-color:var(--bad)}.card.cancelled{border-left-color:var(--warn)}.card.highlight{outline:2px solid var(--accent)}
        table{border-collapse:collapse}td,th{text-align:left;padding:2px 10px 2px 0;vertical-align:top;overflow-wrap:break-word}th{color:var(--muted);font-weight:normal}
        table.compare td,table.compare th{border-bottom:1px solid var(--line);padding:4px 12px 4px 0;white-space:nowrap}tr.changed td{font-weight:600}
        pre{white-space:pre-wrap;margin:4px 0;font:12px/1.4 ui-monospace,monospace;max-height:320px;overflow:auto}.level-warning{color:var(--warn);font-weight:600}
        .level-error,.level-critical{color:var(--bad);font-weight:600}.level-debug,.level-trace{color:var(--muted)}summary{cursor:pointer;color:var(--muted)}
        .details{position:sticky;bottom:8px;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 12px;box-shadow:0 2px 8px rgba(0,0,0,.2)}
        footer{color:var(--muted);font-size:12px;margin-top:30px}
        .plots{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;margin-top:8px}figure{margin:0}figcaption{color:var(--muted);font-size:12px;max-width:460px}
        canvas.preview{image-rendering:pixelated;border:1px solid var(--line);display:block}.scale{display:flex;justify-content:space-between;font-size:11px;color:var(--muted);
        height:22px;align-items:flex-end;padding:0 2px;width:320px}.scale.viridis{background:linear-gradient(90deg,#440154,#3b528b,#21918c,#5ec962,#fde725) top/100% 8px no-repeat}
        .scale.gray{background:linear-gradient(90deg,#000,#fff) top/100% 8px no-repeat}.hbar{fill:var(--accent);opacity:.75}polyline.pmf{fill:none;stroke:var(--bad);stroke-width:1.5}
        circle.pmf{fill:var(--bad)}.axis{stroke:var(--muted)}.note{color:var(--muted)}
        @media print{body{max-width:none;padding:0;font-size:11px}details{display:block}details>*{display:block}.details{display:none}a{color:inherit;text-decoration:none}
        .card{break-inside:avoid;border-color:#999}pre{max-height:none;overflow:visible}h2{break-after:avoid}}
        """

    /// Hovering a timeline bar shows its stage's details; clicking it (or a box) goes
    /// to the stage's card and marks it.
    static let script = """
        (function(){
          "use strict";
          var details = document.getElementById("details");
          function card(id){ return document.getElementById("stage-" + Array.from(id).map(function(c){
            return /[A-Za-z0-9_-]/.test(c) ? c : "." + c.codePointAt(0).toString(16); }).join("")); }
          function show(bar){
            var c = card(bar.getAttribute("data-stage"));
            if (!details || !c) return;
            var facts = c.querySelector("dl.facts");
            details.textContent = "";
            var title = document.createElement("strong");
            title.textContent = bar.querySelector("title") ? bar.querySelector("title").textContent : bar.getAttribute("data-stage");
            details.appendChild(title);
            if (facts) details.appendChild(facts.cloneNode(true));
            details.hidden = false;
          }
          document.querySelectorAll(".bar").forEach(function(bar){
            bar.addEventListener("mouseenter", function(){ show(bar); bar.classList.add("active"); });
            bar.addEventListener("mouseleave", function(){ bar.classList.remove("active"); });
          });
          function mark(){
            document.querySelectorAll(".card.highlight").forEach(function(c){ c.classList.remove("highlight"); });
            var target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
            if (target && target.classList.contains("card")) target.classList.add("highlight");
          }
          window.addEventListener("hashchange", mark);
          mark();
          // Previews: bytes (0 = low, 255 = high) through a colour scale.
          var viridis = [[68,1,84],[59,82,139],[33,145,140],[94,201,98],[253,231,37]];
          function colour(v, gray){
            if (gray) return [v, v, v];
            var t = v / 255 * (viridis.length - 1), i = Math.min(Math.floor(t), viridis.length - 2), f = t - i;
            return [0, 1, 2].map(function(c){ return Math.round(viridis[i][c] + f * (viridis[i + 1][c] - viridis[i][c])); });
          }
          document.querySelectorAll("canvas.preview").forEach(function(canvas){
            var bytes = atob(canvas.getAttribute("data-bytes") || ""), context = canvas.getContext("2d");
            if (!context || bytes.length !== canvas.width * canvas.height) return;
            var image = context.createImageData(canvas.width, canvas.height), gray = canvas.classList.contains("gray");
            for (var i = 0; i < bytes.length; i++) {
              var rgb = colour(bytes.charCodeAt(i), gray);
              image.data[4 * i] = rgb[0]; image.data[4 * i + 1] = rgb[1]; image.data[4 * i + 2] = rgb[2]; image.data[4 * i + 3] = 255;
            }
            context.putImageData(image, 0, 0);
          });
        })();
        """
}
