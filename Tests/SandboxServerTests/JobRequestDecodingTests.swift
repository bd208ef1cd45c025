import Foundation
import Testing
@testable import SandboxServer

func decodeJob(_ json: String) throws(APIError) -> JobRequest {
    try APIJSON.decodeRequest(JobRequest.self, from: Data(json.utf8))
}

/// The APIError decoding `json` produces; records an issue if it decodes.
func decodingError(_ json: String) -> APIError? {
    do {
        let request = try decodeJob(json)
        Issue.record("decoded unexpectedly: \(request)")
        return nil
    } catch {
        return error
    }
}

@Suite struct JobRequestDecodingTests {
    @Test func fullRequestDecodes() throws {
        let request = try decodeJob("""
        {
          "language": "cpp",
          "files": [{"name": "main.cpp", "content": "int main(){}"}, {"name": "data.bin", "content": "AAE=", "encoding": "base64"}],
          "stdin": "1 2\\n",
          "args": ["-v"],
          "compile_options": ["-O2"],
          "limits": {"cpu_time_ms": 1000, "wall_time_ms": 3000, "memory_bytes": 67108864, "processes": 4,
                     "output_bytes": 1024, "file_size_bytes": 2048, "network": false},
          "tests": [{"name": "a", "stdin": "1", "expected_output": "2", "points": 5}],
          "compare": {"mode": "float", "tolerance": 0.001},
          "stop_on_first_failure": true,
          "callback_url": "https://grader.example/hook",
          "metadata": {"student": 42, "tags": ["x", null, true]},
          "priority": 3
        }
        """)
        #expect(request.language == "cpp")
        #expect(request.files?.count == 2)
        #expect(request.files?[1].encoding == .base64)
        #expect(request.limits == LimitsInput(
            cpuTimeMs: 1000, wallTimeMs: 3000, memoryBytes: 67_108_864, processes: 4, outputBytes: 1024, fileSizeBytes: 2048, network: false))
        #expect(request.tests == [TestInput(name: "a", stdin: "1", expectedOutput: "2", points: 5)])
        #expect(request.compare == CompareSpec(mode: .float, tolerance: 0.001))
        #expect(request.stopOnFirstFailure == true)
        #expect(request.metadata == .object(["student": .number(42), "tags": .array([.string("x"), .null, .bool(true)])]))
        #expect(request.priority == 3)
    }

    @Test func compareStringShorthand() throws {
        #expect(try decodeJob(#"{"language": "c", "source": "x", "compare": "tokens"}"#).compare == CompareSpec(mode: .tokens))
    }

    @Test func unknownCompareModeIsInvalidValue() {
        let error = decodingError(#"{"language": "c", "source": "x", "compare": "fuzzy"}"#)
        #expect(error?.code == .invalidValue)
        #expect(error?.field == "compare")
        #expect(error?.message.contains("trailing_whitespace") == true)
        #expect(decodingError(#"{"language": "c", "source": "x", "compare": {"mode": "flaot"}}"#)?.field == "compare.mode")
    }

    @Test func unknownTopLevelFieldIsRefused() {
        let error = decodingError(#"{"language": "c", "source": "x", "stdn": ""}"#)
        #expect(error?.code == .unknownField)
        #expect(error?.httpStatus == 422)
        #expect(error?.field == "stdn")
        #expect(error?.message.contains("did you mean stdin?") == true)
    }

    @Test func unknownNestedFieldNamesTheExactPath() {
        let error = decodingError(#"{"language": "c", "source": "x", "limits": {"cpu_tme_ms": 10}}"#)
        #expect(error?.code == .unknownField)
        #expect(error?.field == "limits.cpu_tme_ms")
        #expect(error?.message.contains("cpu_time_ms") == true)
        #expect(decodingError(#"{"language": "c", "tests": [{}, {"expected": "1"}], "source": "x"}"#)?.field == "tests[1].expected")
        #expect(decodingError(#"{"language": "c", "files": [{"name": "a.c", "content": "", "mode": "755"}]}"#)?.field == "files[0].mode")
        #expect(decodingError(#"{"language": "c", "source": "x", "compare": {"mode": "exact", "tol": 1}}"#)?.field == "compare.tol")
    }

    @Test func metadataMayHoldAnyKeys() throws {
        let request = try decodeJob(#"{"language": "c", "source": "x", "metadata": {"anything": {"goes": 1.5}}}"#)
        #expect(request.metadata == .object(["anything": .object(["goes": .number(1.5)])]))
    }

    @Test func malformedJSONIs400() {
        let error = decodingError(#"{"language": "c", "#)
        #expect(error?.code == .malformedJSON)
        #expect(error?.httpStatus == 400)
        #expect(error?.field == nil)
        #expect(decodingError("[1, 2]")?.code == .malformedJSON)
    }

    @Test func wrongTypeNamesFieldAndType() {
        let error = decodingError(#"{"language": "c", "source": "x", "limits": {"cpu_time_ms": "fast"}}"#)
        #expect(error?.code == .invalidType)
        #expect(error?.field == "limits.cpu_time_ms")
        #expect(error?.message == "limits.cpu_time_ms must be an integer")
        #expect(decodingError(#"{"language": "c", "source": "x", "stop_on_first_failure": "yes"}"#)?.message
            == "stop_on_first_failure must be a boolean")
        #expect(decodingError(#"{"language": "c", "source": "x", "limits": {"cpu_time_ms": 1.5}}"#)?.field == "limits.cpu_time_ms")
    }

    @Test func missingLanguage() {
        let error = decodingError(#"{"source": "x"}"#)
        #expect(error?.code == .missingField)
        #expect(error?.field == "language")
    }

    @Test func nullOptionalFieldsMeanAbsent() throws {
        let request = try decodeJob(#"{"language": "c", "source": "x", "stdin": null, "limits": null}"#)
        #expect(request.stdin == nil)
        #expect(request.limits == nil)
    }

    @Test func canonicalEncodingIsDeterministicAndRoundTrips() throws {
        let first = try decodeJob(#"{"priority": 1, "language": "c", "source": "x", "compare": "exact", "metadata": {"b": 1, "a": [2]}}"#)
        let second = try decodeJob(#"{"metadata": {"a": [2], "b": 1}, "compare": {"mode": "exact"}, "source": "x", "language": "c", "priority": 1}"#)
        #expect(first.canonicalJSON == second.canonicalJSON)
        let third = try decodeJob(#"{"priority": 2, "language": "c", "source": "x", "compare": "exact", "metadata": {"b": 1, "a": [2]}}"#)
        #expect(first.canonicalJSON != third.canonicalJSON)
        #expect(try decodeJob(String(decoding: APIJSON.encode(first), as: UTF8.self)) == first)
    }

    @Test func fieldPathRendering() {
        let path = FieldPath([.key("tests"), .index(2), .key("stdin")])
        #expect(path.description == "tests[2].stdin")
    }

    @Test func editDistance() {
        #expect(FieldNameSuggestion.editDistance("cpu_tme_ms", "cpu_time_ms") == 1)
        #expect(FieldNameSuggestion.closest(to: "colour", among: ["language", "files"]) == nil)
    }
}

@Suite struct JSONValueTests {
    @Test func roundTripsEveryKind() throws {
        let json = #"{"a":null,"b":true,"c":3,"d":-2.5,"e":"text","f":[1,"two",false],"g":{"h":{}}}"#
        let value = try APIJSON.makeDecoder().decode(JSONValue.self, from: Data(json.utf8))
        #expect(value == .object([
            "a": .null, "b": .bool(true), "c": .number(3), "d": .number(-2.5), "e": .string("text"),
            "f": .array([.number(1), .string("two"), .bool(false)]), "g": .object(["h": .object([:])]),
        ]))
        #expect(String(decoding: APIJSON.encode(value), as: UTF8.self) == json)
    }

    @Test func booleansStayBooleansAndNumbersStayNumbers() throws {
        let value = try APIJSON.makeDecoder().decode(JSONValue.self, from: Data("[1, 0, true, false]".utf8))
        #expect(value == .array([.number(1), .number(0), .bool(true), .bool(false)]))
    }
}
