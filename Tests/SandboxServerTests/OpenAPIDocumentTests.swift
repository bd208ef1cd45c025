import Foundation
import Testing
@testable import SandboxServer

/// The block-mapping subset of YAML that openapi.yaml is written in: `key: value` lines nested
/// by indentation, `- ` list items, flow lists `[a, b]`. Enough to find a schema's property
/// names, `required` and `enum` lists and `$ref` targets; not a YAML parser.
struct OpenAPIOutline {
    struct Entry {
        /// Keys of the enclosing mappings; list items appear as "-".
        let path: [String]
        let key: String
        let value: String
    }

    let entries: [Entry]

    init(_ text: String) {
        var stack: [(indent: Int, key: String)] = []
        var entries: [Entry] = []
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = Substring(rawLine)
            let indent = line.prefix { $0 == " " }.count
            line = line.dropFirst(indent)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var keyIndent = indent
            if line.hasPrefix("- ") {
                while let last = stack.last, last.indent >= indent { stack.removeLast() }
                stack.append((indent, "-"))
                line = line.dropFirst(2)
                keyIndent = indent + 2
            }
            guard let match = line.wholeMatch(of: /("[^"]*"|[A-Za-z0-9_$\/{}.\-]+):(?: +(.*))?/) else { continue }
            let key = String(match.output.1).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            let value = String(match.output.2 ?? "")
            while let last = stack.last, last.indent >= keyIndent, !(last.key == "-" && last.indent == indent && keyIndent != indent) {
                stack.removeLast()
            }
            entries.append(Entry(path: stack.map(\.key), key: key, value: value))
            stack.append((keyIndent, key))
        }
        self.entries = entries
    }

    func keys(under path: [String]) -> [String] { entries.filter { $0.path == path }.map(\.key) }

    func value(at path: [String]) -> String? {
        entries.first { $0.path == Array(path.dropLast()) && $0.key == path.last }?.value
    }

    /// The items of a flow list value such as `[a, b, "null"]`.
    func list(at path: [String]) -> [String]? {
        guard let value = value(at: path), value.hasPrefix("["), value.hasSuffix("]") else { return nil }
        return value.dropFirst().dropLast().split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
    }
}

@Suite struct OpenAPIDocumentTests {
    let outline: OpenAPIOutline

    init() throws {
        outline = OpenAPIOutline(try String(contentsOf: repositoryRoot.appendingPathComponent("openapi.yaml"), encoding: .utf8))
    }

    func properties(_ schema: String) -> Set<String> {
        Set(outline.keys(under: ["components", "schemas", schema, "properties"]))
    }

    func names<Keys: CodingKey & CaseIterable>(_: Keys.Type) -> Set<String> { Set(Keys.allCases.map(\.stringValue)) }

    @Test func outlineReaderFindsNestedKeys() {
        let sample = OpenAPIOutline("""
        a:
          b:
            - name: x
              in: query
            - name: y
          c: [1, "two"]
        d: 1
        """)
        #expect(sample.keys(under: ["a", "b", "-"]) == ["name", "in", "name"])
        #expect(sample.list(at: ["a", "c"]) == ["1", "two"])
        #expect(sample.keys(under: []) == ["a", "d"])
    }

    @Test func requestSchemasMatchCodingKeysAndAreClosed() {
        let requestSchemas: [(String, Set<String>)] = [
            ("JobRequest", names(JobRequest.CodingKeys.self)),
            ("FileInput", names(FileInput.CodingKeys.self)),
            ("LimitsInput", names(LimitsInput.CodingKeys.self)),
            ("TestInput", names(TestInput.CodingKeys.self)),
            ("CompareSpecObject", names(CompareSpec.CodingKeys.self)),
            ("JobBatchRequest", names(JobBatchRequest.CodingKeys.self)),
        ]
        for (schema, codingKeys) in requestSchemas {
            #expect(properties(schema) == codingKeys, "schema \(schema)")
            #expect(outline.value(at: ["components", "schemas", schema, "additionalProperties"]) == "false", "schema \(schema)")
        }
        #expect(outline.list(at: ["components", "schemas", "JobRequest", "required"]) == ["language"])
    }

    @Test func responseSchemasMatchCodingKeysAndRequireEveryKey() {
        let responseSchemas: [(String, Set<String>)] = [
            ("JobView", names(JobView.CodingKeys.self)),
            ("CompileView", names(CompileView.CodingKeys.self)),
            ("TestResultView", names(TestResultView.CodingKeys.self)),
            ("ErrorResponse", names(ErrorResponse.CodingKeys.self)),
            ("ErrorDetail", names(ErrorDetail.CodingKeys.self)),
            ("JobLimits", names(JobLimits.CodingKeys.self)),
            ("LanguageView", names(LanguageView.CodingKeys.self)),
            ("HealthView", names(HealthView.CodingKeys.self)),
            ("ServerLimitsView", names(ServerLimitsView.CodingKeys.self)),
            ("InfoView", names(InfoView.CodingKeys.self)),
            ("JobBatchResponse", names(JobBatchResponse.CodingKeys.self)),
            ("JobBatchItem", names(JobBatchItem.CodingKeys.self)),
            ("JobListResponse", names(JobListResponse.CodingKeys.self)),
        ]
        for (schema, codingKeys) in responseSchemas {
            #expect(properties(schema) == codingKeys, "schema \(schema)")
            // The encoders write every key (null when absent), so the schema requires them all.
            #expect(Set(outline.list(at: ["components", "schemas", schema, "required"]) ?? []) == codingKeys, "schema \(schema)")
        }
    }

    @Test func enumsMatchSwiftEnums() {
        func enumValues(_ path: String...) -> [String]? { outline.list(at: ["components", "schemas"] + path + ["enum"]) }
        #expect(enumValues("Verdict") == Verdict.allCases.map(\.rawValue))
        #expect(enumValues("JobState") == JobState.allCases.map(\.rawValue))
        #expect(enumValues("ComparisonMode") == ComparisonMode.allCases.map(\.rawValue))
        #expect(enumValues("FileEncoding") == FileEncoding.allCases.map(\.rawValue))
        #expect(enumValues("TextEncoding") == TextEncoding.allCases.map(\.rawValue))
        #expect(enumValues("APIErrorCode") == APIErrorCode.allCases.map(\.rawValue))
        #expect(enumValues("HealthView", "properties", "status") == HealthView.Status.allCases.map(\.rawValue))
    }

    @Test func everyEndpointOfIssue5IsDescribed() {
        let paths = Set(outline.keys(under: ["paths"]))
        #expect(paths == ["/v1/jobs", "/v1/jobs/batch", "/v1/jobs/{id}", "/v1/jobs/{id}/events", "/v1/languages", "/v1/health", "/v1/info",
                          "/metrics"])  // issue 8
        #expect(Set(outline.keys(under: ["paths", "/v1/jobs"])) == ["post", "get"])
        #expect(Set(outline.keys(under: ["paths", "/v1/jobs/{id}"])).isSuperset(of: ["get", "delete"]))
        #expect(Set(outline.keys(under: ["components", "securitySchemes"])) == ["bearerAuth", "tokenHeader"])
        #expect(outline.value(at: ["openapi"]) == "3.1.0")
    }

    @Test func everyReferenceResolves() {
        let references = outline.entries.filter { $0.key == "$ref" }.map { $0.value.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        #expect(references.count > 50)
        for reference in references {
            let parts = reference.split(separator: "/").map(String.init)
            guard parts.count == 4, parts[0] == "#", parts[1] == "components" else {
                Issue.record("unexpected $ref \(reference)")
                continue
            }
            #expect(outline.keys(under: ["components", parts[2]]).contains(parts[3]), "dangling $ref \(reference)")
        }
    }
}
