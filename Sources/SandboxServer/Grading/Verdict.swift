/// The judgement of one test or of a whole job.
enum Verdict: String, Codable, Sendable, CaseIterable {
    case accepted
    case wrongAnswer = "wrong_answer"
    case timeLimitExceeded = "time_limit_exceeded"
    case memoryLimitExceeded = "memory_limit_exceeded"
    case outputLimitExceeded = "output_limit_exceeded"
    case runtimeError = "runtime_error"
    /// Job only: the program did not compile.
    case compileError = "compile_error"
    /// The server failed; the submission is not to blame and may be resubmitted.
    case internalError = "internal_error"
    /// Test only: not run, because compilation failed or an earlier test failed with
    /// `stop_on_first_failure`.
    case skipped
}

/// A test as grading sees it.
struct TestCaseSpec: Sendable, Equatable {
    var name: String
    var stdin: [UInt8]
    /// `nil`: the test passes whenever the program runs cleanly.
    var expectedOutput: [UInt8]?
    var points: Int

    init(name: String, stdin: [UInt8] = [], expectedOutput: [UInt8]? = nil, points: Int = 1) {
        self.name = name
        self.stdin = stdin
        self.expectedOutput = expectedOutput
        self.points = points
    }
}

/// The judgement of one test.
struct TestGrade: Sendable, Equatable {
    var name: String
    var verdict: Verdict
    /// Points this test is worth.
    var points: Int
    /// Points earned: `points` if accepted, else 0.
    var pointsAwarded: Int
    /// The run, absent for skipped tests.
    var outcome: RunOutcome?
    /// Why the verdict is what it is (limit hit, signal, first difference), for people.
    var message: String?
}

/// How the compile step ended, for grading.
enum CompileJudgement: Sendable, Equatable {
    case succeeded
    /// The compiler refused the program (or ran out of a limit while compiling it).
    case compileError(message: String)
    /// The sandbox failed while compiling.
    case internalError(message: String)
}

/// The judgement of a whole job.
struct JobGrade: Sendable, Equatable {
    var verdict: Verdict
    var score: Int
    var maxScore: Int
    /// One per test, in test order.
    var tests: [TestGrade]
    var message: String?
}

/// Applies the verdict rules to the runs of one job.
///
/// The runner compiles (if needed) and calls ``judgeCompile(_:)``; then, test by test, runs the
/// program, calls ``grade(testAt:outcome:)`` and asks ``shouldContinue(after:)``; finally
/// ``finish(compile:grades:)`` gives the job's verdict and score.
struct JobGrader: Sendable {
    let tests: [TestCaseSpec]
    let comparison: OutputComparison
    let stopOnFirstFailure: Bool

    init(tests: [TestCaseSpec], comparison: OutputComparison = OutputComparison(), stopOnFirstFailure: Bool = false) {
        self.tests = tests
        self.comparison = comparison
        self.stopOnFirstFailure = stopOnFirstFailure
    }

    /// Whether the compile step produced a program.
    func judgeCompile(_ outcome: RunOutcome) -> CompileJudgement {
        switch outcome.status {
        case .internalError:
            return .internalError(message: outcome.message ?? "the sandbox failed while compiling")
        case .ok where outcome.exitCode == 0 || outcome.exitCode == nil:
            return .succeeded
        case .ok, .runtimeError:
            return .compileError(message: "the compiler exited with status \(outcome.exitCode ?? -1)")
        case .signaled:
            return .compileError(message: "the compiler was killed by \(Self.describeSignal(outcome.signal))")
        case .timeLimit:
            return .compileError(message: "compilation exceeded the time limit")
        case .memoryLimit:
            return .compileError(message: "compilation exceeded the memory limit")
        case .outputLimit:
            return .compileError(message: "compilation exceeded the output limit")
        }
    }

    /// The verdict of the test at `index` given its run.
    ///
    /// Limits come first: a program killed for a limit often also exits non-zero, and the
    /// limit is the real cause.
    func grade(testAt index: Int, outcome: RunOutcome) -> TestGrade {
        let test = tests[index]
        func graded(_ verdict: Verdict, _ message: String?) -> TestGrade {
            TestGrade(
                name: test.name, verdict: verdict, points: test.points,
                pointsAwarded: verdict == .accepted ? test.points : 0, outcome: outcome, message: message)
        }
        switch outcome.status {
        case .internalError:
            return graded(.internalError, outcome.message ?? "the sandbox failed")
        case .timeLimit:
            return graded(.timeLimitExceeded, outcome.message ?? "time limit exceeded")
        case .memoryLimit:
            return graded(.memoryLimitExceeded, outcome.message ?? "memory limit exceeded")
        case .outputLimit:
            return graded(.outputLimitExceeded, outcome.message ?? "output limit exceeded")
        case .signaled:
            return graded(.runtimeError, "killed by \(Self.describeSignal(outcome.signal))")
        case .runtimeError:
            return graded(.runtimeError, "exited with status \(outcome.exitCode ?? -1)")
        case .ok:
            // A sandbox reporting "ok" with a failure code or signal is still a failed run.
            if let signal = outcome.signal { return graded(.runtimeError, "killed by \(Self.describeSignal(signal))") }
            if let exitCode = outcome.exitCode, exitCode != 0 { return graded(.runtimeError, "exited with status \(exitCode)") }
            guard let expected = test.expectedOutput else { return graded(.accepted, nil) }
            let result = comparison.compare(expected: expected, actual: outcome.stdout)
            return result.matches ? graded(.accepted, nil) : graded(.wrongAnswer, result.difference)
        }
    }

    /// Whether to run the next test after `grade`.
    func shouldContinue(after grade: TestGrade) -> Bool {
        !(stopOnFirstFailure && grade.verdict != .accepted)
    }

    /// The job's verdict and score.
    ///
    /// - Parameters:
    ///   - compile: how compiling ended; `nil` for interpreted languages.
    ///   - grades: the grades of the tests that ran, a prefix of ``tests`` in order; the rest
    ///     are reported as `skipped`.
    ///
    /// Precedence: a failed compile gives `compile_error`; otherwise any `internal_error`
    /// gives `internal_error` (the server's fault outranks the program's: the client should
    /// retry rather than blame the student); otherwise the first non-accepted test in test
    /// order decides; otherwise `accepted`. If tests are missing although no test failed
    /// (the runner stopped early), the job is an `internal_error`, never `accepted`.
    func finish(compile: CompileJudgement?, grades: [TestGrade]) -> JobGrade {
        precondition(grades.count <= tests.count, "more grades than tests")
        let maxScore = tests.reduce(0) { $0 + $1.points }
        func skipped(from start: Int) -> [TestGrade] {
            tests[start...].map { TestGrade(name: $0.name, verdict: .skipped, points: $0.points, pointsAwarded: 0, outcome: nil, message: nil) }
        }
        switch compile {
        case let .compileError(message):
            return JobGrade(verdict: .compileError, score: 0, maxScore: maxScore, tests: skipped(from: 0), message: message)
        case let .internalError(message):
            return JobGrade(verdict: .internalError, score: 0, maxScore: maxScore, tests: skipped(from: 0), message: message)
        case .succeeded, nil:
            break
        }
        let allGrades = grades + skipped(from: grades.count)
        let score = grades.reduce(0) { $0 + $1.pointsAwarded }
        let verdict: Verdict
        var message: String?
        if let failure = grades.first(where: { $0.verdict == .internalError }) {
            verdict = .internalError
            message = "test \(failure.name): \(failure.message ?? "internal error")"
        } else if let failure = grades.first(where: { $0.verdict != .accepted }) {
            verdict = failure.verdict
            message = "test \(failure.name): \(failure.message ?? failure.verdict.rawValue)"
        } else if grades.count < tests.count {
            verdict = .internalError
            message = "only \(grades.count) of \(tests.count) tests ran"
        } else {
            verdict = .accepted
        }
        return JobGrade(verdict: verdict, score: score, maxScore: maxScore, tests: allGrades, message: message)
    }

    static func describeSignal(_ signal: Int?) -> String {
        guard let signal else { return "a signal" }
        return SignalName.of(signal).map { "signal \(signal) (\($0))" } ?? "signal \(signal)"
    }
}
