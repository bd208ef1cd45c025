import Foundation
import HTTPCore
import JobStore
import Testing

@testable import SandboxServer

/// The native API's behaviours over real sandboxes; request tests run both in-process (router)
/// and against the live server.
@Suite("job API end to end", .enabled(if: runningAsRoot, "needs root"), .timeLimit(.minutes(5)))
struct JobAPIEndToEndTests {
    static let sumProgram = "a, b = map(int, input().split())\nprint(a + b)"

    @Test(arguments: TransportKind.allCases)
    func submitPollAndMultiTestJob(_ kind: TransportKind) async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(kind)
        let created = try await api.post("/v1/jobs", jsonText([
            "language": "python3", "source": Self.sumProgram,
            "tests": [["name": "small", "stdin": "1 2\n", "expected_output": "3\n", "points": 2],
                      ["stdin": "5 5\n", "expected_output": "11\n"],
                      ["stdin": "7 8\n", "expected_output": "15\n"]],
        ]))
        #expect(created.status == 201, "\(created)")
        let id = try #require(created.json["id"] as? String)
        #expect(created.headers["location"] == "/v1/jobs/\(id)")
        #expect(["queued", "running", "finished"].contains(created.json["state"] as? String ?? ""))
        #expect(created.json["max_score"] as? Int == 4)

        let finished = try await api.get("/v1/jobs/\(id)?wait=30")
        #expect(finished.status == 200)
        #expect(finished.json["state"] as? String == "finished")
        #expect(finished.json["verdict"] as? String == "wrong_answer")
        #expect(finished.json["score"] as? Int == 3)
        let tests = try #require(finished.json["tests"] as? [[String: Any]])
        #expect(tests.map { $0["verdict"] as? String } == ["accepted", "wrong_answer", "accepted"])
        #expect(tests.map { $0["name"] as? String } == ["small", "2", "3"])
        #expect(tests[1]["stdout"] as? String == "10\n")

        // Polling without wait gives the same finished job.
        let polled = try await api.get("/v1/jobs/\(id)")
        #expect(polled.json["verdict"] as? String == "wrong_answer")
    }

    @Test func eachTestRunsInAFreshCopyOfTheCompiledBox() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.live)
        // Each test writes a file; a later test must not see an earlier test's file, but must see the binary.
        let source = """
        #include <stdio.h>
        #include <unistd.h>
        int main(void) {
            if (access("marker", F_OK) == 0) { puts("polluted"); return 0; }
            FILE *f = fopen("marker", "w"); fputs("x", f); fclose(f);
            puts(access("main", X_OK) == 0 ? "clean" : "no binary");
            return 0;
        }
        """
        let job = try await api.run(["language": "c", "source": source,
                               "tests": [["expected_output": "clean\n"], ["expected_output": "clean\n"], ["expected_output": "clean\n"]]])
        #expect(job.json["verdict"] as? String == "accepted", "\(job)")
        #expect((job.json["compile"] as? [String: Any])?["exit_code"] as? Int == 0)
    }

    @Test func stopOnFirstFailureSkipsTheRest() async throws {
        let fixture = try await TestService.start()
        let job = try await fixture.transport(.live).run([
            "language": "bash", "source": "read x; echo $x", "stop_on_first_failure": true,
            "tests": [["stdin": "a\n", "expected_output": "b\n"], ["stdin": "c\n", "expected_output": "c\n"]],
        ])
        #expect(job.json["verdict"] as? String == "wrong_answer")
        #expect((job.json["tests"] as? [[String: Any]])?.map { $0["verdict"] as? String } == ["wrong_answer", "skipped"])
    }

    @Test(arguments: TransportKind.allCases)
    func waitAnswers202WhenTimeRunsOut(_ kind: TransportKind) async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(kind)
        let started = ContinuousClock.now
        let response = try await api.run(["language": "bash", "source": "sleep 3; echo done"], wait: 1)
        #expect(response.status == 202, "\(response)")
        // The answer came when the wait ran out, not when the 3 s job ended (room for a loaded machine).
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(["queued", "running"].contains(response.json["state"] as? String ?? ""))
        let id = try #require(response.json["id"] as? String)
        let finished = try await api.get("/v1/jobs/\(id)?wait=30")
        #expect(finished.json["verdict"] as? String == "accepted")
        // A wait above the server's maximum is refused, not silently shortened.
        let tooLong = try await api.get("/v1/jobs/\(id)?wait=100000")
        #expect(tooLong.status == 422)
        #expect(tooLong.errorCode == "invalid_value")
    }

    /// A DELETE racing the job's own end: whatever it answers, a 200 means the job is cancelled
    /// or gone. (It used to answer 200 with the finished job and delete nothing, about one
    /// time in forty.)
    @Test func deleteRacingTheJobsEndCancelsOrDeletes() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.live)
        var outcomes: [String: Int] = [:]
        for round in 0..<150 {
            let id = try #require(try await api.post("/v1/jobs", #"{"language":"bash","source":"true"}"#).json["id"] as? String)
            try await Task.sleep(for: .microseconds(100 * (round % 60)))
            let deleted = try await api.send(.DELETE, "/v1/jobs/\(id)", body: nil, headers: [:])
            #expect(deleted.status == 200, "\(deleted)")
            let state = deleted.json["state"] as? String ?? "?"
            outcomes[state, default: 0] += 1
            let after = try await api.get("/v1/jobs/\(id)")
            switch state {
            case "queued", "running", "cancelled":
                // Cancelled now (or just before), and kept until deleted.
                #expect(after.json["state"] as? String == "cancelled", "DELETE said \(state); then \(after)")
            default:
                #expect(after.status == 404, "DELETE said \(state); then \(after)")
            }
        }
        #expect(outcomes.values.reduce(0, +) == 150, "\(outcomes)")
    }

    /// `processes` counts the program's processes only: 1 runs it, and stops its first fork.
    @Test func oneProcessRunsTheProgramButNoFork() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.live)
        let alone = try await api.run(["language": "python3", "source": "print('alone')", "limits": ["processes": 1]])
        #expect(alone.json["verdict"] as? String == "accepted", "\(alone)")
        #expect((alone.json["tests"] as? [[String: Any]])?.first?["stdout"] as? String == "alone\n")
        let forking = try await api.run(["language": "python3", "limits": ["processes": 1], "source": """
            import os
            try:
                os.fork()
                print("forked")
            except OSError as error:
                print("refused", error.errno)
            """])
        #expect((forking.json["tests"] as? [[String: Any]])?.first?["stdout"] as? String == "refused 11\n", "\(forking)")
        let two = try await api.run(["language": "python3", "limits": ["processes": 2], "source": """
            import os
            pid = os.fork()
            if pid == 0: os._exit(0)
            os.waitpid(pid, 0)
            print("forked")
            """])
        #expect((two.json["tests"] as? [[String: Any]])?.first?["stdout"] as? String == "forked\n", "\(two)")
    }

    @Test func cancellingARunningJobKillsItsSandbox() async throws {
        let fixture = try await TestService.start(workers: 1)
        let api = fixture.transport(.live)
        let created = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "echo started; sleep 60",
                                                         "limits": ["wall_time_ms": 60_000]]))
        let id = try #require(created.json["id"] as? String)
        // Queued behind nothing: wait until it runs.
        let deadline = ContinuousClock.now + .seconds(20)
        while try await api.get("/v1/jobs/\(id)").json["state"] as? String != "running", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let cancelled = try await api.delete("/v1/jobs/\(id)")
        #expect(cancelled.status == 200, "\(cancelled)")
        #expect(cancelled.json["state"] as? String == "cancelled")
        // The one runner is free again at once: a new job finishes long before the sleep would have.
        let started = ContinuousClock.now
        let next = try await api.run(["language": "bash", "source": "echo next"], wait: 30)
        #expect(next.json["verdict"] as? String == "accepted")
        #expect(ContinuousClock.now - started < .seconds(15))
        #expect(try await api.get("/v1/jobs/\(id)").json["state"] as? String == "cancelled")
        // Deleting it again removes the finished (cancelled) job; then it is gone.
        #expect(try await api.delete("/v1/jobs/\(id)").status == 200)
        let gone = try await api.get("/v1/jobs/\(id)")
        #expect(gone.status == 404)
        #expect(gone.errorCode == "not_found")
    }

    @Test(arguments: TransportKind.allCases)
    func idempotencyKeyReturnsTheSameJobAndRefusesADifferentBody(_ kind: TransportKind) async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(kind)
        let body = jsonText(["language": "bash", "source": "echo once"])
        let first = try await api.post("/v1/jobs", body, headers: ["Idempotency-Key": "key-1"])
        let again = try await api.post("/v1/jobs", body, headers: ["Idempotency-Key": "key-1"])
        #expect(first.status == 201)
        #expect(again.status == 200)
        #expect(first.json["id"] as? String == again.json["id"] as? String)
        // Same meaning, different key order and spacing: still the same request.
        let reordered = try await api.post("/v1/jobs", #"{ "source": "echo once",  "language": "bash" }"#, headers: ["Idempotency-Key": "key-1"])
        #expect(reordered.json["id"] as? String == first.json["id"] as? String)
        let conflict = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "echo twice"]), headers: ["Idempotency-Key": "key-1"])
        #expect(conflict.status == 409)
        #expect(conflict.errorCode == "idempotency_conflict")
        let other = try await api.post("/v1/jobs", body, headers: ["Idempotency-Key": "key-2"])
        #expect(other.status == 201)
        #expect(other.json["id"] as? String != first.json["id"] as? String)
    }

    @Test(arguments: TransportKind.allCases)
    func badRequestsGetClearErrors(_ kind: TransportKind) async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(kind)
        let malformed = try await api.post("/v1/jobs", "{not json")
        #expect(malformed.status == 400)
        #expect(malformed.errorCode == "malformed_json")
        let typo = try await api.post("/v1/jobs", #"{"language":"bash","source":"true","limits":{"cpu_tme_ms":5}}"#)
        #expect(typo.status == 422)
        #expect(typo.errorCode == "unknown_field")
        #expect((typo.json["error"] as? [String: Any])?["field"] as? String == "limits.cpu_tme_ms")
        let unknownLanguage = try await api.post("/v1/jobs", #"{"language":"cobol","source":"x"}"#)
        #expect(unknownLanguage.errorCode == "unknown_language")
        let tooMuch = try await api.post("/v1/jobs", #"{"language":"bash","source":"true","limits":{"cpu_time_ms":99999999}}"#)
        #expect(tooMuch.errorCode == "limit_exceeds_maximum")
        // Below what a sandbox can start with: refused up front, not accepted to fail later.
        let tooLittle = try await api.post("/v1/jobs", #"{"language":"bash","source":"true","limits":{"memory_bytes":1048575}}"#)
        #expect(tooLittle.status == 422, "\(tooLittle)")
        #expect(tooLittle.errorCode == "invalid_value")
        #expect((tooLittle.json["error"] as? [String: Any])?["message"] as? String == "limits.memory_bytes is 1048575 but the minimum is 1048576")
        let notFound = try await api.get("/v1/jobs/doesNotExist")
        #expect(notFound.status == 404)
        #expect(notFound.errorCode == "not_found")
        let noRoute = try await api.get("/v1/nothing-here")
        #expect(noRoute.status == 404)
        #expect(noRoute.errorCode == "not_found")
        for wait in ["0x10", "inf", "nan", "-1", "1,5", "61"] {
            let refused = try await api.post("/v1/jobs?wait=\(wait)", #"{"language":"bash","source":"true"}"#)
            #expect(refused.status == 422, "wait=\(wait): \(refused)")
            #expect((refused.json["error"] as? [String: Any])?["field"] as? String == "wait", "wait=\(wait): \(refused)")
        }
        let wrongMethod = try await api.send(.PUT, "/v1/jobs", body: "{}", headers: [:])
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.errorCode == "method_not_allowed", "\(wrongMethod)")
        let wrongType = try await api.send(.POST, "/v1/jobs", body: "language=bash", headers: ["Content-Type": "text/plain"])
        #expect(wrongType.status == 415)
        for notAnObject in ["null", "1", #""s""#, "[]"] {
            for path in ["/v1/jobs", "/v1/jobs/batch"] {
                let refused = try await api.post(path, notAnObject)
                #expect(refused.status == 400, "\(path) \(notAnObject): \(refused)")
                #expect(refused.errorCode == "malformed_json", "\(path) \(notAnObject): \(refused)")
            }
        }
    }

    /// Metadata nested far past any real use is refused before decoding, whose recursion once
    /// overflowed an HTTP worker's stack at about 250 levels and killed the server; deep but
    /// sane metadata is kept.
    @Test(arguments: TransportKind.allCases)
    func deeplyNestedBodiesAreRefusedAndTheServerLives(_ kind: TransportKind) async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(kind)
        func nested(_ depth: Int, _ open: String, _ close: String) -> String {
            String(repeating: open, count: depth) + String(repeating: close, count: depth)
        }
        for depth in [65, 300, 600, 5_000] {
            for (open, close) in [("[", "]"), (#"{"a":"#, "1}")] {
                let body = #"{"language":"bash","source":"true","metadata":"# + nested(depth, open, close) + "}"
                let refused = try await api.post("/v1/jobs", body)
                #expect(refused.status == 400, "depth \(depth): \(refused)")
                #expect(refused.errorCode == "malformed_json", "depth \(depth): \(refused)")
                let batch = try await api.post("/v1/jobs/batch", #"{"jobs":["# + body + "]}")
                #expect(batch.status == 400, "batch, depth \(depth): \(batch)")
                let judge0 = try await api.post("/submissions", #"{"source_code":"echo","language_id":46,"x":"# + nested(depth, open, close) + "}")
                #expect((400..<500).contains(judge0.status), "Judge0, depth \(depth): \(judge0)")
            }
        }
        #expect(try await api.get("/v1/health").status == 200, "the server is alive")
        // Brackets inside strings do not count; 60 levels of real nesting are fine.
        let metadata = #"{"note":"[[[[[[[[[[\"{{{{"# + String(repeating: "{", count: 100) + #"","deep":"# + nested(60, "[", "]") + "}"
        let kept = try await api.post("/v1/jobs?wait=30", #"{"language":"bash","source":"true","metadata":"# + metadata + "}")
        #expect(kept.status == 200, "\(kept)")
        #expect((kept.json["metadata"] as? [String: Any])?["note"] as? String == "[[[[[[[[[[\"{{{{" + String(repeating: "{", count: 100))
    }

    @Test(arguments: TransportKind.allCases)
    func batchReportsPerItemErrorsWithoutFailingTheOthers(_ kind: TransportKind) async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(kind)
        let response = try await api.post("/v1/jobs/batch", jsonText(["jobs": [
            ["language": "bash", "source": "echo one"],
            ["language": "bash", "sourc": "typo"],
            ["language": "python3", "source": "print('three')"],
        ]]))
        #expect(response.status == 201, "\(response)")
        let items = try #require(response.json["jobs"] as? [[String: Any]])
        #expect(items.count == 3)
        let refused = try #require(items[1]["error"] as? [String: Any])
        #expect(refused["code"] as? String == "unknown_field")
        #expect(refused["field"] as? String == "jobs[1].sourc")
        for index in [0, 2] {
            let id = try #require((items[index]["job"] as? [String: Any])?["id"] as? String)
            #expect(try await api.get("/v1/jobs/\(id)?wait=30").json["verdict"] as? String == "accepted")
        }
        let tooMany = try await api.post("/v1/jobs/batch", jsonText(["jobs": Array(repeating: ["language": "bash", "source": "true"], count: 101)]))
        #expect(tooMany.status == 422)
        #expect(tooMany.errorCode == "too_many_jobs")
    }

    @Test func eventsStreamStateChangesAndEachTest() async throws {
        let fixture = try await TestService.start()
        let live = LiveTransport(port: fixture.port)
        // The stream must open while the job runs. On a loaded machine a short job can finish
        // before the GET arrives (its stream is then the final state alone, checked below), so a
        // job that did is submitted again, longer.
        var id = ""
        var stream = TestResponse(status: 0, headers: [:], body: [])
        var events: [(String, [String: Any])] = []
        for sleepSeconds in ["0.3", "1", "3"] {
            let created = try await live.post("/v1/jobs", jsonText([
                "language": "bash", "source": "read x; sleep \(sleepSeconds); echo $x",
                "tests": [["stdin": "a\n", "expected_output": "a\n"], ["stdin": "b\n", "expected_output": "b\n"]],
            ]))
            id = try #require(created.json["id"] as? String)
            stream = try await live.send(.GET, "/v1/jobs/\(id)/events", body: nil, headers: [:])
            events = stream.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { block -> (String, [String: Any]) in
                let lines = block.split(separator: "\n")
                let name = lines.first { $0.hasPrefix("event: ") }.map { String($0.dropFirst(7)) } ?? ""
                let data = lines.filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }.joined(separator: "\n")
                return (name, (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:])
            }
            if events.first?.1["state"] as? String != "finished" { break }
        }
        #expect(stream.status == 200)
        #expect(stream.headers["content-type"] == "text/event-stream")
        #expect(events.first?.1["state"] as? String != "finished", "every job finished before its stream opened")
        let names = events.map(\.0)
        #expect(names.filter { $0 == "test" }.count == 2, "\(stream.text)")
        #expect(names.last == "state")
        #expect(events.last?.1["state"] as? String == "finished")
        #expect(events.last?.1["verdict"] as? String == "accepted")
        let testIndexes = events.filter { $0.0 == "test" }.map { $0.1["index"] as? Int }
        #expect(testIndexes == [0, 1])
        // A finished job's stream is its final state alone.
        let replay = try await live.send(.GET, "/v1/jobs/\(id)/events", body: nil, headers: [:])
        #expect(replay.text.components(separatedBy: "event: ").count == 2)
        #expect(fixture.service.service.events.subscriptionCount == 0, "streams and waits unsubscribe")
    }

    @Test func languagesInfoAndHealth() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.inProcess)
        let languages = try await api.get("/v1/languages")
        let list = try #require((try? JSONSerialization.jsonObject(with: Data(languages.body))) as? [[String: Any]])
        let ids = list.compactMap { $0["id"] as? String }
        #expect(Set(["c", "cpp", "python3", "java", "javascript", "bash"]).isSubset(of: Set(ids)))
        #expect(list.allSatisfy { ($0["version"] as? String)?.isEmpty == false })
        let info = try await api.get("/v1/info")
        #expect(info.json["max_wait_seconds"] as? Int == 60)
        #expect((info.json["languages"] as? [String]) == ids)
        let health = try await api.get("/v1/health")
        #expect(health.status == 200)
        #expect(health.json["status"] as? String == "ok")
        #expect(health.json["sandbox"] as? String == "ok")
    }

    /// A finished job's view is made when its result is stored, not read back from the store:
    /// it must be byte for byte what reading the job from the store renders.
    @Test func theViewMadeAtCompletionIsTheOneReadFromTheStore() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.live)
        let source = """
        #include <stdio.h>
        int main(void) { char s[64]; if (!fgets(s, sizeof s, stdin)) return 3; fputs(s, stdout); fputs("err\\n", stderr); return 0; }
        """
        let job = try await api.run([
            "language": "c", "source": source, "metadata": ["course": "cs101", "n": 3],
            "tests": [["name": "echo", "stdin": "a\n", "expected_output": "a\n", "points": 2], ["stdin": "", "expected_output": "x"]],
        ])
        #expect(job.json["verdict"] as? String == "runtime_error", "\(job)")
        let id = try #require(job.json["id"] as? String)
        let jobs = fixture.service.service
        let atCompletion = try #require(jobs.finishedJobs[id]).json
        jobs.finishedJobs.removeAll()
        let fromStore = try jobs.renderedJob(id: id).json
        #expect(String(decoding: atCompletion, as: UTF8.self) == String(decoding: fromStore, as: UTF8.self))
        #expect(jobs.submittedJobs.usage.count == 0, "the runner took the submitted job")
    }

    /// Runners take submitted jobs decoded from memory; a queued job that is cancelled is dropped
    /// from there too, and the memory they hold is bounded.
    @Test func submittedJobsAreKeptForTheRunnersWithinABound() async throws {
        let fixture = try await TestService.start(workers: 1)
        let api = fixture.transport(.live)
        let jobs = fixture.service.service
        let blocker = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "sleep 60", "limits": ["wall_time_ms": 60_000]]))
        let blockerID = try #require(blocker.json["id"] as? String)
        let deadline = ContinuousClock.now + .seconds(20)
        while try await api.get("/v1/jobs/\(blockerID)").json["state"] as? String != "running", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let queuedBody = "{ \"language\": \"bash\",\n  \"source\": \"echo queued\" }"
        let queued = try await api.post("/v1/jobs", queuedBody)
        let queuedID = try #require(queued.json["id"] as? String)
        #expect(jobs.submittedJobs.usage.count == 1)
        // The native API stores the body as it came (it decodes to the same request).
        #expect(try jobs.store.job(id: JobID(queuedID))?.request == Data(queuedBody.utf8))
        #expect(try await api.delete("/v1/jobs/\(queuedID)").json["state"] as? String == "cancelled")
        #expect(jobs.submittedJobs.usage == (0, 0))
        #expect(try await api.delete("/v1/jobs/\(blockerID)").json["state"] as? String == "cancelled")

        // A batch: its jobs are kept before they are inserted, so a runner that claims one the
        // moment it commits still finds it, and nothing is left behind once all have run.
        let batch = try await api.post("/v1/jobs/batch", jsonText(["jobs": Array(repeating: ["language": "bash", "source": "true"], count: 20)]))
        let batchIDs = try #require(batch.json["jobs"] as? [[String: Any]]).compactMap { ($0["job"] as? [String: Any])?["id"] as? String }
        #expect(batchIDs.count == 20, "\(batch)")
        for id in batchIDs { #expect(try await api.get("/v1/jobs/\(id)?wait=30").json["state"] as? String == "finished") }
        #expect(jobs.submittedJobs.usage == (0, 0))

        let request = JobRequest(language: "bash", source: "true")
        let entry = SubmittedJob(request: request, job: try jobs.validator.validate(request))
        let bounded = SubmittedJobs(maxBytes: 100)
        bounded.keep("a", entry, bytes: 60)
        bounded.keep("b", entry, bytes: 60)
        #expect(bounded.usage == (1, 60), "b would pass the bound")
        #expect(bounded.take("b") == nil)
        #expect(bounded.take("a")?.request == request)
        #expect(bounded.take("a") == nil && bounded.usage == (0, 0))
    }

}
