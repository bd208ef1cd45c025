import Foundation

/// Judge0's language 89, "Multi-file program": `additional_files` is a zip whose root holds a
/// `run` script and optionally a `compile` script.
///
/// The archive is unpacked **inside the sandbox**, as the first step of the compile run, by a
/// small Python program that refuses absolute paths, `..`, symbolic links and more than
/// 10240 KB of content before writing anything (Python's `zipfile` never creates links). The
/// host never opens, follows or writes a path inside the box — the root cause of Judge0's 2024
/// escapes. The compile step then runs `compile` if present; each run executes `bash run`.
enum Judge0MultiFileProgram {
    static let judge0ID = 89
    static let languageID = "judge0-multi-file"
    /// The archive's name in the box.
    static let archiveName = "additional_files.zip"
    /// The extractor's name in the box (removed before `compile` runs).
    static let extractorName = "judge0_extract.py"
    /// Judge0's `max_extract_size`, in KB.
    static let maxExtractKB = 10_240

    /// The extractor, run by the sandboxed Python as `python3 -I judge0_extract.py ARCHIVE`.
    static let extractor = """
    import os, stat, sys, zipfile
    LIMIT = \(maxExtractKB) * 1024
    def fail(message):
        print("additional_files: " + message, file=sys.stderr)
        sys.exit(1)
    try:
        archive = zipfile.ZipFile(sys.argv[1])
    except (zipfile.BadZipFile, OSError) as error:
        fail("not a zip archive (%s)" % error)
    total = 0
    for entry in archive.infolist():
        name = entry.filename
        parts = name.split("/")
        if name.startswith("/") or "\\\\" in name or ".." in parts or "\\0" in name:
            fail("unsafe path %r" % name)
        if stat.S_ISLNK(entry.external_attr >> 16):
            fail("symbolic link %r" % name)
        total += entry.file_size
        if total > LIMIT:
            fail("the extracted files exceed %d KB" % (LIMIT // 1024))
    written = 0
    for entry in archive.infolist():
        with archive.open(entry) as source:
            if entry.is_dir():
                os.makedirs(entry.filename, exist_ok=True)
                continue
            directory = os.path.dirname(entry.filename)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(entry.filename, "wb") as target:
                while True:
                    chunk = source.read(65536)
                    if not chunk:
                        break
                    written += len(chunk)
                    # The header's size can lie; count what is really written.
                    if written > LIMIT:
                        fail("the extracted files exceed %d KB" % (LIMIT // 1024))
                    target.write(chunk)
        mode = (entry.external_attr >> 16) & 0o777
        os.chmod(entry.filename, (mode or 0o644) | 0o600)
    """

    /// The language definition the registry gets for id 89.
    static let definition = LanguageDefinition(
        id: languageID, name: "Multi-file program", sourceFile: archiveName, sourceExtensions: [".zip"],
        toolchain: ["/usr/bin/bash", "/usr/bin/python3"], versionCommand: ["/usr/bin/bash", "--version"],
        versionRegex: "version ([0-9]+\\.[0-9]+\\.[0-9]+)",
        compile: ["/usr/bin/bash", "-c",
                  "/usr/bin/python3 -I \(extractorName) \(archiveName) && /usr/bin/rm -f \(extractorName) && if [ -f compile ]; then /usr/bin/bash compile; fi"],
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
