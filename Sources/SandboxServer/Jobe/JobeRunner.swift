import Foundation
import Isolation

/// Runs one Jobe `run_spec` the way Jobe does — compile, and if that printed nothing, run —
/// in one sandbox slot held for both steps, and judges it with Jobe's rules.
///
/// Each step is Jobe's command line joined with spaces and given to `/bin/sh -c` *inside* the
/// sandbox, so argument lists get the shell's word splitting and quote removal as in Jobe.
/// Jobe's per-process limits map onto the sandbox as follows: `memorylimit` is an address-space
/// limit (RLIMIT_AS, so `malloc` fails rather than the program being killed), `numprocs` a pids
/// cgroup cap (which, unlike Jobe's RLIMIT_NPROC, also holds for root), `cputime` a CPU limit
/// on the whole process tree with a wall-clock limit of twice that, `streamsize` a per-stream
/// capture cap (truncation only), `disklimit` RLIMIT_FSIZE.
struct JobeRunner: Sendable {
    /// Settings of the adapter.
    struct Configuration: Sendable {
        /// How long a run waits for a free sandbox slot before the overload answer (Jobe: about 10 s).
        var slotWait: Duration = .seconds(10)
        /// Memory cgroup cap of each step. Jobe has no such cap; this one only protects the host
        /// (the address-space limit is what programs see).
        var memoryCeilingBytes = 2 << 30
        /// Largest `streamsize` honoured, in bytes (captured output is held in memory).
        var maximumStreamBytes = 64 << 20
        /// Largest box (and largest file) a run may have, in bytes; also what `disklimit -1` means.
        var maximumDiskBytes = 512 << 20
    }

    let sandbox: Sandbox
    let configuration: Configuration
    /// Counts slot time and sandboxed runs (`GET /metrics`); nil counts nothing.
    var metrics: ServerMetrics?

    /// Jobe's megabyte: `memorylimit`, `streamsize` and `disklimit` are multiplied by 1000×1024.
    static let megabyte = 1000 * 1024

    /// The environment of both steps: Jobe keeps only `PATH`, `LANG` and `LC_*`, with a UTF-8
    /// locale (javac refuses non-ASCII sources otherwise), and gives `HOME` a scratch directory.
    static let environment: [String: String] = [
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "MPLCONFIGDIR": "/tmp",
        "OPENBLAS_NUM_THREADS": "4",
    ]

    /// Runs `spec` with `files` (the cached support files, already fetched) and returns Jobe's
    /// result, or the overload answer when no slot frees up within ``Configuration/slotWait``.
    func run(_ spec: JobeRunSpec, files: [BoxFile]) -> JobeRunResult {
        let result = sandbox.withSlot(waitingAtMost: configuration.slotWait) { slot in
            guard let metrics else { return execute(spec, files: files, in: slot) }
            return metrics.holdingSlot(.jobe) { execute(spec, files: files, in: slot) }
        }
        return result ?? .overload
    }

    private func execute(_ spec: JobeRunSpec, files: [BoxFile], in slot: SandboxSlot) -> JobeRunResult {
        let language = spec.language
        let source = spec.sourceFileName
        let boxFiles = [BoxFile(path: source, text: spec.sourceCode)] + files
        var cmpinfo = ""
        if let compile = language.compileCommand(source: source, parameters: spec.parameters) {
            let limits = resourceLimits(spec.parameters.forCompile)
            let result = slot.run(step(compile, files: boxFiles, box: .fresh, stdin: .empty, limits: limits))
            metrics?.sandboxRun(result)
            if result.status == .internalError { return internalError(result) }
            let stdout = JobeJudging.sanitise(result.stdout)
            let stderr = JobeJudging.sanitise(result.stderr) + JobeJudging.supervisorWarnings(result)
            if language.id == "pascal" {
                // fpc reports errors in the -Fe file; success is the executable existing.
                let executable = try? slot.box.read(source + ".exe", limit: 1)
                if executable == nil {
                    let errors = (try? slot.box.read(source + ".err")).flatMap { $0 }.map(JobeJudging.sanitise) ?? ""
                    // An empty error file would otherwise let a missing program "run".
                    cmpinfo = errors.isEmpty ? (stderr.isEmpty ? stdout + "compilation failed\n" : stderr) : errors
                }
            } else {
                cmpinfo = language.compileInfo(stdout: stdout, stderr: stderr)
            }
            if !cmpinfo.isEmpty {
                return JobeRunResult(runID: nil, outcome: .compileError, cmpinfo: cmpinfo, stdout: "", stderr: "")
            }
        } else {
            do {
                try slot.prepareBox(files: boxFiles, sizeBytes: Self.diskBytes(spec.parameters, configuration))
            } catch {
                return JobeRunResult(runID: nil, outcome: .internalError, cmpinfo: "", stdout: "",
                                     stderr: "sandbox: internal error: could not prepare the job's directory: \(error)\n")
            }
        }
        let command = language.runCommand(source: source, parameters: spec.parameters)
        let stdin: StandardInput = spec.input.isEmpty ? .empty : .bytes(Array(spec.input.utf8))
        let result = slot.run(step(command, files: [], box: .keep, stdin: stdin, limits: resourceLimits(spec.parameters)))
        metrics?.sandboxRun(result)
        if result.status == .internalError { return internalError(result) }
        let stderr = language.filteredRunStderr(JobeJudging.sanitise(result.stderr) + JobeJudging.supervisorWarnings(result))
        let judged = JobeJudging.runOutcome(stderr: stderr)
        return JobeRunResult(runID: nil, outcome: judged.outcome, cmpinfo: "", stdout: JobeJudging.sanitise(result.stdout),
                             stderr: judged.stderr)
    }

    private func internalError(_ result: RunResult) -> JobeRunResult {
        JobeRunResult(runID: nil, outcome: .internalError, cmpinfo: "", stdout: "", stderr: JobeJudging.supervisorWarnings(result))
    }

    /// One step: Jobe's words joined with spaces, run by the shell in the job's directory.
    private func step(_ words: [String], files: [BoxFile], box: BoxMode, stdin: StandardInput, limits: ResourceLimits) -> RunSpec {
        RunSpec(executable: "/bin/sh", arguments: ["-c", words.joined(separator: " ")], environment: Self.environment,
                workingDirectory: LanguageRegistry.boxDirectory, files: files, box: box, stdin: stdin, limits: limits)
    }

    /// Bytes of `megabytes` Jobe megabytes, clamped so absurd requests cannot overflow.
    private static func bytes(megabytes: Int) -> Int {
        min(max(megabytes, 0), 1 << 30) * megabyte
    }

    private static func fileSizeBytes(_ parameters: JobeParameters, _ configuration: Configuration) -> Int {
        parameters.diskLimit < 0 ? configuration.maximumDiskBytes : min(bytes(megabytes: parameters.diskLimit), configuration.maximumDiskBytes)
    }

    /// The box holds the sources, the compiled program and what the program writes; it is a
    /// tmpfs of at least the sandbox's usual size.
    private static func diskBytes(_ parameters: JobeParameters, _ configuration: Configuration) -> Int {
        max(JobExecutor.minimumDiskBytes, fileSizeBytes(parameters, configuration))
    }

    /// The sandbox limits of a step with Jobe's parameters.
    func resourceLimits(_ parameters: JobeParameters) -> ResourceLimits { Self.resourceLimits(parameters, configuration: configuration) }

    /// The sandbox limits of a step with Jobe's parameters under `configuration`.
    static func resourceLimits(_ parameters: JobeParameters, configuration: Configuration) -> ResourceLimits {
        let cpuSeconds = max(1, parameters.cpuTime)
        return ResourceLimits(
            cpuTimeMilliseconds: cpuSeconds * 1000,
            wallTimeMilliseconds: 2 * cpuSeconds * 1000,
            memoryBytes: configuration.memoryCeilingBytes,
            addressSpaceBytes: parameters.memoryLimit > 0 ? bytes(megabytes: parameters.memoryLimit) : nil,
            // Jobe's RLIMIT_NPROC of numprocs + 1 counts the shell (the sandbox's init is not
            // counted against `processes`).
            processes: max(1, min(parameters.numProcs, 4096)) + 1,
            outputBytes: min(bytes(megabytes: parameters.streamSize), configuration.maximumStreamBytes),
            killOnOutputLimit: false,
            fileSizeBytes: fileSizeBytes(parameters, configuration),
            diskBytes: diskBytes(parameters, configuration))
    }
}
