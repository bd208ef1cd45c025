import Foundation

/// The body of `POST /v1/jobs`, as sent. Decoding is strict: any key not listed in a type's
/// `CodingKeys` is refused with its path (see ``Decoder/rejectUnknownKeys(_:)``).
/// ``JobRequestValidator`` turns it into a ``ValidatedJob``.
struct JobRequest: Codable, Sendable, Equatable {
    /// Native language id (`GET /v1/languages`).
    var language: String
    /// The program's files. Exactly one of `files` and `source` is required.
    var files: [FileInput]?
    /// Shorthand for one UTF-8 file named by the language's `source_file`.
    var source: String?
    /// Standard input of the run, and the default stdin of tests that have none.
    var stdin: String?
    /// Program arguments.
    var args: [String]?
    /// Compile options; omitted means the language's defaults, `[]` means none.
    var compileOptions: [String]?
    var limits: LimitsInput?
    /// Omitted: one run with `stdin`, accepted if it runs cleanly.
    var tests: [TestInput]?
    var compare: CompareSpec?
    var stopOnFirstFailure: Bool?
    /// `http(s)` URL receiving the finished job view by `POST`.
    var callbackURL: String?
    /// Opaque JSON echoed back in every view of the job.
    var metadata: JSONValue?
    /// Higher runs earlier.
    var priority: Int?
    /// A base64 zip unpacked inside the sandbox next to `files` before compiling (or before the
    /// tests, for an interpreted language); see ``JobArchive``.
    var archive: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case language, files, source, stdin, args
        case compileOptions = "compile_options"
        case limits, tests, compare
        case stopOnFirstFailure = "stop_on_first_failure"
        case callbackURL = "callback_url"
        case metadata, priority, archive
    }

    init(
        language: String, files: [FileInput]? = nil, source: String? = nil, stdin: String? = nil, args: [String]? = nil,
        compileOptions: [String]? = nil, limits: LimitsInput? = nil, tests: [TestInput]? = nil, compare: CompareSpec? = nil,
        stopOnFirstFailure: Bool? = nil, callbackURL: String? = nil, metadata: JSONValue? = nil, priority: Int? = nil,
        archive: String? = nil
    ) {
        self.language = language
        self.files = files
        self.source = source
        self.stdin = stdin
        self.args = args
        self.compileOptions = compileOptions
        self.limits = limits
        self.tests = tests
        self.compare = compare
        self.stopOnFirstFailure = stopOnFirstFailure
        self.callbackURL = callbackURL
        self.metadata = metadata
        self.priority = priority
        self.archive = archive
    }

    /// The request re-encoded with sorted keys and shorthands expanded (`compare` as an
    /// object). Two bodies that mean the same request encode to the same bytes even when their
    /// key order differs, which is what an `Idempotency-Key` check compares.
    var canonicalJSON: Data { APIJSON.encode(self) }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        language = try container.decode(String.self, forKey: .language)
        files = try container.decodeIfPresent([FileInput].self, forKey: .files)
        source = try container.decodeIfPresent(String.self, forKey: .source)
        stdin = try container.decodeIfPresent(String.self, forKey: .stdin)
        args = try container.decodeIfPresent([String].self, forKey: .args)
        compileOptions = try container.decodeIfPresent([String].self, forKey: .compileOptions)
        limits = try container.decodeIfPresent(LimitsInput.self, forKey: .limits)
        tests = try container.decodeIfPresent([TestInput].self, forKey: .tests)
        compare = try container.decodeIfPresent(CompareSpec.self, forKey: .compare)
        stopOnFirstFailure = try container.decodeIfPresent(Bool.self, forKey: .stopOnFirstFailure)
        callbackURL = try container.decodeIfPresent(String.self, forKey: .callbackURL)
        // decodeIfPresent would turn an explicit `null` into "absent"; metadata echoes it as sent.
        metadata = container.contains(.metadata) ? try container.decode(JSONValue.self, forKey: .metadata) : nil
        priority = try container.decodeIntegerIfPresent(forKey: .priority)
        archive = try container.decodeIfPresent(String.self, forKey: .archive)
    }
}

/// How a file's `content` is written in the request.
enum FileEncoding: String, Codable, Sendable, CaseIterable {
    case utf8
    /// For binary files or text that is not valid UTF-8.
    case base64

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let encoding = FileEncoding(rawValue: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "unknown encoding \"\(text)\"; expected one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = encoding
    }
}

/// One file of the program.
struct FileInput: Codable, Sendable, Equatable {
    /// Plain name in the working directory: no `/`, no `..`, not starting with `-`, `@` or `.` (see ``FileNameRules``).
    var name: String
    var content: String
    /// Default `utf8`.
    var encoding: FileEncoding?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, content, encoding
    }

    init(name: String, content: String, encoding: FileEncoding? = nil) {
        self.name = name
        self.content = content
        self.encoding = encoding
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        content = try container.decode(String.self, forKey: .content)
        encoding = try container.decodeIfPresent(FileEncoding.self, forKey: .encoding)
    }
}

/// Requested limits; each omitted one gets the server's default.
struct LimitsInput: Codable, Sendable, Equatable {
    var cpuTimeMs: Int?
    var wallTimeMs: Int?
    var memoryBytes: Int?
    var processes: Int?
    var outputBytes: Int?
    var fileSizeBytes: Int?
    var network: Bool?

    typealias CodingKeys = JobLimits.CodingKeys

    init(
        cpuTimeMs: Int? = nil, wallTimeMs: Int? = nil, memoryBytes: Int? = nil, processes: Int? = nil,
        outputBytes: Int? = nil, fileSizeBytes: Int? = nil, network: Bool? = nil
    ) {
        self.cpuTimeMs = cpuTimeMs
        self.wallTimeMs = wallTimeMs
        self.memoryBytes = memoryBytes
        self.processes = processes
        self.outputBytes = outputBytes
        self.fileSizeBytes = fileSizeBytes
        self.network = network
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cpuTimeMs = try container.decodeIntegerIfPresent(forKey: .cpuTimeMs)
        wallTimeMs = try container.decodeIntegerIfPresent(forKey: .wallTimeMs)
        memoryBytes = try container.decodeIntegerIfPresent(forKey: .memoryBytes)
        processes = try container.decodeIntegerIfPresent(forKey: .processes)
        outputBytes = try container.decodeIntegerIfPresent(forKey: .outputBytes)
        fileSizeBytes = try container.decodeIntegerIfPresent(forKey: .fileSizeBytes)
        network = try container.decodeIfPresent(Bool.self, forKey: .network)
    }
}

/// One test: a run with its own stdin, optionally judged against an expected output.
struct TestInput: Codable, Sendable, Equatable {
    /// Default: the test's 1-based position.
    var name: String?
    /// Default: the job's `stdin`.
    var stdin: String?
    /// Omitted: the test passes when the program runs cleanly.
    var expectedOutput: String?
    /// Default 1.
    var points: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, stdin
        case expectedOutput = "expected_output"
        case points
    }

    init(name: String? = nil, stdin: String? = nil, expectedOutput: String? = nil, points: Int? = nil) {
        self.name = name
        self.stdin = stdin
        self.expectedOutput = expectedOutput
        self.points = points
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        stdin = try container.decodeIfPresent(String.self, forKey: .stdin)
        expectedOutput = try container.decodeIfPresent(String.self, forKey: .expectedOutput)
        points = try container.decodeIntegerIfPresent(forKey: .points)
    }
}

/// `compare`: an object `{"mode": "float", "tolerance": 1e-4}` or just the mode as a string.
/// Always encoded as the object.
struct CompareSpec: Codable, Sendable, Equatable {
    var mode: ComparisonMode
    /// `float` only: absolute and relative tolerance; default 1e-6.
    var tolerance: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, tolerance
    }

    init(mode: ComparisonMode, tolerance: Double? = nil) {
        self.mode = mode
        self.tolerance = tolerance
    }

    init(from decoder: any Decoder) throws {
        if let shorthand = try? decoder.singleValueContainer().decode(String.self) {
            mode = try Self.mode(named: shorthand, in: decoder.singleValueContainer())
            tolerance = nil
            return
        }
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let modeName = try container.decode(String.self, forKey: .mode)
        guard let mode = ComparisonMode(rawValue: modeName) else {
            throw DecodingError.dataCorruptedError(forKey: .mode, in: container, debugDescription: Self.unknownModeMessage(modeName))
        }
        self.mode = mode
        tolerance = try container.decodeIfPresent(Double.self, forKey: .tolerance)
    }

    private static func mode(named name: String, in container: any SingleValueDecodingContainer) throws -> ComparisonMode {
        guard let mode = ComparisonMode(rawValue: name) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: unknownModeMessage(name))
        }
        return mode
    }

    private static func unknownModeMessage(_ name: String) -> String {
        "unknown comparison mode \"\(name)\"; expected one of \(ComparisonMode.allCases.map(\.rawValue).joined(separator: ", "))"
    }
}
