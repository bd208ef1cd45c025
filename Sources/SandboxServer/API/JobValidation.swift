import Foundation

/// A file of a validated job, decoded to bytes.
struct SourceFile: Sendable, Equatable {
    var name: String
    var content: [UInt8]
}

/// A job request that passed validation, with everything resolved that the runner needs:
/// decoded files, expanded commands, final limits, tests and comparison.
struct ValidatedJob: Sendable, Equatable {
    var language: LanguageDefinition
    var files: [SourceFile]
    /// The file `{source}` names.
    var entryFile: String
    /// Compile argv, `nil` for interpreted languages.
    var compileCommand: [String]?
    var runCommand: [String]
    var environment: [String: String]
    /// Limits of the compile step, `nil` for interpreted languages.
    var compileLimits: JobLimits?
    /// Limits of each test run.
    var runLimits: JobLimits
    /// At least one test; a request without tests gets one unnamed run of its `stdin`.
    var tests: [TestCaseSpec]
    var comparison: OutputComparison
    var stopOnFirstFailure: Bool
    var callbackURL: URL?
    var metadata: JSONValue?
    var priority: Int
    /// A zip unpacked in the box before the compile step or the tests; nil when none was sent.
    var archive: JobArchive? = nil

    /// The grader applying this job's tests and comparison.
    var grader: JobGrader {
        JobGrader(tests: tests, comparison: comparison, stopOnFirstFailure: stopOnFirstFailure)
    }
}

/// Checks a ``JobRequest`` against the language registry and the server's limits.
///
/// Every refusal is an ``APIError`` naming the field (`files[1].name`, `limits.cpu_time_ms`)
/// and, for sizes and limits, the maximum, so a client can fix the request without guessing.
struct JobRequestValidator: Sendable {
    let registry: LanguageRegistry
    let limits: ServerLimits
    /// The sandbox's working directory, where `{binary}` is written; a parameter so tests can
    /// run the expanded commands on the host.
    let boxDirectory: String
    /// Python 3 inside the sandbox, which unpacks `archive`s; nil when this server has none,
    /// and then a job with an archive is refused.
    let archivePython: String?

    init(registry: LanguageRegistry, limits: ServerLimits, boxDirectory: String = LanguageRegistry.boxDirectory,
         archivePython: String? = nil) {
        self.registry = registry
        self.limits = limits
        self.boxDirectory = boxDirectory
        self.archivePython = archivePython
    }

    func validate(_ request: JobRequest) throws(APIError) -> ValidatedJob {
        guard let language = registry.language(id: request.language) else {
            throw APIError(
                .unknownLanguage,
                "unknown language \"\(request.language)\"; available: \(registry.languages.map(\.id).joined(separator: ", "))",
                field: "language")
        }
        let files = try validateFiles(request, language: language)
        let archive = try validateArchive(request.archive)
        let entryFile = Self.entryFile(of: files, language: language)
        let sources = try sourceFileNames(files, entryFile: entryFile, language: language)
        let args = try validateArgs(request.args ?? [])
        let compileOptions = try validateCompileOptions(request.compileOptions, language: language)

        let boxBinary = boxDirectory + "/main"
        let context = CommandContext(
            source: entryFile, sources: sources, binary: boxBinary, compileOptions: compileOptions, args: args,
            mainClass: Self.stem(of: entryFile))
        let compileCommand: [String]?
        let runCommand: [String]
        do {
            // The registry validated these templates when it loaded.
            compileCommand = try language.compile.map { argv throws(CommandTemplateError) in try CommandTemplate(argv).expand(context) }
            runCommand = try CommandTemplate(language.run).expand(context)
        } catch {
            throw APIError(.internalError, "language \(language.id) has an invalid command: \(error)")
        }

        let runLimits = language.limitOverrides.applied(to: try resolveLimits(request.limits ?? LimitsInput()))
        let compileLimits = language.isCompiled ? language.compileLimitOverrides.applied(to: limits.compile) : nil
        let tests = try validateTests(request)
        let comparison = try validateComparison(request.compare)
        let callbackURL = try request.callbackURL.map { url throws(APIError) in try validateCallbackURL(url) }
        try validateMetadata(request.metadata)
        let priority = request.priority ?? 0
        guard limits.priorities.contains(priority) else {
            throw APIError(
                .invalidValue,
                "priority \(priority) is outside \(limits.priorities.lowerBound)…\(limits.priorities.upperBound)",
                field: "priority")
        }

        return ValidatedJob(
            language: language, files: files, entryFile: entryFile, compileCommand: compileCommand, runCommand: runCommand,
            environment: registry.environment(for: language), compileLimits: compileLimits, runLimits: runLimits,
            tests: tests, comparison: comparison, stopOnFirstFailure: request.stopOnFirstFailure ?? false,
            callbackURL: callbackURL, metadata: request.metadata, priority: priority, archive: archive)
    }

    // MARK: - Files

    private func validateFiles(_ request: JobRequest, language: LanguageDefinition) throws(APIError) -> [SourceFile] {
        let inputs: [FileInput]
        switch (request.files, request.source) {
        case (.some, .some):
            throw APIError(.invalidValue, "give either source or files, not both", field: "source")
        case (nil, nil):
            throw APIError(.missingField, "files (or source) is required", field: "files")
        case let (nil, .some(source)):
            inputs = [FileInput(name: language.sourceFile, content: source)]
        case let (.some(files), nil):
            guard !files.isEmpty else { throw APIError(.invalidValue, "files must not be empty", field: "files") }
            guard files.count <= limits.maximumFiles else {
                throw APIError(.tooManyFiles, "\(files.count) files sent; the maximum is \(limits.maximumFiles)", field: "files")
            }
            inputs = files
        }
        var names: Set<String> = []
        var totalBytes = 0
        var decoded: [SourceFile] = []
        for (index, input) in inputs.enumerated() {
            let fieldPrefix = request.source != nil ? "source" : "files[\(index)]"
            if let problem = FileNameRules.problem(with: input.name) {
                throw APIError(.invalidFileName, "file name \"\(input.name)\" \(problem)", field: "\(fieldPrefix).name")
            }
            guard names.insert(input.name).inserted else {
                throw APIError(.duplicateFileName, "file name \"\(input.name)\" appears more than once", field: "\(fieldPrefix).name")
            }
            let content: [UInt8]
            switch input.encoding ?? .utf8 {
            case .utf8:
                content = Array(input.content.utf8)
            case .base64:
                guard let data = Base64Text.decode(input.content) else {
                    throw APIError(.invalidValue, "content of \"\(input.name)\" is not valid base64", field: "\(fieldPrefix).content")
                }
                content = Array(data)
            }
            totalBytes += content.count
            guard totalBytes <= limits.maximumSourceBytes else {
                throw APIError(
                    .tooLarge, "files total more than the maximum of \(limits.maximumSourceBytes) bytes",
                    field: request.source != nil ? "source" : "files")
            }
            decoded.append(SourceFile(name: input.name, content: content))
        }
        return decoded
    }

    private func validateArchive(_ text: String?) throws(APIError) -> JobArchive? {
        guard let text else { return nil }
        guard let python = archivePython else {
            throw APIError(
                .invalidValue, "archives are unpacked by Python 3 inside the sandbox, and this server has no python3", field: "archive")
        }
        guard let data = Base64Text.decode(text), !data.isEmpty else {
            throw APIError(.invalidValue, "archive must be a non-empty zip file in base64", field: "archive")
        }
        guard data.count <= limits.maximumArchiveBytes else {
            throw APIError(.tooLarge, "archive is larger than the maximum of \(limits.maximumArchiveBytes) bytes", field: "archive")
        }
        return JobArchive(bytes: Array(data), python: python)
    }

    /// The files `{sources}` names: those with one of the language's extensions, in request order.
    private func sourceFileNames(_ files: [SourceFile], entryFile: String, language: LanguageDefinition) throws(APIError) -> [String] {
        let sources = files.map(\.name).filter { name in language.sourceExtensions.contains { name.hasSuffix($0) } }
        if language.isCompiled && !sources.contains(entryFile) {
            // A compiler would take a file without a source extension for something else
            // (gcc: linker input), giving a baffling error; say what is wrong instead.
            throw APIError(
                .invalidFileName,
                "the entry file \"\(entryFile)\" needs one of the extensions \(language.sourceExtensions.joined(separator: " ")) for \(language.id)",
                field: "files")
        }
        return sources
    }

    /// The file `{source}` names: the language's `source_file` if sent, else the first file
    /// with one of its source extensions (so `util.h, prog.c` picks `prog.c`), else the first file.
    static func entryFile(of files: [SourceFile], language: LanguageDefinition) -> String {
        if let named = files.first(where: { $0.name == language.sourceFile }) { return named.name }
        if let source = files.first(where: { file in language.sourceExtensions.contains { file.name.hasSuffix($0) } }) {
            return source.name
        }
        return files[0].name
    }

    static func stem(of fileName: String) -> String {
        guard let dot = fileName.lastIndex(of: "."), dot != fileName.startIndex else { return fileName }
        return String(fileName[..<dot])
    }

    // MARK: - Arguments and compile options

    private func validateArgs(_ args: [String]) throws(APIError) -> [String] {
        guard args.count <= limits.maximumArgs else {
            throw APIError(.tooLarge, "\(args.count) args sent; the maximum is \(limits.maximumArgs)", field: "args")
        }
        for (index, argument) in args.enumerated() {
            // execve takes NUL-terminated strings, so a NUL would silently cut the argument.
            guard !argument.contains("\u{0}") else {
                throw APIError(.invalidValue, "arguments cannot contain NUL characters", field: "args[\(index)]")
            }
            guard argument.utf8.count <= limits.maximumArgBytes else {
                throw APIError(.tooLarge, "argument is longer than the maximum of \(limits.maximumArgBytes) bytes", field: "args[\(index)]")
            }
        }
        return args
    }

    private func validateCompileOptions(_ requested: [String]?, language: LanguageDefinition) throws(APIError) -> [String] {
        guard let requested else { return language.defaultCompileOptions }
        guard requested.count <= limits.maximumCompileOptions else {
            throw APIError(
                .tooLarge, "\(requested.count) compile options sent; the maximum is \(limits.maximumCompileOptions)",
                field: "compile_options")
        }
        do {
            try CompileOptionPolicy(language: language).validate(requested)
        } catch {
            switch error {
            case let .notAllowed(option, index, _):
                throw APIError(
                    .compileOptionNotAllowed,
                    "compile option \"\(option)\" is not allowed for \(language.id); allowed patterns: \(language.compileOptionsAllowed.joined(separator: " "))",
                    field: "compile_options[\(index)]")
            case .languageNotCompiled:
                throw APIError(.compileOptionNotAllowed, "\(language.id) is not compiled and takes no compile options", field: "compile_options")
            }
        }
        return requested
    }

    // MARK: - Limits

    /// The run limits: requested values checked against the maxima, defaults for the rest.
    /// An omitted wall time is at least twice the CPU time, so a CPU-bound program hits its
    /// CPU limit (the meaningful verdict) before the wall clock.
    func resolveLimits(_ requested: LimitsInput) throws(APIError) -> JobLimits {
        func resolve(_ value: Int?, _ key: JobLimits.CodingKeys, default defaultValue: Int, maximum: Int,
                     minimum: Int = 1) throws(APIError) -> Int {
            guard let value else { return defaultValue }
            let field = "limits.\(key.stringValue)"
            guard value > 0 else { throw APIError(.invalidValue, "\(field) must be positive, not \(value)", field: field) }
            guard value >= minimum else {
                throw APIError(.invalidValue, "\(field) is \(value) but the minimum is \(minimum)", field: field)
            }
            guard value <= maximum else {
                throw APIError(.limitExceedsMaximum, "\(field) is \(value) but the maximum is \(maximum)", field: field)
            }
            return value
        }
        let defaults = limits.defaults, maxima = limits.maxima
        let cpuTime = try resolve(requested.cpuTimeMs, .cpuTimeMs, default: defaults.cpuTimeMs, maximum: maxima.cpuTimeMs)
        let wallDefault = min(maxima.wallTimeMs, max(defaults.wallTimeMs, 2 * cpuTime))
        let network = requested.network ?? defaults.network
        if network && !maxima.network {
            throw APIError(.limitExceedsMaximum, "network access is not allowed on this server", field: "limits.network")
        }
        return JobLimits(
            cpuTimeMs: cpuTime,
            wallTimeMs: try resolve(requested.wallTimeMs, .wallTimeMs, default: wallDefault, maximum: maxima.wallTimeMs),
            // The memory cgroup needs room for the process itself: below 1 MiB nothing starts.
            memoryBytes: try resolve(requested.memoryBytes, .memoryBytes, default: defaults.memoryBytes, maximum: maxima.memoryBytes,
                                     minimum: 1 << 20),
            processes: try resolve(requested.processes, .processes, default: defaults.processes, maximum: maxima.processes),
            outputBytes: try resolve(requested.outputBytes, .outputBytes, default: defaults.outputBytes, maximum: maxima.outputBytes),
            fileSizeBytes: try resolve(requested.fileSizeBytes, .fileSizeBytes, default: defaults.fileSizeBytes, maximum: maxima.fileSizeBytes),
            network: network)
    }

    // MARK: - Tests and comparison

    private func validateTests(_ request: JobRequest) throws(APIError) -> [TestCaseSpec] {
        let jobStdin = Array((request.stdin ?? "").utf8)
        guard jobStdin.count <= limits.maximumStdinBytes else {
            throw APIError(.tooLarge, "stdin is longer than the maximum of \(limits.maximumStdinBytes) bytes", field: "stdin")
        }
        guard let inputs = request.tests else {
            return [TestCaseSpec(name: "1", stdin: jobStdin, expectedOutput: nil, points: 1)]
        }
        guard !inputs.isEmpty else {
            throw APIError(.invalidValue, "tests must not be empty; omit it to run the program once", field: "tests")
        }
        guard inputs.count <= limits.maximumTests else {
            throw APIError(.tooManyTests, "\(inputs.count) tests sent; the maximum is \(limits.maximumTests)", field: "tests")
        }
        var totalBytes = 0
        var tests: [TestCaseSpec] = []
        for (index, input) in inputs.enumerated() {
            let field = "tests[\(index)]"
            let name = input.name ?? String(index + 1)
            guard !name.isEmpty, name.utf8.count <= limits.maximumTestNameBytes else {
                throw APIError(.invalidValue, "test names must be 1 to \(limits.maximumTestNameBytes) bytes", field: "\(field).name")
            }
            let stdin = input.stdin.map { Array($0.utf8) } ?? jobStdin
            guard stdin.count <= limits.maximumStdinBytes else {
                throw APIError(.tooLarge, "stdin is longer than the maximum of \(limits.maximumStdinBytes) bytes", field: "\(field).stdin")
            }
            let expected = input.expectedOutput.map { Array($0.utf8) }
            if let expected, expected.count > limits.maximumExpectedOutputBytes {
                throw APIError(
                    .tooLarge, "expected_output is longer than the maximum of \(limits.maximumExpectedOutputBytes) bytes",
                    field: "\(field).expected_output")
            }
            let points = input.points ?? 1
            guard (0...limits.maximumPoints).contains(points) else {
                throw APIError(.invalidValue, "points must be between 0 and \(limits.maximumPoints)", field: "\(field).points")
            }
            totalBytes += stdin.count + (expected?.count ?? 0)
            guard totalBytes <= limits.maximumTotalTestDataBytes else {
                throw APIError(
                    .tooLarge, "stdins and expected outputs total more than the maximum of \(limits.maximumTotalTestDataBytes) bytes",
                    field: "tests")
            }
            tests.append(TestCaseSpec(name: name, stdin: stdin, expectedOutput: expected, points: points))
        }
        return tests
    }

    private func validateComparison(_ spec: CompareSpec?) throws(APIError) -> OutputComparison {
        guard let spec else { return OutputComparison() }
        guard let tolerance = spec.tolerance else { return OutputComparison(mode: spec.mode) }
        guard spec.mode == .float else {
            // A tolerance with another mode would be ignored; that is almost certainly a mistake.
            throw APIError(.invalidValue, "tolerance applies only to mode float, not \(spec.mode.rawValue)", field: "compare.tolerance")
        }
        guard tolerance.isFinite, tolerance >= 0 else {
            throw APIError(.invalidValue, "tolerance must be a finite number ≥ 0", field: "compare.tolerance")
        }
        return OutputComparison(mode: .float, tolerance: tolerance)
    }

    // MARK: - Callback, metadata

    private func validateCallbackURL(_ text: String) throws(APIError) -> URL {
        guard text.utf8.count <= limits.maximumCallbackURLBytes else {
            throw APIError(.tooLarge, "callback_url is longer than the maximum of \(limits.maximumCallbackURLBytes) bytes", field: "callback_url")
        }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty
        else {
            throw APIError(.invalidValue, "callback_url must be an absolute http or https URL", field: "callback_url")
        }
        // `URL` takes any digits as a port; a callback to port 99999 could never be delivered.
        if let port = url.port, !(1...65_535).contains(port) {
            throw APIError(.invalidValue, "callback_url's port must be between 1 and 65535, not \(port)", field: "callback_url")
        }
        return url
    }

    private func validateMetadata(_ metadata: JSONValue?) throws(APIError) {
        guard let metadata else { return }
        let size = APIJSON.encode(metadata).count
        guard size <= limits.maximumMetadataBytes else {
            throw APIError(
                .tooLarge, "metadata is \(size) bytes as JSON; the maximum is \(limits.maximumMetadataBytes)", field: "metadata")
        }
    }
}
