import ArgumentParser
import Foundation
import Isolation

/// `sandbox-server run`: run one program in the sandbox, like isolate, for operators and tests.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one program in a sandbox and report how it ended.",
        discussion: """
            PROGRAM is a path inside the sandbox, where the host's /usr (and /bin, /lib, /lib64) are \
            read-only, /box is the writable working directory and /tmp a small tmpfs.

            Without --json, the program's stdout and stderr are passed through and the exit status is \
            the program's (128+N when killed by signal N), or: 124 time limit, 125 memory limit, \
            123 output limit, 120 sandbox error. With --json, one JSON object is printed and the exit \
            status is 0 unless the sandbox itself failed (120).
            """
    )

    static let exitTimeLimit: Int32 = 124
    static let exitMemoryLimit: Int32 = 125
    static let exitOutputLimit: Int32 = 123
    static let exitInternalError: Int32 = 120

    @Option(name: .customLong("cpu-time"), help: "CPU time limit in seconds, all processes together.")
    var cpuTime: Double = 5

    @Option(name: .customLong("wall-time"), help: "Wall-clock limit in seconds.")
    var wallTime: Double = 10

    @Option(help: "Memory limit of the whole run (e.g. 256M, 1G).")
    var memory: ByteSize = ByteSize(bytes: 256 << 20)

    @Option(name: .customLong("address-space"), help: "Per-process address-space limit (RLIMIT_AS); off by default.")
    var addressSpace: ByteSize?

    @Option(help: "The program's processes and threads alive at once (the sandbox's init is not counted).")
    var processes: Int = 64

    @Option(help: "Bytes kept per output stream; the rest is discarded and flagged.")
    var output: ByteSize = ByteSize(bytes: 1 << 20)

    @Flag(name: .customLong("kill-on-output-limit"), help: "End the run when an output stream exceeds --output.")
    var killOnOutputLimit = false

    @Option(name: .customLong("file-size"), help: "Largest file the program may write.")
    var fileSize: ByteSize = ByteSize(bytes: 16 << 20)

    @Option(help: "Size of the box and of /tmp (tmpfs) each.")
    var disk: ByteSize = ByteSize(bytes: 64 << 20)

    @Flag(help: "Share the host's network (off: a private network namespace with loopback only).")
    var network = false

    @Option(help: "Host directory to bind read-write as /box (default: a fresh private box).")
    var box: String?

    @Option(help: "Host file to use as standard input (default: empty).")
    var stdin: String?

    @Option(name: .customLong("env"), help: "Set an environment variable (NAME=VALUE); repeatable.")
    var environment: [String] = []

    @Option(name: .customLong("bind"), help: "Bind a host path read-only at the same path inside; repeatable.")
    var binds: [String] = []

    @OptionGroup var sandboxOptions: SandboxOptions

    @Flag(help: "Print one JSON object describing the run.")
    var json = false

    @Argument(parsing: .remaining, help: "The program (absolute path inside the sandbox) and its arguments.")
    var command: [String] = []

    mutating func validate() throws {
        if command.first == "--" { command.removeFirst() }
        guard let program = command.first else { throw ValidationError("missing PROGRAM") }
        guard program.hasPrefix("/") else { throw ValidationError("PROGRAM must be an absolute path inside the sandbox (got '\(program)')") }
        guard cpuTime > 0, wallTime > 0 else { throw ValidationError("time limits must be positive") }
        guard processes >= 1 else { throw ValidationError("--processes must be at least 1") }
        for variable in environment where !variable.contains("=") {
            throw ValidationError("--env takes NAME=VALUE (got '\(variable)')")
        }
    }

    func run() throws {
        let sandbox: Sandbox
        do {
            sandbox = try Sandbox(configuration: sandboxOptions.configuration(slots: 1))
        } catch {
            FileHandle.standardError.write(Data("sandbox-server: \(error)\n".utf8))
            throw ExitCode(Self.exitInternalError)
        }
        defer { sandbox.close() }

        var environment = RunSpec.defaultEnvironment
        for variable in self.environment {
            let parts = variable.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            environment[String(parts[0])] = String(parts[1])
        }
        let limits = ResourceLimits(
            cpuTimeMilliseconds: Int(cpuTime * 1000), wallTimeMilliseconds: Int(wallTime * 1000),
            memoryBytes: memory.bytes, addressSpaceBytes: addressSpace?.bytes, processes: processes,
            outputBytes: output.bytes, killOnOutputLimit: killOnOutputLimit, fileSizeBytes: fileSize.bytes,
            diskBytes: disk.bytes)
        var spec = RunSpec(executable: command[0], arguments: Array(command.dropFirst()), environment: environment,
                           limits: limits, network: network, readOnlyBinds: binds.map { BindMount(hostPath: $0) })
        if let box { spec.box = .hostDirectory(Self.absolute(box)) }
        if let stdin { spec.stdin = .file(Self.absolute(stdin)) }

        let result = sandbox.run(spec)
        if json {
            let report = RunReport(result, cgroupVersion: sandbox.cgroupVersion)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            FileHandle.standardOutput.write(try encoder.encode(report) + Data("\n".utf8))
            if result.status == .internalError { throw ExitCode(Self.exitInternalError) }
            return
        }
        FileHandle.standardOutput.write(Data(result.stdout))
        FileHandle.standardError.write(Data(result.stderr))
        if let message = result.message, result.status != .ok, result.status != .runtimeError {
            FileHandle.standardError.write(Data("sandbox-server: \(result.status.rawValue): \(message)\n".utf8))
        }
        throw ExitCode(Self.exitStatus(for: result))
    }

    static func exitStatus(for result: RunResult) -> Int32 {
        switch result.status {
        case .ok, .runtimeError: return result.exitCode ?? 0
        case .signaled: return 128 + (result.signal ?? 0)
        case .timeLimit: return exitTimeLimit
        case .memoryLimit: return exitMemoryLimit
        case .outputLimit: return exitOutputLimit
        case .internalError, .cancelled: return exitInternalError
        }
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

/// Options that place the sandbox on the host: cgroups and the work directory.
struct SandboxOptions: ParsableArguments {
    @Option(name: .customLong("cgroup-version"), help: "cgroup version: auto, 1 or 2.")
    var cgroupVersion: String = "auto"

    @Option(name: .customLong("cgroup-parent"), help: "Name of our parent cgroup.")
    var cgroupParent: String = "sandbox-server"

    @Flag(name: .customLong("cgroup-delegated"), help: "cgroup v2 in a delegated subtree (systemd Delegate=yes): work under our own cgroup.")
    var cgroupDelegated = false

    @Option(name: .customLong("work-root"), help: "Directory for the sandbox's mount points and boxes.")
    var workRoot: String = "/run/sandbox-server"

    @Option(name: .customLong("first-uid"), help: "uid of the first slot; slot n runs as first-uid + n.")
    var firstUID: UInt32 = 60_000

    @Flag(name: .customLong("user-namespace"), help: "Also put each job in a user namespace (root inside is the slot uid outside).")
    var userNamespace = false

    func configuration(slots: Int) throws -> SandboxConfiguration {
        var mode: CgroupOptions.Mode
        switch cgroupVersion {
        case "auto": mode = .auto
        case "1", "v1": mode = .v1
        case "2", "v2": mode = .v2
        default: throw ValidationError("--cgroup-version must be auto, 1 or 2")
        }
        if cgroupDelegated {
            guard mode != .v1 else { throw ValidationError("--cgroup-delegated needs cgroup v2") }
            mode = .v2Delegated
        }
        guard !cgroupParent.isEmpty, !cgroupParent.contains("/"), cgroupParent != "..", cgroupParent != "." else {
            throw ValidationError("--cgroup-parent must be a single group name")
        }
        return SandboxConfiguration(slots: slots, workRoot: workRoot, firstUID: firstUID,
                                    cgroup: CgroupOptions(mode: mode, parent: cgroupParent), userNamespace: userNamespace)
    }
}

/// The JSON shape of `run --json`.
struct RunReport: Codable {
    var status: String
    var exit_code: Int32?
    var signal: Int32?
    var time_limit_kind: String?
    var cpu_time_ms: Double
    var wall_time_ms: Double
    var memory_bytes: Int
    var stdout: String
    var stderr: String
    var stdout_truncated: Bool
    var stderr_truncated: Bool
    var message: String?
    var cgroup_version: Int

    init(_ result: RunResult, cgroupVersion: Int) {
        status = result.status.rawValue
        exit_code = result.exitCode
        signal = result.signal
        time_limit_kind = result.timeLimitKind?.rawValue
        cpu_time_ms = Double(result.cpuTimeMicroseconds) / 1000
        wall_time_ms = Double(result.wallTimeMicroseconds) / 1000
        memory_bytes = result.memoryBytes
        stdout = String(decoding: result.stdout, as: UTF8.self)
        stderr = String(decoding: result.stderr, as: UTF8.self)
        stdout_truncated = result.stdoutTruncated
        stderr_truncated = result.stderrTruncated
        message = result.message
        cgroup_version = cgroupVersion
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(status, forKey: .status)
        // Keys are always present (null when not applicable), so clients can rely on the shape.
        try container.encode(exit_code, forKey: .exit_code)
        try container.encode(signal, forKey: .signal)
        try container.encode(time_limit_kind, forKey: .time_limit_kind)
        try container.encode(cpu_time_ms, forKey: .cpu_time_ms)
        try container.encode(wall_time_ms, forKey: .wall_time_ms)
        try container.encode(memory_bytes, forKey: .memory_bytes)
        try container.encode(stdout, forKey: .stdout)
        try container.encode(stderr, forKey: .stderr)
        try container.encode(stdout_truncated, forKey: .stdout_truncated)
        try container.encode(stderr_truncated, forKey: .stderr_truncated)
        try container.encode(message, forKey: .message)
        try container.encode(cgroup_version, forKey: .cgroup_version)
    }
}
