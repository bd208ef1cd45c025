import Foundation
import HTTPCore

/// Judge0's validation failures: `{"field": ["message", …]}` with Rails' wording, in the
/// order the fields were checked (answered with 422).
struct Judge0ValidationErrors: Error, Sendable, Equatable {
    private(set) var fields: [(String, [String])] = []

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.fields.map(\.0) == rhs.fields.map(\.0) && zip(lhs.fields, rhs.fields).allSatisfy { $0.1 == $1.1 }
    }

    var isEmpty: Bool { fields.isEmpty }

    mutating func add(_ field: String, _ message: String) {
        if let index = fields.firstIndex(where: { $0.0 == field }) {
            fields[index].1.append(message)
        } else {
            fields.append((field, [message]))
        }
    }

    var json: Judge0JSON { .object(fields.map { ($0.0, .array($0.1.map(Judge0JSON.string))) }) }
}

/// A Judge0 submission as sent to `POST /submissions` (one item of a batch), parsed leniently
/// as Judge0 does: unknown keys are ignored, numbers may be strings, and with
/// `base64_encoded=true` the text fields are decoded forgivingly.
struct Judge0SubmissionRequest: Sendable, Equatable {
    var sourceCode: [UInt8]?
    var languageID: Int?
    var compilerOptions: String?
    var commandLineArguments: String?
    var stdin: [UInt8]?
    var expectedOutput: [UInt8]?
    /// Seconds.
    var cpuTimeLimit: Double?
    var cpuExtraTime: Double?
    var wallTimeLimit: Double?
    /// KB.
    var memoryLimit: Int?
    var stackLimit: Int?
    var maxProcessesAndOrThreads: Int?
    var enablePerProcessAndThreadTimeLimit: Bool?
    var enablePerProcessAndThreadMemoryLimit: Bool?
    /// KB.
    var maxFileSize: Int?
    var redirectStderrToStdout: Bool?
    var enableNetwork: Bool?
    var numberOfRuns: Int?
    var callbackURL: String?
    var additionalFiles: String?

    /// The raw values of a JSON object or form body.
    typealias Fields = [String: JSONValue]

    /// Parses a body (`application/json` or form-encoded) into its fields.
    static func fields(body: [UInt8], contentType: String?) -> Fields? {
        if let contentType, contentType.lowercased().hasPrefix("application/x-www-form-urlencoded") {
            var fields: Fields = [:]
            for (name, value) in QueryParameters(rawQuery: String(decoding: body, as: UTF8.self)) { fields[name] = .string(value) }
            return fields
        }
        // Too deep is refused as malformed before decoding: see `APIJSON.maximumNesting`.
        guard !APIJSON.nestsTooDeeply(body),
              case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(body))
        else { return nil }
        return object
    }

    /// Reads every field, collecting each type error under its field name.
    init(fields: Fields, base64Encoded: Bool) throws(Judge0ValidationErrors) {
        var errors = Judge0ValidationErrors()
        func text(_ key: String) -> String? {
            switch fields[key] {
            case .none, .null?: return nil
            case .string(let value)?: return value
            // Int(_:) traps beyond its range; only whole numbers well inside it print as integers.
            case .integer(let value)?: return String(value)
            case .number(let value)?: return value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
            case .bool(let value)?: return String(value)
            default:
                errors.add(key, "is invalid")
                return nil
            }
        }
        func bytes(_ key: String) -> [UInt8]? {
            guard let value = text(key) else { return nil }
            return base64Encoded ? Judge0Base64.decode(value) : Array(value.utf8)
        }
        func number(_ key: String) -> Double? {
            guard let value = fields[key] else { return nil }
            switch value {
            case .null: return nil
            case .integer(let number): return Double(number)
            case .number(let number) where number.isFinite: return number
            case .string(let string):
                let trimmed = string.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { return nil }
                if let number = Double(trimmed), number.isFinite { return number }
            default: break
            }
            errors.add(key, "is not a number")
            return nil
        }
        func integer(_ key: String) -> Int? {
            guard let value = number(key) else { return nil }
            guard value == value.rounded(), abs(value) < 1e12 else {
                errors.add(key, "must be an integer")
                return nil
            }
            return Int(value)
        }
        func boolean(_ key: String) -> Bool? {
            switch fields[key] {
            case .none, .null?: return nil
            case .bool(let value)?: return value
            // Rails casts these strings; anything else is false.
            case .string(let value)?: return ["true", "1", "t", "on", "yes"].contains(value.lowercased())
            case .integer(let value)?: return value != 0
            case .number(let value)?: return value != 0
            default: return false
            }
        }
        sourceCode = bytes("source_code")
        languageID = integer("language_id")
        compilerOptions = text("compiler_options")
        commandLineArguments = text("command_line_arguments")
        stdin = bytes("stdin")
        expectedOutput = bytes("expected_output")
        cpuTimeLimit = number("cpu_time_limit")
        cpuExtraTime = number("cpu_extra_time")
        wallTimeLimit = number("wall_time_limit")
        memoryLimit = integer("memory_limit")
        stackLimit = integer("stack_limit")
        maxProcessesAndOrThreads = integer("max_processes_and_or_threads")
        enablePerProcessAndThreadTimeLimit = boolean("enable_per_process_and_thread_time_limit")
        enablePerProcessAndThreadMemoryLimit = boolean("enable_per_process_and_thread_memory_limit")
        maxFileSize = integer("max_file_size")
        redirectStderrToStdout = boolean("redirect_stderr_to_stdout")
        enableNetwork = boolean("enable_network")
        numberOfRuns = integer("number_of_runs")
        callbackURL = text("callback_url")
        additionalFiles = text("additional_files")
        if !errors.isEmpty { throw errors }
    }

    init() {}
}

/// What a Judge0 submission keeps of itself beyond the native request, stored in the job's
/// `metadata` under `"judge0"` so every later view (and the callback) answers with the values
/// the client sent.
struct Judge0SubmissionSettings: Codable, Sendable, Equatable {
    var languageID: Int
    var cpuTimeLimitMs: Int
    var cpuExtraTimeMs: Int
    var wallTimeLimitMs: Int
    var memoryLimitKB: Int
    var stackLimitKB: Int
    var maxProcessesAndOrThreads: Int
    var maxFileSizeKB: Int
    var numberOfRuns: Int
    var redirectStderrToStdout: Bool
    var enableNetwork: Bool
    var compilerOptions: String?
    var commandLineArguments: String?
    var callbackURL: String?
    /// Whether `expected_output` was given (it becomes the tests' expected output).
    var hasExpectedOutput: Bool

    enum CodingKeys: String, CodingKey, CaseIterable {
        case languageID = "language_id"
        case cpuTimeLimitMs = "cpu_time_limit_ms"
        case cpuExtraTimeMs = "cpu_extra_time_ms"
        case wallTimeLimitMs = "wall_time_limit_ms"
        case memoryLimitKB = "memory_limit_kb"
        case stackLimitKB = "stack_limit_kb"
        case maxProcessesAndOrThreads = "max_processes_and_or_threads"
        case maxFileSizeKB = "max_file_size_kb"
        case numberOfRuns = "number_of_runs"
        case redirectStderrToStdout = "redirect_stderr_to_stdout"
        case enableNetwork = "enable_network"
        case compilerOptions = "compiler_options"
        case commandLineArguments = "command_line_arguments"
        case callbackURL = "callback_url"
        case hasExpectedOutput = "has_expected_output"
    }

    /// The key under which the settings live in the job's metadata.
    static let metadataKey = "judge0"

    var metadata: JSONValue {
        let data = APIJSON.encode(self)
        let value = (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .null
        return .object([Self.metadataKey: value])
    }

    /// The settings of a job submitted through the Judge0 API; nil for native jobs.
    init?(metadata: JSONValue?) {
        guard case .object(let object)? = metadata, let value = object[Self.metadataKey],
              let settings = try? JSONDecoder().decode(Self.self, from: APIJSON.encode(value))
        else { return nil }
        self = settings
    }

    init(languageID: Int, cpuTimeLimitMs: Int, cpuExtraTimeMs: Int, wallTimeLimitMs: Int, memoryLimitKB: Int, stackLimitKB: Int,
         maxProcessesAndOrThreads: Int, maxFileSizeKB: Int, numberOfRuns: Int, redirectStderrToStdout: Bool, enableNetwork: Bool,
         compilerOptions: String?, commandLineArguments: String?, callbackURL: String?, hasExpectedOutput: Bool) {
        self.languageID = languageID
        self.cpuTimeLimitMs = cpuTimeLimitMs
        self.cpuExtraTimeMs = cpuExtraTimeMs
        self.wallTimeLimitMs = wallTimeLimitMs
        self.memoryLimitKB = memoryLimitKB
        self.stackLimitKB = stackLimitKB
        self.maxProcessesAndOrThreads = maxProcessesAndOrThreads
        self.maxFileSizeKB = maxFileSizeKB
        self.numberOfRuns = numberOfRuns
        self.redirectStderrToStdout = redirectStderrToStdout
        self.enableNetwork = enableNetwork
        self.compilerOptions = compilerOptions
        self.commandLineArguments = commandLineArguments
        self.callbackURL = callbackURL
        self.hasExpectedOutput = hasExpectedOutput
    }
}

/// Turns a Judge0 submission into a native job request, with Judge0's defaults, ranges and
/// messages.
struct Judge0RequestMapper: Sendable {
    let configuration: Judge0Configuration
    /// Available languages by Judge0 id.
    let languages: [Int: LanguageDefinition]

    func map(_ submission: Judge0SubmissionRequest) throws(Judge0ValidationErrors) -> JobRequest {
        var errors = Judge0ValidationErrors()
        let config = configuration
        func ranged<T: Comparable & Numeric>(_ value: T?, _ field: String, default defaultValue: T, minimum: T, minimumInclusive: Bool = true,
                                           maximum: T) -> T {
            guard let value else { return defaultValue }
            if minimumInclusive ? value < minimum : value <= minimum {
                errors.add(field, "must be greater than\(minimumInclusive ? " or equal to" : "") \(Self.railsNumber(minimum))")
            }
            if value > maximum { errors.add(field, "must be less than or equal to \(Self.railsNumber(maximum))") }
            return value
        }

        var language: LanguageDefinition?
        if let id = submission.languageID {
            language = languages[id]
            if language == nil { errors.add("language_id", "language with id \(id) doesn't exist") }
        } else {
            errors.add("language_id", "can't be blank")
        }
        let source = submission.sourceCode ?? []
        let sourceIsBlank = source.allSatisfy { $0 == 0x20 || (0x09...0x0D).contains($0) }
        // additional_files is always base64, whatever base64_encoded says.
        let archive = submission.additionalFiles.map(Judge0Base64.decode)
        let isMultiFile = submission.languageID == Judge0MultiFileProgram.judge0ID
        if isMultiFile {
            if !sourceIsBlank { errors.add("source_code", "must be blank for Multi-file program") }
            if archive?.isEmpty ?? true { errors.add("additional_files", "can't be blank") }
        } else {
            if sourceIsBlank { errors.add("source_code", "can't be blank") }
        }
        let cpu = ranged(submission.cpuTimeLimit, "cpu_time_limit", default: config.cpuTimeLimit, minimum: 0, maximum: config.maxCPUTimeLimit)
        let extra = ranged(submission.cpuExtraTime, "cpu_extra_time", default: config.cpuExtraTime, minimum: 0, maximum: config.maxCPUExtraTime)
        let wall = ranged(submission.wallTimeLimit, "wall_time_limit", default: config.wallTimeLimit, minimum: 1, maximum: config.maxWallTimeLimit)
        let memory = ranged(submission.memoryLimit, "memory_limit", default: config.memoryLimitKB, minimum: 2048, maximum: config.maxMemoryLimitKB)
        let stack = ranged(submission.stackLimit, "stack_limit", default: config.stackLimitKB, minimum: 0, maximum: config.maxStackLimitKB)
        let processes = ranged(submission.maxProcessesAndOrThreads, "max_processes_and_or_threads",
                               default: config.maxProcessesAndOrThreads, minimum: 0, minimumInclusive: false,
                               maximum: config.maxMaxProcessesAndOrThreads)
        let fileSize = ranged(submission.maxFileSize, "max_file_size", default: config.maxFileSizeKB, minimum: 0, maximum: config.maxMaxFileSizeKB)
        let runs = ranged(submission.numberOfRuns, "number_of_runs", default: config.numberOfRuns, minimum: 0, minimumInclusive: false,
                          maximum: config.maxNumberOfRuns)
        if submission.enablePerProcessAndThreadTimeLimit == true {
            errors.add("enable_per_process_and_thread_time_limit", "this option cannot be enabled")
        }
        if submission.enablePerProcessAndThreadMemoryLimit == true {
            errors.add("enable_per_process_and_thread_memory_limit", "this option cannot be enabled")
        }
        let network = submission.enableNetwork ?? false
        if network && !config.allowEnableNetwork { errors.add("enable_network", "this option cannot be enabled") }
        if submission.callbackURL != nil && !config.enableCallbacks { errors.add("callback_url", "setting callback is not allowed") }

        var compileOptions: [String]?
        if let options = submission.compilerOptions, !options.trimmingCharacters(in: .whitespaces).isEmpty {
            if options.count > 512 { errors.add("compiler_options", "is too long (maximum is 512 characters)") }
            if let language, !language.isCompiled {
                errors.add("compiler_options", "setting compiler options is only allowed for compiled languages")
            }
            do { compileOptions = try Judge0ArgumentSplitter.split(options) } catch {
                errors.add("compiler_options", error.description)
            }
        }
        var args: [String]?
        if let arguments = submission.commandLineArguments, !arguments.trimmingCharacters(in: .whitespaces).isEmpty {
            if arguments.count > 512 { errors.add("command_line_arguments", "is too long (maximum is 512 characters)") }
            do { args = try Judge0ArgumentSplitter.split(arguments) } catch {
                errors.add("command_line_arguments", error.description)
            }
        }
        // The native request carries stdin and expected output as text.
        func utf8(_ bytes: [UInt8]?, _ field: String) -> String? {
            guard let bytes else { return nil }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                errors.add(field, "must be valid UTF-8 on this server")
                return nil
            }
            return text
        }
        let stdin = utf8(submission.stdin, "stdin")
        let expected = utf8(submission.expectedOutput, "expected_output")
        guard errors.isEmpty, let language, let languageID = submission.languageID else { throw errors }

        let settings = Judge0SubmissionSettings(
            languageID: languageID, cpuTimeLimitMs: Judge0Format.milliseconds(seconds: cpu),
            cpuExtraTimeMs: Judge0Format.milliseconds(seconds: extra), wallTimeLimitMs: Judge0Format.milliseconds(seconds: wall),
            memoryLimitKB: memory, stackLimitKB: stack, maxProcessesAndOrThreads: processes, maxFileSizeKB: fileSize,
            numberOfRuns: runs, redirectStderrToStdout: submission.redirectStderrToStdout ?? false, enableNetwork: network,
            compilerOptions: submission.compilerOptions, commandLineArguments: submission.commandLineArguments,
            callbackURL: submission.callbackURL, hasExpectedOutput: expected != nil)
        // Judge0 kills at the limit plus the extra time but judges against the limit; the
        // sandbox has one CPU limit, so the job gets the limit itself (a run using more is
        // over its limit either way). A zero limit becomes the smallest the sandbox takes.
        let limits = LimitsInput(
            cpuTimeMs: max(1, settings.cpuTimeLimitMs), wallTimeMs: settings.wallTimeLimitMs, memoryBytes: memory * 1024,
            processes: processes, outputBytes: max(1, fileSize * 1024), fileSizeBytes: max(1, fileSize * 1024), network: network)
        // number_of_runs: one compile, then the same run repeated as tests that stop at the
        // first failure (Judge0 recompiles every time; the result is the same).
        let tests = (0..<runs).map { _ in TestInput(stdin: nil, expectedOutput: expected) }
        let files = if isMultiFile, let archive {
            // The archive and the extractor; the sandboxed compile step unpacks one with the other.
            [FileInput(name: Judge0MultiFileProgram.archiveName, content: Data(archive).base64EncodedString(), encoding: .base64),
             FileInput(name: Judge0MultiFileProgram.extractorName, content: JobArchive.extractor)]
        } else {
            [FileInput(name: language.sourceFile, content: Data(source).base64EncodedString(), encoding: .base64)]
        }
        // Any other language: the native archive, unpacked in the box next to the source before
        // compiling or running, as Judge0 does. An empty one is no archive.
        let otherArchive = isMultiFile ? nil : archive.flatMap { $0.isEmpty ? nil : Data($0).base64EncodedString() }
        return JobRequest(
            language: language.id,
            files: files,
            stdin: stdin, args: args, compileOptions: compileOptions, limits: limits, tests: tests,
            compare: CompareSpec(mode: .trailingWhitespace), stopOnFirstFailure: true, callbackURL: submission.callbackURL,
            metadata: settings.metadata, archive: otherArchive)
    }

    /// Rails prints numericality bounds as floats (`20.0`, `2048`→`2048`).
    static func railsNumber<T: Numeric>(_ value: T) -> String {
        if let double = value as? Double { return String(format: "%.1f", double) }
        return "\(value)"
    }
}
