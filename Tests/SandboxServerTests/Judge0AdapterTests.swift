import Foundation
import HTTPCore
import JobStore
import Testing

@testable import SandboxServer

/// The Judge0 adapter's mapping rules, in-process: encodings, statuses, fields, validation,
/// argument splitting and the routes' bodies and codes (no sandbox: jobs stay queued).
@Suite struct Judge0EncodingTests {
    @Test func base64IsMIMEWrappedOnOutput() {
        #expect(Judge0Base64.encode(Array("hello, Judge0\n".utf8)) == "aGVsbG8sIEp1ZGdlMAo=\n")
        #expect(Judge0Base64.encode([]) == "")
        let long = Judge0Base64.encode([UInt8](repeating: 65, count: 100))
        let lines = long.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 4 && lines[0].count == 60 && lines[1].count == 60 && lines[3].isEmpty)
    }

    @Test func base64InputIsDecodedLeniently() {
        let expected = Array("hello, Judge0\n".utf8)
        #expect(Judge0Base64.decode("aGVsbG8sIEp1ZGdlMAo=") == expected)
        #expect(Judge0Base64.decode("aGVsbG8sIEp1\nZGdlMAo=\n") == expected)
        #expect(Judge0Base64.decode("aGVsbG8sIEp1ZGdlMAo") == expected, "missing padding")
        #expect(Judge0Base64.decode(" aGVs bG8s*IEp1ZGdlMAo= trailing") == expected, "junk skipped, stops at =")
        #expect(Judge0Base64.decode("-_8=") == [0xFB, 0xFF], "URL-safe alphabet")
        #expect(Judge0Base64.decode("") == [])
    }

    @Test func decimalsAreStringsWithRailsSpelling() {
        #expect(Judge0Format.seconds(milliseconds: 2000) == "2.0")
        #expect(Judge0Format.seconds(milliseconds: 282) == "0.282")
        #expect(Judge0Format.seconds(milliseconds: 1500) == "1.5")
        #expect(Judge0Format.seconds(milliseconds: 5) == "0.005")
        #expect(Judge0Format.seconds(milliseconds: 0) == "0.0")
    }

    @Test func jsonKeepsKeyOrderAndNumberKinds() {
        let value = Judge0JSON.object([("b", .integer(380)), ("a", .float(5)), ("c", .string("x\"\n\u{1}\u{8}\u{C}/")), ("d", .null),
                                       ("e", .array([.bool(true), .float(0.1), .object([])]))])
        // Ruby's JSON (and the native API's writer) escape \b and \f short, and leave / alone.
        #expect(String(decoding: value.bytes, as: UTF8.self) == #"{"b":380,"a":5.0,"c":"x\"\n\u0001\b\f/","d":null,"e":[true,0.1,{}]}"#)
    }

    @Test func datetimesHaveMillisecondsAndZ() {
        let date = Date(timeIntervalSince1970: 1_712_122_851.306)
        #expect(Judge0Format.datetime(date) == .string("2024-04-03T05:40:51.306Z"))
    }
}

@Suite struct Judge0ArgumentSplitterTests {
    @Test func splitsLikeAShell() throws {
        #expect(try Judge0ArgumentSplitter.split("  -O2   -Wall ") == ["-O2", "-Wall"])
        #expect(try Judge0ArgumentSplitter.split(#"a 'b c' "d \"e\" $" f\ g"#.replacingOccurrences(of: "$", with: "")) == ["a", "b c", "d \"e\" ", "f g"])
        #expect(try Judge0ArgumentSplitter.split(#"'it''s' "" x"#) == ["its", "", "x"])
        #expect(try Judge0ArgumentSplitter.split("") == [])
        #expect(try Judge0ArgumentSplitter.split("'$HOME; rm -rf /'") == ["$HOME; rm -rf /"], "single quotes are literal")
    }

    @Test func refusesWhatOnlyAShellCouldDo() {
        #expect(throws: Judge0ArgumentSplitter.SplitError.shellSyntax(";")) { try Judge0ArgumentSplitter.split("a; rm -rf /") }
        #expect(throws: Judge0ArgumentSplitter.SplitError.shellSyntax("$")) { try Judge0ArgumentSplitter.split("$HOME") }
        #expect(throws: Judge0ArgumentSplitter.SplitError.shellSyntax("`")) { try Judge0ArgumentSplitter.split("\"`id`\"") }
        #expect(throws: Judge0ArgumentSplitter.SplitError.shellSyntax(">")) { try Judge0ArgumentSplitter.split("x >/tmp/y") }
        #expect(throws: Judge0ArgumentSplitter.SplitError.controlCharacter) { try Judge0ArgumentSplitter.split("-O2\n-lm") }
        #expect(throws: Judge0ArgumentSplitter.SplitError.unbalancedQuote) { try Judge0ArgumentSplitter.split("'open") }
        #expect(throws: Judge0ArgumentSplitter.SplitError.trailingBackslash) { try Judge0ArgumentSplitter.split("x \\") }
    }
}

/// Views built from graded runs, as the runner would store them.
private typealias ServiceVerdict = SandboxServer.Verdict

private func finishedView(_ grades: [(ServiceVerdict, RunOutcome?)], compile: RunOutcome? = nil, verdict: ServiceVerdict? = nil,
                          metadata: JSONValue? = nil) -> JobView {
    var tests: [TestResultView] = []
    for (index, entry) in grades.enumerated() {
        let (testVerdict, run) = entry
        let grade = TestGrade(name: String(index + 1), verdict: testVerdict, points: 1,
                              pointsAwarded: testVerdict == .accepted ? 1 : 0, outcome: run,
                              message: testVerdict == .timeLimitExceeded ? run?.message : nil)
        tests.append(TestResultView(grade: grade))
    }
    let firstFailure: ServiceVerdict? = grades.first { $0.0 != .accepted }?.0
    let jobVerdict: ServiceVerdict = verdict ?? firstFailure ?? .accepted
    var view = JobView(id: "job1", state: .finished, language: "c", verdict: jobVerdict,
                       tests: tests, maxScore: grades.count, metadata: metadata, createdAt: Date(timeIntervalSince1970: 1000),
                       finishedAt: Date(timeIntervalSince1970: 1001))
    view.compile = compile.map(CompileView.init(outcome:))
    return view
}

private func outcome(_ status: RunOutcome.Status, exit: Int? = 0, signal: Int? = nil, stdout: String = "", stderr: String = "",
                     cpuMs: Int = 10, memory: Int = 4096 * 1024, message: String? = nil) -> RunOutcome {
    RunOutcome(status: status, exitCode: exit, signal: signal, cpuTime: .milliseconds(cpuMs), wallTime: .milliseconds(cpuMs * 2),
               memoryBytes: memory, stdout: Array(stdout.utf8), stderr: Array(stderr.utf8), message: message)
}

@Suite struct Judge0StatusTests {
    @Test func queuedAndRunningAreOneAndTwo() {
        let queued = JobView(id: "a", state: .queued, language: "c", maxScore: 1, createdAt: Date())
        #expect(Judge0Outcome(view: queued).status == .inQueue)
        var running = queued
        running.state = .running
        #expect(Judge0Outcome(view: running).status == .processing)
    }

    @Test func verdictsMapToJudge0Ids() {
        #expect(Judge0Outcome(view: finishedView([(.accepted, outcome(.ok))])).status == .accepted)
        #expect(Judge0Outcome(view: finishedView([(.wrongAnswer, outcome(.ok, stdout: "41\n"))])).status == .wrongAnswer)
        let tle = Judge0Outcome(view: finishedView([(.timeLimitExceeded, outcome(.timeLimit, exit: nil, signal: 9, message: "CPU time limit exceeded"))]))
        #expect(tle == Judge0Outcome(status: .timeLimitExceeded, message: "Time limit exceeded"))
        let wall = Judge0Outcome(view: finishedView([(.timeLimitExceeded, outcome(.timeLimit, exit: nil, message: "wall time limit exceeded"))]))
        #expect(wall.message == "Time limit exceeded (wall clock)")
        let compile = finishedView([(.skipped, nil)], compile: outcome(.ok, exit: 1, stderr: "error: x"), verdict: .compileError)
        #expect(Judge0Outcome(view: compile).status == .compilationError)
    }

    @Test func signalsHaveTheirOwnIdsAndSegfaultIsNotNZEC() {
        func status(signal: Int) -> Judge0Status {
            Judge0Outcome(view: finishedView([(.runtimeError, outcome(.signaled, exit: nil, signal: signal))])).status
        }
        #expect(status(signal: 11) == .runtimeErrorSIGSEGV)
        #expect(status(signal: 25) == .runtimeErrorSIGXFSZ)
        #expect(status(signal: 8) == .runtimeErrorSIGFPE)
        #expect(status(signal: 6) == .runtimeErrorSIGABRT)
        #expect(status(signal: 9) == .runtimeErrorOther)
        let nzec = Judge0Outcome(view: finishedView([(.runtimeError, outcome(.runtimeError, exit: 3))]))
        #expect(nzec == Judge0Outcome(status: .runtimeErrorNZEC, message: "Exited with error status 3"))
    }

    @Test func memoryLimitSaysSoInMessage() {
        let view = finishedView([(.memoryLimitExceeded, outcome(.memoryLimit, exit: nil, signal: 9))])
        #expect(Judge0Outcome(view: view) == Judge0Outcome(status: .runtimeErrorOther, message: "Memory limit exceeded"))
    }

    @Test func firstFailingRunDecidesAndTimesAreAveraged() throws {
        let settings = Judge0SubmissionSettings(
            languageID: 50, cpuTimeLimitMs: 5000, cpuExtraTimeMs: 1000, wallTimeLimitMs: 10000, memoryLimitKB: 128_000,
            stackLimitKB: 64_000, maxProcessesAndOrThreads: 60, maxFileSizeKB: 1024, numberOfRuns: 3,
            redirectStderrToStdout: false, enableNetwork: false, compilerOptions: nil, commandLineArguments: nil,
            callbackURL: nil, hasExpectedOutput: false)
        let view = finishedView([(.accepted, outcome(.ok, stdout: "a", cpuMs: 10, memory: 2048 * 1024)),
                                 (.runtimeError, outcome(.runtimeError, exit: 2, stdout: "b", cpuMs: 30, memory: 4096 * 1024)),
                                 (.skipped, nil)], metadata: settings.metadata)
        let rendered = try Judge0SubmissionView(view: view, request: nil, settings: settings, language: (50, "C (GCC 12.2.0)"))
            .render(fields: ["stdout", "time", "memory", "exit_code", "status_id", "number_of_runs"], base64Encoded: false)
        #expect(rendered == .object([("stdout", .string("b")), ("time", .string("0.02")), ("memory", .integer(3072)),
                                     ("exit_code", .integer(2)), ("status_id", .integer(11)), ("number_of_runs", .integer(3))]))
    }

    @Test func statusesListHasFourteenEntries() {
        #expect(Judge0Status.allCases.map(\.rawValue) == Array(1...14))
        #expect(Judge0Status.runtimeErrorSIGSEGV.description == "Runtime Error (SIGSEGV)")
    }
}

@Suite struct Judge0FieldsTests {
    @Test func defaultStarAndInvalidFields() throws {
        #expect(try Judge0SubmissionView.selectedFields(nil) == ["token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"])
        #expect(try Judge0SubmissionView.selectedFields("*").count == 35)
        #expect(try Judge0SubmissionView.selectedFields("stdout, status_id") == ["stdout", "status_id"])
        #expect(throws: Judge0SubmissionView.RenderError.invalidFields(["foo", "bar"])) {
            try Judge0SubmissionView.selectedFields("stdout,foo,bar")
        }
    }

    @Test func starRendersExactlyTheV1131KeySetAndEmptyOutputIsNull() throws {
        let view = finishedView([(.accepted, outcome(.ok, stdout: "", stderr: ""))])
        let rendered = try Judge0SubmissionView(view: view, request: nil, settings: nil, language: nil)
            .render(fields: Judge0SubmissionView.allFields, base64Encoded: true)
        guard case .object(let pairs) = rendered else { Issue.record("not an object"); return }
        #expect(pairs.map(\.0) == Judge0SubmissionView.allFields)
        #expect(Set(pairs.map(\.0)).count == 35)
        #expect(rendered["stdout"] == .null)
        #expect(rendered["created_at"] == .string("1970-01-01T00:16:40.000Z"))
        #expect(rendered["status"] == .object([("id", .integer(3)), ("description", .string("Accepted"))]))
    }

    @Test func textIsBase64OnRequestAndNonUTF8IsRefusedOtherwise() throws {
        var run = outcome(.ok)
        run.stdout = [0xFF, 0xFE, 0x0A]
        let view = finishedView([(.accepted, run)])
        let submission = Judge0SubmissionView(view: view, request: nil, settings: nil, language: nil)
        #expect(try submission.render(fields: ["stdout", "message"], base64Encoded: true)
            == .object([("stdout", .string("//4K\n")), ("message", .null)]))
        #expect(throws: Judge0SubmissionView.RenderError.notUTF8) { try submission.render(fields: ["stdout"], base64Encoded: false) }
    }

    /// A native job whose file came MIME-wrapped (accepted since) shows its source to Judge0 too.
    @Test func wrappedBase64SourceIsShown() throws {
        let source = String(repeating: "print('wrapped base64')\n", count: 5)
        let wrapped = Data(source.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
        #expect(wrapped.contains("\n"))
        let request = JobRequest(language: "python3", files: [FileInput(name: "main.py", content: wrapped, encoding: .base64)])
        let view = finishedView([(.accepted, outcome(.ok))])
        let rendered = try Judge0SubmissionView(view: view, request: request, settings: nil, language: nil)
            .render(fields: ["source_code"], base64Encoded: false)
        #expect(rendered["source_code"] == .string(source))
    }
}

@Suite struct Judge0RequestMapperTests {
    let mapper: Judge0RequestMapper = {
        let registry = try! LanguageRegistry.embedded()
        var table: [Int: LanguageDefinition] = [:]
        for language in registry.languages { for alias in language.judge0 { table[alias.id] = language } }
        return Judge0RequestMapper(configuration: Judge0Configuration(), languages: table)
    }()

    func map(_ fields: [String: JSONValue], base64: Bool = false) throws(Judge0ValidationErrors) -> JobRequest {
        try mapper.map(try Judge0SubmissionRequest(fields: fields, base64Encoded: base64))
    }

    @Test func defaultsBecomeNativeLimitsAndOneRun() throws {
        let request = try map(["source_code": .string("print(1)"), "language_id": .number(71)])
        #expect(request.language == "python3")
        #expect(request.limits == LimitsInput(cpuTimeMs: 5000, wallTimeMs: 10_000, memoryBytes: 128_000 * 1024, processes: 60,
                                              outputBytes: 1024 * 1024, fileSizeBytes: 1024 * 1024, network: false))
        #expect(request.tests == [TestInput(stdin: nil, expectedOutput: nil)])
        #expect(request.compare == CompareSpec(mode: .trailingWhitespace))
        #expect(request.files?.first?.name == "main.py" || request.files?.first?.encoding == .base64)
        #expect(Judge0SubmissionSettings(metadata: request.metadata)?.languageID == 71)
    }

    @Test func base64FieldsAndStringNumbersAreAccepted() throws {
        let request = try map(["source_code": .string("cHJpbnQoMSk=\n"), "language_id": .string("71"), "stdin": .string("eA=="),
                               "expected_output": .string("MQ"), "cpu_time_limit": .string("1.5"), "number_of_runs": .number(3),
                               "command_line_arguments": .string("a 'b c'")], base64: true)
        #expect(request.files?.first?.content == Data("print(1)".utf8).base64EncodedString())
        #expect(request.stdin == "x")
        #expect(request.limits?.cpuTimeMs == 1500)
        #expect(request.args == ["a", "b c"])
        #expect(request.tests?.count == 3 && request.tests?.allSatisfy { $0.expectedOutput == "1" } == true)
        #expect(request.stopOnFirstFailure == true)
    }

    @Test func multiFileProgramCarriesTheArchiveAndTheExtractor() throws {
        let registry = try LanguageRegistry.embedded()
        let available = registry.languages.map { LanguageAvailability(language: $0, version: "1.0.0", unavailableReason: nil) }
        let (extended, _) = Judge0MultiFileProgram.including(registry: registry, languages: available)
        var table: [Int: LanguageDefinition] = [:]
        for language in extended.languages { for alias in language.judge0 { table[alias.id] = language } }
        let mapper = Judge0RequestMapper(configuration: Judge0Configuration(), languages: table)
        let request = try mapper.map(try Judge0SubmissionRequest(
            fields: ["language_id": .number(89), "additional_files": .string("UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\n")], base64Encoded: false))
        #expect(request.language == "judge0-multi-file")
        #expect(request.files?.map(\.name) == ["additional_files.zip", "judge0_extract.py"])
        #expect(request.files?.first?.content == "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==")
        // The native validator accepts it: the compile step unpacks inside the box.
        let validated = try JobRequestValidator(registry: extended, limits: .standard).validate(request)
        #expect(validated.compileCommand?.first == "/usr/bin/bash" && validated.runCommand == ["/usr/bin/bash", "run"])
        #expect(throws: Judge0ValidationErrors.self) {
            try mapper.map(try Judge0SubmissionRequest(fields: ["language_id": .number(89), "source_code": .string("x")], base64Encoded: false))
        }
        // Any other language: the source stays the program and the zip becomes the native archive.
        let python = try mapper.map(try Judge0SubmissionRequest(
            fields: ["language_id": .number(71), "source_code": .string("x"), "additional_files": .string("UEsFBg==\n")], base64Encoded: false))
        #expect(python.files?.map(\.name) == ["main.py"])
        #expect(python.archive == "UEsFBg==")
        let withPython = try JobRequestValidator(registry: extended, limits: .standard, archivePython: "/usr/bin/python3").validate(python)
        #expect(withPython.archive == JobArchive(bytes: [0x50, 0x4B, 0x05, 0x06], python: "/usr/bin/python3"))
        #expect(withPython.archive?.command == ["/usr/bin/python3", "-I", "-B", JobArchive.extractorName, JobArchive.archiveName])
        // Without Python on the server there is nothing to unpack it with.
        let refused = #expect(throws: APIError.self) { try JobRequestValidator(registry: extended, limits: .standard).validate(python) }
        #expect(refused?.field == "archive" && refused?.httpStatus == 422)
        let empty = try mapper.map(try Judge0SubmissionRequest(
            fields: ["language_id": .number(71), "source_code": .string("x"), "additional_files": .string("")], base64Encoded: false))
        #expect(empty.archive == nil, "an empty additional_files is none")
    }

    @Test func anArchiveFailsTheJobLikeACompileErrorWithTheExtractorsMessage() {
        func outcome(_ status: RunOutcome.Status, exit: Int?, stderr: String) -> RunOutcome {
            RunOutcome(status: status, exitCode: exit, signal: nil, cpuTime: .zero, wallTime: .zero, memoryBytes: 0,
                       stdout: [], stderr: Array(stderr.utf8), stdoutTruncated: false, stderrTruncated: false, message: nil)
        }
        #expect(JobArchive.judge(outcome(.ok, exit: 0, stderr: "")) == .succeeded)
        #expect(JobArchive.judge(outcome(.runtimeError, exit: 1, stderr: "archive: unsafe path '../x'\n"))
                == .compileError(message: "the archive could not be unpacked: archive: unsafe path '../x'"))
        #expect(JobArchive.judge(outcome(.timeLimit, exit: nil, stderr: "")) != .succeeded)
        if case .internalError = JobArchive.judge(outcome(.internalError, exit: nil, stderr: "")) {} else {
            Issue.record("a sandbox failure is the server's fault, not the archive's")
        }
    }

    @Test func hugeNumbersWhereTextIsExpectedDoNotTrap() throws {
        let request = try map(["source_code": .string("x"), "language_id": .number(71), "command_line_arguments": .number(1e300)])
        #expect(request.args?.count == 1)
    }

    @Test func validationUsesJudge0FieldsAndMessages() {
        do {
            _ = try map(["source_code": .string("  "), "language_id": .number(9999), "cpu_time_limit": .number(16),
                         "memory_limit": .number(100), "wall_time_limit": .string("abc"), "compiler_options": .string("-O2; id")])
            Issue.record("expected errors")
        } catch {
            #expect(error.json == .object([("wall_time_limit", .array([.string("is not a number")]))]), "type errors come first")
        }
        do {
            _ = try map(["source_code": .string("  "), "language_id": .number(9999), "cpu_time_limit": .number(16),
                         "memory_limit": .number(100), "number_of_runs": .number(0)])
            Issue.record("expected errors")
        } catch {
            #expect(error.json == .object([
                ("language_id", .array([.string("language with id 9999 doesn't exist")])),
                ("source_code", .array([.string("can't be blank")])),
                ("cpu_time_limit", .array([.string("must be less than or equal to 15.0")])),
                ("memory_limit", .array([.string("must be greater than or equal to 2048")])),
                ("number_of_runs", .array([.string("must be greater than 0")])),
            ]))
        }
        #expect(throws: Judge0ValidationErrors.self) {
            try map(["source_code": .string("int main(){}"), "language_id": .number(50), "compiler_options": .string("-O2\n-lm")])
        }
        #expect(throws: Judge0ValidationErrors.self) {
            try map(["source_code": .string("x"), "language_id": .number(71), "enable_network": .bool(true)])
        }
        #expect(throws: Judge0ValidationErrors.self) {
            try map(["source_code": .string("x"), "language_id": .number(71), "enable_per_process_and_thread_time_limit": .bool(true)])
        }
    }
}

/// The routes against a real store with no runners: bodies, codes, key sets.
@Suite struct Judge0RoutesTests {
    let directory = NSTemporaryDirectory() + "judge0-routes-\(getpid())-\(UUID().uuidString)"
    let transport: InProcessTransport

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try SQLiteJobStore(path: directory + "/jobs.sqlite3")
        let registry = try LanguageRegistry.embedded()
        let available = registry.languages.filter { ["c", "python3"].contains($0.id) }
            .map { LanguageAvailability(language: $0, version: $0.id == "c" ? "12.2.0" : "3.11.2", unavailableReason: nil) }
        let service = JobService(store: store, validator: JobRequestValidator(
            registry: registry.restricted(to: Set(available.map(\.language.id))), limits: .standard),
            configuration: JobService.Configuration(maxQueuedJobs: 3))
        var configuration = Judge0Configuration()
        configuration.maxQueueSize = 3
        let routes = Judge0Routes(service: service, authenticator: Authenticator(keys: []), configuration: configuration,
                                  languages: available, workers: 2)
        transport = InProcessTransport(router: routes.makeRouter())
    }

    func jsonArray(_ response: TestResponse) -> [Any] { (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [Any] ?? [] }

    @Test func informationalRoutes() async throws {
        let config = try await transport.get("/config_info")
        #expect(config.status == 200 && config.json.count == 39)
        #expect(config.json["use_docs_as_homepage"] as? Bool == false)
        #expect(config.text.contains(#""cpu_time_limit":5.0"#))
        let statuses = jsonArray(try await transport.get("/statuses"))
        #expect(statuses.count == 14)
        #expect(try await transport.get("/about").json["version"] as? String == "1.13.1")
        let languages = jsonArray(try await transport.get("/languages")) as? [[String: Any]] ?? []
        // 48 and 49 are older C compilers of Judge0's list, served by the same gcc.
        #expect(languages.map { $0["id"] as? Int } == [48, 49, 50, 71])
        #expect(languages.first?["name"] as? String == "C (GCC 12.2.0)")
        #expect(try await transport.get("/languages/71").json["source_file"] as? String == "main.py")
        #expect(try await transport.get("/languages/9999").status == 404)
        let workers = jsonArray(try await transport.get("/workers")) as? [[String: Any]] ?? []
        #expect(workers.first?["failed"] as? Int == 0 && workers.first?["available"] as? Int == 2)
        #expect(try await transport.get("/system_info").json["CPU(s)"] != nil)
        #expect(try await transport.send(.POST, "/authenticate", body: nil, headers: [:]).status == 200)
        let preflight = try await transport.send(.OPTIONS, "/submissions/abc", body: nil, headers: ["Origin": "https://ide.example"])
        #expect(preflight.status == 204 && preflight.headers["access-control-allow-origin"] == "*")
        #expect(preflight.headers["access-control-allow-headers"]?.contains("X-Auth-Token") == true)
        #expect(config.headers["access-control-allow-origin"] == "*")
    }

    @Test func createReadAndFields() async throws {
        let created = try await transport.post("/submissions", #"{"source_code":"print(1)","language_id":71,"stdin":"x","ignored":true}"#)
        #expect(created.status == 201)
        let token = try #require(created.json["token"] as? String)
        #expect(created.json.count == 1)
        let read = try await transport.get("/submissions/\(token)")
        #expect(Set(read.json.keys) == ["token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"])
        #expect((read.json["status"] as? [String: Any])?["id"] as? Int == 1)
        let all = try await transport.get("/submissions/\(token)?fields=*&base64_encoded=true")
        #expect(all.json.count == 35)
        #expect(all.json["source_code"] as? String == "cHJpbnQoMSk=\n")
        #expect(all.json["cpu_time_limit"] as? String == "5.0")
        let language = all.json["language"] as? [String: Any]
        #expect(language?.count == 2 && language?["id"] as? Int == 71 && language?["name"] as? String == "Python (3.11.2)")
        let bad = try await transport.get("/submissions/\(token)?fields=stdout,nope")
        #expect(bad.status == 400 && bad.json["error"] as? String == "invalid fields: [nope]")
        #expect(try await transport.get("/submissions/unknown-token").status == 404)
    }

    @Test func validationErrorsAre422WithFieldArrays() async throws {
        let response = try await transport.post("/submissions", #"{"source_code":"","language_id":12345}"#)
        #expect(response.status == 422)
        #expect(response.json["language_id"] as? [String] == ["language with id 12345 doesn't exist"])
        #expect(response.json["source_code"] as? [String] == ["can't be blank"])
        // This service was built without Python for archives: a clear 422 on additional_files.
        let archive = try await transport.post("/submissions", #"{"source_code":"print(1)","language_id":71,"additional_files":"UEsFBg=="}"#)
        #expect(archive.status == 422)
        #expect((archive.json["additional_files"] as? [String])?.first?.contains("no python3") == true, "\(archive)")
    }

    @Test func batchesKeepOrderAndLimits() async throws {
        let body = #"{"submissions":[{"source_code":"print(1)","language_id":71},{"language_id":71},{"source_code":"int main(){}","language_id":50}]}"#
        let created = try await transport.post("/submissions/batch", body)
        #expect(created.status == 201)
        let items = jsonArray(created) as? [[String: Any]] ?? []
        #expect(items.count == 3)
        #expect(items[0]["token"] != nil && items[2]["token"] != nil)
        #expect(items[1]["source_code"] as? [String] == ["can't be blank"])
        let tokens = [items[0]["token"] as? String ?? "", "missing", items[2]["token"] as? String ?? ""].joined(separator: ",")
        let read = try await transport.get("/submissions/batch?tokens=\(tokens)&fields=token,status_id")
        let submissions = read.json["submissions"] as? [Any] ?? []
        #expect(submissions.count == 3 && submissions[1] is NSNull)
        #expect((submissions[0] as? [String: Any])?["status_id"] as? Int == 1)
        let tooMany = "{\"submissions\":[" + Array(repeating: #"{"source_code":"x","language_id":71}"#, count: 21).joined(separator: ",") + "]}"
        let refused = try await transport.post("/submissions/batch", tooMany)
        #expect(refused.status == 400 && refused.json["error"] as? String == "number of submissions in a batch should be less than or equal to 20")
        #expect(try await transport.post("/submissions/batch", #"{"submissions":[]}"#).json["error"] as? String
            == "there should be at least one submission in a batch")
        #expect(try await transport.post("/submissions/batch", #"{"submissions":[{"language_id":71}]}"#).status == 422)
    }

    @Test func fullQueueIs503() async throws {
        for _ in 0..<3 { #expect(try await transport.post("/submissions", #"{"source_code":"x","language_id":71}"#).status == 201) }
        let full = try await transport.post("/submissions", #"{"source_code":"x","language_id":71}"#)
        #expect(full.status == 503 && full.json["error"] as? String == "queue is full")
    }

    @Test func listPagesAndDeleteOfQueuedIsRefused() async throws {
        let token = try #require(try await transport.post("/submissions", #"{"source_code":"x","language_id":71}"#).json["token"] as? String)
        _ = try await transport.post("/submissions", #"{"source_code":"y","language_id":71}"#)
        let page = try await transport.get("/submissions?per_page=1&page=2&fields=token")
        #expect(page.status == 200)
        #expect((page.json["submissions"] as? [[String: Any]])?.first?["token"] as? String == token, "newest first")
        let meta = page.json["meta"] as? [String: Any] ?? [:]
        #expect(meta["current_page"] as? Int == 2 && meta["next_page"] is NSNull && meta["prev_page"] as? Int == 1)
        #expect(meta["total_pages"] as? Int == 2 && meta["total_count"] as? Int == 2)
        #expect(try await transport.get("/submissions?page=-4").json["error"] as? String == "invalid page: -4")
        let far = try await transport.get("/submissions?page=9223372036854775807&per_page=100")
        #expect(far.status == 200 && (far.json["submissions"] as? [Any])?.isEmpty == true, "a page past the end, no overflow")
        let delete = try await transport.delete("/submissions/\(token)")
        #expect(delete.status == 400 && delete.json["error"] as? String == "submission cannot be deleted because its status is 1 (In Queue)")
    }

    @Test func keysAreCheckedWithEmptyBodies() async throws {
        let store = try SQLiteJobStore(path: directory + "/auth.sqlite3")
        let service = JobService(store: store, validator: JobRequestValidator(registry: try LanguageRegistry.embedded(), limits: .standard))
        let routes = Judge0Routes(service: service, authenticator: Authenticator(keys: [APIKey(key: "user-key", role: .user),
                                                                                         APIKey(key: "admin-key", role: .admin)]),
                                  configuration: Judge0Configuration(), languages: [], workers: 1)
        let secured = InProcessTransport(router: routes.makeRouter())
        let missing = try await secured.get("/statuses")
        #expect(missing.status == 401 && missing.body.isEmpty)
        #expect(try await secured.get("/statuses", headers: ["X-Auth-Token": "user-key"]).status == 200)
        #expect(try await secured.get("/statuses?X-Auth-Token=user-key").status == 200)
        let forbidden = try await secured.send(.POST, "/authorize", body: nil, headers: ["X-Auth-Token": "user-key", "X-Auth-User": "user-key"])
        #expect(forbidden.status == 403 && forbidden.body.isEmpty)
        #expect(try await secured.send(.POST, "/authorize", body: nil, headers: ["X-Auth-Token": "user-key", "X-Auth-User": "admin-key"]).status == 200)
        // /statistics is one of Judge0's informational routes: authentication only.
        #expect(try await secured.get("/statistics").status == 401)
        #expect(try await secured.get("/statistics", headers: ["X-Auth-Token": "user-key"]).status == 200)
    }

    @Test func statisticsHaveJudge0sShapeAndAreCachedUntilInvalidated() async throws {
        for _ in 0..<2 {
            #expect(try await transport.post("/submissions", #"{"source_code":"print(1)","language_id":71}"#).status == 201)
        }
        let response = try await transport.get("/statistics")
        #expect(response.status == 200)
        // Judge0's keys, in Judge0's order.
        let keys = ["created_at", "cached_until", "submissions", "languages", "statuses", "database"]
        let positions = keys.map { response.text.range(of: "\"\($0)\":")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil } && positions.map { $0! } == positions.map { $0! }.sorted(), "\(response)")
        #expect(Set(response.json.keys) == Set(keys))
        #expect(response.text.hasPrefix(#"{"created_at":""#))

        let submissions = try #require(response.json["submissions"] as? [String: Any])
        #expect(submissions["total"] as? Int == 2 && submissions["today"] as? Int == 2)
        let perDay = try #require(submissions["last_30_days"] as? [String: Int])
        #expect(perDay.count == 31 && perDay.values.reduce(0, +) == 2)
        let today = String((response.json["created_at"] as? String ?? "").prefix(10))
        #expect(perDay[today] == 2)
        // Newest day first, as Judge0 sorts them.
        let dayKeys = response.text.matches(of: /"(\d{4}-\d{2}-\d{2})":/).map { String($0.output.1) }
        #expect(dayKeys.first == today && dayKeys == dayKeys.sorted(by: >) && dayKeys.count == 31)
        let database = try #require(response.json["database"] as? [String: Any])
        #expect((database["size_in_bytes"] as? Int ?? 0) > 0)
        #expect((database["size_pretty"] as? String)?.wholeMatch(of: /\d+ (bytes|kB|MB)/) != nil)
        let created = try #require(response.json["created_at"] as? String), until = try #require(response.json["cached_until"] as? String)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let interval = try #require(formatter.date(from: until)).timeIntervalSince(try #require(formatter.date(from: created)))
        #expect(interval == 600, "cached for ten minutes")

        // A new submission is not counted until the cache expires or is invalidated.
        #expect(try await transport.post("/submissions", #"{"source_code":"int main(){}","language_id":49}"#).status == 201)
        let cached = try await transport.get("/statistics")
        #expect(cached.text == response.text)
        let fresh = try await transport.get("/statistics?invalidate_cache=true")
        #expect((fresh.json["submissions"] as? [String: Any])?["total"] as? Int == 3)

        // Languages and statuses: `{language: {id, name}, count}`, `{status: {id, name}, count}`, largest first.
        let languages = try #require(fresh.json["languages"] as? [[String: Any]])
        let language = languages.compactMap { $0["language"] as? [String: Any] }
        #expect(language.map { $0["id"] as? Int } == [71, 50], "C sent as 49 (an older gcc id) counts under C's own id")
        #expect(language.first?["name"] as? String == "Python (3.11.2)")
        #expect(languages.map { $0["count"] as? Int } == [2, 1])
        let statuses = try #require(fresh.json["statuses"] as? [[String: Any]])
        let status = try #require(statuses.first?["status"] as? [String: Any])
        #expect(statuses.count == 1 && statuses.first?["count"] as? Int == 3)
        #expect(status["id"] as? Int == 1 && status["name"] as? String == "In Queue" && status.count == 2)
    }

    @Test func statisticsStatusesFollowTheVerdictRules() {
        func status(_ state: JobStore::JobState, _ verdict: JobStore::Verdict?, _ signal: Int32? = nil) -> Int {
            Judge0Statistics.status(of: .init(state: state, verdict: verdict, signal: signal, count: 1)).rawValue
        }
        #expect(status(.queued, nil) == 1 && status(.running, nil) == 2 && status(.cancelled, nil) == 13)
        #expect(status(.finished, "accepted") == 3 && status(.finished, "wrong_answer") == 4)
        #expect(status(.finished, "time_limit_exceeded") == 5 && status(.finished, "compile_error") == 6)
        #expect(status(.finished, "runtime_error", 11) == 7 && status(.finished, "runtime_error", 8) == 9)
        #expect(status(.finished, "runtime_error") == 11 && status(.finished, "runtime_error", 9) == 12)
        #expect(status(.finished, "memory_limit_exceeded") == 12 && status(.finished, "output_limit_exceeded") == 8)
        #expect(status(.finished, "internal_error") == 13)
    }

    @Test func statisticsSizesAndDatesAreSpelledAsJudge0Does() {
        // pg_size_pretty's values.
        #expect(Judge0Statistics.prettySize(bytes: 8192) == "8192 bytes")
        #expect(Judge0Statistics.prettySize(bytes: 10_240) == "10 kB")
        #expect(Judge0Statistics.prettySize(bytes: 1_000_000) == "977 kB")
        #expect(Judge0Statistics.prettySize(bytes: 10_485_760) == "10 MB")
        #expect(Judge0Statistics.prettySize(bytes: 5 << 30) == "5120 MB")
        #expect(Judge0Statistics.prettySize(bytes: 50 << 30) == "50 GB")
        #expect(Judge0Statistics.dateString(day: 0) == "1970-01-01")
        #expect(Judge0Statistics.dateString(day: 19_831) == "2024-04-18")
    }
}
