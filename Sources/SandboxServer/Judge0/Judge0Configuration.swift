/// The Judge0 settings this adapter runs with: Judge0 CE v1.13.1's defaults and maxima in
/// Judge0's units (seconds and KB), plus what this server actually allows (network, batch
/// size, queue). `/config_info` reports them and submission validation enforces them.
struct Judge0Configuration: Sendable, Equatable {
    var cpuTimeLimit = 5.0, maxCPUTimeLimit = 15.0
    var cpuExtraTime = 1.0, maxCPUExtraTime = 5.0
    var wallTimeLimit = 10.0, maxWallTimeLimit = 20.0
    var memoryLimitKB = 128_000, maxMemoryLimitKB = 512_000
    var stackLimitKB = 64_000, maxStackLimitKB = 128_000
    var maxProcessesAndOrThreads = 60, maxMaxProcessesAndOrThreads = 120
    var maxFileSizeKB = 1024, maxMaxFileSizeKB = 4096
    var numberOfRuns = 1, maxNumberOfRuns = 20
    var maxSubmissionBatchSize = 20
    /// `MAX_QUEUE_SIZE`: Judge0 answers 503 "queue is full" beyond it.
    var maxQueueSize = 100
    /// Whether a submission may ask for `enable_network` (the server's `--allow-network`).
    /// Unlike Judge0 (where it defaults to true, see CVE-2024-29021), off unless configured.
    var allowEnableNetwork = false
    var enableCallbacks = true
    var callbacksMaxTries = 3
    var callbacksTimeout = 5.0
    var enableSubmissionDelete = true
    /// Longest a `wait=true` request blocks, in seconds (the service's maximum wait).
    var maxWaitSeconds = 60
    /// Whether the server checks keys (`X-Auth-Token`, `X-Auth-User`).
    var authenticationEnabled = false

    /// The version `/about` reports: the Judge0 release whose API this is (the Python SDK
    /// accepts only known ones).
    static let version = "1.13.1"

    /// `GET /config_info`: the 39 keys of v1.13.1, in its order and with its types.
    var configInfo: Judge0JSON {
        .object([
            ("maintenance_mode", .bool(false)),
            ("enable_wait_result", .bool(true)),
            ("enable_compiler_options", .bool(true)),
            ("allowed_languages_for_compile_options", .array([])),
            ("enable_command_line_arguments", .bool(true)),
            ("enable_submission_delete", .bool(enableSubmissionDelete)),
            ("enable_callbacks", .bool(enableCallbacks)),
            ("callbacks_max_tries", .integer(callbacksMaxTries)),
            ("callbacks_timeout", .float(callbacksTimeout)),
            ("enable_additional_files", .bool(true)),
            ("max_queue_size", .integer(maxQueueSize)),
            ("cpu_time_limit", .float(cpuTimeLimit)),
            ("max_cpu_time_limit", .float(maxCPUTimeLimit)),
            ("cpu_extra_time", .float(cpuExtraTime)),
            ("max_cpu_extra_time", .float(maxCPUExtraTime)),
            ("wall_time_limit", .float(wallTimeLimit)),
            ("max_wall_time_limit", .float(maxWallTimeLimit)),
            ("memory_limit", .integer(memoryLimitKB)),
            ("max_memory_limit", .integer(maxMemoryLimitKB)),
            ("stack_limit", .integer(stackLimitKB)),
            ("max_stack_limit", .integer(maxStackLimitKB)),
            ("max_processes_and_or_threads", .integer(maxProcessesAndOrThreads)),
            ("max_max_processes_and_or_threads", .integer(maxMaxProcessesAndOrThreads)),
            ("enable_per_process_and_thread_time_limit", .bool(false)),
            ("allow_enable_per_process_and_thread_time_limit", .bool(false)),
            ("enable_per_process_and_thread_memory_limit", .bool(false)),
            ("allow_enable_per_process_and_thread_memory_limit", .bool(false)),
            ("max_file_size", .integer(maxFileSizeKB)),
            ("max_max_file_size", .integer(maxMaxFileSizeKB)),
            ("number_of_runs", .integer(numberOfRuns)),
            ("max_number_of_runs", .integer(maxNumberOfRuns)),
            ("redirect_stderr_to_stdout", .bool(false)),
            ("max_extract_size", .integer(Judge0MultiFileProgram.maxExtractKB)),
            ("enable_batched_submissions", .bool(true)),
            ("max_submission_batch_size", .integer(maxSubmissionBatchSize)),
            ("submission_cache_duration", .float(0)),
            ("use_docs_as_homepage", .bool(false)),
            ("allow_enable_network", .bool(allowEnableNetwork)),
            ("enable_network", .bool(false)),
        ])
    }
}

extension Judge0Configuration {
    /// Judge0's defaults, with what this server's settings decide: network, queue size,
    /// longest wait, whether keys are checked.
    init(settings: ServerSettings) {
        self.init()
        allowEnableNetwork = settings.allowNetwork
        maxQueueSize = settings.maxQueuedJobs
        maxWaitSeconds = settings.maxWaitSeconds
        authenticationEnabled = !settings.apiKeys.isEmpty
    }
}
