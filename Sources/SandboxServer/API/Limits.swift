/// Resource limits of one sandboxed run (a compile or one test).
///
/// The same shape serves as a request's `limits` after defaulting, as the server's defaults and
/// maxima, and as what the runner hands to the sandbox.
struct JobLimits: Codable, Sendable, Equatable {
    /// CPU time in milliseconds (user + system, all processes).
    var cpuTimeMs: Int
    /// Elapsed time in milliseconds; catches programs that sleep or block on input.
    var wallTimeMs: Int
    /// Memory (cgroup) in bytes.
    var memoryBytes: Int
    /// Processes and threads together.
    var processes: Int
    /// Bytes of stdout plus stderr kept; more ends the run with `output_limit_exceeded`.
    var outputBytes: Int
    /// Largest file the program may write.
    var fileSizeBytes: Int
    /// Whether the program may use the network.
    var network: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case cpuTimeMs = "cpu_time_ms"
        case wallTimeMs = "wall_time_ms"
        case memoryBytes = "memory_bytes"
        case processes
        case outputBytes = "output_bytes"
        case fileSizeBytes = "file_size_bytes"
        case network
    }
}

/// What this server accepts: defaults for omitted limits, maxima for requested ones, and
/// size caps on everything a request carries. Operators set it from the command line.
struct ServerLimits: Sendable, Equatable {
    /// Limits of a run when the request does not say.
    var defaults: JobLimits
    /// Largest limits a request may ask for; `network: false` here forbids network access.
    var maxima: JobLimits
    /// Limits of compile steps (not settable by requests; languages may raise them).
    var compile: JobLimits

    var maximumFiles = 32
    /// Total decoded size of all files of a job.
    var maximumSourceBytes = 1 << 20
    /// Size of a job's zip `archive` (compressed; its content is capped by ``JobArchive``).
    var maximumArchiveBytes = 16 << 20
    var maximumTests = 100
    /// Per stdin (the job's and each test's).
    var maximumStdinBytes = 16 << 20
    /// Per expected output.
    var maximumExpectedOutputBytes = 16 << 20
    /// All stdins and expected outputs of a job together.
    var maximumTotalTestDataBytes = 64 << 20
    var maximumArgs = 64
    var maximumArgBytes = 4096
    var maximumCompileOptions = 32
    var maximumTestNameBytes = 128
    var maximumPoints = 1_000_000
    /// Size of `metadata` once encoded as JSON.
    var maximumMetadataBytes = 16 << 10
    var maximumCallbackURLBytes = 2048
    /// Accepted `priority` values; higher runs earlier.
    var priorities = -100...100

    /// Conservative settings for a small shared machine.
    static let standard = ServerLimits(
        defaults: JobLimits(
            cpuTimeMs: 2_000, wallTimeMs: 5_000, memoryBytes: 256 << 20, processes: 16,
            outputBytes: 1 << 20, fileSizeBytes: 16 << 20, network: false),
        maxima: JobLimits(
            cpuTimeMs: 20_000, wallTimeMs: 60_000, memoryBytes: 1 << 30, processes: 128,
            outputBytes: 16 << 20, fileSizeBytes: 64 << 20, network: false),
        compile: JobLimits(
            cpuTimeMs: 15_000, wallTimeMs: 30_000, memoryBytes: 512 << 20, processes: 32,
            outputBytes: 1 << 20, fileSizeBytes: 64 << 20, network: false)
    )
}
