import Foundation

/// One programming language the server can run, as described by `languages/languages.json`.
///
/// Command templates are argv arrays, never shell strings: each element is passed to `execve`
/// as-is after placeholder expansion (see ``CommandTemplate``). Executables must be absolute
/// paths under the directories the sandbox shows (`/usr`, `/bin`, `/lib`, `/lib64`), because
/// the sandbox neither searches `PATH` nor shows `/etc/alternatives`.
struct LanguageDefinition: Codable, Sendable, Equatable {
    /// Stable identifier used by the native API, e.g. `c`, `cpp`, `python3`.
    var id: String
    /// Human-readable name, e.g. `C++ (GCC)`.
    var name: String
    /// File name of the program when the request sends `source` instead of `files`, e.g. `Main.java`.
    var sourceFile: String
    /// Extensions (with the dot) of the files `{sources}` expands to, e.g. `[".cpp", ".cc"]`.
    var sourceExtensions: [String]
    /// Files that must exist and be executable for the language to be offered.
    var toolchain: [String]
    /// argv printing the toolchain version, run on the host by ``LanguageRegistry/detect(timeout:visibleRoots:)``.
    var versionCommand: [String]
    /// Regular expression whose first capture group is the version in the version command's output.
    var versionRegex: String
    /// Compile argv template; `nil` for interpreted languages.
    var compile: [String]?
    /// Options used for `{compile_options}` when the request gives none.
    var defaultCompileOptions: [String]
    /// Regular expressions; each requested compile option must wholly match one of them.
    var compileOptionsAllowed: [String]
    /// Run argv template.
    var run: [String]
    /// Environment added to the registry's default environment for compile and run.
    var environment: [String: String]
    /// Minimum limits the compile step needs (e.g. `javac` starts many JVM threads).
    var compileLimitOverrides: LimitOverrides
    /// Minimum limits the run step needs (e.g. the JVM needs many threads and a large address space).
    var limitOverrides: LimitOverrides
    /// Judge0 language ids (and their Judge0 display names) this language answers to.
    var judge0: [Judge0Alias]
    /// The name Jobe uses for this language, if Jobe has it.
    var jobeName: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, name
        case sourceFile = "source_file"
        case sourceExtensions = "source_extensions"
        case toolchain
        case versionCommand = "version_command"
        case versionRegex = "version_regex"
        case compile
        case defaultCompileOptions = "default_compile_options"
        case compileOptionsAllowed = "compile_options_allowed"
        case run, environment
        case compileLimitOverrides = "compile_limit_overrides"
        case limitOverrides = "limit_overrides"
        case judge0
        case jobeName = "jobe_name"
    }

    /// Whether the language has a compile step.
    var isCompiled: Bool { compile != nil }
}

/// A Judge0 language id and the display name Judge0 clients expect for it.
struct Judge0Alias: Codable, Sendable, Equatable {
    var id: Int
    var name: String
}

/// Floors a language imposes on resource limits. A request asking for less gets the floor,
/// because below it the runtime cannot start at all (which would be reported as the
/// student's fault).
struct LimitOverrides: Codable, Sendable, Equatable {
    /// Minimum number of processes/threads.
    var processesMin: Int?
    /// Minimum memory in bytes.
    var memoryBytesMin: Int?

    init(processesMin: Int? = nil, memoryBytesMin: Int? = nil) {
        self.processesMin = processesMin
        self.memoryBytesMin = memoryBytesMin
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case processesMin = "processes_min"
        case memoryBytesMin = "memory_bytes_min"
    }

    /// `limits` with each floor applied.
    func applied(to limits: JobLimits) -> JobLimits {
        var raised = limits
        if let processesMin { raised.processes = max(raised.processes, processesMin) }
        if let memoryBytesMin { raised.memoryBytes = max(raised.memoryBytes, memoryBytesMin) }
        return raised
    }
}

/// The whole registry file: a default environment and the languages.
struct LanguageRegistryFile: Codable, Sendable, Equatable {
    /// Format version of the file; this code reads version 1.
    var schemaVersion: Int
    /// Environment every compile and run gets (languages add to it).
    var defaultEnvironment: [String: String]
    var languages: [LanguageDefinition]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case schemaVersion = "schema_version"
        case defaultEnvironment = "default_environment"
        case languages
    }
}
