import CIsolation
import Dispatch
import Glibc
import Synchronization

/// Settings of a ``Sandbox``, fixed for its lifetime.
public struct SandboxConfiguration: Sendable, Hashable {
    /// Runs that may execute at once; each slot has its own uid, box and cgroup.
    public var slots: Int
    /// Host directory for the sandbox's working state (mount points, generated /etc, boxes).
    /// Must be on a local filesystem; it is created mode 0700.
    public var workRoot: String
    /// uid (and gid) of slot 0; slot n runs as `firstUID + n`.
    public var firstUID: UInt32
    /// cgroup version, mode and parent group.
    public var cgroup: CgroupOptions
    /// Hostname inside the sandbox.
    public var hostname: String
    /// Join the cgroup v1 cpu hierarchy so CPU quotas apply (v2 always supports them).
    public var cpuQuotas: Bool
    /// Run each job in a new user namespace too: root inside is the slot's unprivileged uid
    /// outside (one id mapped), so even a kernel bug that gave the job capabilities would give
    /// them only over its own namespaces. Costs a uid/gid map handshake per run.
    public var userNamespace: Bool

    /// Creates a configuration.
    /// - Parameters:
    ///   - slots: Concurrent runs (default: the number of CPUs).
    ///   - workRoot: Working directory of the sandbox (default `/run/sandbox-server`).
    ///   - firstUID: uid of slot 0 (default 60000).
    ///   - cgroup: cgroup options (default: auto-detected, parent `sandbox-server`).
    ///   - hostname: Hostname inside (default `sandbox`).
    ///   - cpuQuotas: Enable CPU quotas on cgroup v1 (default off).
    ///   - userNamespace: Also isolate each job in a user namespace (default off).
    public init(
        slots: Int = Sandbox.processorCount, workRoot: String = "/run/sandbox-server", firstUID: UInt32 = 60_000,
        cgroup: CgroupOptions = CgroupOptions(), hostname: String = "sandbox", cpuQuotas: Bool = false,
        userNamespace: Bool = false
    ) {
        self.slots = slots
        self.workRoot = workRoot
        self.firstUID = firstUID
        self.cgroup = cgroup
        self.hostname = hostname
        self.cpuQuotas = cpuQuotas
        self.userNamespace = userNamespace
    }
}

/// Runs programs in sandboxes: fresh PID, mount, network, IPC, UTS and cgroup namespaces, a
/// per-run cgroup with memory, process and CPU limits, a minimal read-only filesystem, an
/// unprivileged uid unique to the slot, no capabilities, `no_new_privs` and a seccomp filter.
///
/// ``run(_:)`` blocks the calling thread until the run ends. Call it from dedicated threads,
/// never from Swift's cooperative thread pool. Up to ``SandboxConfiguration/slots`` runs proceed
/// at once; further callers wait for a free slot.
public final class Sandbox: Sendable {
    /// The configuration.
    public let configuration: SandboxConfiguration
    /// The cgroup version in use (1 or 2).
    public var cgroupVersion: Int { cgroups.version }
    /// Where our cgroups live (for diagnostics).
    public var cgroupLocation: String { cgroups.location }

    let layout: HostLayout
    let cgroups: any CgroupBackend
    let seccomp: SeccompProgram
    let boxes: [SlotBox]
    let spawners: [SlotSpawner]
    /// One network namespace per slot (loopback only), entered by the slot's spawner thread:
    /// consecutive runs of a slot never overlap and leave no state in it a job could set
    /// (that needs CAP_NET_ADMIN), and reusing it saves creating and tearing one down per run.
    private let slotNetworkNamespaces: [Int32]
    /// The host's network namespace, for runs that ask for the network.
    let hostNetworkNamespace: Int32
    /// The sandbox's init program: a sealed memfd (read-only, CLOEXEC) built from CSandboxInit
    /// at start-up and executed as PID 1 of every run.
    let initImage: Int32
    private let freeSlots: Mutex<[Int]>
    private let slotSemaphore: DispatchSemaphore
    private let closed = Atomic<Bool>(false)

    /// Number of online CPUs.
    public static let processorCount: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Checks the host, sets up cgroups, boxes and the generated /etc.
    /// - Throws: ``SandboxError`` naming what is missing and how to fix it: not root, no cgroup
    ///   controller, namespaces or seccomp unavailable. Never a silently weaker sandbox.
    public init(configuration: SandboxConfiguration = SandboxConfiguration()) throws(SandboxError) {
        guard configuration.slots >= 1, configuration.slots <= 1024 else {
            throw SandboxError(.invalidSpec, "slots must be between 1 and 1024 (got \(configuration.slots))")
        }
        self.configuration = configuration
        try Preflight.check(userNamespace: configuration.userNamespace)
        // A write to a pipe whose reader is gone must fail with EPIPE, not kill the server.
        signal(SIGPIPE, SIG_IGN)

        let work = configuration.workRoot
        Preflight.detachStaleMounts(under: work)
        // In user-namespace mode the sandbox's init is the slot uid as far as the host is
        // concerned, and must traverse to its mount sources: the work root and slots directory
        // are then 0711 (no listing), and each slot directory belongs to its own uid (0700).
        let traversable: mode_t = configuration.userNamespace ? 0o711 : 0o700
        try System.makeDirectories(work, mode: traversable)
        chmod(work, traversable)
        try System.makeDirectory(work + "/root", mode: 0o755)
        try System.makeDirectory(work + "/slots", mode: traversable)
        chmod(work + "/slots", traversable)
        let users = (0..<configuration.slots).map { (uid: configuration.firstUID + UInt32($0), gid: configuration.firstUID + UInt32($0)) }
        layout = try HostLayout.prepare(workRoot: work, sandboxUsers: users)
        seccomp = try SeccompProgram()
        let image = cis_init_image_fd()
        guard image >= 0 else {
            throw SandboxError(.system, "create the sandbox's init image in a memfd (memfd_create, sealing and exec of a memfd are needed; vm.memfd_noexec must be 0 or 1)", errno: errno)
        }
        initImage = image
        // The image is this initializer's to close if start-up fails anywhere below; once it
        // succeeds, close() alone closes it.
        var started = false
        defer { if !started { Glibc.close(image) } }
        let cgroups = try CgroupDetection.backend(for: configuration.cgroup, cpuQuotas: configuration.cpuQuotas)
        self.cgroups = cgroups
        var namespaces: [Int32] = []
        var spawners: [SlotSpawner] = []
        var host: Int32 = -1
        // What start-up makes from here on is undone here, newest first, if it fails anywhere.
        defer {
            if !started {
                spawners.forEach { $0.stop() }
                namespaces.forEach { Glibc.close($0) }
                if host >= 0 { Glibc.close(host) }
                cgroups.tearDown()
            }
        }
        try cgroups.setUp(slots: configuration.slots)
        boxes = users.enumerated().map { index, user in
            SlotBox(path: "\(work)/slots/\(index)/box", uid: user.uid, gid: user.gid)
        }
        for (index, user) in users.enumerated() {
            let slotDirectory = "\(work)/slots/\(index)"
            try System.makeDirectory(slotDirectory, mode: 0o700)
            chown(slotDirectory, configuration.userNamespace ? user.uid : 0, configuration.userNamespace ? user.gid : 0)
        }
        host = Glibc.open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)
        guard host >= 0 else {
            throw SandboxError(.namespacesUnavailable, "open /proc/self/ns/net", errno: errno)
        }
        hostNetworkNamespace = host
        for slot in 0..<configuration.slots {
            let namespace = cis_create_netns()
            guard namespace >= 0 else {
                throw SandboxError(.namespacesUnavailable, "create a network namespace (CONFIG_NET_NS)", errno: errno)
            }
            namespaces.append(namespace)
            let spawner = try SlotSpawner(tasksDescriptors: cgroups.spawnerJoinDescriptors(slot: slot), networkNamespace: namespace)
            spawners.append(spawner)
            cgroups.attach(spawner: spawner, slot: slot)
        }
        slotNetworkNamespaces = namespaces
        self.spawners = spawners
        freeSlots = Mutex(Array((0..<configuration.slots).reversed()))
        slotSemaphore = DispatchSemaphore(value: configuration.slots)
        started = true
    }

    deinit { close() }

    /// Runs one program in a fresh slot and returns how it ended. Never throws: a sandbox failure
    /// is a result with status ``RunStatus/internalError`` and a message.
    public func run(_ spec: RunSpec, cancellation: RunCancellation? = nil) -> RunResult {
        withSlot { $0.run(spec, cancellation: cancellation) }
    }

    /// Reserves a slot for a sequence of runs that share its box (compile, then run each test
    /// over the compiled box), waiting for one to be free.
    public func withSlot<T>(_ body: (SandboxSlot) throws -> T) rethrows -> T {
        slotSemaphore.wait()
        let index = freeSlots.withLock { $0.removeLast() }
        defer {
            freeSlots.withLock { $0.append(index) }
            slotSemaphore.signal()
        }
        return try body(SandboxSlot(sandbox: self, index: index))
    }

    /// Like ``withSlot(_:)``, but gives up when no slot frees up within `timeout` and returns nil
    /// without running `body`: a synchronous front end (Jobe's `POST runs`) answers "overloaded"
    /// instead of holding its client indefinitely.
    public func withSlot<T>(waitingAtMost timeout: Duration, _ body: (SandboxSlot) throws -> T) rethrows -> T? {
        let nanoseconds = max(0, timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        guard slotSemaphore.wait(timeout: .now() + .nanoseconds(Int(nanoseconds))) == .success else { return nil }
        let index = freeSlots.withLock { $0.removeLast() }
        defer {
            freeSlots.withLock { $0.append(index) }
            slotSemaphore.signal()
        }
        return try body(SandboxSlot(sandbox: self, index: index))
    }

    /// Runs `/usr/bin/true` and reports whether the sandbox works end to end.
    public func selfTest() -> RunResult {
        run(RunSpec(executable: "/usr/bin/true", limits: ResourceLimits(cpuTimeMilliseconds: 2_000, wallTimeMilliseconds: 5_000)))
    }

    /// Removes every cgroup, mount and directory the sandbox created. Idempotent; runs in
    /// progress must have finished.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Spawner threads first: on v1 they sit in the slot groups, which must be empty to go.
        spawners.forEach { $0.stop() }
        slotNetworkNamespaces.forEach { Glibc.close($0) }
        Glibc.close(hostNetworkNamespace)
        Glibc.close(initImage)
        cgroups.tearDown()
        for box in boxes { box.destroy() }
        let work = configuration.workRoot
        for index in 0..<boxes.count { rmdir("\(work)/slots/\(index)") }
        rmdir(work + "/slots")
        rmdir(work + "/root")
        Preflight.removeTree(layout.generatedEtc)
        Preflight.removeTree(layout.generatedDev)
        rmdir(work)
    }
}

/// One reserved slot: its box and the runs made in it.
public struct SandboxSlot: Sendable {
    let sandbox: Sandbox
    /// The slot number (0-based).
    public let index: Int

    /// The slot's box, for writing inputs before and reading artifacts after runs.
    public var box: SlotBox { sandbox.boxes[index] }

    /// Replaces the slot's box with a fresh one of `sizeBytes` holding `files`, without running
    /// anything: later runs use it with ``BoxMode/keep`` or ``BoxMode/copyOnWrite`` (an interpreted
    /// program's sources, shared read-only by every test).
    public func prepareBox(files: [BoxFile], sizeBytes: Int) throws(SandboxError) {
        try box.reset(sizeBytes: sizeBytes)
        try box.write(files)
    }

    /// Runs one program in this slot; `cancellation` can end it early from another thread.
    public func run(_ spec: RunSpec, cancellation: RunCancellation? = nil) -> RunResult {
        Supervisor(sandbox: sandbox, slot: index, cancellation: cancellation).run(spec)
    }
}
