import Foundation
import Testing
@testable import SandboxServer

/// Compiles and runs a small program per language with the registry's real commands, on the
/// host (no sandbox), to catch wrong flags, paths and placeholders in languages/languages.json.
@Suite struct LanguageCommandsOnHostTests {
    /// Prints "hello " and the first argument.
    static let programs: [String: String] = [
        "c": "#include <stdio.h>\nint main(int argc, char **argv) { printf(\"hello %s\\n\", argv[1]); return 0; }\n",
        "cpp": "#include <iostream>\nint main(int argc, char **argv) { std::cout << \"hello \" << argv[1] << std::endl; }\n",
        "python3": "import sys\nprint('hello', sys.argv[1])\n",
        "java": "public class Main { public static void main(String[] args) { System.out.println(\"hello \" + args[0]); } }\n",
        "javascript": "console.log('hello ' + process.argv[2]);\n",
        "bash": "echo \"hello $1\"\n",
        "php": "<?php echo 'hello ' . $argv[1] . \"\\n\";\n",
        "pascal": "program main;\nbegin\n  writeln('hello ', ParamStr(1));\nend.\n",
        "go": "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Println(\"hello \" + os.Args[1]) }\n",
        "rust": "fn main() { let args: Vec<String> = std::env::args().collect(); println!(\"hello {}\", args[1]); }\n",
        "ruby": "puts \"hello #{ARGV[0]}\"\n",
        "octave": "args = argv();\nprintf(\"hello %s\\n\", args{1});\n",
    ]

    /// Compiles (if needed) and runs `languageID`'s program with argument "a b"; returns its output.
    static func compileAndRun(_ languageID: String) async throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lang-\(languageID)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let validator = JobRequestValidator(registry: try LanguageRegistry.embedded(), limits: .standard, boxDirectory: directory.path)
        guard let program = programs[languageID] else {
            Issue.record("no sample program for \(languageID)")
            return ""
        }
        let job = try validator.validate(JobRequest(language: languageID, source: program, args: ["a b"]))
        for file in job.files { try Data(file.content).write(to: directory.appendingPathComponent(file.name)) }
        // HOME and caches point at /tmp as in the sandbox; the host's /tmp serves the same purpose.
        if let compile = job.compileCommand {
            let result = try await HostCommand.run(compile, environment: job.environment, in: directory, timeout: .seconds(120))
            #expect(result.exitStatus == 0, "compile failed: \(String(decoding: result.output, as: UTF8.self))")
        }
        let result = try await HostCommand.run(job.runCommand, environment: job.environment, in: directory, timeout: .seconds(60))
        #expect(result.exitStatus == 0)
        return String(decoding: result.output, as: UTF8.self)
    }

    /// The languages the Makefile installs on every machine.
    @Test(arguments: ["c", "cpp", "python3", "java", "javascript", "bash"])
    func standardLanguageRunsHelloWorld(languageID: String) async throws {
        #expect(try await Self.compileAndRun(languageID) == "hello a b\n")
    }

    /// Optional languages, where their toolchain is installed.
    @Test func installedOptionalLanguagesRunHelloWorld() async throws {
        let availability = await (try LanguageRegistry.embedded()).detect()
        let optional = ["php", "pascal", "go", "rust", "ruby", "octave"]
        for language in availability where language.isAvailable && optional.contains(language.language.id) {
            #expect(try await Self.compileAndRun(language.language.id) == "hello a b\n", "\(language.language.id)")
        }
    }

    @Test func everyLanguageHasASampleProgram() throws {
        #expect(Set(try LanguageRegistry.embedded().languages.map(\.id)) == Set(Self.programs.keys))
    }
}
