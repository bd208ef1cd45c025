/// How a run ended.
public enum RunStatus: String, Sendable, Hashable, Codable {
    /// Exited with status 0.
    case ok
    /// Exited with a non-zero status.
    case runtimeError = "runtime_error"
    /// Killed by a signal it received or raised (not by a limit).
    case signaled
    /// Killed for exceeding its CPU or wall time (see ``RunResult/timeLimitKind``).
    case timeLimit = "time_limit"
    /// The memory cgroup's OOM killer acted (from its oom_kill counter, never guessed).
    case memoryLimit = "memory_limit"
    /// An output stream exceeded its cap with ``ResourceLimits/killOnOutputLimit`` set.
    case outputLimit = "output_limit"
    /// The sandbox itself failed; ``RunResult/message`` says why.
    case internalError = "internal_error"
    /// Ended early by ``RunCancellation/cancel()``; the program was killed (or never started).
    case cancelled
}

/// Which time limit ended a run.
public enum TimeLimitKind: String, Sendable, Hashable, Codable {
    case cpu
    case wall
}

/// Where the time of one run went, in microseconds (for metrics and benchmarks).
public struct RunPhases: Sendable, Hashable {
    /// Box, cgroup and pipes prepared (before clone).
    public var prepare: Int = 0
    /// clone until the program was exec'd (namespaces, mounts, privileges dropped).
    public var spawn: Int = 0
    /// exec until the sandbox's init was reaped.
    public var run: Int = 0
    /// Accounting and cleanup after the end.
    public var collect: Int = 0

    /// Creates phases.
    public init(prepare: Int = 0, spawn: Int = 0, run: Int = 0, collect: Int = 0) {
        self.prepare = prepare
        self.spawn = spawn
        self.run = run
        self.collect = collect
    }
}

/// The outcome of one run, with its resource usage.
public struct RunResult: Sendable, Hashable {
    /// How the run ended.
    public var status: RunStatus
    /// Exit status of the program when it exited.
    public var exitCode: Int32?
    /// Signal that ended the program, when one did.
    public var signal: Int32?
    /// Which limit, for ``RunStatus/timeLimit``.
    public var timeLimitKind: TimeLimitKind?
    /// CPU time of every process of the run (cgroup accounting), in microseconds.
    public var cpuTimeMicroseconds: Int
    /// Wall time from clone to the end of the program, in microseconds.
    public var wallTimeMicroseconds: Int
    /// Peak memory of the run's cgroup, in bytes.
    public var memoryBytes: Int
    /// Captured standard output (at most ``ResourceLimits/outputBytes``).
    public var stdout: [UInt8]
    /// Captured standard error.
    public var stderr: [UInt8]
    /// Whether standard output was longer than what was captured.
    public var stdoutTruncated: Bool
    /// Whether standard error was longer than what was captured.
    public var stderrTruncated: Bool
    /// A human-readable explanation for limits and internal errors.
    public var message: String?
    /// Where the time went.
    public var phases = RunPhases()

    /// Creates a result.
    public init(
        status: RunStatus, exitCode: Int32? = nil, signal: Int32? = nil, timeLimitKind: TimeLimitKind? = nil,
        cpuTimeMicroseconds: Int = 0, wallTimeMicroseconds: Int = 0, memoryBytes: Int = 0,
        stdout: [UInt8] = [], stderr: [UInt8] = [], stdoutTruncated: Bool = false, stderrTruncated: Bool = false,
        message: String? = nil
    ) {
        self.status = status
        self.exitCode = exitCode
        self.signal = signal
        self.timeLimitKind = timeLimitKind
        self.cpuTimeMicroseconds = cpuTimeMicroseconds
        self.wallTimeMicroseconds = wallTimeMicroseconds
        self.memoryBytes = memoryBytes
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.message = message
    }

    /// A result for a run the sandbox could not carry out.
    public static func internalError(_ message: String) -> RunResult {
        RunResult(status: .internalError, message: message)
    }
}
