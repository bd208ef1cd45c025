import Foundation
import Testing
@testable import SandboxServer

@Suite struct JobValidationTests {
    let validator = JobRequestValidator(registry: try! LanguageRegistry.embedded(), limits: .standard)

    func validationError(_ request: JobRequest) -> APIError? {
        do {
            let job = try validator.validate(request)
            Issue.record("validated unexpectedly: \(job)")
            return nil
        } catch {
            return error
        }
    }

    @Test func sourceShorthandBecomesTheLanguagesSourceFile() throws {
        let job = try validator.validate(JobRequest(language: "c", source: "int main(){return 0;}", args: ["x y"]))
        #expect(job.files == [SourceFile(name: "main.c", content: Array("int main(){return 0;}".utf8))])
        #expect(job.entryFile == "main.c")
        #expect(job.compileCommand == ["/usr/bin/gcc", "-O2", "-std=gnu17", "-o", "/box/main", "main.c", "-lm"])
        #expect(job.runCommand == ["/box/main", "x y"])
        #expect(job.environment["PATH"] == "/usr/bin:/bin")
        #expect(job.tests == [TestCaseSpec(name: "1", stdin: [], expectedOutput: nil, points: 1)])
        #expect(job.comparison == OutputComparison(mode: .trailingWhitespace))
        #expect(job.runLimits == ServerLimits.standard.defaults)
        #expect(job.priority == 0)
    }

    @Test func multipleFilesAndRequestedCompileOptions() throws {
        let job = try validator.validate(JobRequest(
            language: "cpp",
            files: [FileInput(name: "util.h", content: ""), FileInput(name: "util.cpp", content: ""), FileInput(name: "main.cpp", content: "")],
            compileOptions: ["-std=c++20", "-Wall"]))
        #expect(job.entryFile == "main.cpp")
        #expect(job.compileCommand == ["/usr/bin/g++", "-std=c++20", "-Wall", "-o", "/box/main", "util.cpp", "main.cpp", "-lm"])
    }

    @Test func entryFileIsTheFirstSourceWhenSourceFileIsAbsent() throws {
        let job = try validator.validate(JobRequest(
            language: "c", files: [FileInput(name: "util.h", content: ""), FileInput(name: "prog.c", content: "")]))
        #expect(job.entryFile == "prog.c")
        let java = try validator.validate(JobRequest(language: "java", files: [FileInput(name: "Solution.java", content: "")]))
        #expect(java.runCommand.last == "Solution")
    }

    @Test func emptyCompileOptionsMeanNone() throws {
        let job = try validator.validate(JobRequest(language: "c", source: "", compileOptions: []))
        #expect(job.compileCommand == ["/usr/bin/gcc", "-o", "/box/main", "main.c", "-lm"])
    }

    @Test func javaGetsItsFloorsAndMainClass() throws {
        let job = try validator.validate(JobRequest(language: "java", source: "public class Main {}", limits: LimitsInput(memoryBytes: 64 << 20, processes: 2)))
        #expect(job.runLimits.processes == 64)
        #expect(job.runLimits.memoryBytes == 256 << 20)
        #expect(job.compileLimits?.memoryBytes == 1 << 30)
        #expect(job.runCommand.suffix(1) == ["Main"])
        #expect(job.compileCommand?.suffix(3) == ["-d", ".", "Main.java"])
    }

    @Test func interpretedLanguageHasNoCompileStep() throws {
        let job = try validator.validate(JobRequest(language: "python3", source: "print(1)", args: ["a"]))
        #expect(job.compileCommand == nil)
        #expect(job.compileLimits == nil)
        #expect(job.runCommand == ["/usr/bin/python3", "-B", "main.py", "a"])
    }

    @Test func base64FilesAreDecoded() throws {
        let job = try validator.validate(JobRequest(
            language: "python3", files: [FileInput(name: "main.py", content: ""), FileInput(name: "data.bin", content: "AP8=", encoding: .base64)]))
        #expect(job.files[1].content == [0x00, 0xFF])
        #expect(validationError(JobRequest(language: "python3", files: [FileInput(name: "main.py", content: "!!", encoding: .base64)]))?.field
            == "files[0].content")
        // MIME-wrapped base64 (76-character lines, CRLF or LF) decodes; other junk still fails.
        let bytes = (0..<200).map { UInt8($0) }
        let wrapped = Data(bytes).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed]) + "\n"
        #expect(wrapped.contains("\r\n"))
        let mime = try validator.validate(JobRequest(
            language: "python3", files: [FileInput(name: "main.py", content: ""), FileInput(name: "data.bin", content: wrapped, encoding: .base64)]))
        #expect(mime.files[1].content == bytes)
        #expect(validationError(JobRequest(language: "python3", files: [FileInput(name: "main.py", content: "AP8=\n!", encoding: .base64)]))?.field
            == "files[0].content")
    }

    @Test func unknownLanguage() {
        let error = validationError(JobRequest(language: "cobol", source: ""))
        #expect(error?.code == .unknownLanguage)
        #expect(error?.httpStatus == 422)
        #expect(error?.field == "language")
        #expect(error?.message.contains("python3") == true)
    }

    @Test(arguments: ["", "../x.c", "a/b.c", "-o.c", "@opts.c", ".hidden.c", "a\u{0}.c", "a\nb.c", String(repeating: "a", count: 129) + ".c"])
    func badFileNames(name: String) {
        let error = validationError(JobRequest(language: "c", files: [FileInput(name: "main.c", content: ""), FileInput(name: name, content: "")]))
        #expect(error?.code == .invalidFileName)
        #expect(error?.field == "files[1].name")
    }

    @Test func duplicateFileNames() {
        let error = validationError(JobRequest(language: "c", files: [FileInput(name: "main.c", content: ""), FileInput(name: "main.c", content: "")]))
        #expect(error?.code == .duplicateFileName)
        #expect(error?.field == "files[1].name")
    }

    @Test func filesAndSourceAreExclusiveAndOneIsRequired() {
        #expect(validationError(JobRequest(language: "c", files: [FileInput(name: "main.c", content: "")], source: ""))?.field == "source")
        #expect(validationError(JobRequest(language: "c"))?.code == .missingField)
        #expect(validationError(JobRequest(language: "c", files: []))?.code == .invalidValue)
    }

    @Test func compiledEntryNeedsASourceExtension() {
        let error = validationError(JobRequest(language: "c", files: [FileInput(name: "prog.txt", content: "")]))
        #expect(error?.code == .invalidFileName)
    }

    @Test func tooManyFilesAndTests() {
        var limits = ServerLimits.standard
        limits.maximumFiles = 2
        limits.maximumTests = 1
        let strict = JobRequestValidator(registry: validator.registry, limits: limits)
        let files = (1...3).map { FileInput(name: "f\($0).c", content: "") }
        #expect(throws: APIError(.tooManyFiles, "3 files sent; the maximum is 2", field: "files")) {
            _ = try strict.validate(JobRequest(language: "c", files: files))
        }
        #expect(throws: APIError(.tooManyTests, "2 tests sent; the maximum is 1", field: "tests")) {
            _ = try strict.validate(JobRequest(language: "c", source: "", tests: [TestInput(), TestInput()]))
        }
    }

    @Test func archivesAreCappedAndMustBeBase64() {
        var limits = ServerLimits.standard
        limits.maximumArchiveBytes = 8
        let strict = JobRequestValidator(registry: validator.registry, limits: limits, archivePython: "/usr/bin/python3")
        let eightBytes = Data("PK\u{3}\u{4}abcd".utf8).base64EncodedString()
        let nineBytes = Data("PK\u{3}\u{4}abcde".utf8).base64EncodedString()
        #expect((try? strict.validate(JobRequest(language: "c", source: "", archive: eightBytes))) != nil)
        #expect(throws: APIError(.tooLarge, "archive is larger than the maximum of 8 bytes", field: "archive")) {
            _ = try strict.validate(JobRequest(language: "c", source: "", archive: nineBytes))
        }
        #expect(throws: APIError(.invalidValue, "archive must be a non-empty zip file in base64", field: "archive")) {
            _ = try strict.validate(JobRequest(language: "c", source: "", archive: "not base64!"))
        }
    }

    @Test func sizeCaps() {
        var limits = ServerLimits.standard
        limits.maximumSourceBytes = 10
        limits.maximumStdinBytes = 4
        limits.maximumExpectedOutputBytes = 4
        let strict = JobRequestValidator(registry: validator.registry, limits: limits)
        #expect(throws: APIError.self) { _ = try strict.validate(JobRequest(language: "c", source: String(repeating: "x", count: 11))) }
        do {
            _ = try strict.validate(JobRequest(language: "c", source: "", stdin: "12345"))
            Issue.record("expected too_large")
        } catch {
            #expect(error.code == .tooLarge)
            #expect(error.field == "stdin")
        }
        do {
            _ = try strict.validate(JobRequest(language: "c", source: "", tests: [TestInput(), TestInput(expectedOutput: "12345")]))
            Issue.record("expected too_large")
        } catch {
            #expect(error.field == "tests[1].expected_output")
        }
    }

    @Test func limitOverMaximumNamesTheMaximum() {
        let error = validationError(JobRequest(language: "c", source: "", limits: LimitsInput(cpuTimeMs: 100_000)))
        #expect(error == APIError(.limitExceedsMaximum, "limits.cpu_time_ms is 100000 but the maximum is 20000", field: "limits.cpu_time_ms"))
        #expect(error?.httpStatus == 422)
        #expect(validationError(JobRequest(language: "c", source: "", limits: LimitsInput(memoryBytes: 0)))?.code == .invalidValue)
        #expect(validationError(JobRequest(language: "c", source: "", limits: LimitsInput(network: true)))?.field == "limits.network")
    }

    @Test func wallTimeDefaultsToTwiceCPUTime() throws {
        let job = try validator.validate(JobRequest(language: "c", source: "", limits: LimitsInput(cpuTimeMs: 4_000)))
        #expect(job.runLimits.cpuTimeMs == 4_000)
        #expect(job.runLimits.wallTimeMs == 8_000)
        let capped = try validator.validate(JobRequest(language: "c", source: "", limits: LimitsInput(cpuTimeMs: 20_000)))
        #expect(capped.runLimits.wallTimeMs == 40_000)
    }

    @Test func compileOptionOutsideTheAllowList() {
        let error = validationError(JobRequest(language: "c", source: "", compileOptions: ["-O2", "-o/etc/x"]))
        #expect(error?.code == .compileOptionNotAllowed)
        #expect(error?.field == "compile_options[1]")
        #expect(error?.message.contains("-o/etc/x") == true)
        #expect(validationError(JobRequest(language: "bash", source: "", compileOptions: ["-x"]))?.code == .compileOptionNotAllowed)
    }

    @Test func testsInheritStdinAndGetNames() throws {
        let job = try validator.validate(JobRequest(
            language: "python3", source: "", stdin: "shared",
            tests: [TestInput(expectedOutput: "1"), TestInput(name: "own", stdin: "mine", points: 0)]))
        #expect(job.tests == [
            TestCaseSpec(name: "1", stdin: Array("shared".utf8), expectedOutput: Array("1".utf8), points: 1),
            TestCaseSpec(name: "own", stdin: Array("mine".utf8), expectedOutput: nil, points: 0),
        ])
        #expect(validationError(JobRequest(language: "python3", source: "", tests: []))?.field == "tests")
        #expect(validationError(JobRequest(language: "python3", source: "", tests: [TestInput(points: -1)]))?.field == "tests[0].points")
    }

    @Test func comparisonValidation() throws {
        let job = try validator.validate(JobRequest(language: "python3", source: "", compare: CompareSpec(mode: .float, tolerance: 1e-3)))
        #expect(job.comparison == OutputComparison(mode: .float, tolerance: 1e-3))
        #expect(validationError(JobRequest(language: "python3", source: "", compare: CompareSpec(mode: .exact, tolerance: 1)))?.field
            == "compare.tolerance")
        #expect(validationError(JobRequest(language: "python3", source: "", compare: CompareSpec(mode: .float, tolerance: -1)))?.field
            == "compare.tolerance")
    }

    @Test func callbackURLMustBeHTTP() throws {
        #expect(try validator.validate(JobRequest(language: "python3", source: "", callbackURL: "https://a.example/x")).callbackURL
            == URL(string: "https://a.example/x"))
        for bad in ["ftp://a.example/x", "/relative", "https://", "not a url", "http://a.example:99999/x", "http://a.example:0/x"] {
            #expect(validationError(JobRequest(language: "python3", source: "", callbackURL: bad))?.field == "callback_url", "\(bad)")
        }
    }

    @Test func metadataAndPriorityCaps() {
        var limits = ServerLimits.standard
        limits.maximumMetadataBytes = 8
        let strict = JobRequestValidator(registry: validator.registry, limits: limits)
        #expect(throws: APIError.self) {
            _ = try strict.validate(JobRequest(language: "python3", source: "", metadata: .string("far too long")))
        }
        #expect(validationError(JobRequest(language: "python3", source: "", priority: 101))?.field == "priority")
    }

    @Test func argumentsWithNULAreRefused() {
        #expect(validationError(JobRequest(language: "python3", source: "", args: ["ok", "a\u{0}b"]))?.field == "args[1]")
    }
}
