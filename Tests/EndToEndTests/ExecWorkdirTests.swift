import Foundation
import Testing
import TestFixtures

/// An `exec` stage finds a program named relative to the pipeline file, wherever the
/// runner is started: the default working directory is the pipeline file's directory,
/// and a relative `workdir` is resolved against it.
@Suite struct ExecWorkdirTests {
    let script = RunnerProcess.packageRoot.appendingPathComponent("Tests/Fixtures/exec_double.py")

    /// `project/` holds the pipeline and (in `scriptFolder`) double.py; the runner
    /// starts in `elsewhere/` and names the pipeline as `../project/pipeline.yaml`.
    func run(scriptFolder: String, workdir: String?) throws -> (RunnerProcess.Result, URL) {
        let root = try temporaryDirectory()
        let project = root.appendingPathComponent("project")
        let elsewhere = root.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: project.appendingPathComponent(scriptFolder), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: script, to: project.appendingPathComponent(scriptFolder).appendingPathComponent("double.py"))
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 20, height: 10, lambda: 3, seed: 5}}
              double:
                type: exec
                input: generate
                with:
                  command: ['\(PythonFixture.python)', double.py, '{inputs.input}', '{output}']
                  output: Grid<UInt16>
                  \(workdir.map { "workdir: \($0)" } ?? "")
              encode: {type: png, input: double}
              store: {type: filesystem, input: encode, with: {path: "out/{run_id}/double.png"}}
            """
        try yaml.write(to: project.appendingPathComponent("pipeline.yaml"), atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run(["../project/pipeline.yaml", "--run-id", "w"], in: elsewhere)
        return (result, root)
    }

    @Test func programNextToThePipelineFileIsFoundFromAnotherDirectory() throws {
        let (result, root) = try run(scriptFolder: ".", workdir: nil)
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("can't open file"))
        // The sink's relative path is still the runner's working directory's.
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("elsewhere/out/w/double.png").path))
    }

    @Test func relativeWorkdirIsResolvedAgainstThePipelineFile() throws {
        let (result, root) = try run(scriptFolder: "scripts", workdir: "scripts")
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("elsewhere/out/w/double.png").path))
    }
}
