import Testing
@testable import SandboxServer

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct OutputComparisonTests {
    func matches(_ mode: ComparisonMode, _ expected: String, _ actual: String, tolerance: Double = 1e-6) -> Bool {
        OutputComparison(mode: mode, tolerance: tolerance).compare(expected: bytes(expected), actual: bytes(actual)).matches
    }

    @Test func exactIsByteForByte() {
        #expect(matches(.exact, "1 2\n", "1 2\n"))
        #expect(!matches(.exact, "1 2\n", "1 2"))
        #expect(!matches(.exact, "1 2\n", "1 2\r\n"))
        #expect(OutputComparison(mode: .exact).compare(expected: bytes("abc"), actual: bytes("abd")).difference == "output differs at byte 3")
    }

    @Test func trailingWhitespaceIsTheDefault() {
        #expect(OutputComparison().mode == .trailingWhitespace)
    }

    @Test func trailingWhitespaceForgivesInvisibleDifferences() {
        #expect(matches(.trailingWhitespace, "1 2\n3\n", "1 2   \n3"))
        #expect(matches(.trailingWhitespace, "1 2\n3\n", "1 2\r\n3\r\n\r\n\n"))
        #expect(matches(.trailingWhitespace, "a\n", "a\t \n\n\n"))
        #expect(matches(.trailingWhitespace, "", "\n\n"))
    }

    @Test func trailingWhitespaceKeepsMeaningfulDifferences() {
        #expect(!matches(.trailingWhitespace, "1 2\n", " 1 2\n"))
        #expect(!matches(.trailingWhitespace, "1 2\n", "1  2\n"))
        #expect(!matches(.trailingWhitespace, "1\n2\n", "1\n\n2\n"))
        #expect(!matches(.trailingWhitespace, "1\n2\n", "12\n"))
        let result = OutputComparison().compare(expected: bytes("a\nb\nc\n"), actual: bytes("a\nx\nc\n"))
        #expect(result.difference == "line 2 differs")
        let shorter = OutputComparison().compare(expected: bytes("a\nb\n"), actual: bytes("a\n"))
        #expect(shorter.difference == "output has 1 lines, expected 2")
    }

    @Test func tokensIgnoreAllWhitespaceLayout() {
        #expect(matches(.tokens, "1 2 3\n", "1\n2\r\n   3"))
        #expect(!matches(.tokens, "1 2 3", "1 2"))
        #expect(!matches(.tokens, "1 2 3", "1 23"))
        #expect(!matches(.tokens, "1.0", "1"))
    }

    @Test func floatAcceptsWithinTolerance() {
        #expect(matches(.float, "3.14159265", "3.1415925"))
        #expect(matches(.float, "1.0 2 abc", "1 2.0000000001 abc"))
        #expect(matches(.float, "1e9", "1000000001", tolerance: 1e-6)) // relative: 1 / 1e9
        #expect(matches(.float, "0.5", ".5"))
        #expect(matches(.float, "-0", "0"))
    }

    @Test func floatRejectsOutsideToleranceAndWords() {
        #expect(!matches(.float, "3.14", "3.15"))
        #expect(!matches(.float, "3.14", "3.15", tolerance: 1e-3))
        #expect(matches(.float, "3.14", "3.15", tolerance: 0.011))
        #expect(!matches(.float, "abc", "abd"))
        #expect(!matches(.float, "1", "0x1"))
        #expect(!matches(.float, "1", "inf"))
        #expect(!matches(.float, "nan", "1"))
        #expect(!matches(.float, "1e308", "inf"))
        #expect(!matches(.float, "inf", "-inf"))
        #expect(!matches(.float, "nan", "inf"))
        #expect(!matches(.float, "infinite", "inf"))
        #expect(!matches(.float, "1 2", "1"))
    }

    /// NaN and infinities as each language prints them (C: `nan`, `-nan`, `inf`; Java: `NaN`,
    /// `Infinity`; Python: `nan`, `inf`; JavaScript: `NaN`, `Infinity`) are the same numbers.
    @Test func floatNaNAndInfinitiesMatchAcrossSpellings() {
        #expect(matches(.float, "nan", "nan"))
        #expect(matches(.float, "nan", "NaN"))
        #expect(matches(.float, "NaN", "-nan"))
        #expect(matches(.float, "inf", "Infinity"))
        #expect(matches(.float, "-inf", "-Infinity"))
        #expect(matches(.float, "+inf", "inf"))
        #expect(matches(.float, "inf", "1e309"), "a decimal beyond a double is an infinity")
        #expect(matches(.float, "-1e400 0.5", "-INF 0.5000001"))
    }

    @Test func decimalGrammar() {
        func parse(_ text: String) -> Double? { OutputComparison.decimalNumber(ArraySlice(text.utf8)) }
        #expect(parse("12") == 12)
        #expect(parse("-1.5e3") == -1500)
        #expect(parse("+.25") == 0.25)
        #expect(parse("3.") == 3)
        #expect(parse(".") == nil)
        #expect(parse("1e") == nil)
        #expect(parse("0x10") == nil)
        #expect(parse("1,5") == nil)
        #expect(parse("infinity") == nil)
    }

    @Test func invalidUTF8ComparesAsBytes() {
        let invalid: [UInt8] = [0xFF, 0xFE, 0x0A]
        #expect(OutputComparison(mode: .trailingWhitespace).compare(expected: invalid, actual: [0xFF, 0xFE, 0x20]).matches)
        #expect(!OutputComparison(mode: .tokens).compare(expected: invalid, actual: [0xFF, 0xFD]).matches)
        #expect(OutputComparison(mode: .exact).compare(expected: invalid, actual: invalid).matches)
    }
}

@Suite struct JobGraderTests {
    let tests = [
        TestCaseSpec(name: "one", stdin: bytes("1"), expectedOutput: bytes("2\n"), points: 2),
        TestCaseSpec(name: "two", stdin: bytes("2"), expectedOutput: bytes("4\n"), points: 3),
        TestCaseSpec(name: "three", stdin: bytes("3"), expectedOutput: nil),
    ]

    func ok(_ stdout: String) -> RunOutcome { RunOutcome(status: .ok, exitCode: 0, stdout: bytes(stdout)) }

    @Test(arguments: [
        (RunOutcome.Status.timeLimit, Verdict.timeLimitExceeded),
        (.memoryLimit, .memoryLimitExceeded),
        (.outputLimit, .outputLimitExceeded),
        (.runtimeError, .runtimeError),
        (.signaled, .runtimeError),
        (.internalError, .internalError),
    ])
    func statusDecidesBeforeOutput(status: RunOutcome.Status, verdict: Verdict) {
        // The output is right, so only the status can make the verdict.
        let outcome = RunOutcome(status: status, exitCode: status == .runtimeError ? 1 : nil, signal: status == .signaled ? 11 : nil, stdout: bytes("2\n"))
        let grade = JobGrader(tests: tests).grade(testAt: 0, outcome: outcome)
        #expect(grade.verdict == verdict)
        #expect(grade.pointsAwarded == 0)
    }

    @Test func nonZeroExitIsRuntimeErrorEvenWhenReportedOK() {
        let grade = JobGrader(tests: tests).grade(testAt: 0, outcome: RunOutcome(status: .ok, exitCode: 3, stdout: bytes("2\n")))
        #expect(grade.verdict == .runtimeError)
        #expect(grade.message == "exited with status 3")
    }

    @Test func signalMessageNamesTheSignal() {
        let grade = JobGrader(tests: tests).grade(testAt: 0, outcome: RunOutcome(status: .signaled, signal: 11))
        #expect(grade.message == "killed by signal 11 (SIGSEGV)")
    }

    @Test func comparesOutputWhenExpected() {
        let grader = JobGrader(tests: tests)
        #expect(grader.grade(testAt: 0, outcome: ok("2")).verdict == .accepted)
        #expect(grader.grade(testAt: 0, outcome: ok("2")).pointsAwarded == 2)
        let wrong = grader.grade(testAt: 0, outcome: ok("3\n"))
        #expect(wrong.verdict == .wrongAnswer)
        #expect(wrong.message == "line 1 differs")
        #expect(grader.grade(testAt: 2, outcome: ok("anything")).verdict == .accepted)
    }

    @Test func allAcceptedScoresEverything() {
        let grader = JobGrader(tests: tests)
        let grades = [grader.grade(testAt: 0, outcome: ok("2\n")), grader.grade(testAt: 1, outcome: ok("4\n")), grader.grade(testAt: 2, outcome: ok(""))]
        let job = grader.finish(compile: .succeeded, grades: grades)
        #expect(job.verdict == .accepted)
        #expect(job.score == 6)
        #expect(job.maxScore == 6)
        #expect(job.message == nil)
    }

    @Test func firstFailureInTestOrderDecides() {
        let grader = JobGrader(tests: tests)
        let grades = [
            grader.grade(testAt: 0, outcome: ok("2\n")),
            grader.grade(testAt: 1, outcome: ok("5\n")),
            grader.grade(testAt: 2, outcome: RunOutcome(status: .timeLimit)),
        ]
        let job = grader.finish(compile: nil, grades: grades)
        #expect(job.verdict == .wrongAnswer)
        #expect(job.score == 2)
        #expect(job.maxScore == 6)
        #expect(job.message == "test two: line 1 differs")
    }

    @Test func internalErrorOutranksEarlierFailures() {
        let grader = JobGrader(tests: tests)
        let grades = [
            grader.grade(testAt: 0, outcome: ok("wrong\n")),
            grader.grade(testAt: 1, outcome: RunOutcome(status: .internalError, message: "cgroup vanished")),
            grader.grade(testAt: 2, outcome: ok("")),
        ]
        #expect(grader.finish(compile: nil, grades: grades).verdict == .internalError)
    }

    @Test func stopOnFirstFailureSkipsTheRest() {
        let grader = JobGrader(tests: tests, stopOnFirstFailure: true)
        let first = grader.grade(testAt: 0, outcome: RunOutcome(status: .memoryLimit))
        #expect(!grader.shouldContinue(after: first))
        let job = grader.finish(compile: .succeeded, grades: [first])
        #expect(job.verdict == .memoryLimitExceeded)
        #expect(job.tests.map(\.verdict) == [.memoryLimitExceeded, .skipped, .skipped])
        #expect(job.tests.map(\.name) == ["one", "two", "three"])
    }

    @Test func withoutStopOnFirstFailureTestsContinue() {
        let grader = JobGrader(tests: tests, stopOnFirstFailure: false)
        #expect(grader.shouldContinue(after: grader.grade(testAt: 0, outcome: RunOutcome(status: .memoryLimit))))
        let accepted = JobGrader(tests: tests, stopOnFirstFailure: true).grade(testAt: 0, outcome: ok("2\n"))
        #expect(JobGrader(tests: tests, stopOnFirstFailure: true).shouldContinue(after: accepted))
    }

    @Test func missingGradesWithoutFailureAreNeverAccepted() {
        let grader = JobGrader(tests: tests)
        let job = grader.finish(compile: nil, grades: [grader.grade(testAt: 0, outcome: ok("2\n"))])
        #expect(job.verdict == .internalError)
        #expect(job.score == 2)
    }

    @Test func compileFailureSkipsAllTests() {
        let grader = JobGrader(tests: tests)
        let judgement = grader.judgeCompile(RunOutcome(status: .runtimeError, exitCode: 1, stderr: bytes("main.c:1: error")))
        #expect(judgement == .compileError(message: "the compiler exited with status 1"))
        let job = grader.finish(compile: judgement, grades: [])
        #expect(job.verdict == .compileError)
        #expect(job.score == 0)
        #expect(job.maxScore == 6)
        #expect(job.tests.allSatisfy { $0.verdict == .skipped })
    }

    @Test func compileJudgements() {
        let grader = JobGrader(tests: tests)
        #expect(grader.judgeCompile(RunOutcome(status: .ok, exitCode: 0)) == .succeeded)
        #expect(grader.judgeCompile(RunOutcome(status: .ok, exitCode: 1)) == .compileError(message: "the compiler exited with status 1"))
        #expect(grader.judgeCompile(RunOutcome(status: .timeLimit)) == .compileError(message: "compilation exceeded the time limit"))
        #expect(grader.judgeCompile(RunOutcome(status: .internalError, message: "clone failed")) == .internalError(message: "clone failed"))
        #expect(grader.finish(compile: .internalError(message: "clone failed"), grades: []).verdict == .internalError)
    }

    @Test func durationMilliseconds() {
        #expect(Duration.milliseconds(1234).wholeMilliseconds == 1234)
        #expect((Duration.seconds(2) + .microseconds(999)).wholeMilliseconds == 2000)
    }
}
