import Foundation

/// One language in `GET /v1/languages`.
struct LanguageView: Codable, Sendable, Equatable {
    var id: String
    var name: String
    /// The detected toolchain version; `null` if the version command printed none.
    var version: String?
    var compiled: Bool
    /// The file name `source` is stored under.
    var sourceFile: String
    /// Compile options used when a request gives none.
    var defaultCompileOptions: [String]
    /// Regular expressions a requested compile option must wholly match.
    var compileOptionsAllowed: [String]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name, version, compiled
        case sourceFile = "source_file"
        case defaultCompileOptions = "default_compile_options"
        case compileOptionsAllowed = "compile_options_allowed"
    }

    init(availability: LanguageAvailability) {
        let language = availability.language
        id = language.id
        name = language.name
        version = availability.version
        compiled = language.isCompiled
        sourceFile = language.sourceFile
        defaultCompileOptions = language.defaultCompileOptions
        compileOptionsAllowed = language.compileOptionsAllowed
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encode(compiled, forKey: .compiled)
        try container.encode(sourceFile, forKey: .sourceFile)
        try container.encode(defaultCompileOptions, forKey: .defaultCompileOptions)
        try container.encode(compileOptionsAllowed, forKey: .compileOptionsAllowed)
    }
}

/// `GET /v1/health`: liveness (any answer) and readiness (`status` ok).
struct HealthView: Codable, Sendable, Equatable {
    enum Status: String, Codable, Sendable, CaseIterable {
        case ok
        /// Running but unable to accept jobs (e.g. the job store is unavailable).
        case unavailable
    }

    /// ok when both checks pass.
    var status: Status
    /// Whether the job store answers.
    var store: Status
    /// Whether the sandbox passed its self-test at start-up.
    var sandbox: Status
    /// What is wrong, when something is.
    var message: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case status, store, sandbox, message
    }

    init(status: Status, store: Status, sandbox: Status, message: String? = nil) {
        self.status = status
        self.store = store
        self.sandbox = sandbox
        self.message = message
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(status, forKey: .status)
        try container.encode(store, forKey: .store)
        try container.encode(sandbox, forKey: .sandbox)
        try container.encode(message, forKey: .message)
    }
}

/// The caps a request must respect, as `GET /v1/info` shows them.
struct ServerLimitsView: Codable, Sendable, Equatable {
    var defaults: JobLimits
    var maxima: JobLimits
    var maxFiles: Int
    var maxSourceBytes: Int
    var maxTests: Int
    var maxStdinBytes: Int
    var maxExpectedOutputBytes: Int
    var maxArgs: Int
    var maxCompileOptions: Int
    var maxMetadataBytes: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case defaults, maxima
        case maxFiles = "max_files"
        case maxSourceBytes = "max_source_bytes"
        case maxTests = "max_tests"
        case maxStdinBytes = "max_stdin_bytes"
        case maxExpectedOutputBytes = "max_expected_output_bytes"
        case maxArgs = "max_args"
        case maxCompileOptions = "max_compile_options"
        case maxMetadataBytes = "max_metadata_bytes"
    }

    init(_ limits: ServerLimits) {
        defaults = limits.defaults
        maxima = limits.maxima
        maxFiles = limits.maximumFiles
        maxSourceBytes = limits.maximumSourceBytes
        maxTests = limits.maximumTests
        maxStdinBytes = limits.maximumStdinBytes
        maxExpectedOutputBytes = limits.maximumExpectedOutputBytes
        maxArgs = limits.maximumArgs
        maxCompileOptions = limits.maximumCompileOptions
        maxMetadataBytes = limits.maximumMetadataBytes
    }
}

/// `GET /v1/info`.
struct InfoView: Codable, Sendable, Equatable {
    var name: String
    var version: String
    /// Ids of the available languages.
    var languages: [String]
    var limits: ServerLimitsView
    /// Longest `?wait=` in seconds.
    var maxWaitSeconds: Int
    /// Optional features this server has turned on (`auth`, `webhooks`, `webhook_signatures`, `network`).
    var features: [String]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, version, languages, limits
        case maxWaitSeconds = "max_wait_seconds"
        case features
    }
}

/// `POST /v1/jobs/batch`: up to ``maximumJobs`` job requests.
///
/// The jobs are kept as raw JSON so that each is decoded on its own: one bad job gets its own
/// error in the response instead of failing the whole batch.
struct JobBatchRequest: Codable, Sendable, Equatable {
    static let maximumJobs = 100

    var jobs: [JSONValue]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case jobs
    }

    init(jobs: [JSONValue]) { self.jobs = jobs }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jobs = try container.decode([JSONValue].self, forKey: .jobs)
    }

    /// Checks the batch as a whole (non-empty, at most ``maximumJobs``).
    func validateSize() throws(APIError) {
        guard !jobs.isEmpty else { throw APIError(.invalidValue, "jobs must not be empty", field: "jobs") }
        guard jobs.count <= Self.maximumJobs else {
            throw APIError(.tooManyJobs, "\(jobs.count) jobs sent; the maximum is \(Self.maximumJobs)", field: "jobs")
        }
    }

    /// Each job decoded strictly, errors naming their field under `jobs[i]`.
    func decodeJobs() -> [Result<JobRequest, APIError>] {
        jobs.enumerated().map { index, job in
            do {
                return .success(try APIJSON.makeDecoder().decode(JobRequest.self, from: APIJSON.encode(job)))
            } catch {
                return .failure(APIJSON.apiError(for: error, under: FieldPath([.key("jobs"), .index(index)])))
            }
        }
    }
}

/// One job's outcome in a batch response: the created job, or why it was refused.
struct JobBatchItem: JSONWritable, Sendable, Equatable {
    var job: JobView?
    var error: ErrorDetail?

    /// The keys, for the test that holds openapi.yaml to them.
    enum CodingKeys: String, CodingKey, CaseIterable {
        case job, error
    }

    /// Both keys always, one of them `null`.
    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("error")
            writer.optional(error) { $1.write(to: &$0) }
            writer.key("job")
            writer.optional(job) { $1.write(to: &$0) }
        }
    }
}

/// The response of `POST /v1/jobs/batch`: one item per job, in request order.
struct JobBatchResponse: JSONWritable, Sendable, Equatable {
    var jobs: [JobBatchItem]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case jobs
    }

    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("jobs")
            writer.array(jobs) { $1.write(to: &$0) }
        }
    }
}

/// A page of `GET /v1/jobs`.
struct JobListResponse: JSONWritable, Sendable, Equatable {
    var jobs: [JobView]
    /// Pass as `cursor` for the next page; `null` on the last page.
    var nextCursor: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case jobs
        case nextCursor = "next_cursor"
    }

    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("jobs")
            writer.array(jobs) { $1.write(to: &$0) }
            writer.key("next_cursor")
            writer.optionalString(nextCursor)
        }
    }
}
