import Foundation
import HTTPCore
import Testing

@testable import SandboxServer

/// The Judge0 API over HTTP against real sandboxes: statuses Judge0 gets wrong made right,
/// `number_of_runs` compiling once, and callbacks as Judge0 sends them.
@Suite("Judge0 API end to end", .enabled(if: runningAsRoot, "needs root"), .serialized, .timeLimit(.minutes(5)))
struct Judge0EndToEndTests {
    func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    @Test func segfaultIsSIGSEGVAndNonZeroExitIsNZEC() async throws {
        let fixture = try await TestService()
        let api = fixture.transport(.live)
        let segfault = try await api.post("/submissions?wait=true&fields=status_id,exit_signal,exit_code,message,stdout",
                                    jsonText(["language_id": 50, "source_code": "int main(void){ volatile int *p = 0; *p = 1; return 0; }"]))
        #expect(segfault.status == 201)
        #expect(segfault.json["status_id"] as? Int == 7, "\(segfault)")
        #expect(segfault.json["exit_signal"] as? Int == 11)
        let nzec = try await api.post("/submissions?wait=true&fields=status_id,exit_code,message",
                                jsonText(["language_id": 71, "source_code": "import sys\nsys.exit(4)"]))
        #expect(nzec.json["status_id"] as? Int == 11 && nzec.json["exit_code"] as? Int == 4, "\(nzec)")
        #expect(nzec.json["message"] as? String == "Exited with error status 4")
        let memory = try await api.post("/submissions?wait=true&fields=status_id,message",
                                  jsonText(["language_id": 71, "memory_limit": 32000,
                                            "source_code": "x = bytearray(200 * 1024 * 1024)\nprint(len(x))"]))
        #expect(memory.json["message"] as? String == "Memory limit exceeded", "\(memory)")
    }

    @Test func numberOfRunsCompilesOnceAndRunsEachTime() async throws {
        let fixture = try await TestService()
        let api = fixture.transport(.live)
        let created = try await api.post("/submissions?wait=true&base64_encoded=true&fields=token,status_id,stdout,number_of_runs,time",
                                   jsonText(["language_id": 50, "number_of_runs": 3, "stdin": base64("7\n"), "expected_output": base64("8\n"),
                                             "source_code": base64("#include <stdio.h>\nint main(void){int n; scanf(\"%d\", &n); printf(\"%d\\n\", n + 1); return 0;}")]))
        #expect(created.json["status_id"] as? Int == 3, "\(created)")
        #expect(created.json["stdout"] as? String == "OAo=\n")
        #expect(created.json["number_of_runs"] as? Int == 3)
        let token = try #require(created.json["token"] as? String)
        let native = try await api.get("/v1/jobs/\(token)")
        #expect((native.json["tests"] as? [Any])?.count == 3, "three runs")
        #expect(native.json["compile"] is [String: Any], "one compile step")
    }

    /// A zip made by the host's Python: `entries` maps names to contents; `links` maps link
    /// names to targets (stored as symbolic links, as `zip -y` would).
    /// `zeroFilled` maps names to sizes of entries made of zero bytes (a zip bomb compresses
    /// 11 MB of them to a few KB). `emptyFiles` adds that many empty entries. `understated`
    /// rewrites the uncompressed size its headers declare for those entries to 1 KB (a lying
    /// header).
    func zipArchive(_ entries: [String: String], links: [String: String] = [:], zeroFilled: [String: Int] = [:],
                    emptyFiles: Int = 0, understated: [String] = []) throws -> String {
        let script = """
        import base64, io, json, struct, sys, zipfile
        spec = json.loads(sys.argv[1])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in spec["entries"].items():
                archive.writestr(name, content)
            for name, target in spec["links"].items():
                info = zipfile.ZipInfo(name)
                info.external_attr = (0o120777 << 16)
                archive.writestr(info, target)
            for name, size in spec["zeros"].items():
                archive.writestr(name, bytes(size))
            for index in range(spec["empty"]):
                archive.writestr("f%d" % index, "")
        data = bytearray(buffer.getvalue())
        for name in spec["understated"]:
            encoded = name.encode()
            # Local header: size at 22, name at 30; central header: size at 24, name at 46.
            for signature, size_at, name_at in ((b"PK\\x03\\x04", 22, 30), (b"PK\\x01\\x02", 24, 46)):
                start = data.find(signature)
                while start >= 0:
                    if data[start + name_at:start + name_at + len(encoded)] == encoded:
                        struct.pack_into("<I", data, start + size_at, 1024)
                    start = data.find(signature, start + 4)
        print(base64.b64encode(bytes(data)).decode())
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script, jsonText(["entries": entries, "links": links, "zeros": zeroFilled,
                                                     "empty": emptyFiles, "understated": understated])]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func multiFileProgramUnpacksInsideTheBoxAndRefusesUnsafeArchives() async throws {
        let fixture = try await TestService()
        let api = fixture.transport(.live)
        let fields = "?wait=true&fields=status_id,stdout,compile_output,additional_files,source_code"
        let good = try zipArchive([
            "compile": "gcc -o program lib/main.c\n", "run": "./program \"$@\"\n",
            "lib/main.c": "#include <stdio.h>\nint main(int c, char **v){ printf(\"%d %s\\n\", c, v[1]); return 0; }\n",
        ])
        let accepted = try await api.post("/submissions" + fields, jsonText(["language_id": 89, "additional_files": good,
                                                                      "command_line_arguments": "'two words'"]))
        #expect(accepted.json["status_id"] as? Int == 3, "\(accepted)")
        #expect(accepted.json["stdout"] as? String == "2 two words\n")
        #expect(accepted.json["source_code"] is NSNull)
        #expect((accepted.json["additional_files"] as? String).map { Data(base64Encoded: $0.replacingOccurrences(of: "\n", with: "")) != nil } == true)

        let traversal = try await api.post("/submissions" + fields, jsonText(["language_id": 89,
                                                                       "additional_files": try zipArchive(["run": "cat ../x", "../escape": "x"])]))
        #expect(traversal.json["status_id"] as? Int == 6, "\(traversal)")
        #expect((traversal.json["compile_output"] as? String)?.contains("unsafe path") == true)

        let link = try await api.post("/submissions" + fields, jsonText(["language_id": 89,
                                                                  "additional_files": try zipArchive(["run": "cat passwd"], links: ["passwd": "/etc/passwd"])]))
        #expect(link.json["status_id"] as? Int == 6, "\(link)")
        #expect((link.json["compile_output"] as? String)?.contains("symbolic link") == true)
    }

    /// The Judge0 routes in-process (the fixture's in-process transport has the native ones only).
    func judge0InProcess(_ fixture: TestService) -> InProcessTransport {
        var router = fixture.service.routes.makeRouter()
        router.mount("/", fixture.service.judge0.makeRouter())
        return InProcessTransport(router: router)
    }

    @Test func additionalFilesAreUnpackedNextToTheSourceForAnyLanguage() async throws {
        let fixture = try await TestService()
        let api = judge0InProcess(fixture)
        let fields = "?wait=true&fields=status_id,stdout,stderr,compile_output,message,additional_files"
        // C: the source includes a header that only the archive has.
        let header = try zipArchive(["include/greeting.h": "#define GREETING \"hello from the zip\"\n"])
        let c = try await api.post("/submissions" + fields, jsonText([
            "language_id": 50, "additional_files": header,
            "source_code": "#include <stdio.h>\n#include \"include/greeting.h\"\nint main(void){ puts(GREETING); return 0; }\n"]))
        #expect(c.status == 201 && c.json["status_id"] as? Int == 3, "\(c)")
        #expect(c.json["stdout"] as? String == "hello from the zip\n")
        let echoed = (c.json["additional_files"] as? String)?.replacingOccurrences(of: "\n", with: "")
        #expect(echoed.flatMap { Data(base64Encoded: $0) } == Data(base64Encoded: header), "additional_files is shown as sent")

        // Python: the program reads a data file from the archive; the archive's main.py does
        // not replace the submitted source (Judge0's `unzip -n`).
        let data = try zipArchive(["data/numbers.txt": "1 2 3 4\n", "main.py": "print('the archive replaced the source')\n"])
        let python = try await api.post("/submissions" + fields, jsonText([
            "language_id": 71, "additional_files": data, "expected_output": "10",
            "source_code": "print(sum(map(int, open('data/numbers.txt').read().split())))\n"]))
        #expect(python.json["status_id"] as? Int == 3, "\(python)")
        #expect(python.json["stdout"] as? String == "10\n")
        #expect(python.json["compile_output"] is NSNull, "an interpreted language shows no compile step")

        // The same through the native API's `archive`.
        let native = try await fixture.transport(.inProcess).run([
            "language": "python3", "archive": data, "source": "print(open('data/numbers.txt').read().split()[-1])\n",
            "tests": [["expected_output": "4"]]])
        #expect(native.json["verdict"] as? String == "accepted", "\(native)")
    }

    @Test func hostileAdditionalFilesAreRefusedInsideTheBoxAndWriteNothingOutside() async throws {
        let fixture = try await TestService()
        let api = judge0InProcess(fixture)
        let canary = "/tmp/ss-judge0-canary-\(getpid())-\(UUID().uuidString)"
        let hostile: [(name: String, archive: String, reason: String)] = [
            ("traversal", try zipArchive(["../../../../../../..\(canary)": "escaped"]), "unsafe path"),
            ("absolute path", try zipArchive([canary: "escaped"]), "unsafe path"),
            ("symbolic link", try zipArchive(["notes.txt": "x"], links: ["link": canary]), "symbolic link"),
            ("zip bomb", try zipArchive([:], zeroFilled: ["zeros.bin": 11 << 20]), "exceed 10240 KB"),
            ("not a zip", Data("this is not a zip archive".utf8).base64EncodedString(), "not a zip archive"),
            ("backslashes", try zipArchive(["..\\..\\escape.txt": "x"]), "unsafe path"),
            ("too many entries", try zipArchive([:], emptyFiles: 10_001), "more than 10000 entries"),
            // The header says 1 KB; 11 MB come out. Refused while extracting, never written in full.
            ("lying header", try zipArchive([:], zeroFilled: ["zeros.bin": 11 << 20], understated: ["zeros.bin"]), "zeros.bin"),
        ]
        for (name, archive, reason) in hostile {
            for languageID in [71, 50] {
                let source = languageID == 71 ? "print('ran')\n" : "int main(void){ return 0; }\n"
                let response = try await api.post("/submissions?wait=true&fields=status_id,stdout,compile_output", jsonText([
                    "language_id": languageID, "additional_files": archive, "source_code": source]))
                #expect(response.json["status_id"] as? Int == 6, "\(name), language \(languageID): \(response)")
                #expect((response.json["compile_output"] as? String)?.contains(reason) == true, "\(name): \(response)")
                #expect(response.json["stdout"] is NSNull, "\(name): the program must not run")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: canary), "nothing was written outside the box")
        // The refusals are what /statistics counts: ten compilation errors.
        let statistics = try await api.get("/statistics?invalidate_cache=true")
        let statuses = (statistics.json["statuses"] as? [[String: Any]] ?? []).map { entry in
            ((entry["status"] as? [String: Any])?["id"] as? Int, entry["count"] as? Int)
        }
        #expect(statuses.count == 1 && statuses.first?.0 == 6 && statuses.first?.1 == 2 * hostile.count, "\(statistics)")
    }

    @Test func callbackIsAPutOfTheDefaultFieldsInBase64() async throws {
        let receiver = try WebhookReceiver(statuses: [200])
        let fixture = try await TestService { settings in settings.webhookAllow = ["127.0.0.1/32"] }
        let api = fixture.transport(.live)
        let created = try await api.post("/submissions", jsonText(["language_id": 46, "source_code": "echo called back",
                                                             "callback_url": "http://127.0.0.1:\(receiver.port)/judge0"]))
        #expect(created.status == 201)
        let token = try #require(created.json["token"] as? String)
        let requests = try await receiver.waitForRequests(1)
        let request = try #require(requests.first)
        #expect(request.method == "PUT")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        #expect(Set(body.keys) == Set(Judge0SubmissionView.defaultFields))
        #expect(body["token"] as? String == token)
        #expect(body["stdout"] as? String == "Y2FsbGVkIGJhY2sK\n")
        #expect((body["status"] as? [String: Any])?["id"] as? Int == 3)
    }
}
