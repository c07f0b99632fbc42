import Foundation

extension ReportHTML {
    /// The page for a sweep: the sweep's facts and counts, then a table of its items,
    /// one row each (its values, status, duration and outputs), failed ones first.
    public static func render(_ report: SweepReport) -> String {
        var page = Page()
        page.line("<!DOCTYPE html>")
        page.line("<html lang=\"en\"><head><meta charset=\"utf-8\">")
        page.line("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        page.line("<meta name=\"color-scheme\" content=\"light dark\">")
        page.line("<title>\(escape(report.pipeline)) — sweep \(escape(report.runID))</title>")
        page.line("<style>\(style)</style></head><body>")
        page.line("<header class=\"run \(report.status.rawValue)\">")
        page.line("<h1>\(escape(report.pipeline)) <span class=\"status \(report.status.rawValue)\">\(report.status.rawValue)</span></h1>")
        let done = report.succeeded + report.failed
        var facts: [(String, String)] = [
            ("sweep", report.runID), ("items", "\(report.items.count): \(report.succeeded) succeeded, \(report.failed) failed, "
                + "\(report.cancelled) cancelled, \(report.notRun) not run"),
            ("seed", String(report.seed)), ("duration", seconds(report.durationSeconds)),
            ("rate", report.durationSeconds > 0 ? number(Double(done) / report.durationSeconds) + " items/s" : "—"),
            ("started", RunReport.dateStyle.format(report.startedAt)), ("file", report.file), ("runner", report.runnerVersion),
        ]
        if let machine = report.machine {
            facts.append(("machine", "\(machine.cores) cores, \(ByteCountFormatting.string(machine.memoryBytes)), \(machine.system)"))
        }
        if let invocation = report.invocation {
            facts.append(("command", (["runner"] + invocation.arguments).joined(separator: " ")))
        }
        page.line("<dl class=\"facts\">" + facts.map { "<dt>\(escape($0.0))</dt><dd>\(escape($0.1))</dd>" }.joined() + "</dl>")
        page.line("</header>")

        // Columns: the values' names, each item's in alphabetical order, new ones as later items bring them.
        var names: [String] = []
        for item in report.items {
            for name in item.values.keys.sorted() where !names.contains(name) { names.append(name) }
        }
        page.line("<section><h2>Items</h2><table class=\"items\"><thead><tr><th>#</th>"
            + names.map { "<th>\(escape($0))</th>" }.joined() + "<th>status</th><th>time</th><th>outputs</th></tr></thead><tbody>")
        let rank: [SweepReport.Item.Status: Int] = [.failed: 0, .cancelled: 1, .notRun: 2, .succeeded: 3]
        for item in report.items.sorted(by: { (rank[$0.status]!, $0.index) < (rank[$1.status]!, $1.index) }) {
            let outputs = item.outputs.map { output in
                [output.stage + ":", output.uri, output.byteCount.map { ByteCountFormatting.string(Double($0)) }].compactMap { $0 }.joined(separator: " ")
            }
            let error = item.error.map { "<div class=\"error\">" + escape((item.stage.map { "\($0): " } ?? "") + $0) + "</div>" } ?? ""
            page.line("<tr class=\"\(item.status.rawValue)\"><td>\(item.index)</td>"
                + names.map { "<td>\(escape(item.values[$0] ?? ""))</td>" }.joined()
                + "<td><span class=\"status \(item.status.rawValue)\">\(escape(item.status.rawValue.replacingOccurrences(of: "_", with: " ")))</span></td>"
                + "<td>\(seconds(item.durationSeconds))</td><td>\(outputs.map(escape).joined(separator: "<br>"))\(error)</td></tr>")
        }
        page.line("</tbody></table></section>")
        page.line("<footer>Made by runner \(escape(RunnerVersion.current)) from a sweep report of schema \(report.schemaVersion).</footer>")
        page.line("</body></html>")
        return page.text
    }
}
