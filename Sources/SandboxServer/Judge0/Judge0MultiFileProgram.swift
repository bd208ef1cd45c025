import Foundation

/// Judge0's language 89, "Multi-file program": `additional_files` is a zip whose root holds a
/// `run` script and optionally a `compile` script.
///
/// The archive is unpacked **inside the sandbox**, as the first step of the compile run, by the
/// same Python extractor as every job's `archive` (``JobArchive/extractor``: no absolute paths,
/// `..`, symbolic links or more than 10240 KB of content). The host never opens, follows or
/// writes a path inside the box — the root cause of Judge0's 2024 escapes. The compile step
/// then runs `compile` if present; each run executes `bash run`.
enum Judge0MultiFileProgram {
    static let judge0ID = 89
    static let languageID = "judge0-multi-file"
    /// The archive's name in the box.
    static let archiveName = "additional_files.zip"
    /// The extractor's name in the box (it removes itself and the archive before `compile` runs).
    static let extractorName = "judge0_extract.py"
    /// Judge0's `max_extract_size`, in KB.
    static let maxExtractKB = JobArchive.maximumExtractedBytes / 1024

    /// The language definition the registry gets for id 89.
    static let definition = LanguageDefinition(
        id: languageID, name: "Multi-file program", sourceFile: archiveName, sourceExtensions: [".zip"],
        toolchain: ["/usr/bin/bash", "/usr/bin/python3"], versionCommand: ["/usr/bin/bash", "--version"],
        versionRegex: "version ([0-9]+\\.[0-9]+\\.[0-9]+)",
        compile: ["/usr/bin/bash", "-c",
                  "/usr/bin/python3 -I -B \(extractorName) \(archiveName) && if [ -f compile ]; then /usr/bin/bash compile; fi"],
        defaultCompileOptions: [], compileOptionsAllowed: [], run: ["/usr/bin/bash", "run", "{args}"], environment: [:],
        compileLimitOverrides: LimitOverrides(), limitOverrides: LimitOverrides(),
        judge0: [Judge0Alias(id: judge0ID, name: "Multi-file program")], jobeName: nil)

    /// `registry` and `languages` with language 89 added when bash and Python 3 are available
    /// (the extractor needs Python; the scripts need bash).
    static func including(registry: LanguageRegistry, languages: [LanguageAvailability]) -> (LanguageRegistry, [LanguageAvailability]) {
        let available = Set(languages.filter(\.isAvailable).map(\.language.id))
        guard registry.language(id: languageID) == nil, registry.language(judge0ID: judge0ID) == nil,
              available.contains("bash"), available.contains("python3"),
              let extended = try? LanguageRegistry(file: LanguageRegistryFile(
                  schemaVersion: 1, defaultEnvironment: registry.defaultEnvironment, languages: registry.languages + [definition]))
        else { return (registry, languages) }
        let bashVersion = languages.first { $0.language.id == "bash" }?.version
        return (extended, languages + [LanguageAvailability(language: definition, version: bashVersion, unavailableReason: nil)])
    }
}
