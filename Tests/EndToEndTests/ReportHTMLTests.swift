import Foundation
import Framework
import Stages
import Testing

/// The HTML run report: `--report-html`, `runner report` and `--compare`, its
/// self-containment and escaping, and the reference run's page in a real headless
/// Chromium (installed by scripts/test).
@Suite(.serialized) struct ReportHTMLTests {
    static let pipeline = RunnerProcess.packageRoot.appendingPathComponent("pipelines/poisson.yaml").path

    static var chromium: String {
        ProcessInfo.processInfo.environment["PIPELINE_TEST_CHROMIUM"] ?? "/usr/bin/chromium"
    }

    struct Browser {
        var dom: String
        var console: [String]
    }

    /// Opens `page` in headless Chromium: its DOM after the scripts ran, what its
    /// console said, and a screenshot in `screenshot`.
    static func open(_ page: URL, screenshot: URL) throws -> Browser {
        guard FileManager.default.isExecutableFile(atPath: chromium) else {
            throw RunnerProcess.RunnerMissing(path: "\(chromium) (Debian's chromium package; scripts/test installs it)")
        }
        let flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0"
        let dom = try RunnerProcess.shell("'\(chromium)' \(flags) --dump-dom '\(page.absoluteString)' 2>'\(page.path).log'")
        let log = (try? String(contentsOfFile: page.path + ".log", encoding: .utf8)) ?? ""
        _ = try RunnerProcess.shell("'\(chromium)' \(flags) --window-size=1200,1400 --screenshot='\(screenshot.path)' '\(page.absoluteString)' 2>/dev/null")
        return Browser(dom: dom, console: log.split(separator: "\n").filter { $0.contains(":CONSOLE") }.map(String.init))
    }

    @Test func theReferenceRunsReportRendersInABrowserWithoutErrors() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try RunnerProcess.run([Self.pipeline, "--seed", "7", "--run-id", "reference", "--report", "r.json", "--report-html", "r.html"],
                                        in: directory)
        #expect(run.status == 0, "\(run.stderr)")
        let page = directory.appendingPathComponent("r.html")
        let html = try String(contentsOf: page, encoding: .utf8)
        #expect(html.utf8.count < 2_000_000, "\(html.utf8.count) bytes")
        // Nothing is fetched: no URL to another place, no external script, style or image.
        for pattern in ["http://", "https://", "src=\"//", "<link", "@import", "url(http"] {
            #expect(!html.contains(pattern), "\(pattern) in the page")
        }
        let shot = directory.appendingPathComponent("shot.png")
        let browser = try Self.open(page, screenshot: shot)
        #expect(browser.console.isEmpty, "\(browser.console)")
        for stage in ["generate", "normalize", "encode", "store"] {
            #expect(browser.dom.contains("class=\"box succeeded\" data-stage=\"\(stage)\""), "no box for \(stage)")
            #expect(browser.dom.contains("class=\"bar succeeded\" data-stage=\"\(stage)\""), "no timeline bar for \(stage)")
            #expect(browser.dom.contains("<article class=\"card succeeded\" id=\"stage-\(stage)\">"), "no card for \(stage)")
        }
        #expect(browser.dom.contains("<svg class=\"timeline\"") && browser.dom.contains("<svg class=\"dag\""))
        // Cards with a preview and a histogram of each grid; the samples' fit to Poisson(3).
        #expect(browser.dom.components(separatedBy: "<canvas class=\"preview viridis\"").count - 1 == 2)
        #expect(browser.dom.components(separatedBy: "<svg class=\"histogram\"").count - 1 == 2)
        #expect(browser.dom.contains("<canvas class=\"preview gray\""), "the encoded image's thumbnail")
        #expect(browser.dom.contains("the line is Poisson(λ = 3)'s pmf. Chi-square "), "no fit in the generate card")
        // The report's digest counts every sample.
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("r.json"))) as? [String: Any])
        let stages = try #require(json["stages"] as? [[String: Any]])
        let histogram = try #require(((stages[0]["output"] as? [String: Any])?["digest"] as? [String: Any])?["histogram"] as? [String: Any])
        #expect((histogram["counts"] as? [Int])?.reduce(0, +) == 2048 * 2048)
        // The script ran: the hover target exists (it starts hidden).
        #expect(browser.dom.contains("id=\"details\""))
        // The screenshot is a page, not a blank: many colours, and dark text on the light page.
        let png = try PNGCodec.decode(try FileContents.read(shot.path))
        #expect(png.width == 1200 && png.height == 1400)
        var levels = Set<UInt8>()
        var dark = 0
        let samples = png.samples8, step = png.channels
        for index in stride(from: 0, to: samples.count - step, by: step * 7) {
            levels.insert(samples[index])
            if samples[index] < 80 { dark += 1 }
        }
        #expect(levels.count > 40 && dark > 500, "\(levels.count) levels, \(dark) dark samples")
    }

    /// A check that sees console errors: a page with a broken script is caught.
    @Test func theConsoleCheckSeesAScriptError() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let page = directory.appendingPathComponent("bad.html")
        try "<html><body><script>notDefinedAnywhere();</script><p>x</p></body></html>".write(to: page, atomically: true, encoding: .utf8)
        let browser = try Self.open(page, screenshot: directory.appendingPathComponent("bad.png"))
        #expect(browser.console.contains { $0.contains("notDefinedAnywhere") }, "\(browser.console)")
    }

    @Test func aComparisonShowsChangedParametersTimesAndOutputs() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let small = ["--set", "params.size=64"]
        #expect(try RunnerProcess.run([Self.pipeline, "--seed", "1", "--run-id", "a", "--report", "a.json"] + small, in: directory).status == 0)
        #expect(try RunnerProcess.run([Self.pipeline, "--seed", "1", "--run-id", "b", "--report", "b.json", "--set", "params.lambda=5"] + small,
                                      in: directory).status == 0)
        #expect(try RunnerProcess.run([Self.pipeline, "--seed", "1", "--run-id", "c", "--report", "c.json"] + small, in: directory).status == 0)
        let changed = try RunnerProcess.run(["report", "b.json", "-o", "b.html", "--compare", "a.json"], in: directory)
        #expect(changed.status == 0, "\(changed.stderr)")
        let html = try String(contentsOf: directory.appendingPathComponent("b.html"), encoding: .utf8)
        #expect(html.contains("<h2>Compared with run a</h2>"))
        #expect(html.contains("<tr class=\"changed\"><th>generate.lambda</th><td>3</td><td>5</td><td>changed</td></tr>"), "\(html)")
        #expect(html.contains("<tr><th>generate time</th>"))
        #expect(html.contains("<tr class=\"changed\"><th>encode output</th>"))
        // The same parameters and seed: the same bytes, nothing marked.
        #expect(try RunnerProcess.run(["report", "c.json", "-o", "c.html", "--compare", "a.json"], in: directory).status == 0)
        let same = try String(contentsOf: directory.appendingPathComponent("c.html"), encoding: .utf8)
        #expect(same.contains("<tr><th>encode output</th><td>same bytes</td><td>same bytes</td>"))
        #expect(!same.contains("<tr class=\"changed\"><th>generate."))
    }

    /// A streamed grid's digest, gathered from its bands as they went by, is the
    /// digest of the same grid held whole; and the page draws it.
    @Test func streamedGridsHaveTheDigestsOfWholeOnes() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let common = [Self.pipeline, "--seed", "3", "--set", "params.size=300", "--set", "stages.store.with.overwrite=true"]
        let streamed = try RunnerProcess.run(common + ["--stream", "--band-rows", "7", "--report", "s.json", "--report-html", "s.html"], in: directory)
        #expect(streamed.status == 0, "\(streamed.stderr)")
        let whole = try RunnerProcess.run(common + ["--no-stream", "--report", "w.json"], in: directory)
        #expect(whole.status == 0, "\(whole.stderr)")
        func outputs(_ name: String) throws -> [String: ArtifactSummary] {
            let report = try RunReport.decode(Data(contentsOf: directory.appendingPathComponent(name)))
            return Dictionary(uniqueKeysWithValues: report.stages.compactMap { stage in stage.output.map { (stage.id, $0) } })
        }
        let (s, w) = (try outputs("s.json"), try outputs("w.json"))
        for stage in ["generate", "normalize"] {
            #expect(s[stage]?.streamed == true, "\(stage) did not stream")
            var digest = try #require(s[stage]?.digest, "no digest of the streamed \(stage)")
            var expected = try #require(w[stage]?.digest, "no digest of the whole \(stage)")
            #expect(digest.seconds != nil)
            (digest.seconds, expected.seconds) = (nil, nil)
            #expect(digest == expected, "\(stage)")
            #expect(digest.histogram.counts.reduce(0, +) == 300 * 300)
        }
        let html = try String(contentsOf: directory.appendingPathComponent("s.html"), encoding: .utf8)
        #expect(!html.contains("gathered no digest"))
        #expect(html.contains("Thumbnail of the encoded pixels (from &#39;normalize&#39;)"))
    }

    /// Values from the pipeline reach the page as text, never as markup, and secrets
    /// are not shown.
    @Test func valuesAreEscapedAndSecretsRedacted() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            name: "<script>alert(1)</script>"
            stages:
              generate: {type: poisson, with: {width: 8, height: 8, lambda: 3}}
              talk:
                type: exec
                input: generate
                with:
                  command: [sh, -c, "echo '<b>bold</b> & more' >&2; echo warning-ish >&2; cp {inputs.input} {output}"]
                  output: Grid<UInt8>
                  env: {API_TOKEN: "s3cr3t-value", DATABASE: "postgres://user:hunter2@db/x"}
            """.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let run = try RunnerProcess.run(["p.yaml", "--report-html", "p.html", "-q"], in: directory)
        #expect(run.status == 0, "\(run.stderr)")
        let html = try String(contentsOf: directory.appendingPathComponent("p.html"), encoding: .utf8)
        #expect(!html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; more"), "the stage's log line, escaped")
        #expect(!html.contains("s3cr3t-value") && !html.contains("hunter2"), "a secret in the page")
        // The rest of the object is shown.
        #expect(html.contains("API_TOKEN") && html.contains("DATABASE") && html.contains("redacted"))
    }

    @Test(arguments: [
        ("missing.json", "cannot read the report 'missing.json'"),
        ("notjson.json", "'notjson.json' is not a run report: not JSON"),
        ("partial.json", "'partial.json' is not a run report: no 'run_id'"),
    ])
    func aReportThatCannotBeReadIsNamed(file: String, message: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try "{ not json".write(to: directory.appendingPathComponent("notjson.json"), atomically: true, encoding: .utf8)
        try "{\"seed\": 1}".write(to: directory.appendingPathComponent("partial.json"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(["report", file, "-o", "out.html"], in: directory)
        #expect(result.status == 2 && result.stderr.contains(message), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out.html").path))
    }

    /// No report replaces what it is made from: the pipeline file, or the JSON report
    /// a page is rendered from.
    @Test func aReportNeverReplacesItsSource() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = try String(contentsOfFile: Self.pipeline, encoding: .utf8)
        try original.write(to: directory.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        for option in ["--report", "--report-html"] {
            let run = try RunnerProcess.run(["p.yaml", "--set", "params.size=8", option, "./p.yaml"], in: directory)
            #expect(run.status == 2 && run.stderr.contains("it is the pipeline file itself"), "\(run.stderr)")
        }
        #expect(try String(contentsOf: directory.appendingPathComponent("p.yaml"), encoding: .utf8) == original)
        #expect(try RunnerProcess.run(["p.yaml", "--set", "params.size=8", "--report", "r.json"], in: directory).status == 0)
        let json = try Data(contentsOf: directory.appendingPathComponent("r.json"))
        for arguments in [["report", "r.json", "-o", "./r.json"], ["report", "p.yaml", "-o", "x.html", "--compare", "r.json"],
                          ["report", "r.json", "-o", "r.json", "--compare", "r.json"]] {
            let result = try RunnerProcess.run(arguments, in: directory)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
        }
        let refused = try RunnerProcess.run(["report", "r.json", "-o", "./r.json"], in: directory)
        #expect(refused.stderr.contains("is the report 'r.json' itself"), "\(refused.stderr)")
        #expect(try Data(contentsOf: directory.appendingPathComponent("r.json")) == json)
    }

    @Test func theHTMLAndJSONReportsNeedFilesOfTheirOwn() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run([Self.pipeline, "--report", "r", "--report-html", "./r"], in: directory)
        #expect(result.status == 2 && result.stderr.contains("--report and --report-html name the same file"), "\(result.stderr)")
    }
}
