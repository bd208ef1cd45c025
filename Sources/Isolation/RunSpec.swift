/// What to run in one sandbox: the program, its inputs, and the limits it runs under.
///
/// Paths in a spec (``executable``, ``workingDirectory``) are paths *inside* the sandbox, where
/// the host's `/usr` (and `/bin`, `/lib`, `/lib64` as the host lays them out) are visible
/// read-only, `/box` is the job's working directory, and `/tmp` is a small private tmpfs.
public struct RunSpec: Sendable, Hashable {
    /// Absolute path of the program inside the sandbox, e.g. `/usr/bin/python3`.
    public var executable: String
    /// Arguments after `argv[0]`.
    public var arguments: [String]
    /// `argv[0]`; the executable path when nil.
    public var argv0: String?
    /// The complete environment of the program; nothing of the server's leaks in.
    public var environment: [String: String]
    /// Working directory inside the sandbox.
    public var workingDirectory: String
    /// Files written into the box before the run (relative paths; subdirectories are created).
    public var files: [BoxFile]
    /// How the box is presented to the program.
    public var box: BoxMode
    /// Standard input.
    public var stdin: StandardInput
    /// Resource limits.
    public var limits: ResourceLimits
    /// Whether the program shares the host's network. Off: a private network namespace with only
    /// a loopback interface.
    public var network: Bool
    /// Extra host paths made visible read-only inside the sandbox.
    public var readOnlyBinds: [BindMount]

    /// The environment programs get unless the caller chooses another.
    public static let defaultEnvironment: [String: String] = [
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/box",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": "/tmp",
    ]

    /// Creates a spec.
    /// - Parameters:
    ///   - executable: Absolute path of the program inside the sandbox.
    ///   - arguments: Arguments after `argv[0]`.
    ///   - environment: The program's whole environment.
    ///   - workingDirectory: Working directory inside the sandbox (default `/box`).
    ///   - files: Files to place in the box before the run.
    ///   - box: How the box is presented (default: a fresh writable box).
    ///   - stdin: Standard input (default: empty).
    ///   - limits: Resource limits (default: ``ResourceLimits/init()``).
    ///   - network: Share the host network (default: no).
    ///   - readOnlyBinds: Extra read-only binds.
    public init(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = RunSpec.defaultEnvironment,
        workingDirectory: String = "/box",
        files: [BoxFile] = [],
        box: BoxMode = .fresh,
        stdin: StandardInput = .empty,
        limits: ResourceLimits = ResourceLimits(),
        network: Bool = false,
        readOnlyBinds: [BindMount] = []
    ) {
        self.executable = executable
        self.arguments = arguments
        self.argv0 = nil
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.files = files
        self.box = box
        self.stdin = stdin
        self.limits = limits
        self.network = network
        self.readOnlyBinds = readOnlyBinds
    }
}

/// A file placed in the box before a run.
public struct BoxFile: Sendable, Hashable {
    /// Relative path inside the box, e.g. `main.c` or `lib/util.py`. No `..`, no leading `/`.
    public var path: String
    /// The bytes.
    public var contents: [UInt8]
    /// Whether the file is executable.
    public var executable: Bool

    /// Creates a box file.
    public init(path: String, contents: [UInt8], executable: Bool = false) {
        self.path = path
        self.contents = contents
        self.executable = executable
    }

    /// Creates a box file from UTF-8 text.
    public init(path: String, text: String, executable: Bool = false) {
        self.init(path: path, contents: Array(text.utf8), executable: executable)
    }
}

/// How the box (`/box`) is presented to a run.
public enum BoxMode: Sendable, Hashable {
    /// A fresh, empty, writable box (then ``RunSpec/files`` are written into it).
    case fresh
    /// The slot's box as the previous run in the same slot left it, writable. Used to compile
    /// into a box and keep the result.
    case keep
    /// The slot's box as the previous run left it, copy-on-write: the program sees and may change
    /// it, but its changes go to a private scratch layer discarded after the run, so one test
    /// cannot affect the next.
    case copyOnWrite
    /// A host directory bound read-write at `/box`. The host never follows a path inside it.
    case hostDirectory(String)
}

/// Standard input of a run.
public enum StandardInput: Sendable, Hashable {
    /// `/dev/null`.
    case empty
    /// These bytes, fed through a pipe.
    case bytes([UInt8])
    /// A host file, opened read-only by the supervisor.
    case file(String)
}

/// A host path made visible inside the sandbox read-only (`nosuid`, `nodev`).
public struct BindMount: Sendable, Hashable {
    /// Host path (file or directory).
    public var hostPath: String
    /// Absolute path inside the sandbox.
    public var sandboxPath: String

    /// Creates a bind; the sandbox path defaults to the host path.
    public init(hostPath: String, sandboxPath: String? = nil) {
        self.hostPath = hostPath
        self.sandboxPath = sandboxPath ?? hostPath
    }
}

/// Limits of one run. Every limit covers the whole run: all processes the program starts.
public struct ResourceLimits: Sendable, Hashable {
    /// CPU time of all processes together, in milliseconds; nil for none.
    public var cpuTimeMilliseconds: Int?
    /// Wall-clock time from start to end, in milliseconds. Always set: nothing runs forever.
    public var wallTimeMilliseconds: Int
    /// Memory (RSS + page cache + tmpfs written) of the whole run, from the memory cgroup.
    public var memoryBytes: Int?
    /// An address-space limit per process (RLIMIT_AS): makes `malloc` fail instead of an OOM
    /// kill, as some graders expect. Separate from ``memoryBytes``.
    public var addressSpaceBytes: Int?
    /// The program's processes and threads alive at once (pids cgroup; the sandbox's own init
    /// is not counted, so 1 lets the program run but not fork or start a thread).
    public var processes: Int
    /// Bytes captured per output stream (stdout, stderr). Output beyond is drained and dropped.
    public var outputBytes: Int
    /// Kill the run when an output stream exceeds ``outputBytes`` (status `outputLimit`).
    public var killOnOutputLimit: Bool
    /// Largest file a process may write (RLIMIT_FSIZE).
    public var fileSizeBytes: Int
    /// Size of the box and of `/tmp` (tmpfs), each.
    public var diskBytes: Int
    /// Stack size per process (RLIMIT_STACK); nil keeps the default (8 MiB).
    public var stackBytes: Int?
    /// Open files per process (RLIMIT_NOFILE).
    public var openFiles: Int
    /// CPU bandwidth as a fraction of one core (cgroup quota), e.g. 1.0; nil for no cap.
    public var cpuQuota: Double?

    /// Creates limits with safe defaults: 5 s CPU, 10 s wall, 256 MiB, 64 processes, 64 KiB of
    /// output per stream, 16 MiB files, 64 MiB of disk.
    public init(
        cpuTimeMilliseconds: Int? = 5_000,
        wallTimeMilliseconds: Int = 10_000,
        memoryBytes: Int? = 256 << 20,
        addressSpaceBytes: Int? = nil,
        processes: Int = 64,
        outputBytes: Int = 64 << 10,
        killOnOutputLimit: Bool = false,
        fileSizeBytes: Int = 16 << 20,
        diskBytes: Int = 64 << 20,
        stackBytes: Int? = nil,
        openFiles: Int = 256,
        cpuQuota: Double? = nil
    ) {
        self.cpuTimeMilliseconds = cpuTimeMilliseconds
        self.wallTimeMilliseconds = wallTimeMilliseconds
        self.memoryBytes = memoryBytes
        self.addressSpaceBytes = addressSpaceBytes
        self.processes = processes
        self.outputBytes = outputBytes
        self.killOnOutputLimit = killOnOutputLimit
        self.fileSizeBytes = fileSizeBytes
        self.diskBytes = diskBytes
        self.stackBytes = stackBytes
        self.openFiles = openFiles
        self.cpuQuota = cpuQuota
    }
}
