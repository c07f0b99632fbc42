import ArgumentParser
import Foundation
import Framework

/// `runner report REPORT.json -o OUT.html [--compare OTHER.json]`: a saved JSON run
/// report as one self-contained HTML page.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Render a JSON run report (from --report) as one self-contained HTML page.")

    @Argument(help: ArgumentHelp("The JSON run report.", valueName: "report.json"))
    var input: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The HTML file to write.", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("Another run's JSON report: the page shows what changed between the two.", valueName: "other.json"))
    var compare: String?

    func validate() throws {
        for (option, value) in [("REPORT", input), ("--output", output), ("--compare", compare ?? "")] {
            if let offset = FilePaths.controlCharacterOffset(in: value) {
                throw ValidationError("\(option) '\(FilePaths.printable(value))' has a control character at offset \(offset); paths cannot hold one")
            }
        }
    }

    /// A run's report or a sweep's.
    enum Report {
        case run(RunReport)
        case sweep(SweepReport)
    }

    /// Reads a report, or exits 2 with a message naming the file and what is wrong.
    static func read(_ path: String) throws -> Report {
        let bytes: SharedBytes
        do {
            bytes = try FileContents.read(path)
        } catch {
            throw fail("cannot read the report '\(FilePaths.printable(path))': \(ErrorDescription.readable(error))")
        }
        let data = bytes.withUnsafeBytes { Data($0) }
        do {
            if SweepReport.isSweep(data) { return .sweep(try SweepReport.decode(data)) }
            return .run(try RunReport.decode(data))
        } catch let error as DecodingError {
            throw fail("'\(FilePaths.printable(path))' is not a run report: \(describe(error)); write one with runner FILE --report \(FilePaths.printable(path))")
        } catch {
            throw fail("'\(FilePaths.printable(path))' is not a run report: \(ErrorDescription.readable(error))")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().drop { $0 == "." }.description
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "no '\(key.stringValue)'" + (context.codingPath.isEmpty ? "" : " in \(path(context))")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context).isEmpty ? "the document" : path(context)): \(context.debugDescription)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON (\(context.underlyingError.map { ErrorDescription.readable($0) } ?? context.debugDescription))"
                : "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return ErrorDescription.readable(error)
        }
    }

    static func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(Console.printable(message))\n".utf8))
        return ExitCode(RunnerMain.ExitStatus.invalid)
    }

    func run() throws {
        for source in [input, compare].compactMap({ $0 }) where FilePaths.sameFile(output, source) {
            throw Self.fail("-o \(FilePaths.printable(output)) is the report '\(FilePaths.printable(source))' itself; write the page somewhere else")
        }
        if let problem = ReportPath.problem(with: output) {
            throw Self.fail("cannot write '\(FilePaths.printable(output))': \(problem)")
        }
        let report = try Self.read(input), other = try compare.map(Self.read)
        let page: String
        switch (report, other) {
        case (.run(let report), nil):
            page = ReportHTML.render(report, comparedWith: nil)
        case (.run(let report), .run(let other)?):
            page = ReportHTML.render(report, comparedWith: other)
        case (.sweep(let report), nil):
            page = ReportHTML.render(report)
        case (.sweep, _?), (.run, .sweep?):
            let sweeps = [(input, report), (compare ?? "", other)].compactMap { path, read -> String? in
                if case .sweep? = read { return "'\(FilePaths.printable(path))'" }
                return nil
            }
            throw Self.fail(sweeps.joined(separator: " and ") + " \(sweeps.count == 1 ? "is a sweep's report" : "are sweeps' reports"); "
                + "--compare takes two runs' reports (render a sweep's report alone, or compare the reports of two of its items' runs)")
        }
        do {
            try AtomicFile.write(Array(page.utf8), to: output, overwrite: true)
        } catch {
            throw Self.fail("cannot write '\(FilePaths.printable(output))': \(ErrorDescription.readable(error))")
        }
        print(output)
    }
}
