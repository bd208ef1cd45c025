import Foundation
import Testing
@testable import SandboxServer

/// The repository root, found from this file's path (Tests/SandboxServerTests/…).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite struct EmbeddedLanguagesTests {
    @Test func embeddedCopyEqualsLanguagesJSON() throws {
        let onDisk = try String(contentsOf: repositoryRoot.appendingPathComponent("languages/languages.json"), encoding: .utf8)
        #expect(onDisk == EmbeddedLanguages.json + "\n", "run scripts/embed-languages.sh after editing languages/languages.json")
    }

    @Test func embeddedRegistryLoadsWithTheExpectedLanguages() throws {
        let registry = try LanguageRegistry.embedded()
        #expect(registry.languages.map(\.id) == [
            "c", "cpp", "python3", "java", "javascript", "bash", "php", "pascal", "go", "rust", "ruby", "octave",
        ])
    }

    @Test(arguments: [
        (50, "c"), (54, "cpp"), (62, "java"), (63, "javascript"), (71, "python3"), (46, "bash"),
        (68, "php"), (67, "pascal"), (60, "go"), (73, "rust"), (72, "ruby"),
    ])
    func judge0IDsMapToLanguages(judge0ID: Int, languageID: String) throws {
        #expect(try LanguageRegistry.embedded().language(judge0ID: judge0ID)?.id == languageID)
    }

    @Test(arguments: [
        ("c", "c"), ("cpp", "cpp"), ("python3", "python3"), ("java", "java"), ("nodejs", "javascript"),
        ("php", "php"), ("pascal", "pascal"), ("octave", "octave"),
    ])
    func jobeNamesMapToLanguages(jobeName: String, languageID: String) throws {
        #expect(try LanguageRegistry.embedded().language(jobeName: jobeName)?.id == languageID)
    }

    @Test func unknownLookupsReturnNil() throws {
        let registry = try LanguageRegistry.embedded()
        #expect(registry.language(id: "cobol") == nil)
        #expect(registry.language(judge0ID: 9999) == nil)
        #expect(registry.language(jobeName: "python2") == nil)
    }

    @Test func languageEnvironmentOverridesDefaults() throws {
        let registry = try LanguageRegistry.embedded()
        let go = try #require(registry.language(id: "go"))
        let environment = registry.environment(for: go)
        #expect(environment["PATH"] == "/usr/bin:/bin")
        #expect(environment["GOCACHE"] == "/tmp/go-build")
    }
}

@Suite struct LanguageRegistryValidationTests {
    func sampleLanguage() -> LanguageDefinition {
        LanguageDefinition(
            id: "c", name: "C", sourceFile: "main.c", sourceExtensions: [".c"], toolchain: ["/usr/bin/gcc"],
            versionCommand: ["/usr/bin/gcc", "-dumpfullversion"], versionRegex: "^([0-9.]+)",
            compile: ["/usr/bin/gcc", "{compile_options}", "-o", "{binary}", "{sources}"],
            defaultCompileOptions: ["-O2"], compileOptionsAllowed: ["-O[0-3]"], run: ["{binary}", "{args}"],
            environment: [:], compileLimitOverrides: LimitOverrides(), limitOverrides: LimitOverrides(),
            judge0: [Judge0Alias(id: 50, name: "C")], jobeName: "c")
    }

    func load(_ languages: [LanguageDefinition]) throws(LanguageRegistryError) -> LanguageRegistry {
        try LanguageRegistry(file: LanguageRegistryFile(schemaVersion: 1, defaultEnvironment: [:], languages: languages))
    }

    @Test func sampleIsValid() throws {
        #expect(try load([sampleLanguage()]).language(id: "c") != nil)
    }

    @Test func duplicateIDsAreRefused() {
        #expect(throws: LanguageRegistryError.duplicateLanguageID("c")) {
            var second = sampleLanguage()
            second.judge0 = []
            second.jobeName = nil
            _ = try load([sampleLanguage(), second])
        }
    }

    @Test func duplicateJudge0IDsAreRefused() {
        var other = sampleLanguage()
        other.id = "c2"
        other.jobeName = nil
        #expect(throws: LanguageRegistryError.duplicateJudge0ID(50, languages: ["c", "c2"])) {
            _ = try load([sampleLanguage(), other])
        }
    }

    @Test func relativeProgramIsRefused() {
        var language = sampleLanguage()
        language.run = ["python3", "{source}"]
        #expect(throws: LanguageRegistryError.self) { _ = try load([language]) }
    }

    @Test func unknownPlaceholderIsRefused() {
        var language = sampleLanguage()
        language.compile = ["/usr/bin/gcc", "{sauce}"]
        do {
            _ = try load([language])
            Issue.record("expected an error")
        } catch {
            guard case let .invalidLanguage(languageID, field, reason) = error else { Issue.record("wrong error \(error)"); return }
            #expect(languageID == "c")
            #expect(field == "compile")
            #expect(reason.contains("{sauce}"))
        }
    }

    @Test func defaultOptionsMustBeAllowed() {
        var language = sampleLanguage()
        language.defaultCompileOptions = ["-O9"]
        #expect(throws: LanguageRegistryError.self) { _ = try load([language]) }
    }

    @Test func versionRegexNeedsACaptureGroup() {
        var language = sampleLanguage()
        language.versionRegex = "^[0-9.]+"
        #expect(throws: LanguageRegistryError.invalidLanguage(language: "c", field: "version_regex", reason: "needs a capture group")) {
            _ = try load([language])
        }
    }

    @Test func interpretedLanguageCannotUseBinary() {
        var language = sampleLanguage()
        language.compile = nil
        language.defaultCompileOptions = []
        language.compileOptionsAllowed = []
        #expect(throws: LanguageRegistryError.self) { _ = try load([language]) }
    }

    @Test func wrongSchemaVersionIsRefused() {
        #expect(throws: LanguageRegistryError.unsupportedSchemaVersion(2)) {
            _ = try LanguageRegistry(json: Data(#"{"schema_version": 2, "default_environment": {}, "languages": []}"#.utf8))
        }
    }

    @Test func malformedJSONNamesTheField() {
        do {
            _ = try LanguageRegistry(json: Data(#"{"schema_version": 1, "default_environment": {}, "languages": [{"id": "c"}]}"#.utf8))
            Issue.record("expected an error")
        } catch {
            guard case let .invalidJSON(reason) = error else { Issue.record("wrong error \(error)"); return }
            #expect(reason.contains("languages[0]"))
        }
    }
}

@Suite struct CommandTemplateTests {
    let context = CommandContext(
        source: "main.c", sources: ["main.c", "util.c"], binary: "/box/main",
        compileOptions: ["-O2", "-Wall"], args: ["a b", "c"], mainClass: "Main")

    @Test func listPlaceholdersSpliceWholeArguments() throws {
        let template = try CommandTemplate(["/usr/bin/gcc", "{compile_options}", "-o", "{binary}", "{sources}", "-lm"])
        #expect(template.expand(context) == ["/usr/bin/gcc", "-O2", "-Wall", "-o", "/box/main", "main.c", "util.c", "-lm"])
    }

    @Test func emptyListsDisappearAndSpacesStayInsideArguments() throws {
        var context = context
        context.compileOptions = []
        let template = try CommandTemplate(["{binary}", "{compile_options}", "{args}"])
        #expect(template.expand(context) == ["/box/main", "a b", "c"])
    }

    @Test func scalarPlaceholdersWorkInsideArguments() throws {
        let template = try CommandTemplate(["/usr/bin/fpc", "-o{binary}", "{source}"])
        #expect(template.expand(context) == ["/usr/bin/fpc", "-o/box/main", "main.c"])
    }

    @Test func listPlaceholderInsideArgumentIsRefused() {
        #expect(throws: CommandTemplateError.listPlaceholderInsideElement(name: "sources", element: "--files={sources}")) {
            _ = try CommandTemplate(["/usr/bin/x", "--files={sources}"])
        }
    }

    @Test func unterminatedPlaceholderIsRefused() {
        #expect(throws: CommandTemplateError.unterminatedPlaceholder(element: "{binary")) {
            _ = try CommandTemplate(["{binary"])
        }
    }

    @Test func disallowedPlaceholderIsRefused() {
        #expect(throws: CommandTemplateError.placeholderNotAllowedHere(name: "compile_options")) {
            _ = try CommandTemplate(["{binary}", "{compile_options}"], allowed: [.binary])
        }
    }

    @Test func realJavaTemplatesExpand() throws {
        let java = try #require(try LanguageRegistry.embedded().language(id: "java"))
        let run = try CommandTemplate(java.run).expand(context)
        #expect(run.first == "/usr/lib/jvm/java-17-openjdk-amd64/bin/java")
        #expect(Array(run.suffix(3)) == ["Main", "a b", "c"])
    }
}

@Suite struct CompileOptionPolicyTests {
    let cpp = try! LanguageRegistry.embedded().language(id: "cpp")!

    @Test(arguments: ["-O2", "-std=c++17", "-std=gnu++20", "-Wall", "-Wextra", "-lm", "-DONLINE_JUDGE", "-DN=10"])
    func allowedOptionsPass(option: String) throws {
        try CompileOptionPolicy(language: cpp).validate([option])
    }

    @Test(arguments: ["-o", "/etc/passwd", "@/etc/shadow", "-B/tmp", "-fplugin=x.so", "-wrapper", "-O2 -o x", "-std=c++17;rm", "-specs=x"])
    func dangerousOptionsAreRefused(option: String) {
        #expect(throws: CompileOptionError.notAllowed(option: option, index: 1, language: "cpp")) {
            try CompileOptionPolicy(language: cpp).validate(["-O2", option])
        }
    }

    @Test func interpretedLanguagesRefuseOptions() throws {
        let python = try #require(try LanguageRegistry.embedded().language(id: "python3"))
        #expect(throws: CompileOptionError.languageNotCompiled(language: "python3")) {
            try CompileOptionPolicy(language: python).validate(["-O"])
        }
        try CompileOptionPolicy(language: python).validate([])
    }
}

@Suite struct JavaSourceTests {
    @Test func findsPublicClass() {
        #expect(JavaSource.publicClassName(in: "import java.util.*;\npublic final class Solution {\n}") == "Solution")
    }

    @Test func ignoresCommentsAndStrings() {
        let source = """
        // public class Commented {}
        /* public class Blocked {} */
        class Helper { String s = "public class Quoted {}"; }
        public class Real { }
        """
        #expect(JavaSource.publicClassName(in: source) == "Real")
    }

    @Test func noPublicClass() {
        #expect(JavaSource.publicClassName(in: "class Main { public static void main(String[] a) {} }") == nil)
    }
}

@Suite struct LanguageDetectionTests {
    @Test func detectsHostToolchains() async throws {
        let availability = await (try LanguageRegistry.embedded()).detect(timeout: .seconds(30))
        let byID = Dictionary(uniqueKeysWithValues: availability.map { ($0.language.id, $0) })
        #expect(availability.count == 12)
        // This machine's toolchains (see the Makefile's SYSTEM_PACKAGES).
        let c = try #require(byID["c"])
        #expect(c.isAvailable, "\(c.unavailableReason ?? "")")
        #expect(c.version?.split(separator: ".").count == 3)
        let java = try #require(byID["java"])
        #expect(java.isAvailable, "\(java.unavailableReason ?? "")")
        #expect(java.version?.hasPrefix("17") == true)
        let python = try #require(byID["python3"])
        #expect(python.version?.hasPrefix("3.") == true)
        #expect(byID["javascript"]?.isAvailable == true)
        #expect(byID["bash"]?.isAvailable == true)
    }

    @Test func missingToolchainIsUnavailable() async throws {
        var language = try #require(try LanguageRegistry.embedded().language(id: "bash"))
        language.id = "ghost"
        language.judge0 = []
        language.jobeName = nil
        language.toolchain = ["/usr/bin/definitely-not-installed"]
        let registry = try LanguageRegistry(file: LanguageRegistryFile(schemaVersion: 1, defaultEnvironment: [:], languages: [language]))
        let result = try #require(await registry.detect().first)
        #expect(!result.isAvailable)
        #expect(result.unavailableReason?.contains("does not exist") == true)
    }

    @Test func linkThroughInvisibleDirectoryIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("toolchain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let link = directory.appendingPathComponent("bash").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/usr/bin/bash")
        // The link lives under the temporary directory, which the sandbox does not show.
        #expect(ToolchainPath.problem(with: link, visibleRoots: ["/usr"]) != nil)
        #expect(ToolchainPath.problem(with: link, visibleRoots: ["/usr", directory.path]) == nil)
        #expect(ToolchainPath.problem(with: "/usr/bin/bash", visibleRoots: ["/usr"]) == nil)
    }

    @Test func versionCommandTimeoutIsEnforced() async throws {
        // The program would run for 300 s; it must end by the timeout's SIGKILL. (No wall-clock
        // bound: blocking sandbox tests running beside this one can delay its continuation.)
        let result = try await HostCommand.run(["/usr/bin/sleep", "300"], environment: [:], timeout: .milliseconds(200))
        #expect(result.timedOut)
        #expect(result.exitStatus == 128 + 9)
    }

    @Test func hostCommandCapturesStdoutAndStderr() async throws {
        let result = try await HostCommand.run(
            ["/usr/bin/bash", "-c", "echo out; echo err >&2; exit 3"], environment: [:], timeout: .seconds(10))
        #expect(result.exitStatus == 3)
        #expect(String(decoding: result.output, as: UTF8.self) == "out\nerr\n")
        #expect(!result.timedOut)
    }

    @Test func versionExtraction() {
        #expect(LanguageRegistry.extractVersion(from: "openjdk version \"17.0.15\" 2025-04-15\n", pattern: #"version "([^"]+)""#) == "17.0.15")
        #expect(LanguageRegistry.extractVersion(from: "junk\nPHP 8.2.7 (cli)\n", pattern: "^PHP ([0-9.]+)") == "8.2.7")
        #expect(LanguageRegistry.extractVersion(from: "nothing", pattern: "v([0-9]+)") == nil)
    }
}
