/// Judge0's fourteen submission statuses (`GET /statuses`).
enum Judge0Status: Int, CaseIterable, Sendable {
    case inQueue = 1
    case processing = 2
    case accepted = 3
    case wrongAnswer = 4
    case timeLimitExceeded = 5
    case compilationError = 6
    case runtimeErrorSIGSEGV = 7
    case runtimeErrorSIGXFSZ = 8
    case runtimeErrorSIGFPE = 9
    case runtimeErrorSIGABRT = 10
    case runtimeErrorNZEC = 11
    case runtimeErrorOther = 12
    case internalError = 13
    case execFormatError = 14

    /// The description Judge0 gives each id, word for word.
    var description: String {
        switch self {
        case .inQueue: "In Queue"
        case .processing: "Processing"
        case .accepted: "Accepted"
        case .wrongAnswer: "Wrong Answer"
        case .timeLimitExceeded: "Time Limit Exceeded"
        case .compilationError: "Compilation Error"
        case .runtimeErrorSIGSEGV: "Runtime Error (SIGSEGV)"
        case .runtimeErrorSIGXFSZ: "Runtime Error (SIGXFSZ)"
        case .runtimeErrorSIGFPE: "Runtime Error (SIGFPE)"
        case .runtimeErrorSIGABRT: "Runtime Error (SIGABRT)"
        case .runtimeErrorNZEC: "Runtime Error (NZEC)"
        case .runtimeErrorOther: "Runtime Error (Other)"
        case .internalError: "Internal Error"
        case .execFormatError: "Exec Format Error"
        }
    }

    /// `{"id": …, "description": …}`.
    var json: Judge0JSON { .object([("id", .integer(rawValue)), ("description", .string(description))]) }

    /// Judge0's signal rule: SIGSEGV, SIGXFSZ, SIGFPE and SIGABRT have their own ids.
    static func forSignal(_ signal: Int) -> Judge0Status {
        switch signal {
        case 11: .runtimeErrorSIGSEGV
        case 25: .runtimeErrorSIGXFSZ
        case 8: .runtimeErrorSIGFPE
        case 6: .runtimeErrorSIGABRT
        default: .runtimeErrorOther
        }
    }
}

/// A submission's outcome in Judge0's vocabulary, decided from the native job view.
struct Judge0Outcome: Equatable, Sendable {
    var status: Judge0Status
    /// Judge0's `message`: why a run failed, for people.
    var message: String?

    /// The status of a job in the native pipeline.
    ///
    /// Judge0's rule order holds (timeout, signal, non-zero exit, internal error, then output),
    /// and so does its output rule (compared only after exit 0, trailing whitespace per line and
    /// trailing blank lines ignored — the native `trailing_whitespace` comparison). Where Judge0
    /// is known to be wrong we are right within its vocabulary: a segfault is 7 even though the
    /// program ran under a wrapper, and a memory-limit kill says so in `message` instead of
    /// passing for "Exited with error status 137".
    init(view: JobView) {
        switch view.state {
        case .queued: self.init(status: .inQueue, message: nil)
        case .running: self.init(status: .processing, message: nil)
        case .cancelled: self.init(status: .internalError, message: "The submission was cancelled before it finished.")
        case .finished: self.init(finished: view)
        }
    }

    init(status: Judge0Status, message: String?) {
        self.status = status
        self.message = message
    }

    private init(finished view: JobView) {
        if view.verdict == .compileError {
            self.init(status: .compilationError, message: nil)
            return
        }
        guard let test = Self.decidingTest(of: view) else {
            self.init(status: .internalError, message: view.message ?? "no run took place")
            return
        }
        switch test.verdict {
        case .accepted: self.init(status: .accepted, message: nil)
        case .wrongAnswer: self.init(status: .wrongAnswer, message: nil)
        case .timeLimitExceeded:
            let wall = (test.message ?? "").lowercased().contains("wall")
            self.init(status: .timeLimitExceeded, message: wall ? "Time limit exceeded (wall clock)" : "Time limit exceeded")
        case .memoryLimitExceeded:
            // Judge0 has no memory status; the kill is a signal (SIGKILL from the cgroup), so
            // "Other", with the cause spelled out.
            self.init(status: .runtimeErrorOther, message: "Memory limit exceeded")
        case .outputLimitExceeded:
            // Judge0 caps output with the file-size limit, whose kill is SIGXFSZ.
            self.init(status: .runtimeErrorSIGXFSZ, message: "Output limit exceeded")
        case .runtimeError:
            if let signal = test.signal {
                self.init(status: Judge0Status.forSignal(signal), message: "Caught fatal signal \(signal)")
            } else {
                self.init(status: .runtimeErrorNZEC, message: "Exited with error status \(test.exitCode ?? -1)")
            }
        case .internalError, .compileError, .skipped:
            let message = test.message ?? view.message ?? "internal error"
            let execFailure = message.contains("Exec format error") || message.contains("No such file or directory")
                || message.contains("Permission denied")
            self.init(status: execFailure ? .execFormatError : .internalError, message: message)
        }
    }

    /// The run whose fields the submission reports: the first that failed (Judge0 stops
    /// `number_of_runs` there), else the last that ran.
    static func decidingTest(of view: JobView) -> TestResultView? {
        let ran = view.tests.filter { $0.verdict != .skipped }
        return ran.first { $0.verdict != .accepted } ?? ran.last
    }
}
