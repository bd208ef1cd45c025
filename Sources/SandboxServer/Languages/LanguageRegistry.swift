import Foundation

/// Why a language registry file was refused. Loading is all-or-nothing: a registry with one
/// broken language would otherwise fail later, on a student's submission.
enum LanguageRegistryError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalidJSON(reason: String)
    case unsupportedSchemaVersion(Int)
    case duplicateLanguageID(String)
    case duplicateJudge0ID(Int, languages: [String])
    case duplicateJobeName(String, languages: [String])
    /// `field` of language `language` is wrong, because `reason`.
    case invalidLanguage(language: String, field: String, reason: String)

    var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read language registry \(path): \(reason)"
        case let .invalidJSON(reason): "language registry is not valid: \(reason)"
        case let .unsupportedSchemaVersion(version): "language registry schema_version \(version) is not supported (expected 1)"
        case let .duplicateLanguageID(id): "language id \"\(id)\" appears more than once"
        case let .duplicateJudge0ID(id, languages): "Judge0 id \(id) is claimed by several languages: \(languages.joined(separator: ", "))"
        case let .duplicateJobeName(name, languages): "Jobe name \"\(name)\" is claimed by several languages: \(languages.joined(separator: ", "))"
        case let .invalidLanguage(language, field, reason): "language \"\(language)\", field \(field): \(reason)"
        }
    }
}

/// The languages the server knows, looked up by native id, Judge0 id or Jobe name.
///
/// The default registry is compiled into the binary (``EmbeddedLanguages``) so the server stays
/// a single file; `--languages FILE` replaces it with ``init(contentsOf:)``.
struct LanguageRegistry: Sendable {
    /// Languages in file order (the order `GET /v1/languages` lists them).
    let languages: [LanguageDefinition]
    /// Environment every compile and run starts from.
    let defaultEnvironment: [String: String]

    private let byID: [String: Int]
    private let byJudge0ID: [Int: Int]
    private let byJobeName: [String: Int]

    /// Where compiled programs are written inside the sandbox, and its working directory.
    static let boxDirectory = "/box"

    /// Validates `file` and indexes its languages.
    init(file: LanguageRegistryFile) throws(LanguageRegistryError) {
        guard file.schemaVersion == 1 else { throw .unsupportedSchemaVersion(file.schemaVersion) }
        var byID: [String: Int] = [:]
        var byJudge0ID: [Int: Int] = [:]
        var byJobeName: [String: Int] = [:]
        for (index, language) in file.languages.enumerated() {
            try Self.validate(language)
            if byID.updateValue(index, forKey: language.id) != nil { throw .duplicateLanguageID(language.id) }
            for alias in language.judge0 {
                if let other = byJudge0ID.updateValue(index, forKey: alias.id) {
                    throw .duplicateJudge0ID(alias.id, languages: [file.languages[other].id, language.id])
                }
            }
            if let jobeName = language.jobeName, let other = byJobeName.updateValue(index, forKey: jobeName) {
                throw .duplicateJobeName(jobeName, languages: [file.languages[other].id, language.id])
            }
        }
        languages = file.languages
        defaultEnvironment = file.defaultEnvironment
        self.byID = byID
        self.byJudge0ID = byJudge0ID
        self.byJobeName = byJobeName
    }

    /// Parses and validates registry JSON.
    init(json: Data) throws(LanguageRegistryError) {
        let file: LanguageRegistryFile
        do {
            file = try JSONDecoder().decode(LanguageRegistryFile.self, from: json)
        } catch {
            throw .invalidJSON(reason: Self.describe(error))
        }
        try self.init(file: file)
    }

    /// Reads a registry file (the server's `--languages FILE`).
    init(contentsOf url: URL) throws(LanguageRegistryError) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw .unreadable(path: url.path, reason: error.localizedDescription)
        }
        try self.init(json: data)
    }

    /// The registry compiled into the binary from `languages/languages.json`.
    static func embedded() throws(LanguageRegistryError) -> LanguageRegistry {
        try LanguageRegistry(json: Data(EmbeddedLanguages.json.utf8))
    }

    /// The language with native id `id`.
    func language(id: String) -> LanguageDefinition? { byID[id].map { languages[$0] } }

    /// The language a Judge0 client means by `judge0ID`.
    func language(judge0ID: Int) -> LanguageDefinition? { byJudge0ID[judge0ID].map { languages[$0] } }

    /// The language a Jobe client means by `jobeName`.
    func language(jobeName: String) -> LanguageDefinition? { byJobeName[jobeName].map { languages[$0] } }

    /// This registry limited to the languages with the given ids (e.g. those ``detect(timeout:visibleRoots:)`` found).
    func restricted(to ids: Set<String>) -> LanguageRegistry {
        let kept = languages.filter { ids.contains($0.id) }
        // A subset of a valid registry is valid, so this cannot throw.
        return try! LanguageRegistry(file: LanguageRegistryFile(schemaVersion: 1, defaultEnvironment: defaultEnvironment, languages: kept))
    }

    /// The environment of `language`'s compile and run: the default one with the language's additions.
    func environment(for language: LanguageDefinition) -> [String: String] {
        defaultEnvironment.merging(language.environment) { _, languageValue in languageValue }
    }

    // MARK: - Validation

    private static func validate(_ language: LanguageDefinition) throws(LanguageRegistryError) {
        func fail(_ field: String, _ reason: String) -> LanguageRegistryError {
            .invalidLanguage(language: language.id, field: field, reason: reason)
        }
        guard language.id.wholeMatch(of: /[a-z][a-z0-9_+.-]{0,31}/) != nil else {
            throw fail("id", "must be 1-32 characters of a-z, 0-9, _ + . - starting with a letter")
        }
        if let problem = FileNameRules.problem(with: language.sourceFile) { throw fail("source_file", problem) }
        guard language.sourceExtensions.contains(where: { language.sourceFile.hasSuffix($0) }) else {
            throw fail("source_extensions", "must include the extension of source_file \(language.sourceFile)")
        }
        guard !language.toolchain.isEmpty else { throw fail("toolchain", "must name at least one file") }
        for path in language.toolchain where !path.hasPrefix("/") {
            throw fail("toolchain", "\"\(path)\" is not an absolute path")
        }
        guard let versionProgram = language.versionCommand.first, versionProgram.hasPrefix("/") else {
            throw fail("version_command", "must start with an absolute path")
        }
        // NSRegularExpression, unlike Regex, can say how many capture groups a pattern has.
        guard let versionRegex = try? NSRegularExpression(pattern: language.versionRegex) else {
            throw fail("version_regex", "does not compile")
        }
        // The first capture is the version; a regex without one would always report no version.
        guard versionRegex.numberOfCaptureGroups >= 1 else { throw fail("version_regex", "needs a capture group") }
        for pattern in language.compileOptionsAllowed {
            do { _ = try Regex(pattern) } catch { throw fail("compile_options_allowed", "pattern \"\(pattern)\" does not compile: \(error)") }
        }
        var compileTemplate: CommandTemplate?
        if let compile = language.compile {
            do {
                compileTemplate = try CommandTemplate(compile, allowed: [.source, .sources, .binary, .compileOptions, .mainClass])
            } catch { throw fail("compile", String(describing: error)) }
        }
        let runTemplate: CommandTemplate
        do {
            runTemplate = try CommandTemplate(language.run, allowed: [.source, .binary, .args, .mainClass])
        } catch { throw fail("run", String(describing: error)) }
        for (field, template) in [("compile", compileTemplate), ("run", runTemplate)] {
            guard let template else { continue }
            let executable = template.executableTemplate
            guard executable.hasPrefix("/") || executable == "{binary}" else {
                // execve does not search PATH: a relative program name would fail in the sandbox.
                throw fail(field, "the program \"\(executable)\" must be an absolute path or {binary}")
            }
        }
        if compileTemplate == nil {
            guard language.compileOptionsAllowed.isEmpty, language.defaultCompileOptions.isEmpty else {
                throw fail("compile_options_allowed", "an interpreted language (compile: null) takes no compile options")
            }
            if runTemplate.placeholders.contains(.binary) { throw fail("run", "{binary} needs a compile step") }
        }
        do { try CompileOptionPolicy(language: language).validate(language.defaultCompileOptions) } catch {
            throw fail("default_compile_options", String(describing: error))
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, context):
            "missing \(FieldPath(context.codingPath + [key]).description)"
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            "\(FieldPath(context.codingPath).description): \(context.debugDescription)"
        case let DecodingError.dataCorrupted(context):
            "\(FieldPath(context.codingPath).description): \(context.debugDescription)"
        default:
            String(describing: error)
        }
    }
}
