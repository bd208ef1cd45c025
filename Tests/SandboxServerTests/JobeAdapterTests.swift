import Foundation
import HTTPCore
import Isolation
import Synchronization
import Testing

@testable import SandboxServer

/// The Jobe adapter's rules without sandboxes: run_spec checks in Jobe's order with Jobe's
/// messages, parameters, command lines, Java class inference, output sanitising and outcomes.
@Suite struct JobeRunSpecTests {
    let languages = JobeLanguage.all

    func parse(_ runSpec: [String: Any]) throws(JobeError) -> JobeRunSpec {
        let body = try! JSONSerialization.data(withJSONObject: ["run_spec": runSpec])
        return try JobeRunSpec.parse(body: Array(body), languages: languages)
    }

    func refusal(_ body: [UInt8]) -> JobeError? {
        do { _ = try JobeRunSpec.parse(body: body, languages: languages) } catch { return error }
        return nil
    }

    func refusal(_ runSpec: [String: Any]) -> JobeError? {
        refusal(Array(try! JSONSerialization.data(withJSONObject: ["run_spec": runSpec])))
    }

    @Test func refusalsHaveJobesMessagesInJobesOrder() {
        #expect(refusal(Array("[1]".utf8)) == .badRequest("Non-JSON post data received"))
        #expect(refusal(Array("{\"spec\":{}}".utf8)) == .badRequest("No run_spec attribute found in post data"))
        #expect(refusal([:]) == .badRequest("run_spec is missing the required attribute 'sourcecode'"))
        #expect(refusal(["sourcecode": "x"]) == .badRequest("run_spec is missing the required attribute 'language_id'"))
        #expect(refusal(["sourcecode": "x", "language_id": "NoSuchLanguage"]) == .badRequest("Language 'nosuchlanguage' is not known"))
        #expect(refusal(["sourcecode": "x", "language_id": "c", "parameters": ["cputime": 121]])
            == .badRequest("cputime exceeds maximum allowed on this Jobe server (120 secs)"))
        // cputime is checked before the file name.
        #expect(refusal(["sourcecode": "x", "language_id": "c", "sourcefilename": "a/b.c", "parameters": ["cputime": "151"]])?.message
            .hasPrefix("cputime exceeds") == true)
        for name in ["a/b.c", "../x.c", ".hidden.c", "-rf.c", "a;b.c", "a$b.c", "a`b`.c", "a\u{7}.c", "a\u{AD}.c", "a{b}.c"] {
            #expect(refusal(["sourcecode": "x", "language_id": "c", "sourcefilename": name])
                == .badRequest("The sourcefilename for the run_spec is illegal"), "\(name)")
        }
        #expect(refusal(["sourcecode": "x", "language_id": "c", "file_list": [["short", "a.txt"]]])?.message.hasPrefix("Invalid file specifier: ") == true)
        #expect(refusal(["sourcecode": "x", "language_id": "c", "file_list": [["longenoughid", "a b.txt"]]]) != nil)
        #expect(refusal(["sourcecode": "x", "language_id": "c", "file_list": [["longenoughid", ".."]]]) != nil)
        #expect(refusal(["sourcecode": "x", "language_id": "c", "file_list": [["longenoughid"]]]) != nil)
    }

    @Test func acceptedSpecsGetJobesDefaults() throws {
        let c = try parse(["sourcecode": "int main(){}", "language_id": "C", "file_list": [["abcdefgh12", "data_1.txt", "ignored"]]])
        #expect(c.language.id == "c")
        #expect(c.sourceFileName == "prog.c")
        #expect(c.files == [JobeFileReference(id: "abcdefgh12", name: "data_1.txt")])
        #expect(c.parameters.cpuTime == 5 && c.parameters.memoryLimit == 400 && c.parameters.numProcs == 30)
        #expect(c.parameters.streamSize == 2 && c.parameters.diskLimit == 20)
        #expect(try parse(["sourcecode": "x", "language_id": "python3"]).parameters.memoryLimit == 1000)
        #expect(try parse(["sourcecode": "x", "language_id": "python3", "sourcefilename": "__tester__.python3"]).sourceFileName
            == "__tester__.python3")
    }

    @Test func parametersReplaceDefaultsAndIgnoreNonNumbers() throws {
        let spec = try parse(["sourcecode": "x", "language_id": "c", "parameters": [
            "cputime": "7", "memorylimit": "lots", "numprocs": 3.9, "compileargs": ["std=c89"], "unknown": 1]])
        #expect(spec.parameters.cpuTime == 7)
        #expect(spec.parameters.memoryLimit == 400)
        #expect(spec.parameters.numProcs == 3)
        #expect(spec.language.compileCommand(source: "prog.c", parameters: spec.parameters)
            == ["gcc", "std=c89", "-o", "prog.c.exe", "prog.c"])
        let java = try parse(["sourcecode": "x", "language_id": "java", "parameters": ["memorylimit": 10, "numprocs": 2]])
        #expect(java.parameters.memoryLimit == 0)
        #expect(java.parameters.numProcs == 256)
        let compile = try parse(["sourcecode": "x", "language_id": "c", "parameters": ["cputime": 1, "numprocs": 1, "disklimit": 1]])
            .parameters.forCompile
        #expect(compile.cpuTime == 2 && compile.memoryLimit == 500 && compile.numProcs == 5 && compile.diskLimit == 20)
        #expect(java.parameters.forCompile.memoryLimit == 0)
    }

    @Test func commandLinesAreJobes() throws {
        let c = JobeLanguage.all["c"]!, python = JobeLanguage.all["python3"]!, java = JobeLanguage.all["java"]!
        let pascal = JobeLanguage.all["pascal"]!
        var parameters = JobeParameters(language: c)
        #expect(c.compileCommand(source: "prog.c", parameters: parameters)?.joined(separator: " ")
            == "gcc -Wall -Werror -std=c99 -x c -o prog.c.exe prog.c")
        parameters.runArgs = ["a b"]
        #expect(c.runCommand(source: "prog.c", parameters: parameters) == ["./prog.c.exe", "a b"])
        var pythonParameters = JobeParameters(language: python)
        #expect(python.runCommand(source: "prog.py", parameters: pythonParameters) == ["/usr/bin/python3", "-BE", "prog.py"])
        pythonParameters.interpreterArgs = ["-c \"print(\\\"Blah\\\")\""]
        #expect(python.runCommand(source: "test.py", parameters: pythonParameters).joined(separator: " ")
            == "/usr/bin/python3 -c \"print(\\\"Blah\\\")\" test.py")
        var javaParameters = JobeParameters(language: java)
        #expect(java.runCommand(source: "Blah.java", parameters: javaParameters)
            == ["/usr/bin/java", "-Xrs", "-Xss8m", "-Xmx200m", "Blah"])
        javaParameters.mainClass = "pkg.Main"
        #expect(java.runCommand(source: "Blah.java", parameters: javaParameters).last == "pkg.Main")
        #expect(pascal.compileCommand(source: "prog.pas", parameters: JobeParameters(language: pascal))
            == ["fpc", "-vew", "-Se", "-Feprog.pas.err", "-oprog.pas.exe", "prog.pas"])
    }

    @Test func javaFileNameIsInferredFromTheSingleMainClass() {
        #expect(JobeJava.inferredFileName("public class Blah {\n  public static void main(String[] a) {}\n}") == "Blah.java")
        #expect(JobeJava.inferredFileName("class A {}\npublic class B extends A {\n static public void main (String... a) {}\n}") == "B.java")
        #expect(JobeJava.inferredFileName("public class NoMain { void run() {} }") == nil)
        #expect(JobeJava.inferredFileName("""
            public class One { public static void main(String[] a) {} }
            public class Two { public static void main(String[] a) {} }
            """) == nil)
        let spec = try? JobeRunSpec.parse(
            body: Array(#"{"run_spec":{"language_id":"java","sourcecode":"class X {}","sourcefilename":"prog.java"}}"#.utf8),
            languages: JobeLanguage.all)
        #expect(spec?.sourceFileName == "prog.java")
    }

    @Test func outputIsSanitisedOnlyWhenNotUTF8() {
        #expect(JobeJudging.sanitise(Array("Hello world\n".utf8) + [0x01, 0x06, 0xC0, 0xC9, 0x0A]) == "Hello world\n\\x01\\x06\\xc0\\xc9\n")
        #expect(JobeJudging.sanitise(Array("tab\there\u{1}é\n".utf8)) == "tab\there\u{1}é\n")
        #expect(JobeJudging.sanitise([0xFF, 0x09, 0x0D, 0x7F]) == "\\xff\t\r\\x7f")
    }

    @Test func runOutcomesFollowJobesRules() {
        #expect(JobeJudging.runOutcome(stderr: "timelimit exceeded (cpu time)\n") == (.timeLimit, ""))
        #expect(JobeJudging.runOutcome(stderr: "out\ntime limit exceeded") == (.timeLimit, ""))
        #expect(JobeJudging.runOutcome(stderr: "sandbox: warning: command terminated with signal 11\n") == (.runtimeError, ""))
        #expect(JobeJudging.runOutcome(stderr: "Traceback\n") == (.runtimeError, "Traceback\n"))
        #expect(JobeJudging.runOutcome(stderr: "") == (.ok, ""))
        var killed = RunResult(status: .signaled, signal: 6)
        #expect(JobeJudging.supervisorWarnings(killed) == "sandbox: warning: command terminated with signal 6\n")
        killed = RunResult(status: .timeLimit, timeLimitKind: .wall)
        #expect(JobeJudging.supervisorWarnings(killed) == "timelimit exceeded (wall time)\n")
        #expect(JobeJudging.supervisorWarnings(RunResult(status: .runtimeError, exitCode: 1)) == "")
    }

    @Test func compileInfoAndStderrFiltersPerLanguage() {
        let python = JobeLanguage.all["python3"]!, php = JobeLanguage.all["php"]!, java = JobeLanguage.all["java"]!
        let octave = JobeLanguage.all["octave"]!
        #expect(python.compileInfo(stdout: "", stderr: "") == "")
        #expect(python.compileInfo(stdout: "out", stderr: "err") == "out\\nerr")
        #expect(php.compileInfo(stdout: "No syntax errors detected in prog.php\n", stderr: "") == "")
        #expect(php.compileInfo(stdout: "Errors parsing prog.php\n", stderr: "PHP Parse error") == "Errors parsing prog.php\n\nPHP Parse error")
        #expect(java.filteredRunStderr("Exception\n\tat X.main(X.java:3)\n") == "Exception\n        at X.main(X.java:3)\n")
        #expect(octave.filteredRunStderr("warning: x\r\n\n\n") == "warning: x\n")
        #expect(octave.filteredRunStderr("error: boom\nerror: ignoring octave_execution_exception while preparing to exit\n") == "error: boom\n")
        #expect(octave.filteredRunStderr("\n") == "")
    }

    @Test func limitsMapJobeParametersOntoTheSandbox() {
        let c = JobeLanguage.all["c"]!
        var parameters = JobeParameters(language: c)
        parameters.numProcs = 20
        let limits = JobeRunner.resourceLimits(parameters, configuration: JobeRunner.Configuration())
        #expect(limits.cpuTimeMilliseconds == 5_000 && limits.wallTimeMilliseconds == 10_000)
        #expect(limits.addressSpaceBytes == 400 * 1000 * 1024)
        #expect(limits.processes == 21, "numprocs and the shell")
        #expect(limits.outputBytes == 2 * 1000 * 1024 && !limits.killOnOutputLimit)
        #expect(limits.fileSizeBytes == 20 * 1000 * 1024)
        parameters.memoryLimit = 0
        parameters.diskLimit = -1
        parameters.memoryLimit = 0
        let unlimited = JobeRunner.resourceLimits(parameters, configuration: JobeRunner.Configuration())
        #expect(unlimited.addressSpaceBytes == nil)
        #expect(unlimited.fileSizeBytes == JobeRunner.Configuration().maximumDiskBytes)
        parameters.memoryLimit = Int.max
        #expect(JobeRunner.resourceLimits(parameters, configuration: JobeRunner.Configuration()).addressSpaceBytes == (1 << 30) * 1000 * 1024)
    }
}

/// The Jobe API on a live service in real sandboxes (root only): a run over HTTP, support
/// files, and the overload answer when no sandbox slot frees up in time.
@Suite(.serialized, .enabled(if: runningAsRoot, "sandboxes need root"))
struct JobeEndToEndTests {
    static let base = "/jobe/index.php/restapi"

    @Test func runsFilesAndLanguagesOverHTTP() async throws {
        let service = try await TestService()
        let client = LiveTransport(port: service.port)
        let languages = try await client.get(Self.base + "/languages/")
        #expect(languages.status == 200)
        let pairs = try JSONSerialization.jsonObject(with: Data(languages.body)) as? [[String]] ?? []
        #expect(pairs.contains { $0.first == "python3" })

        let put = try await client.send(.PUT, Self.base + "/files/abcdef123456", body: #"{"file_contents":"NDIK"}"#,
                                  headers: ["Content-Type": "application/json"])
        #expect(put.status == 204 && put.body.isEmpty)
        #expect(try await client.send(.HEAD, Self.base + "/files/abcdef123456", body: nil, headers: [:]).status == 204)
        #expect(try await client.send(.HEAD, Self.base + "/files/neverstored1", body: nil, headers: [:]).status == 404)

        let run = try await client.post(Self.base + "/runs", jsonText(["run_spec": [
            "language_id": "python3", "sourcecode": "print(int(open('n.txt').read()) + int(input()))\n", "input": "8\n",
            "file_list": [["abcdef123456", "n.txt"]]]]))
        #expect(run.status == 200)
        #expect(run.text == #"{"run_id":null,"outcome":15,"cmpinfo":"","stdout":"50\n","stderr":""}"#)

        let missing = try await client.post(Self.base + "/runs/", jsonText(["run_spec": [
            "language_id": "python3", "sourcecode": "print(1)", "file_list": [["nosuchfileid", "x"]]]]))
        #expect(missing.status == 404 && missing.text == #""One or more of the specified files is missing/unavailable""#)
    }

    @Test func apiKeysConfiguredForTheServerAreRequiredInJobesHeader() async throws {
        let service = try await TestService { settings in settings.apiKeys = [APIKey(key: "jobe-key", role: .user)] }
        let client = LiveTransport(port: service.port)
        let refused = try await client.get(Self.base + "/languages")
        #expect(refused.status == 403 && refused.text == #""Unauthorized""#)
        #expect(try await client.get(Self.base + "/languages", headers: ["X-API-KEY": "wrong"]).status == 403)
        #expect(try await client.get(Self.base + "/languages", headers: ["X-API-KEY": "jobe-key"]).status == 200)
        #expect(try await client.get(Self.base + "/languages", headers: ["Authorization": "Bearer jobe-key"]).status == 200)
    }

    @Test func overloadWhenNoSlotFreesUpInTime() async throws {
        let service = try await TestService(workers: 1)
        let runner = JobeRunner(sandbox: service.service.sandbox,
                                configuration: JobeRunner.Configuration(slotWait: .milliseconds(300)))
        let python = JobeLanguage.all["python3"]!
        let spec: @Sendable (String, Int) -> JobeRunSpec = { source, cpu in
            var parameters = JobeParameters(language: python)
            parameters.cpuTime = cpu
            return JobeRunSpec(language: python, sourceCode: source, sourceFileName: "prog.py", input: "", files: [],
                               parameters: parameters, debug: false)
        }
        // Occupies the only slot for about 2 s (sleeping, so the wall limit of 2 × 2 s is not reached).
        let slowFinished = DispatchSemaphore(value: 0)
        let slowOutcome = Mutex<JobeOutcome?>(nil)
        Thread {
            let result = runner.run(spec("import time\ntime.sleep(2)\nprint('slow')\n", 2), files: [])
            slowOutcome.withLock { $0 = result.outcome }
            slowFinished.signal()
        }.start()
        try await Task.sleep(for: .milliseconds(700))
        let refused = runner.run(spec("print('fast')\n", 1), files: [])
        #expect(refused == .overload)
        slowFinished.wait()
        #expect(slowOutcome.withLock { $0 } == .ok)
        // With the slot free again the same run goes through.
        #expect(runner.run(spec("print('fast')\n", 1), files: []).stdout == "fast\n")
    }
}
