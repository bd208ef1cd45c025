import CIsolation
import Glibc

/// Carries out one run in one slot: box, cgroup, spawn, then watches the run — output, stdin,
/// wall and CPU time — until it ends, and turns what happened into a ``RunResult``.
struct Supervisor {
    let sandbox: Sandbox
    let slot: Int
    /// Checked before the spawn and watched (its pipe) while the program runs.
    var cancellation: RunCancellation? = nil

    private enum KillReason {
        case wallTime, cpuTime, output, cancelled
    }

    /// A captured output stream: a pipe read end and a capped buffer.
    private struct Capture {
        var fd: Int32
        var bytes: [UInt8] = []
        var truncated = false
        var cap: Int
        var open: Bool { fd >= 0 }

        init(fd: Int32, cap: Int) {
            self.fd = fd
            self.cap = cap
            bytes.reserveCapacity(min(cap, 1 << 16))
        }

        /// Reads what is available; returns false at EOF. Past the cap, bytes are read and
        /// dropped so the program never blocks on a full pipe.
        mutating func drain(into scratch: inout [UInt8]) -> Bool {
            while true {
                let n = scratch.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    let room = cap - bytes.count
                    if room > 0 { bytes.append(contentsOf: scratch[0..<min(n, room)]) }
                    if n > room { truncated = true }
                    continue
                }
                if n == 0 { return false }
                let error = errno
                if error == EINTR { continue }
                return error == EAGAIN || error == EWOULDBLOCK
            }
        }

        mutating func close() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
    }

    func run(_ spec: RunSpec) -> RunResult {
        do {
            return try execute(spec)
        } catch {
            return .internalError(error.description)
        }
    }

    private func validate(_ spec: RunSpec) throws(SandboxError) {
        guard spec.executable.hasPrefix("/") else {
            throw SandboxError(.invalidSpec, "the executable must be an absolute path inside the sandbox (got '\(spec.executable)')")
        }
        guard spec.workingDirectory.hasPrefix("/") else {
            throw SandboxError(.invalidSpec, "the working directory must be absolute (got '\(spec.workingDirectory)')")
        }
        let limits = spec.limits
        guard limits.wallTimeMilliseconds > 0, limits.processes >= 1, limits.outputBytes >= 0,
              limits.fileSizeBytes >= 0, limits.diskBytes >= 4096, limits.openFiles >= 4,
              limits.cpuTimeMilliseconds.map({ $0 > 0 }) ?? true,
              limits.memoryBytes.map({ $0 >= 1 << 20 }) ?? true
        else {
            throw SandboxError(.invalidSpec, "limits out of range: \(limits)")
        }
        for argument in [spec.executable] + spec.arguments + spec.environment.map({ "\($0.key)=\($0.value)" })
        where argument.utf8.contains(0) {
            throw SandboxError(.invalidSpec, "arguments and environment must not contain NUL bytes")
        }
        for key in spec.environment.keys where key.isEmpty || key.contains("=") {
            throw SandboxError(.invalidSpec, "invalid environment variable name '\(key)'")
        }
        for bind in spec.readOnlyBinds {
            guard bind.sandboxPath.hasPrefix("/"), !bind.sandboxPath.split(separator: "/").contains(".."),
                  System.fileExists(bind.hostPath)
            else {
                throw SandboxError(.invalidSpec, "invalid bind \(bind.hostPath) → \(bind.sandboxPath)")
            }
        }
    }

    private func prepareBox(_ spec: RunSpec) throws(SandboxError) -> BoxSource {
        let box = sandbox.boxes[slot]
        switch spec.box {
        case .fresh:
            try box.reset(sizeBytes: spec.limits.diskBytes)
            try box.write(spec.files)
            return .bind(box.path)
        case .keep:
            if !box.isMounted { try box.reset(sizeBytes: spec.limits.diskBytes) }
            try box.write(spec.files)
            return .bind(box.path)
        case .copyOnWrite:
            guard spec.files.isEmpty else {
                throw SandboxError(.invalidSpec, "files cannot be added to a copy-on-write box; write them in the run that fills the box")
            }
            if !box.isMounted { try box.reset(sizeBytes: spec.limits.diskBytes) }
            return .overlay(lower: box.path)
        case .hostDirectory(let path):
            guard spec.files.isEmpty else {
                throw SandboxError(.invalidSpec, "files cannot be added to a host-directory box")
            }
            guard path.hasPrefix("/"), System.isDirectory(path) else {
                throw SandboxError(.invalidSpec, "box directory '\(path)' is not an absolute path to a directory")
            }
            return .bind(path)
        }
    }

    /// rlimits of the program. CPU is a backstop one second past the cgroup-enforced limit.
    private func rlimits(_ limits: ResourceLimits) -> [cis_rlimit] {
        func limit(_ resource: __rlimit_resource, _ value: Int) -> cis_rlimit {
            cis_rlimit(resource: Int32(resource.rawValue), soft: UInt64(value), hard: UInt64(value))
        }
        var result = [
            limit(RLIMIT_CORE, 0),
            limit(RLIMIT_FSIZE, limits.fileSizeBytes),
            limit(RLIMIT_NOFILE, limits.openFiles),
        ]
        if let cpu = limits.cpuTimeMilliseconds {
            let seconds = (cpu + 999) / 1000 + 1
            result.append(cis_rlimit(resource: Int32(RLIMIT_CPU.rawValue), soft: UInt64(seconds), hard: UInt64(seconds + 1)))
        }
        if let stack = limits.stackBytes { result.append(limit(RLIMIT_STACK, stack)) }
        if let addressSpace = limits.addressSpaceBytes { result.append(limit(RLIMIT_AS, addressSpace)) }
        return result
    }

    private func openStdin(_ input: StandardInput) throws(SandboxError) -> (child: Int32, feed: Int32, bytes: [UInt8]) {
        switch input {
        case .empty:
            return (try System.open("/dev/null", O_RDONLY), -1, [])
        case .file(let path):
            return (try System.open(path, O_RDONLY), -1, [])
        case .bytes(let bytes):
            if bytes.isEmpty { return (try System.open("/dev/null", O_RDONLY), -1, []) }
            var fds: [Int32] = [-1, -1]
            _ = try System.check(cis_pipe_cloexec(&fds), "pipe for stdin")
            _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
            return (fds[0], fds[1], bytes)
        }
    }

    private func outputPipe() throws(SandboxError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try System.check(cis_pipe_cloexec(&fds), "pipe for output")
        // Only our end is non-blocking; the program's end keeps normal blocking semantics.
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        return (fds[0], fds[1])
    }

    private func execute(_ spec: RunSpec) throws(SandboxError) -> RunResult {
        let prepareStarted = System.monotonicNanoseconds()
        try validate(spec)
        if cancellation?.isCancelled == true { return Self.cancelledBeforeStart }
        let limits = spec.limits
        let box = try prepareBox(spec)
        let hostUID = sandbox.configuration.firstUID + UInt32(slot)
        let userNamespace = sandbox.configuration.userNamespace
        // In a user namespace the program is root inside, which is the slot uid outside.
        let uid: UInt32 = userNamespace ? 0 : hostUID
        let idMap = "0 \(hostUID) 1\n"
        let plan = MountPlan.standard(root: sandbox.configuration.workRoot + "/root", layout: sandbox.layout, box: box,
                                      limits: limits, uid: uid, gid: uid, extraBinds: spec.readOnlyBinds,
                                      userNamespace: userNamespace)
        let environment = spec.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let arena = SpawnArena(plan: plan, argv: [spec.argv0 ?? spec.executable] + spec.arguments, environment: environment)
        let resourceLimits = rlimits(limits)

        let lease = try sandbox.cgroups.acquire(slot: slot, limits: limits)
        var leaseReleased = false
        defer { if !leaseReleased { try? sandbox.cgroups.release(lease) } }

        let stdin = try openStdin(spec.stdin)
        var stdinFeed = stdin.feed
        defer { if stdinFeed >= 0 { close(stdinFeed) } }
        let stdoutPipe: (read: Int32, write: Int32)
        let stderrPipe: (read: Int32, write: Int32)
        do {
            stdoutPipe = try outputPipe()
            stderrPipe = try outputPipe()
        } catch {
            close(stdin.child)
            throw error
        }
        var stdout = Capture(fd: stdoutPipe.read, cap: limits.outputBytes)
        var stderr = Capture(fd: stderrPipe.read, cap: limits.outputBytes)
        defer {
            stdout.close()
            stderr.close()
        }

        var namespaces = CIS_CLONE_NEWNS | CIS_CLONE_NEWPID | CIS_CLONE_NEWIPC | CIS_CLONE_NEWUTS
        if userNamespace { namespaces |= CIS_CLONE_NEWUSER }
        var spawned = cis_spawn_result()
        let started = System.monotonicNanoseconds()
        let spawner = sandbox.spawners[slot]
        let rc = idMap.withCString { idMapText in resourceLimits.withUnsafeBufferPointer { rlimitBuffer in
                sandbox.configuration.hostname.withCString { hostname in
                    spec.executable.withCString { path in
                        spec.workingDirectory.withCString { workDir in
                            (sandbox.configuration.workRoot + "/root").withCString { root in
                                var plan = cis_spawn_plan()
                                plan.namespaces = namespaces
                                plan.root = root
                                plan.fs_ops = UnsafePointer(arena.operations)
                                plan.fs_op_count = arena.operationCount
                                plan.work_dir = workDir
                                plan.hostname = hostname
                                plan.path = path
                                plan.argv = UnsafePointer(arena.argv)
                                plan.envp = UnsafePointer(arena.envp)
                                plan.stdin_fd = stdin.child
                                plan.stdout_fd = stdoutPipe.write
                                plan.stderr_fd = stderrPipe.write
                                plan.cgroup_dir_fd = lease.directoryDescriptor
                                plan.uid = uid
                                plan.gid = uid
                                plan.rlimits = rlimitBuffer.baseAddress
                                plan.rlimit_count = rlimitBuffer.count
                                plan.seccomp_filter = UnsafeRawPointer(sandbox.seccomp.instructions)
                                plan.seccomp_length = sandbox.seccomp.length
                                // The spawner thread sits in the slot's network namespace (loopback
                                // already up); a run with network goes back to the host's.
                                plan.netns_fd = spec.network ? sandbox.hostNetworkNamespace : -1
                                plan.uid_map = userNamespace ? idMapText : nil
                                plan.gid_map = userNamespace ? idMapText : nil
                                plan.init_fd = sandbox.initImage
                                return spawner.spawn(&plan, &spawned)
                            }
                        }
                    }
                }
            }
        }
        let execed = System.monotonicNanoseconds()
        close(stdin.child)
        close(stdoutPipe.write)
        close(stderrPipe.write)
        withExtendedLifetime(arena) {}
        if rc != 0 {
            leaseReleased = true
            try? sandbox.cgroups.release(lease)
            return .internalError(describe(spawned.error, plan: plan, spec: spec))
        }
        defer {
            close(spawned.pidfd)
            close(spawned.status_fd)
        }

        // Feed stdin, capture output, enforce wall and CPU time until PID 1 exits.
        var pendingInput = stdin.bytes[...]
        var killReason: KillReason?
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        let wallDeadline = started + UInt64(limits.wallTimeMilliseconds) * 1_000_000
        let cpuLimitMicroseconds = limits.cpuTimeMilliseconds.map { $0 * 1000 }
        var exited = false
        func terminate(_ reason: KillReason) {
            if killReason == nil { killReason = reason }
            _ = cis_pidfd_send_signal(spawned.pidfd, SIGKILL)
            sandbox.cgroups.killAll(lease)
        }
        let cancelDescriptor = cancellation?.wakeDescriptor ?? -1
        while !exited {
            if cancellation?.isCancelled == true {
                terminate(.cancelled)
                break
            }
            let now = System.monotonicNanoseconds()
            if now >= wallDeadline {
                terminate(.wallTime)
                break
            }
            var timeout = Int((wallDeadline - now + 999_999) / 1_000_000)
            if let cpuLimit = cpuLimitMicroseconds {
                let used = sandbox.cgroups.cpuMicroseconds(lease)
                if used >= cpuLimit {
                    terminate(.cpuTime)
                    break
                }
                // CPU time grows at most (CPUs × wall time): sleep until it could have run out.
                let remaining = (cpuLimit - used) / 1000 / max(1, Sandbox.processorCount)
                timeout = min(timeout, max(2, min(remaining, 100)))
            }
            // Without a wake pipe, look at the token at least every 50 ms.
            if cancellation != nil && cancelDescriptor < 0 { timeout = min(timeout, 50) }
            var fds = [pollfd(fd: spawned.pidfd, events: Int16(POLLIN), revents: 0)]
            if cancelDescriptor >= 0 { fds.append(pollfd(fd: cancelDescriptor, events: Int16(POLLIN), revents: 0)) }
            if stdout.open { fds.append(pollfd(fd: stdout.fd, events: Int16(POLLIN), revents: 0)) }
            if stderr.open { fds.append(pollfd(fd: stderr.fd, events: Int16(POLLIN), revents: 0)) }
            if stdinFeed >= 0 { fds.append(pollfd(fd: stdinFeed, events: Int16(POLLOUT), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(timeout))
            if ready < 0 && errno != EINTR { terminate(.wallTime); break }
            for entry in fds where entry.revents != 0 {
                if entry.fd == spawned.pidfd {
                    exited = true
                } else if entry.fd == cancelDescriptor {
                    continue  // the token is checked at the top of the loop
                } else if entry.fd == stdout.fd {
                    if !stdout.drain(into: &scratch) { stdout.close() }
                } else if entry.fd == stderr.fd {
                    if !stderr.drain(into: &scratch) { stderr.close() }
                } else if entry.fd == stdinFeed {
                    if (Int32(entry.revents) & (POLLERR | POLLHUP)) != 0 || feed(stdinFeed, &pendingInput) {
                        close(stdinFeed)
                        stdinFeed = -1
                    }
                }
            }
            if limits.killOnOutputLimit, stdout.truncated || stderr.truncated {
                terminate(.output)
                break
            }
        }

        // Every process of the namespace is gone once PID 1 is reaped: drain what they wrote.
        var wait = (status: Int32(0), user: Int64(0), system: Int64(0), rss: Int64(0))
        _ = cis_wait(spawned.pid, &wait.status, &wait.user, &wait.system, &wait.rss)
        let reaped = System.monotonicNanoseconds()
        let wallNanoseconds = reaped - started
        if stdout.open { _ = stdout.drain(into: &scratch) }
        if stderr.open { _ = stderr.drain(into: &scratch) }
        var report = cis_program_status()
        let reportBytes = withUnsafeMutableBytes(of: &report) { Glibc.read(spawned.status_fd, $0.baseAddress, $0.count) }
        let programStatus: Int32? = reportBytes == MemoryLayout<cis_program_status>.size ? report.wait_status : nil

        let usage = sandbox.cgroups.usage(lease)
        leaseReleased = true
        var releaseProblem: String?
        do { try sandbox.cgroups.release(lease) } catch { releaseProblem = error.description }

        var result = RunResult(status: .ok)
        result.cpuTimeMicroseconds = usage.cpuMicroseconds
        result.wallTimeMicroseconds = Int(wallNanoseconds / 1000)
        result.memoryBytes = usage.peakMemoryBytes > 0 ? usage.peakMemoryBytes : Int(report.max_rss_kib) * 1024
        result.stdout = stdout.bytes
        result.stderr = stderr.bytes
        result.stdoutTruncated = stdout.truncated
        result.stderrTruncated = stderr.truncated
        if let programStatus {
            // The wait status layout of Linux: low 7 bits the signal (0 for an exit), then the code.
            let signal = programStatus & 0x7f
            if signal == 0 {
                result.exitCode = (programStatus >> 8) & 0xff
            } else if signal != 0x7f {
                result.signal = signal
            }
        } else if killReason == nil {
            result.signal = SIGKILL
        }
        classify(&result, killReason: killReason, usage: usage, limits: limits, sawProgramStatus: programStatus != nil)
        if let releaseProblem {
            result.status = .internalError
            result.message = "cleanup failed: \(releaseProblem)"
        }
        result.phases = RunPhases(prepare: Int(started - prepareStarted) / 1000, spawn: Int(execed - started) / 1000,
                                  run: Int(reaped - execed) / 1000, collect: Int(System.monotonicNanoseconds() - reaped) / 1000)
        return result
    }

    /// The result of a run whose token was cancelled before its program started.
    private static var cancelledBeforeStart: RunResult {
        RunResult(status: .cancelled, message: "the run was cancelled before it started")
    }

    /// Writes as much pending stdin as the pipe takes; true when all is written.
    private func feed(_ fd: Int32, _ pending: inout ArraySlice<UInt8>) -> Bool {
        while !pending.isEmpty {
            let n = pending.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n > 0 { pending = pending.dropFirst(n); continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            return true  // EPIPE: the program closed stdin; drop the rest
        }
        return true
    }

    /// Decides the status. A limit the supervisor enforced wins; then the OOM counter (never a
    /// guess from SIGKILL); then CPU overrun between two checks; then the program's own ending.
    private func classify(_ result: inout RunResult, killReason: KillReason?, usage: CgroupUsage, limits: ResourceLimits, sawProgramStatus: Bool) {
        let cpuLimit = limits.cpuTimeMilliseconds.map { $0 * 1000 }
        switch killReason {
        case .wallTime:
            result.status = .timeLimit
            result.timeLimitKind = .wall
            result.message = "wall time limit of \(limits.wallTimeMilliseconds) ms exceeded"
            return
        case .cpuTime:
            result.status = .timeLimit
            result.timeLimitKind = .cpu
            result.message = "CPU time limit of \(limits.cpuTimeMilliseconds ?? 0) ms exceeded"
            return
        case .output:
            result.status = .outputLimit
            result.message = "output limit of \(limits.outputBytes) bytes per stream exceeded"
            return
        case .cancelled:
            result.status = .cancelled
            result.message = "the run was cancelled"
            return
        case nil:
            break
        }
        if usage.oomKills > 0 {
            result.status = .memoryLimit
            result.message = "memory limit of \(limits.memoryBytes ?? 0) bytes exceeded (OOM killer acted \(usage.oomKills) time\(usage.oomKills == 1 ? "" : "s"))"
            return
        }
        if let cpuLimit, usage.cpuMicroseconds > cpuLimit || result.signal == SIGXCPU {
            result.status = .timeLimit
            result.timeLimitKind = .cpu
            result.message = "CPU time limit of \(limits.cpuTimeMilliseconds ?? 0) ms exceeded"
            return
        }
        if !sawProgramStatus {
            result.status = .internalError
            result.message = "the sandbox's init ended without reporting the program's status"
            return
        }
        if let signal = result.signal {
            result.status = .signaled
            result.message = "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
        } else if let code = result.exitCode, code != 0 {
            result.status = .runtimeError
            result.message = "exited with status \(code)"
        } else {
            result.status = .ok
        }
    }

    private static let stepNames: [Int32: String] = [
        1: "reset signals", 2: "set parent-death signal", 4: "unshare cgroup namespace",
        5: "make mounts private", 6: "mount root tmpfs", 7: "mount", 8: "pivot_root", 9: "remount root read-only",
        10: "sethostname", 11: "enter the network namespace", 12: "chdir to working directory", 13: "setrlimit",
        14: "redirect stdio", 15: "close descriptors", 16: "drop capabilities", 17: "setgroups", 18: "setresgid",
        19: "setresuid", 20: "set no_new_privs", 21: "load seccomp filter", 22: "fork the program",
        23: "setsid", 24: "execve", 25: "clone", 26: "enter the user namespace", 27: "start the sandbox's init",
        28: "pass the program to init",
    ]

    private func describe(_ error: cis_child_error, plan: MountPlan, spec: RunSpec) -> String {
        let step = Self.stepNames[error.step] ?? "step \(error.step)"
        let reason = String(cString: strerror(error.error_number))
        switch error.step {
        case Int32(CIS_STEP_EXEC.rawValue):
            return "execve \(spec.executable): \(reason)"
        case Int32(CIS_STEP_FS_OP.rawValue) where error.index >= 0 && Int(error.index) < plan.steps.count:
            let op = plan.steps[Int(error.index)]
            return "sandbox setup failed at \(step) #\(error.index) (\(op.source ?? op.fstype ?? "") → \(op.path)): \(reason)"
        case Int32(CIS_STEP_CHDIR.rawValue):
            return "chdir \(spec.workingDirectory): \(reason)"
        case Int32(CIS_STEP_INIT_EXEC.rawValue):
            // init runs from a memfd: vm.memfd_noexec=2 or a security module can forbid that.
            return "sandbox setup failed at \(step) (execveat of its memfd): \(reason) (errno \(error.error_number)); "
                + "check that vm.memfd_noexec is 0 or 1 and that no security module denies executing memfds"
        default:
            return "sandbox setup failed at \(step): \(reason) (errno \(error.error_number))"
        }
    }
}
