import Foundation
import JobStore

/// How the service keeps its jobs in the JobStore: the request as canonical JSON (the opaque
/// blob), the result's columns for listing, and the API's own detail (compile step and per-test
/// views) as JSON in `JobResult.extra`, so a finished job's view is rebuilt exactly.
enum StoredJob {
    /// What `JobResult.extra` holds for a job the service finished.
    struct Details: Decodable, Sendable, Equatable {
        var compile: CompileView?
        var tests: [TestResultView]
        var score: Int?
    }

    /// The request a job was submitted with; nil when the blob is unreadable (a newer format).
    static func request(of record: JobRecord) -> JobRequest? {
        try? APIJSON.makeDecoder().decode(JobRequest.self, from: record.request)
    }

    /// Points of all tests of a request (a job without tests is one test worth 1).
    static func maxScore(of request: JobRequest?) -> Int {
        guard let tests = request?.tests else { return 1 }
        return tests.reduce(0) { $0 + ($1.points ?? 1) }
    }

    /// The API view of a stored job.
    static func view(of record: JobRecord) -> JobView {
        view(of: record, request: request(of: record))
    }

    /// The API view of a stored job whose request the caller has already decoded (decoding is
    /// the expensive part of rendering a job). A caller that made the result passes its
    /// `details`, which are otherwise decoded from `JobResult.extra`.
    static func view(of record: JobRecord, request: JobRequest?, details knownDetails: Details? = nil) -> JobView {
        let state: JobState = switch record.state {
        case .queued: .queued
        case .running: .running
        case .finished: .finished
        case .cancelled: .cancelled
        }
        var view = JobView(
            id: record.id.rawValue, state: state, language: record.language, maxScore: maxScore(of: request),
            metadata: request?.metadata, createdAt: record.createdAt.date, startedAt: record.startedAt?.date,
            finishedAt: record.finishedAt?.date)
        if state == .cancelled { view.message = "cancelled" }
        guard state == .finished, let result = record.result else { return view }
        view.verdict = Verdict(rawValue: result.verdict.rawValue) ?? .internalError
        view.message = result.message
        if let details = knownDetails ?? result.extra.flatMap({ try? APIJSON.makeDecoder().decode(Details.self, from: $0) }) {
            view.compile = details.compile
            view.tests = details.tests
            view.score = details.score
        } else {
            // Finished by the store itself (abandoned after its runners kept dying): no tests ran.
            view.score = 0
        }
        return view
    }

    /// The store's result for a graded job, and the details it holds in `extra` (for views of
    /// the job made before it is read back).
    static func result(grade: JobGrade, compile: RunOutcome?) -> (result: JobResult, details: Details) {
        let compileView = compile.map(CompileView.init(outcome:))
        let testViews = grade.tests.map(TestResultView.init(grade:))
        let details = Details(compile: compileView, tests: testViews, score: grade.score)
        let tests = grade.tests.map { test in
            JobStore::TestResult(
                verdict: JobStore::Verdict(rawValue: test.verdict.rawValue),
                stdout: Data(test.outcome?.stdout ?? []), stderr: Data(test.outcome?.stderr ?? []),
                exitCode: test.outcome?.exitCode.map(Int32.init), signal: test.outcome?.signal.map(Int32.init),
                cpuMilliseconds: test.outcome.map { Int64($0.cpuTime.wholeMilliseconds) },
                wallMilliseconds: test.outcome.map { Int64($0.wallTime.wholeMilliseconds) },
                memoryBytes: test.outcome.map { Int64($0.memoryBytes) },
                stdoutTruncated: test.outcome?.stdoutTruncated ?? false, stderrTruncated: test.outcome?.stderrTruncated ?? false,
                message: test.message)
        }
        let result = JobStore::JobResult(
            verdict: JobStore::Verdict(rawValue: grade.verdict.rawValue), message: grade.message,
            compileOutput: compile.map { Data($0.stdout + $0.stderr) },
            compileOutputTruncated: compile.map { $0.stdoutTruncated || $0.stderrTruncated } ?? false,
            score: Double(grade.score), tests: tests, extra: Data(details.jsonBytes))
        return (result, details)
    }

    /// A result for a job that could not be run at all (its request no longer validates, say).
    static func internalErrorResult(_ message: String) -> (result: JobResult, details: Details) {
        let details = Details(compile: nil, tests: [], score: 0)
        return (JobStore::JobResult(verdict: .internalError, message: message, extra: Data(details.jsonBytes)), details)
    }

    /// `hex(SHA-256(canonical request))`: what an `Idempotency-Key` is checked against.
    static func requestHash(_ request: JobRequest) -> String {
        HMACSHA256.hex(SHA256.hash(Array(request.canonicalJSON)))
    }
}

extension StoredJob.Details: JSONWritable {
    /// Absent optionals are left out (as a synthesized `Encodable` would write them).
    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            if let compile {
                writer.key("compile")
                compile.write(to: &writer)
            }
            if let score {
                writer.key("score")
                writer.integer(score)
            }
            writer.key("tests")
            writer.array(tests) { $1.write(to: &$0) }
        }
    }
}
