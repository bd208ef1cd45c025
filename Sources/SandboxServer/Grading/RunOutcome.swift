/// What one sandboxed run (a compile or a test) did, as the runner reports it from the
/// sandbox's result. Grading reads only this, so it does not depend on the sandbox module.
struct RunOutcome: Sendable, Equatable {
    /// How the run ended, mirroring the sandbox's result status.
    enum Status: String, Sendable, Equatable, CaseIterable {
        /// Exited by itself (the exit code may still be non-zero).
        case ok
        /// Exited with a non-zero code.
        case runtimeError
        /// Killed by a signal it raised or received (not a limit).
        case signaled
        case timeLimit
        case memoryLimit
        case outputLimit
        /// The sandbox itself failed; the program is not to blame.
        case internalError
    }

    var status: Status
    var exitCode: Int?
    var signal: Int?
    var cpuTime: Duration
    var wallTime: Duration
    var memoryBytes: Int
    var stdout: [UInt8]
    var stderr: [UInt8]
    /// Whether captured stdout was cut at the output limit.
    var stdoutTruncated: Bool
    var stderrTruncated: Bool
    /// The sandbox's explanation, e.g. which limit was hit or what failed.
    var message: String?

    init(
        status: Status, exitCode: Int? = nil, signal: Int? = nil,
        cpuTime: Duration = .zero, wallTime: Duration = .zero, memoryBytes: Int = 0,
        stdout: [UInt8] = [], stderr: [UInt8] = [],
        stdoutTruncated: Bool = false, stderrTruncated: Bool = false, message: String? = nil
    ) {
        self.status = status
        self.exitCode = exitCode
        self.signal = signal
        self.cpuTime = cpuTime
        self.wallTime = wallTime
        self.memoryBytes = memoryBytes
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.message = message
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1_000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

/// Conventional names of the signals a program typically dies of, for messages.
enum SignalName {
    static func of(_ signal: Int) -> String? {
        switch signal {
        case 1: "SIGHUP"
        case 2: "SIGINT"
        case 3: "SIGQUIT"
        case 4: "SIGILL"
        case 5: "SIGTRAP"
        case 6: "SIGABRT"
        case 7: "SIGBUS"
        case 8: "SIGFPE"
        case 9: "SIGKILL"
        case 11: "SIGSEGV"
        case 13: "SIGPIPE"
        case 14: "SIGALRM"
        case 15: "SIGTERM"
        case 24: "SIGXCPU"
        case 25: "SIGXFSZ"
        case 31: "SIGSYS"
        default: nil
        }
    }
}
