import ArgumentParser
import Foundation
import Isolation
import Synchronization

/// `sandbox-server bench sandbox`: per-run latency of plain posix_spawn, our full sandbox and
/// bwrap (when installed) for `/bin/true` and `python3 -c pass`, interleaved in one run, plus
/// throughput with concurrent runners.
struct BenchSandbox: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Sandbox lifecycle latency and throughput against plain exec and bwrap."
    )

    @Option(help: "Measured runs per program and method (after warm-up).")
    var runs = 300

    @Option(help: "Warm-up runs per program and method.")
    var warmup = 20

    @Option(help: "Seconds per throughput measurement.")
    var seconds = 5.0

    @Option(help: "Concurrent runners for the throughput measurement.")
    var runners = 2

    @Option(help: "Measure only these methods (plain, sandbox, bwrap; comma-separated), e.g. for profiling.")
    var only: String?

    @Flag(help: "Skip the throughput measurement.")
    var noThroughput = false

    @Option(name: .customLong("programs"), help: "Measure only these programs (true, python; comma-separated), e.g. for perf stat per run.")
    var programFilter: String?

    @OptionGroup var sandboxOptions: SandboxOptions

    struct Program {
        var name: String
        var argv: [String]
    }

    func run() throws {
        let sandbox = try Sandbox(configuration: sandboxOptions.configuration(slots: max(runners, 1)))
        defer { sandbox.close() }
        let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let selected = programFilter.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
        let programs = [
            (key: "true", program: Program(name: "/bin/true", argv: ["/bin/true"])),
            (key: "python", program: Program(name: "python3 -c pass", argv: ["/usr/bin/python3", "-c", "pass"])),
        ].filter { selected?.contains($0.key) ?? true }.map(\.program)
        guard !programs.isEmpty else { throw ValidationError("--programs takes true, python or both") }
        print("sandbox benchmark: \(runs) runs each after \(warmup) warm-up, interleaved; cgroup v\(sandbox.cgroupVersion) at \(sandbox.cgroupLocation); \(Sandbox.processorCount) CPUs")
        print("full sandbox = cgroup setup → pid/mount/net/ipc/uts/cgroup namespaces → mounts → seccomp → exec → wait → accounting → cleanup\n")

        var phaseTable = TextTable(header: ["program", "prepare µs", "clone→exec µs", "exec→end µs", "collect µs"])
        var table = TextTable(header: ["program", "method", "median ms", "p90 ms", "p99 ms", "CPU ms/run", "× plain (median)", "+ms vs plain"])
        for program in programs {
            var phases = [Samples](repeating: Samples(), count: 4)
            var measuring = false
            var methods: [(String, () -> Void)] = [
                ("plain posix_spawn", { _ = PlainSpawn.run(program.argv) }),
                ("sandbox", {
                    let result = sandbox.run(RunSpec(executable: program.argv[0], arguments: Array(program.argv.dropFirst())))
                    if result.status != .ok { FileHandle.standardError.write(Data("sandbox run failed: \(result.message ?? "")\n".utf8)) }
                    if measuring {
                        for (index, value) in [result.phases.prepare, result.phases.spawn, result.phases.run, result.phases.collect].enumerated() {
                            phases[index].append(Double(value))
                        }
                    }
                }),
            ]
            if let bwrap {
                let argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr",
                            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--"] + program.argv
                methods.append(("bwrap", { _ = PlainSpawn.run(argv) }))
            }
            if let only {
                let wanted = Set(only.split(separator: ",").map { $0 == "plain" ? "plain posix_spawn" : String($0) })
                methods = methods.filter { wanted.contains($0.0) }
            }
            var samples = [Samples](repeating: Samples(), count: methods.count)
            var cpuMicroseconds = [Double](repeating: 0, count: methods.count)
            for _ in 0..<warmup { for method in methods { method.1() } }
            measuring = true
            for _ in 0..<runs {
                for (index, method) in methods.enumerated() {
                    let cpuBefore = Self.processCPUMicroseconds()
                    let start = monotonicNanoseconds()
                    method.1()
                    samples[index].append(Double(monotonicNanoseconds() - start) / 1e6)
                    cpuMicroseconds[index] += Self.processCPUMicroseconds() - cpuBefore
                }
            }
            phaseTable.add([program.name] + phases.map { fmt($0.median, 0) })
            let plain = methods.first?.0 == "plain posix_spawn" ? samples[0] : Samples([1])
            for (index, method) in methods.enumerated() {
                let s = samples[index]
                table.add([program.name, method.0, fmt(s.median), fmt(s.p90), fmt(s.p99), fmt(cpuMicroseconds[index] / Double(runs) / 1000),
                           index == 0 ? "1.00" : fmt(s.median / plain.median),
                           index == 0 ? "–" : "+" + fmt(s.median - plain.median) + " (p90 +" + fmt(s.p90 - plain.p90) + ")"])
            }
        }
        print(table.render())
        print("\nsandbox phases (medians):")
        print(phaseTable.render())

        if noThroughput { return }
        print("\nthroughput, \(runners) concurrent runners, \(seconds) s each:")
        var throughput = TextTable(header: ["program", "plain jobs/s", "sandbox jobs/s", "sandbox / plain", "failures"])
        for program in programs {
            let plainRate = Self.throughput(runners: runners, seconds: seconds) { _ = PlainSpawn.run(program.argv) }
            let failures = Atomic<Int>(0)
            let sandboxRate = Self.throughput(runners: runners, seconds: seconds) {
                let result = sandbox.run(RunSpec(executable: program.argv[0], arguments: Array(program.argv.dropFirst())))
                if result.status != .ok { failures.add(1, ordering: .relaxed) }
            }
            throughput.add([program.name, fmt(plainRate, 0), fmt(sandboxRate, 0), fmt(sandboxRate / plainRate), String(failures.load(ordering: .relaxed))])
        }
        print(throughput.render())
    }

    /// CPU time (user + system) of this process and its reaped descendants, in microseconds. On a
    /// shared machine this moves far less with load than wall time does.
    static func processCPUMicroseconds() -> Double {
        var total = 0.0
        for who in [RUSAGE_SELF.rawValue, RUSAGE_CHILDREN.rawValue] {
            var usage = rusage()
            getrusage(__rusage_who_t(who), &usage)
            total += Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
        }
        return total
    }

    /// Jobs per second of `body` run in a loop on `runners` threads for `seconds`.
    static func throughput(runners: Int, seconds: Double, _ body: @escaping @Sendable () -> Void) -> Double {
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: runners)
        counts.initialize(repeating: 0, count: runners)
        defer { counts.deallocate() }
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let group = DispatchGroup()
        let countsAddress = UInt(bitPattern: counts)
        let started = monotonicNanoseconds()
        for index in 0..<runners {
            let thread = Thread {
                let slot = UnsafeMutablePointer<Int>(bitPattern: countsAddress)! + index
                while monotonicNanoseconds() < deadline {
                    body()
                    slot.pointee += 1
                }
                group.leave()
            }
            group.enter()
            thread.start()
        }
        group.wait()
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        return Double((0..<runners).reduce(0) { $0 + counts[$1] }) / elapsed
    }
}

func fmt(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

/// The baseline: posix_spawn with stdio on /dev/null, then waitpid.
enum PlainSpawn {
    static func run(_ argv: [String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var cEnv: [UnsafeMutablePointer<CChar>?] = RunSpec.defaultEnvironment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, &cArgs, &cEnv) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}
