import Isolation

/// Runs one validated job in one sandbox slot: compile once, then every test over the compiled
/// box, and grades it.
///
/// A compiled language compiles in a fresh box with the sources (compile limits); each test
/// then runs copy-on-write over that box, so it sees the program but its writes vanish after it
/// and one test cannot affect the next (the last test runs in the box itself: see ``testBox``).
/// An interpreted language gets its sources written into the box without a run, then the same
/// tests run; with a single test, that run starts in a fresh box with the sources. A job with an
/// archive first unpacks it inside the sandbox, in a fresh box with its files (``JobArchive``);
/// the compile step keeps that box, or an interpreted language's tests run over it.
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
        // With an archive, the box is filled by unpacking it in the sandbox; the next step keeps it.
        var boxIsFilled = false
        if let archive = job.archive {
            let spec = RunSpec(
                executable: archive.command[0], arguments: Array(archive.command.dropFirst()), environment: job.environment,
                workingDirectory: LanguageRegistry.boxDirectory, files: archive.boxFiles(with: files), box: .fresh, stdin: .empty,
                limits: JobArchive.limits(diskBytes: Self.diskBytes(job.compileLimits ?? job.runLimits)), network: false)
            let result = slot.run(spec, cancellation: cancellation)
            runFinished(result)
            guard let outcome = RunOutcome(result) else { return .cancelled }
            let unpacked = JobArchive.judge(outcome)
            guard unpacked == .succeeded else {
                return .graded(grader.finish(compile: unpacked, grades: []), compile: outcome)
            }
            boxIsFilled = true
        }
        if let command = job.compileCommand, let limits = job.compileLimits {
            let spec = RunSpec(
                executable: command[0], arguments: Array(command.dropFirst()), environment: job.environment,
                workingDirectory: LanguageRegistry.boxDirectory, files: boxIsFilled ? [] : files, box: boxIsFilled ? .keep : .fresh,
                stdin: .empty, limits: Self.resourceLimits(limits, killOnOutputLimit: false), network: false)
            let result = slot.run(spec, cancellation: cancellation)
            runFinished(result)
            guard let outcome = RunOutcome(result) else { return .cancelled }
            compileOutcome = outcome
            let compiled = grader.judgeCompile(outcome)
            judgement = compiled
            guard compiled == .succeeded else {
                return .graded(grader.finish(compile: compiled, grades: []), compile: outcome)
            }
        } else if job.tests.count > 1 && !boxIsFilled {
            do {
                try slot.prepareBox(files: files, sizeBytes: Self.diskBytes(job.runLimits))
            } catch {
                let grade = grader.finish(compile: .internalError(message: "could not prepare the box: \(error)"), grades: [])
                return .graded(grade, compile: nil)
            }
        }
        // A box the compile step or the archive filled is the tests' starting point, as after a compile.
        let boxHoldsProgram = compileOutcome != nil || boxIsFilled
        var grades: [TestGrade] = []
        for (index, test) in job.tests.enumerated() {
            let spec = RunSpec(
                executable: job.runCommand[0], arguments: Array(job.runCommand.dropFirst()), environment: job.environment,
                workingDirectory: LanguageRegistry.boxDirectory,
                files: !boxHoldsProgram && job.tests.count == 1 ? files : [],
                box: Self.testBox(index: index, of: job.tests.count, compiled: boxHoldsProgram),
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

    /// The box a test runs in. Every test but the last runs copy-on-write over the prepared box,
    /// so the next one finds it unchanged; the last needs no protection (the box is discarded
    /// after it) and runs in it directly, which saves an overlay mount per job. A job with one
    /// test and no compile step skips preparing the box too: its run gets a fresh box with the
    /// sources.
    static func testBox(index: Int, of count: Int, compiled: Bool) -> BoxMode {
        if index < count - 1 { return .copyOnWrite }
        return compiled || count > 1 ? .keep : .fresh
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
