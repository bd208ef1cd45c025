import Isolation

/// Runs one validated job in one sandbox slot: compile once, then every test over the compiled
/// box, and grades it.
///
/// A compiled language compiles in a fresh box with the sources (compile limits); each test
/// then runs copy-on-write over that box, so it sees the program but its writes vanish after it
/// and one test cannot affect the next. An interpreted language gets its sources written into the
/// box without a run, then the same copy-on-write test runs.
struct JobExecutor {
    /// Size of the box and of /tmp, each (tmpfs, counted against memory).
    static let minimumDiskBytes = 64 << 20

    /// How the job ended.
    enum Outcome {
        case graded(JobGrade, compile: RunOutcome?)
        /// The token was cancelled; the job has no verdict.
        case cancelled
    }

    let job: ValidatedJob
    let cancellation: RunCancellation
    /// Called after each test with its index and grade (for progress events).
    var testFinished: (Int, TestGrade) -> Void = { _, _ in }
    /// Called after each sandboxed run, the compile included, with its raw result (for metrics).
    var runFinished: (RunResult) -> Void = { _ in }

    func execute(in slot: SandboxSlot) -> Outcome {
        let grader = job.grader
        var compileOutcome: RunOutcome?
        var judgement: CompileJudgement?
        let files = job.files.map { BoxFile(path: $0.name, contents: $0.content) }
        if let command = job.compileCommand, let limits = job.compileLimits {
            let spec = RunSpec(
                executable: command[0], arguments: Array(command.dropFirst()), environment: job.environment,
                workingDirectory: LanguageRegistry.boxDirectory, files: files, box: .fresh, stdin: .empty,
                limits: Self.resourceLimits(limits, killOnOutputLimit: false), network: false)
            let result = slot.run(spec, cancellation: cancellation)
            runFinished(result)
            guard let outcome = RunOutcome(result) else { return .cancelled }
            compileOutcome = outcome
            let compiled = grader.judgeCompile(outcome)
            judgement = compiled
            guard compiled == .succeeded else {
                return .graded(grader.finish(compile: compiled, grades: []), compile: outcome)
            }
        } else {
            do {
                try slot.prepareBox(files: files, sizeBytes: Self.diskBytes(job.runLimits))
            } catch {
                let grade = grader.finish(compile: .internalError(message: "could not prepare the box: \(error)"), grades: [])
                return .graded(grade, compile: nil)
            }
        }
        var grades: [TestGrade] = []
        for (index, test) in job.tests.enumerated() {
            let spec = RunSpec(
                executable: job.runCommand[0], arguments: Array(job.runCommand.dropFirst()), environment: job.environment,
                workingDirectory: LanguageRegistry.boxDirectory, box: .copyOnWrite,
                stdin: test.stdin.isEmpty ? .empty : .bytes(test.stdin),
                limits: Self.resourceLimits(job.runLimits, killOnOutputLimit: true), network: job.runLimits.network)
            let result = slot.run(spec, cancellation: cancellation)
            runFinished(result)
            guard let outcome = RunOutcome(result) else { return .cancelled }
            let grade = grader.grade(testAt: index, outcome: outcome)
            grades.append(grade)
            testFinished(index, grade)
            if !grader.shouldContinue(after: grade) { break }
        }
        return .graded(grader.finish(compile: judgement, grades: grades), compile: compileOutcome)
    }

    static func diskBytes(_ limits: JobLimits) -> Int { max(minimumDiskBytes, limits.fileSizeBytes) }

    /// The sandbox's limits for a run with the API's limits.
    static func resourceLimits(_ limits: JobLimits, killOnOutputLimit: Bool) -> ResourceLimits {
        ResourceLimits(
            cpuTimeMilliseconds: limits.cpuTimeMs, wallTimeMilliseconds: limits.wallTimeMs, memoryBytes: limits.memoryBytes,
            processes: limits.processes, outputBytes: limits.outputBytes, killOnOutputLimit: killOnOutputLimit,
            fileSizeBytes: limits.fileSizeBytes, diskBytes: diskBytes(limits))
    }
}

extension RunOutcome {
    /// The grading view of a sandbox result; nil for a cancelled run, which has nothing to grade.
    init?(_ result: RunResult) {
        let status: Status
        switch result.status {
        case .ok: status = .ok
        case .runtimeError: status = .runtimeError
        case .signaled: status = .signaled
        case .timeLimit: status = .timeLimit
        case .memoryLimit: status = .memoryLimit
        case .outputLimit: status = .outputLimit
        case .internalError: status = .internalError
        case .cancelled: return nil
        }
        self.init(
            status: status, exitCode: result.exitCode.map(Int.init), signal: result.signal.map(Int.init),
            cpuTime: .microseconds(result.cpuTimeMicroseconds), wallTime: .microseconds(result.wallTimeMicroseconds),
            memoryBytes: result.memoryBytes, stdout: result.stdout, stderr: result.stderr,
            stdoutTruncated: result.stdoutTruncated, stderrTruncated: result.stderrTruncated, message: result.message)
    }
}
