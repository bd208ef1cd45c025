import Foundation
@testable import SandboxServer

/// `JSONEncoder` encodings of the hand-written views, field by field from their `CodingKeys`:
/// the reference the writers are compared with (``JSONWriterTests``). They live here, not in
/// the server, so the server has one encoding of each view.
enum JSONEncoderOracle {
    /// The text `APIJSON`'s encoder writes for `value`.
    static func text(_ value: some Encodable) throws -> String {
        String(decoding: try APIJSON.makeEncoder().encode(value), as: UTF8.self)
    }

    struct Compile: Encodable {
        let view: CompileView
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CompileView.CodingKeys.self)
            try container.encode(view.output, forKey: .output)
            try container.encode(view.outputEncoding, forKey: .outputEncoding)
            try container.encode(view.exitCode, forKey: .exitCode)
            try container.encode(view.timeMs, forKey: .timeMs)
        }
    }

    struct Test: Encodable {
        let view: TestResultView
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: TestResultView.CodingKeys.self)
            try container.encode(view.name, forKey: .name)
            try container.encode(view.verdict, forKey: .verdict)
            try container.encode(view.points, forKey: .points)
            try container.encode(view.pointsAwarded, forKey: .pointsAwarded)
            try container.encode(view.stdout, forKey: .stdout)
            try container.encode(view.stdoutEncoding, forKey: .stdoutEncoding)
            try container.encode(view.stderr, forKey: .stderr)
            try container.encode(view.stderrEncoding, forKey: .stderrEncoding)
            try container.encode(view.exitCode, forKey: .exitCode)
            try container.encode(view.signal, forKey: .signal)
            try container.encode(view.cpuTimeMs, forKey: .cpuTimeMs)
            try container.encode(view.wallTimeMs, forKey: .wallTimeMs)
            try container.encode(view.memoryBytes, forKey: .memoryBytes)
            try container.encode(view.stdoutTruncated, forKey: .stdoutTruncated)
            try container.encode(view.stderrTruncated, forKey: .stderrTruncated)
            try container.encode(view.message, forKey: .message)
        }
    }

    struct Job: Encodable {
        let view: JobView
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: JobView.CodingKeys.self)
            try container.encode(view.id, forKey: .id)
            try container.encode(view.state, forKey: .state)
            try container.encode(view.language, forKey: .language)
            try container.encode(view.verdict, forKey: .verdict)
            try container.encode(view.message, forKey: .message)
            try container.encode(view.compile.map(Compile.init), forKey: .compile)
            try container.encode(view.tests.map(Test.init), forKey: .tests)
            try container.encode(view.score, forKey: .score)
            try container.encode(view.maxScore, forKey: .maxScore)
            try container.encode(view.metadata ?? .null, forKey: .metadata)
            try container.encode(view.createdAt, forKey: .createdAt)
            try container.encode(view.startedAt, forKey: .startedAt)
            try container.encode(view.finishedAt, forKey: .finishedAt)
        }
    }

    /// As a synthesized `Encodable` writes it: absent optionals left out.
    struct Details: Encodable {
        let details: StoredJob.Details
        enum CodingKeys: String, CodingKey { case compile, tests, score }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(details.compile.map(Compile.init), forKey: .compile)
            try container.encode(details.tests.map(Test.init), forKey: .tests)
            try container.encodeIfPresent(details.score, forKey: .score)
        }
    }

    struct BatchResponse: Encodable {
        let response: JobBatchResponse
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: JobBatchResponse.CodingKeys.self)
            try container.encode(response.jobs.map(BatchItem.init), forKey: .jobs)
        }
    }

    struct BatchItem: Encodable {
        let item: JobBatchItem
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: JobBatchItem.CodingKeys.self)
            try container.encode(item.job.map(Job.init), forKey: .job)
            try container.encode(item.error, forKey: .error)
        }
    }

    struct ListResponse: Encodable {
        let response: JobListResponse
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: JobListResponse.CodingKeys.self)
            try container.encode(response.jobs.map(Job.init), forKey: .jobs)
            try container.encode(response.nextCursor, forKey: .nextCursor)
        }
    }

    struct TestEvent: Encodable {
        let event: TestEventView
        enum CodingKeys: String, CodingKey { case index, test }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(event.index, forKey: .index)
            try container.encode(Test(view: event.test), forKey: .test)
        }
    }
}
