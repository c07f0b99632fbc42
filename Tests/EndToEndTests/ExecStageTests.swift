import Foundation
import Testing
import Framework
import Stages
import TestFixtures

/// `exec` stages run by the built runner: a NumPy stage, a shell stage, and every
/// documented failure, each leaving no temporary files behind.
@Suite struct ExecStageTests {
    let script = RunnerProcess.packageRoot.appendingPathComponent("Tests/Fixtures/exec_double.py").path

    func pipeline(mode: String = "ok", extra: String = "") -> String {
        """
        stages:
          generate: {type: poisson, with: {width: 40, height: 30, lambda: 3, seed: 9}}
          double:
            type: exec
            input: generate
            with:
              command: ['\(PythonFixture.python)', '\(script)', '{inputs.input}', '{output}', '\(mode)']
              output: Grid<UInt16>
              \(extra)
          encode: {type: png, input: double}
          store: {type: filesystem, input: encode, with: {path: "out/{run_id}/double.png"}}
        """
    }

    /// Runs `yaml` in a fresh directory with its own TMPDIR; returns the result and
    /// what the temporary directory holds afterwards.
    func run(_ yaml: String, arguments: [String] = []) throws -> (RunnerProcess.Result, URL, [String]) {
        let directory = try temporaryDirectory()
        let temporary = directory.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("exec.yaml")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        let result = try RunnerProcess.run([file.path, "--run-id", "x"] + arguments, in: directory, environment: ["TMPDIR": temporary.path])
        return (result, directory, (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? ["unreadable"])
    }

    @Test func numpyStageBetweenGeneratorAndEncoder() async throws {
        let (result, directory, leftovers) = try run(pipeline(), arguments: ["-v"])
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(leftovers.isEmpty, "left in TMPDIR: \(leftovers)")
        #expect(result.stderr.contains("double: read (30, 40) uint8"))  // the program's stderr, as log lines
        // The same seed through the stage directly, doubled here.
        let generator = try PoissonStage(parameters: Parameters(["width": .integer(40), "height": .integer(30), "lambda": .number(3),
                                                                 "dtype": .string("auto"), "seed": .integer(9)]))
        let context = StageContext(stageID: "generate", stageType: "poisson", runID: "x", seed: 9, logger: .init(label: "t"))
        let source = try #require(try await generator.run(inputs: StageInputs([:]), context: context) as? Grid<UInt8>)
        let png = try PNGCodec.decode([UInt8](Data(contentsOf: directory.appendingPathComponent("out/x/double.png"))))
        #expect(png.bitDepth == 16)
        #expect(png.samples16 == source.elements.map { UInt16($0) * 2 + 1 })
    }

    /// A NumPy stage between the generator and the JPEG encoder, doing what
    /// `normalize` does (for a grid whose minimum is 0): the two JPEGs are the same bytes.
    @Test func numpyStageBetweenGeneratorAndJPEG() throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 64, height: 48, lambda: 3, seed: 4}}
              scale:
                type: exec
                input: generate
                with: {command: ['\(PythonFixture.python)', '\(script)', '{inputs.input}', '{output}', unit], output: Grid<Float32>}
              encode: {type: jpeg, input: scale}
              store: {type: filesystem, input: encode, with: {path: "out/{run_id}/numpy.jpg"}}
              native: {type: normalize, input: generate}
              encode_native: {type: jpeg, input: native}
              store_native: {type: filesystem, input: encode_native, with: {path: "out/{run_id}/native.jpg"}}
            """
        let (result, directory, leftovers) = try run(yaml, arguments: ["--report", "report.json"])
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(leftovers.isEmpty)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("report.json"))) as? [String: Any]
        let generated = (report?["stages"] as? [[String: Any]])?.first { $0["id"] as? String == "generate" }?["output"] as? [String: Any]
        try #require(generated?["min"] as? Double == 0, "the comparison needs a grid whose minimum is 0")
        let numpy = try Data(contentsOf: directory.appendingPathComponent("out/x/numpy.jpg"))
        let native = try Data(contentsOf: directory.appendingPathComponent("out/x/native.jpg"))
        #expect(numpy == native)
        #expect(try JPEGCodec.decode([UInt8](numpy)).width == 64)
    }

    @Test func shellStagePassesAnEncodedImageThrough() throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 16, height: 16, lambda: 3, seed: 1}}
              normalize: {type: normalize, input: generate}
              encode: {type: jpeg, input: normalize}
              copy:
                type: exec
                input: encode
                with: {command: ['cp "$PIPELINE_INPUT_INPUT" {output} && echo copied >&2'], shell: true, output: EncodedImage, output_format: jpeg}
              store: {type: filesystem, input: copy, with: {path: "out/{run_id}/copy.jpg"}}
            """
        let (result, directory, leftovers) = try run(yaml)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(leftovers.isEmpty)
        let image = try JPEGCodec.decode([UInt8](Data(contentsOf: directory.appendingPathComponent("out/x/copy.jpg"))))
        #expect(image.width == 16 && image.height == 16)
    }

    @Test(arguments: [
        ("dtype", "output.npy holds uint8 (Grid<UInt8>), but the stage declares Grid<UInt16>"),
        ("shape", "output.npy: shape (2, 3, 4) is not a 2-D (height, width) shape"),
        ("truncated", "output.npy: truncated: 30x40 uint16 needs 2400 bytes of data"),
        ("nothing", "exited with status 0 but did not write its output output.npy"),
    ])
    func badOutputsAreClearErrors(mode: String, message: String) throws {
        let (result, directory, leftovers) = try run(pipeline(mode: mode))
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 1)
        #expect(result.stderr.contains("stage 'double' (exec) failed: "))
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(leftovers.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out").path))
    }

    @Test func nonZeroExitShowsTheLastLinesOfStderr() throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              fail:
                type: exec
                input: generate
                with: {command: [sh, -c, 'echo first >&2; echo "disk quota exceeded" >&2; exit 3'], output: Grid<UInt8>}
            """
        let (result, directory, leftovers) = try run(yaml)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 1)
        #expect(result.stderr.contains("'sh' exited with status 3; last lines of its stderr:\nfirst\ndisk quota exceeded"))
        #expect(leftovers.isEmpty)
    }

    @Test func timeoutKillsTheProcessGroup() throws {
        let marker = "exec-timeout-\(UUID().uuidString)"
        // A child in the background and one in the foreground, both tagged with the marker.
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              slow:
                type: exec
                input: generate
                with: {command: [sh, -c, 'sh -c "sleep 30; : \(marker)" & sh -c "sleep 31; : \(marker)"'], output: Grid<UInt8>, timeout: 500ms}
            """
        let start = ContinuousClock.now
        let (result, directory, leftovers) = try run(yaml)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(result.status == 1)
        #expect(result.stderr.contains("timed out after 500ms; its process group was killed"))
        #expect(leftovers.isEmpty)
        // Nothing tagged with the marker survives (SIGKILL follows SIGTERM within 2 s).
        Thread.sleep(forTimeInterval: 2.5)
        // "[e]xec-..." matches the marker but not this pgrep's own command line.
        let survivors = try RunnerProcess.shell("pgrep -f '[e]\(marker.dropFirst())' || true")
        #expect(survivors.isEmpty, "left running: \(survivors)")
    }

    @Test func unknownPlaceholdersAreCaughtAtCheckTime() throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              run: {type: exec, input: generate, with: {command: [cat, '{inputs.imput}', '{output}'], output: Grid<UInt8>}}
            """
        let (result, directory, _) = try run(yaml)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 2)
        #expect(result.stderr.contains("parameter 'command' of stage 'run' (exec) uses unknown placeholder '{inputs.imput}'"))
        #expect(result.stderr.contains("did you mean 'inputs.input'?"))
    }

    @Test func missingProgramIsNamed() throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              run: {type: exec, input: generate, with: {command: [no-such-program-here, x], output: Grid<UInt8>}}
            """
        let (result, directory, _) = try run(yaml)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 1)
        #expect(result.stderr.contains("command 'no-such-program-here' not found"))
    }

    /// The shell's exit status says what went wrong, whatever its stderr says (or its
    /// language): 127 a command not found, 126 one that cannot be run; other statuses
    /// get no such hint, even when the text says "not found".
    @Test func shellStatusesChooseTheHint() throws {
        let cases: [(with: String, expected: String, unexpected: String)] = [
            ("{command: ['echo gone >&2; exit 127'], shell: true, output: Grid<UInt8>}",
             "'sh -c' exited with status 127, which the shell gives when it cannot find a command", "status 126"),
            ("{command: ['printf x > tool; ./tool'], shell: true, output: Grid<UInt8>}",
             "'sh -c' exited with status 126, which the shell gives when it cannot run a command", "status 127"),
            ("{command: [sh, -c, 'exit 127'], output: Grid<UInt8>}", "'sh' exited with status 127", "which the shell gives"),
            ("{command: [sh, -c, 'echo file not found >&2; exit 3'], output: Grid<UInt8>}",
             "'sh' exited with status 3; last lines of its stderr:\nfile not found", "which the shell gives"),
        ]
        for (with, expected, unexpected) in cases {
            let yaml = """
                stages:
                  generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
                  run: {type: exec, input: generate, with: \(with)}
                """
            let (result, directory, _) = try run(yaml)
            defer { try? FileManager.default.removeItem(at: directory) }
            #expect(result.status == 1)
            #expect(result.stderr.contains(expected), "\(result.stderr)")
            #expect(!result.stderr.contains(unexpected), "\(result.stderr)")
        }
    }

    @Test func declaredTypesAreCheckedBeforeAnythingRuns() throws {
        let yaml = """
            stages:
              generate: {type: poisson, with: {width: 4, height: 4, lambda: 3}}
              double: {type: exec, input: generate, with: {command: [true], output: Grid<UInt16>}}
              encode: {type: jpeg, input: double}
            """
        let (result, directory, _) = try run(yaml)
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(result.status == 2)
        #expect(result.stderr.contains("stage 'encode' (jpeg) accepts Grid<Float32> or Grid<UInt8>, but 'double' (exec) produces Grid<UInt16>"))
    }

    @Test func stagesCommandDocumentsTheFileContract() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try RunnerProcess.run(["stages", "exec"], in: directory)
        #expect(result.status == 0)
        for phrase in ["inputs/NAME.npy", "{inputs.NAME}", "{output}", "PIPELINE_OUTPUT", "process group"] {
            #expect(result.stdout.contains(phrase), "\(phrase)")
        }
    }

    @Test func npyFilesOpenInNumPyAndBack() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let grids: [(String, any AnyGrid)] = [
            ("u1", try Grid<UInt8>(width: 3, height: 2, values: [0, 1, 2, 253, 254, 255])),
            ("u2", try Grid<UInt16>(width: 2, height: 2, values: [0, 1, 65534, 65535])),
            ("u4", try Grid<UInt32>(width: 1, height: 3, values: [0, 70000, 4_294_967_295])),
            ("f4", try Grid<Float>(width: 2, height: 1, values: [0.5, -1.25])),
            ("f8", try Grid<Double>(width: 2, height: 1, values: [1e-300, 3.141592653589793])),
        ]
        for (name, grid) in grids {
            try NPY.write(grid, to: directory.appendingPathComponent("\(name).npy").path)
        }
        let check = """
            import numpy as np, sys
            d = sys.argv[1]
            for name, expected in [("u1", [[0, 1, 2], [253, 254, 255]]), ("u2", [[0, 1], [65534, 65535]]), ("u4", [[0], [70000], [4294967295]]),
                                   ("f4", [[0.5, -1.25]]), ("f8", [[1e-300, 3.141592653589793]])]:
                a = np.load(f"{d}/{name}.npy")
                assert a.dtype.str[1:] == name, (name, a.dtype)
                assert a.tolist() == expected, (name, a.tolist())
            np.save(f"{d}/back.npy", np.arange(12, dtype="<f4").reshape(3, 4))
            print("ok")
            """
        let result = try RunnerProcess.shell("'\(PythonFixture.python)' -c '\(check.replacingOccurrences(of: "'", with: "'\\''"))' '\(directory.path)'")
        #expect(result == "ok")
        let back = try NPY.read(contentsOf: directory.appendingPathComponent("back.npy").path)
        #expect((back as? Grid<Float>)?.elements == (0..<12).map(Float.init))
        #expect(back.width == 4 && back.height == 3)
    }
}

extension RunnerProcess {
    /// Runs a shell command and returns its trimmed stdout.
    static func shell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
