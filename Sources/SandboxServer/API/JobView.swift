import Foundation

/// Where a job is in its life.
enum JobState: String, Codable, Sendable, CaseIterable {
    case queued
    case running
    /// Graded; `verdict` is set.
    case finished
    /// Deleted before it finished.
    case cancelled
}

/// How a text field of a response is written.
enum TextEncoding: String, Codable, Sendable, CaseIterable {
    case utf8
    /// The bytes were not valid UTF-8; the field holds them base64-encoded.
    case base64
}

/// Program output as a JSON string: the text itself when it is valid UTF-8, else base64.
struct EncodedOutput: Sendable, Equatable {
    var text: String
    var encoding: TextEncoding

    init(_ bytes: [UInt8]) {
        // String(validating:) is nil for invalid UTF-8, where String(decoding:) would silently
        // substitute U+FFFD and lose the bytes.
        if let text = String(validating: bytes, as: UTF8.self) {
            self.text = text
            encoding = .utf8
        } else {
            text = Data(bytes).base64EncodedString()
            encoding = .base64
        }
    }
}

/// The compile step in a job view.
struct CompileView: Decodable, Sendable, Equatable {
    /// The compiler's stdout followed by its stderr.
    var output: String
    var outputEncoding: TextEncoding
    /// `null` when the compiler was killed by a signal or a limit.
    var exitCode: Int?
    var timeMs: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case output
        case outputEncoding = "output_encoding"
        case exitCode = "exit_code"
        case timeMs = "time_ms"
    }

    init(output: String, outputEncoding: TextEncoding, exitCode: Int?, timeMs: Int) {
        self.output = output
        self.outputEncoding = outputEncoding
        self.exitCode = exitCode
        self.timeMs = timeMs
    }

    init(outcome: RunOutcome) {
        let output = EncodedOutput(outcome.stdout + outcome.stderr)
        self.init(output: output.text, outputEncoding: output.encoding, exitCode: outcome.exitCode, timeMs: outcome.wallTime.wholeMilliseconds)
    }
}

/// One test in a job view. Run fields are `null` for tests that did not run.
struct TestResultView: Decodable, Sendable, Equatable {
    var name: String
    var verdict: Verdict
    /// Points the test is worth, and points earned.
    var points: Int
    var pointsAwarded: Int
    var stdout: String?
    var stdoutEncoding: TextEncoding?
    var stderr: String?
    var stderrEncoding: TextEncoding?
    var exitCode: Int?
    var signal: Int?
    var cpuTimeMs: Int?
    var wallTimeMs: Int?
    var memoryBytes: Int?
    var stdoutTruncated: Bool
    var stderrTruncated: Bool
    var message: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, verdict, points
        case pointsAwarded = "points_awarded"
        case stdout
        case stdoutEncoding = "stdout_encoding"
        case stderr
        case stderrEncoding = "stderr_encoding"
        case exitCode = "exit_code"
        case signal
        case cpuTimeMs = "cpu_time_ms"
        case wallTimeMs = "wall_time_ms"
        case memoryBytes = "memory_bytes"
        case stdoutTruncated = "stdout_truncated"
        case stderrTruncated = "stderr_truncated"
        case message
    }

    init(grade: TestGrade) {
        name = grade.name
        verdict = grade.verdict
        points = grade.points
        pointsAwarded = grade.pointsAwarded
        message = grade.message
        stdoutTruncated = grade.outcome?.stdoutTruncated ?? false
        stderrTruncated = grade.outcome?.stderrTruncated ?? false
        guard let outcome = grade.outcome else { return }
        let stdout = EncodedOutput(outcome.stdout), stderr = EncodedOutput(outcome.stderr)
        self.stdout = stdout.text
        stdoutEncoding = stdout.encoding
        self.stderr = stderr.text
        stderrEncoding = stderr.encoding
        exitCode = outcome.exitCode
        signal = outcome.signal
        cpuTimeMs = outcome.cpuTime.wholeMilliseconds
        wallTimeMs = outcome.wallTime.wholeMilliseconds
        memoryBytes = outcome.memoryBytes
    }
}

/// A job as `GET /v1/jobs/{id}` shows it.
struct JobView: Decodable, Sendable, Equatable {
    var id: String
    var state: JobState
    var language: String
    /// `null` until the job is finished.
    var verdict: Verdict?
    /// Why the verdict is what it is (first failing test, compiler status), for people.
    var message: String?
    /// `null` for interpreted languages and until compiling ended.
    var compile: CompileView?
    /// One per test in request order; empty until the job is finished.
    var tests: [TestResultView]
    /// Points of accepted tests; `null` until finished.
    var score: Int?
    var maxScore: Int
    var metadata: JSONValue?
    var createdAt: Date
    var startedAt: Date?
    var finishedAt: Date?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, state, language, verdict, message, compile, tests, score
        case maxScore = "max_score"
        case metadata
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    init(
        id: String, state: JobState, language: String, verdict: Verdict? = nil, message: String? = nil,
        compile: CompileView? = nil, tests: [TestResultView] = [], score: Int? = nil, maxScore: Int,
        metadata: JSONValue? = nil, createdAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil
    ) {
        self.id = id
        self.state = state
        self.language = language
        self.verdict = verdict
        self.message = message
        self.compile = compile
        self.tests = tests
        self.score = score
        self.maxScore = maxScore
        // Absent and null metadata look the same to clients (null); keep one representation.
        self.metadata = metadata == .null ? nil : metadata
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    /// The view of a finished job from its grade.
    init(
        id: String, language: String, grade: JobGrade, compileOutcome: RunOutcome?, metadata: JSONValue?,
        createdAt: Date, startedAt: Date?, finishedAt: Date
    ) {
        self.init(
            id: id, state: .finished, language: language, verdict: grade.verdict, message: grade.message,
            compile: compileOutcome.map(CompileView.init(outcome:)), tests: grade.tests.map(TestResultView.init(grade:)),
            score: grade.score, maxScore: grade.maxScore, metadata: metadata,
            createdAt: createdAt, startedAt: startedAt, finishedAt: finishedAt)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        state = try container.decode(JobState.self, forKey: .state)
        language = try container.decode(String.self, forKey: .language)
        verdict = try container.decodeIfPresent(Verdict.self, forKey: .verdict)
        message = try container.decodeIfPresent(String.self, forKey: .message)
        compile = try container.decodeIfPresent(CompileView.self, forKey: .compile)
        tests = try container.decode([TestResultView].self, forKey: .tests)
        score = try container.decodeIfPresent(Int.self, forKey: .score)
        maxScore = try container.decode(Int.self, forKey: .maxScore)
        metadata = try container.decodeIfPresent(JSONValue.self, forKey: .metadata)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        startedAt = try container.decodeIfPresent(Date.self, forKey: .startedAt)
        finishedAt = try container.decodeIfPresent(Date.self, forKey: .finishedAt)
    }
}

extension JobView {
    /// The view of a job that was just accepted and waits in the queue.
    static func queued(id: String, job: ValidatedJob, createdAt: Date) -> JobView {
        JobView(
            id: id, state: .queued, language: job.language.id, maxScore: job.tests.reduce(0) { $0 + $1.points },
            metadata: job.metadata, createdAt: createdAt)
    }
}

// The views' only encodings (see `JSONWritable`): keys in `.sortedKeys` order, every key written
// (`null` when absent) so clients see one shape.

extension CompileView: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("exit_code")
            writer.optionalInteger(exitCode)
            writer.key("output")
            writer.string(output)
            writer.key("output_encoding")
            writer.rawValue(outputEncoding)
            writer.key("time_ms")
            writer.integer(timeMs)
        }
    }
}

extension TestResultView: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("cpu_time_ms")
            writer.optionalInteger(cpuTimeMs)
            writer.key("exit_code")
            writer.optionalInteger(exitCode)
            writer.key("memory_bytes")
            writer.optionalInteger(memoryBytes)
            writer.key("message")
            writer.optionalString(message)
            writer.key("name")
            writer.string(name)
            writer.key("points")
            writer.integer(points)
            writer.key("points_awarded")
            writer.integer(pointsAwarded)
            writer.key("signal")
            writer.optionalInteger(signal)
            writer.key("stderr")
            writer.optionalString(stderr)
            writer.key("stderr_encoding")
            writer.optionalRawValue(stderrEncoding)
            writer.key("stderr_truncated")
            writer.bool(stderrTruncated)
            writer.key("stdout")
            writer.optionalString(stdout)
            writer.key("stdout_encoding")
            writer.optionalRawValue(stdoutEncoding)
            writer.key("stdout_truncated")
            writer.bool(stdoutTruncated)
            writer.key("verdict")
            writer.rawValue(verdict)
            writer.key("wall_time_ms")
            writer.optionalInteger(wallTimeMs)
        }
    }
}

extension JobView: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("compile")
            writer.optional(compile) { $1.write(to: &$0) }
            writer.key("created_at")
            writer.date(createdAt)
            writer.key("finished_at")
            writer.optionalDate(finishedAt)
            writer.key("id")
            writer.string(id)
            writer.key("language")
            writer.string(language)
            writer.key("max_score")
            writer.integer(maxScore)
            writer.key("message")
            writer.optionalString(message)
            writer.key("metadata")
            writer.value(metadata ?? .null)
            writer.key("score")
            writer.optionalInteger(score)
            writer.key("started_at")
            writer.optionalDate(startedAt)
            writer.key("state")
            writer.rawValue(state)
            writer.key("tests")
            writer.array(tests) { $1.write(to: &$0) }
            writer.key("verdict")
            writer.optionalRawValue(verdict)
        }
    }
}
