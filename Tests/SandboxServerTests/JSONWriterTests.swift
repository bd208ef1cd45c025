import Foundation
import Testing
@testable import SandboxServer

/// The hand-written encodings must be exactly what `JSONEncoder` writes for the same values
/// (``JSONEncoderOracle``): stored details are decoded with `JSONDecoder`, and clients see one
/// format from every route.
@Suite struct JSONWriterTests {
    let created = Date(timeIntervalSince1970: 1_764_401_707.123_9)

    /// Every control character, quotes, backslashes, slashes, DEL, multi-byte UTF-8.
    static let awkwardText: String = {
        var text = ""
        for byte in 0..<0x20 { text.unicodeScalars.append(Unicode.Scalar(UInt8(byte))) }
        return text + "\u{7F}\"\\/é😀\u{2028}</script>plain"
    }()

    func handWritten(_ value: some JSONWritable) -> String { String(decoding: value.jsonBytes, as: UTF8.self) }

    func testView(_ index: Int, outcome: RunOutcome?) -> TestResultView {
        TestResultView(grade: TestGrade(
            name: "test \(index) \(Self.awkwardText)", verdict: .wrongAnswer, points: 3, pointsAwarded: index, outcome: outcome,
            message: index.isMultiple(of: 2) ? nil : "expected \"1\"\n"))
    }

    var views: [JobView] {
        let outcome = RunOutcome(
            status: .signaled, exitCode: nil, signal: 9, cpuTime: .milliseconds(12), wallTime: .milliseconds(1_234_567),
            memoryBytes: Int.max, stdout: Array(Self.awkwardText.utf8), stderr: [0x6F, 0xFF], stdoutTruncated: true)
        let compile = CompileView(outcome: RunOutcome(status: .ok, exitCode: -3, wallTime: .milliseconds(0), stderr: Array(Self.awkwardText.utf8)))
        let metadata: JSONValue = .object([
            "z": .number(1), "a_b": .number(-2.5), "a": .array([.null, .bool(true), .bool(false), .number(1e-5), .number(1e20),
                                                                 .number(0.1), .number(9_007_199_254_740_993), .number(-0.0)]),
            "ab": .string(Self.awkwardText), "é": .object([:]), "Z": .array([]), "": .number(123_456_789.125),
        ])
        return [
            JobView(id: "q", state: .queued, language: "c", maxScore: 0, createdAt: created),
            JobView(id: "r", state: .running, language: "python3", maxScore: 2, metadata: .string("m"),
                    createdAt: created, startedAt: created.addingTimeInterval(0.0004)),
            JobView(id: "x", state: .cancelled, language: "bash", message: "cancelled", maxScore: 1, metadata: .null,
                    createdAt: Date(timeIntervalSince1970: -0.5)),
            JobView(id: Self.awkwardText, state: .finished, language: "java", verdict: .runtimeError, message: Self.awkwardText,
                    compile: compile, tests: [testView(0, outcome: outcome), testView(1, outcome: nil)], score: -7,
                    maxScore: Int.min, metadata: metadata, createdAt: created, startedAt: created,
                    finishedAt: created.addingTimeInterval(86_400 * 365 * 80)),
        ]
    }

    @Test func jobViewsMatchJSONEncoder() throws {
        for view in views {
            #expect(handWritten(view) == (try JSONEncoderOracle.text(JSONEncoderOracle.Job(view: view))))
        }
    }

    @Test func storedDetailsMatchJSONEncoderAndDecode() throws {
        let finished = try #require(views.last)
        let details = [
            StoredJob.Details(compile: finished.compile, tests: finished.tests, score: 3),
            StoredJob.Details(compile: nil, tests: [], score: nil),
            StoredJob.Details(compile: nil, tests: finished.tests, score: 0),
        ]
        for detail in details {
            #expect(handWritten(detail) == (try JSONEncoderOracle.text(JSONEncoderOracle.Details(details: detail))))
            #expect(try APIJSON.makeDecoder().decode(StoredJob.Details.self, from: Data(detail.jsonBytes)) == detail)
        }
    }

    @Test func responsesHoldingViewsMatchJSONEncoder() throws {
        let views = views
        let error = ErrorDetail(code: .invalidValue, message: "bad \(Self.awkwardText)", field: "jobs[1].language")
        let batch = JobBatchResponse(jobs: [
            JobBatchItem(job: views[3], error: nil), JobBatchItem(job: nil, error: error),
            JobBatchItem(job: nil, error: ErrorDetail(code: .notFound, message: "m", field: nil)),
        ])
        #expect(handWritten(batch) == (try JSONEncoderOracle.text(JSONEncoderOracle.BatchResponse(response: batch))))
        #expect(handWritten(JobBatchResponse(jobs: [])) == #"{"jobs":[]}"#)
        for page in [JobListResponse(jobs: views, nextCursor: "c\"1"), JobListResponse(jobs: [], nextCursor: nil)] {
            #expect(handWritten(page) == (try JSONEncoderOracle.text(JSONEncoderOracle.ListResponse(response: page))))
        }
        for test in views[3].tests {
            let event = TestEventView(index: 7, test: test)
            #expect(handWritten(event) == (try JSONEncoderOracle.text(JSONEncoderOracle.TestEvent(event: event))))
        }
        #expect(handWritten(error) == (try JSONEncoderOracle.text(error)))
    }

    @Test func everyKeyOfEveryViewIsWritten() throws {
        let finished = try #require(views.last)
        let object = try #require(JSONSerialization.jsonObject(with: Data(finished.jsonBytes)) as? [String: Any])
        #expect(Set(object.keys) == Set(JobView.CodingKeys.allCases.map(\.stringValue)))
        let test = try #require((object["tests"] as? [[String: Any]])?.first)
        #expect(Set(test.keys) == Set(TestResultView.CodingKeys.allCases.map(\.stringValue)))
        let compile = try #require(object["compile"] as? [String: Any])
        #expect(Set(compile.keys) == Set(CompileView.CodingKeys.allCases.map(\.stringValue)))
    }

    /// 64-bit ids in metadata come back digit for digit (they were once read as doubles and
    /// came back as 1.2345678901234568e+18); fractions keep their shortest form.
    @Test func metadataNumbersComeBackAsSent() throws {
        let text = #"{"a":1234567890123456789,"b":9007199254740993,"c":-9223372036854775808,"d":9223372036854775807,"e":1.5,"f":-0.25,"g":0,"h":[1,2.5]}"#
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        var writer = JSONWriter()
        writer.value(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == text)
        #expect(try JSONEncoderOracle.text(value) == text)
        // Beyond 64 bits a number is a double, as before.
        let huge = try JSONDecoder().decode(JSONValue.self, from: Data("18446744073709551616".utf8))
        #expect(huge == .number(18_446_744_073_709_551_616))
        // Integers and doubles of the same value are the same JSON value.
        #expect(JSONValue.integer(3) == .number(3) && JSONValue.number(3) == .integer(3) && JSONValue.integer(3) != .number(3.5))
    }

    @Test func integersAtTheirLimits() {
        for value in [0, 1, -1, 9, 10, -10, Int.max, Int.min, 1_000_000_007] {
            var writer = JSONWriter()
            writer.integer(value)
            #expect(String(decoding: writer.bytes, as: UTF8.self) == String(value))
        }
    }
}
