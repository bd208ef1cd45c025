import Isolation

/// A job's zip archive (the native `archive`, Judge0's `additional_files`) and how it is
/// unpacked: **inside the sandbox**, as the first run in the job's box.
///
/// The host never opens, follows or writes a path inside a box once sandboxed code could have
/// touched it — the root cause of Judge0's 2024 escapes — and it does not parse the archive
/// either. A fresh box receives the job's files, the archive and a small Python program; the
/// program, sandboxed like any job, refuses absolute paths, `..`, backslashes, symbolic links,
/// more than ``maximumEntries`` entries and more than ``maximumExtractedBytes`` of content
/// (counted while writing, since a zip header can lie), writes the entries next to the job's
/// files without replacing any of them (Judge0's `unzip -n`), then deletes the archive and
/// itself. Python's `zipfile` never creates links. The compile step (or the tests, for an
/// interpreted language) then runs over that box.
struct JobArchive: Sendable, Equatable {
    /// The zip file's bytes.
    var bytes: [UInt8]
    /// Python 3 inside the sandbox (the host's, visible read-only).
    var python: String

    /// The archive's name in the box. Job files cannot start with `.` (``FileNameRules``), so
    /// neither this nor ``extractorName`` can collide with one of them.
    static let archiveName = ".job-archive.zip"
    static let extractorName = ".job-archive-extract.py"
    /// Judge0's `max_extract_size` (10240 KB).
    static let maximumExtractedBytes = 10_240 * 1024
    static let maximumEntries = 10_000

    /// The unpacking run's argv: `-I` keeps the job's environment and files from changing how
    /// Python itself starts.
    var command: [String] { [python, "-I", "-B", Self.extractorName, Self.archiveName] }

    /// The files of the unpacking run's fresh box: the job's files, the archive, the extractor.
    func boxFiles(with jobFiles: [BoxFile]) -> [BoxFile] {
        jobFiles + [BoxFile(path: Self.archiveName, contents: bytes), BoxFile(path: Self.extractorName, text: Self.extractor)]
    }

    /// Limits of the unpacking run. `diskBytes` sizes the box for the steps after it (the
    /// box is created by this run); files may be as large as everything the archive may hold.
    static func limits(diskBytes: Int) -> ResourceLimits {
        ResourceLimits(
            cpuTimeMilliseconds: 10_000, wallTimeMilliseconds: 20_000, memoryBytes: 256 << 20, processes: 8,
            outputBytes: 64 << 10, killOnOutputLimit: false, fileSizeBytes: maximumExtractedBytes,
            diskBytes: max(diskBytes, 2 * maximumExtractedBytes))
    }

    /// The judgement of the unpacking run: a refused or broken archive fails the job as a
    /// compile error would (Judge0 status 6), with the extractor's message as compile output.
    static func judge(_ outcome: RunOutcome) -> CompileJudgement {
        switch outcome.status {
        case .internalError:
            return .internalError(message: outcome.message ?? "the sandbox failed while unpacking the archive")
        case .ok where outcome.exitCode == 0 || outcome.exitCode == nil:
            return .succeeded
        case .ok, .runtimeError, .signaled:
            let stderr = String(decoding: outcome.stderr, as: UTF8.self)
            let reason = stderr.split(separator: "\n").last { !$0.allSatisfy(\.isWhitespace) }
            return .compileError(message: "the archive could not be unpacked" + (reason.map { ": \($0)" } ?? ""))
        case .timeLimit:
            return .compileError(message: "the archive could not be unpacked: it took longer than the time limit")
        case .memoryLimit:
            return .compileError(message: "the archive could not be unpacked: it needed more memory than allowed")
        case .outputLimit:
            return .compileError(message: "the archive could not be unpacked: too much output")
        }
    }

    /// The extractor, run as `python3 -I -B EXTRACTOR ARCHIVE` in the box.
    static let extractor = """
    import os, stat, sys, zipfile
    LIMIT = \(maximumExtractedBytes)
    MAX_ENTRIES = \(maximumEntries)
    archive_path = sys.argv[1]
    def fail(message):
        print("archive: " + message, file=sys.stderr)
        sys.exit(1)
    try:
        archive = zipfile.ZipFile(archive_path)
        entries = archive.infolist()
    except Exception as error:
        fail("not a zip archive (%s)" % error)
    if len(entries) > MAX_ENTRIES:
        fail("more than %d entries" % MAX_ENTRIES)
    declared = 0
    for entry in entries:
        name = entry.filename
        if not name or name.startswith("/") or "\\\\" in name or ".." in name.split("/") or "\\0" in name:
            fail("unsafe path %r" % name)
        if stat.S_ISLNK(entry.external_attr >> 16):
            fail("symbolic link %r" % name)
        declared += entry.file_size
        if declared > LIMIT:
            fail("the extracted files exceed %d KB" % (LIMIT // 1024))
    written = 0
    name = None
    try:
        for entry in entries:
            name = entry.filename
            if entry.is_dir():
                os.makedirs(name, exist_ok=True)
                continue
            # Files sent with the job win over the archive's, as with Judge0's `unzip -n`.
            if os.path.lexists(name):
                continue
            directory = os.path.dirname(name)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with archive.open(entry) as source, open(name, "xb") as target:
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
            os.chmod(name, (mode or 0o644) | 0o600)
    except Exception as error:
        fail("cannot extract %r (%s)" % (name, error))
    archive.close()
    os.remove(archive_path)
    os.remove(sys.argv[0])
    """
}
