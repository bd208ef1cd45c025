import Foundation
import Testing
@testable import SandboxServer

@Suite struct JobViewEncodingTests {
    let created = Date(timeIntervalSince1970: 1_764_401_707.123_9)

    func json(_ value: some JSONWritable) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: APIJSON.encode(value)) as? [String: Any])
    }

    @Test func timestampsHaveMillisecondsAndZ() {
        #expect(Timestamp.format(created) == "2025-11-29T07:35:07.123Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(Timestamp.parse("2025-11-29T07:35:07.123Z").map(Timestamp.format) == "2025-11-29T07:35:07.123Z")
        #expect(Timestamp.parse("2025-11-29 07:35:07Z") == nil)
    }

    @Test func queuedJobHasNullsNotMissingKeys() throws {
        let view = JobView(id: "j1", state: .queued, language: "c", maxScore: 3, createdAt: created)
        let object = try json(view)
        #expect(Set(object.keys) == Set(JobView.CodingKeys.allCases.map(\.stringValue)))
        #expect(object["verdict"] is NSNull)
        #expect(object["started_at"] is NSNull)
        #expect(object["created_at"] as? String == "2025-11-29T07:35:07.123Z")
        #expect(object["metadata"] is NSNull)
    }

    @Test func queuedViewOfAValidatedJob() throws {
        let validator = JobRequestValidator(registry: try LanguageRegistry.embedded(), limits: .standard)
        let job = try validator.validate(JobRequest(
            language: "python3", source: "", tests: [TestInput(points: 2), TestInput(points: 5)], metadata: .string("m")))
        let view = JobView.queued(id: "q1", job: job, createdAt: created)
        #expect(view.state == .queued)
        #expect(view.language == "python3")
        #expect(view.maxScore == 7)
        #expect(view.score == nil)
        #expect(view.verdict == nil)
        #expect(view.metadata == .string("m"))
    }

    @Test func finishedJobFromGrade() throws {
        let grader = JobGrader(tests: [
            TestCaseSpec(name: "t1", expectedOutput: Array("ok\n".utf8), points: 2),
            TestCaseSpec(name: "t2", expectedOutput: Array("ok\n".utf8), points: 1),
        ], stopOnFirstFailure: true)
        let outcome = RunOutcome(
            status: .ok, exitCode: 0, cpuTime: .milliseconds(12), wallTime: .milliseconds(30), memoryBytes: 4096,
            stdout: [0x6F, 0x6B, 0xFF], stderr: Array("warn".utf8), stdoutTruncated: true)
        let first = grader.grade(testAt: 0, outcome: outcome)
        let grade = grader.finish(compile: .succeeded, grades: [first])
        let compile = RunOutcome(status: .ok, exitCode: 0, wallTime: .milliseconds(250), stderr: Array("note".utf8))
        let view = JobView(
            id: "j2", language: "c", grade: grade, compileOutcome: compile, metadata: .object(["k": .string("v")]),
            createdAt: created, startedAt: created, finishedAt: created.addingTimeInterval(1))
        let object = try json(view)
        #expect(object["verdict"] as? String == "wrong_answer")
        #expect(object["score"] as? Int == 0)
        #expect(object["max_score"] as? Int == 3)
        #expect(object["finished_at"] as? String == "2025-11-29T07:35:08.123Z")
        #expect((object["metadata"] as? [String: Any])?["k"] as? String == "v")
        let compileObject = try #require(object["compile"] as? [String: Any])
        #expect(compileObject["output"] as? String == "note")
        #expect(compileObject["time_ms"] as? Int == 250)
        let tests = try #require(object["tests"] as? [[String: Any]])
        #expect(tests.count == 2)
        #expect(Set(tests[0].keys) == Set(TestResultView.CodingKeys.allCases.map(\.stringValue)))
        // Invalid UTF-8 goes out as base64, marked.
        #expect(tests[0]["stdout"] as? String == Data([0x6F, 0x6B, 0xFF]).base64EncodedString())
        #expect(tests[0]["stdout_encoding"] as? String == "base64")
        #expect(tests[0]["stderr"] as? String == "warn")
        #expect(tests[0]["stderr_encoding"] as? String == "utf8")
        #expect(tests[0]["stdout_truncated"] as? Bool == true)
        #expect(tests[0]["cpu_time_ms"] as? Int == 12)
        #expect(tests[0]["memory_bytes"] as? Int == 4096)
        #expect(tests[1]["verdict"] as? String == "skipped")
        #expect(tests[1]["stdout"] is NSNull)
    }

    @Test func encodingIsDeterministicAndRoundTrips() throws {
        let view = JobView(
            id: "j3", state: .finished, language: "python3", verdict: .accepted, tests: [], score: 1, maxScore: 1,
            metadata: .object(["z": .number(1), "a": .number(2)]), createdAt: created, startedAt: created, finishedAt: created)
        let encoded = APIJSON.encode(view)
        #expect(encoded == APIJSON.encode(view))
        let text = String(decoding: encoded, as: UTF8.self)
        #expect(text.firstRange(of: "\"created_at\"")!.lowerBound < text.firstRange(of: "\"id\"")!.lowerBound)
        let decoded = try APIJSON.makeDecoder().decode(JobView.self, from: encoded)
        var expected = view
        expected.createdAt = Timestamp.parse("2025-11-29T07:35:07.123Z")!
        expected.startedAt = expected.createdAt
        expected.finishedAt = expected.createdAt
        #expect(decoded == expected)
    }

    @Test func errorBodyShape() throws {
        let error = APIError(.limitExceedsMaximum, "limits.cpu_time_ms is 100000 but the maximum is 20000", field: "limits.cpu_time_ms")
        #expect(String(decoding: APIJSON.encode(error.body), as: UTF8.self)
            == #"{"error":{"code":"limit_exceeds_maximum","field":"limits.cpu_time_ms","message":"limits.cpu_time_ms is 100000 but the maximum is 20000"}}"#)
        #expect(String(decoding: APIJSON.encode(APIError(.notFound, "no such job").body), as: UTF8.self)
            == #"{"error":{"code":"not_found","field":null,"message":"no such job"}}"#)
    }

    @Test func batchItemsDecodeOneByOne() throws {
        let body = #"{"jobs": [{"language": "c", "source": "x"}, {"language": "c", "source": "x", "limits": {"cpu": 1}}]}"#
        let batch = try APIJSON.decodeRequest(JobBatchRequest.self, from: Data(body.utf8))
        try batch.validateSize()
        let results = batch.decodeJobs()
        #expect(try results[0].get().language == "c")
        guard case let .failure(error) = results[1] else { Issue.record("second job should fail"); return }
        #expect(error.field == "jobs[1].limits.cpu")
        #expect(throws: APIError.self) { try JobBatchRequest(jobs: []).validateSize() }
        #expect(throws: APIError.self) { try JobBatchRequest(jobs: Array(repeating: .null, count: 101)).validateSize() }
    }
}
