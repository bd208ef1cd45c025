import Foundation
import Synchronization

/// Whether one language can be offered on this machine, and its toolchain version.
struct LanguageAvailability: Sendable, Equatable {
    let language: LanguageDefinition
    /// The version the version command printed, when the language is available.
    let version: String?
    /// Why the language is not available; `nil` when it is.
    let unavailableReason: String?

    var isAvailable: Bool { unavailableReason == nil }
}

extension LanguageRegistry {
    /// Directories the sandbox shows; a toolchain reached through anything else (notably
    /// `/etc/alternatives`) exists on the host but not inside the box.
    /// `/etc/alternatives` is there too: the sandbox's generated /etc carries a copy of the host's
    /// alternatives links (Isolation's HostLayout), so `/usr/bin/php → /etc/alternatives/php →
    /// /usr/bin/php8.2` resolves inside as it does on the host.
    static let sandboxVisibleRoots = ["/usr", "/bin", "/lib", "/lib64", "/etc/alternatives"]

    /// Checks every language's toolchain on the host and runs its version command (trusted
    /// toolchain binaries, so on the host, not in the sandbox), each bounded by `timeout`.
    ///
    /// A language is available when every toolchain file is an executable reachable only
    /// through `visibleRoots`, and the version command exits 0 within `timeout`. The result is
    /// in registry order.
    func detect(
        timeout: Duration = .seconds(10),
        visibleRoots: [String] = LanguageRegistry.sandboxVisibleRoots
    ) async -> [LanguageAvailability] {
        await withTaskGroup(of: (Int, LanguageAvailability).self) { group in
            for (index, language) in languages.enumerated() {
                let environment = environment(for: language)
                group.addTask {
                    (index, await Self.detect(language, environment: environment, timeout: timeout, visibleRoots: visibleRoots))
                }
            }
            var results = [LanguageAvailability?](repeating: nil, count: languages.count)
            for await (index, availability) in group { results[index] = availability }
            return results.compactMap { $0 }
        }
    }

    private static func detect(
        _ language: LanguageDefinition, environment: [String: String], timeout: Duration, visibleRoots: [String]
    ) async -> LanguageAvailability {
        func unavailable(_ reason: String) -> LanguageAvailability {
            LanguageAvailability(language: language, version: nil, unavailableReason: reason)
        }
        for path in language.toolchain {
            if let problem = ToolchainPath.problem(with: path, visibleRoots: visibleRoots) { return unavailable(problem) }
        }
        let result: HostCommandResult
        do {
            result = try await HostCommand.run(language.versionCommand, environment: environment, timeout: timeout)
        } catch {
            return unavailable("version command could not start: \(error)")
        }
        if result.timedOut { return unavailable("version command did not finish within \(timeout)") }
        guard result.exitStatus == 0 else {
            return unavailable("version command exited with status \(result.exitStatus)")
        }
        let output = String(decoding: result.output, as: UTF8.self)
        return LanguageAvailability(
            language: language, version: extractVersion(from: output, pattern: language.versionRegex), unavailableReason: nil)
    }

    /// The first capture group of `pattern` in `output` (multi-line: `^` matches at each line).
    static func extractVersion(from output: String, pattern: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines]),
              let match = regex.firstMatch(in: output, range: NSRange(output.startIndex..., in: output)),
              match.numberOfRanges > 1,
              let range = Range(match.range(at: 1), in: output)
        else { return nil }
        return String(output[range])
    }
}

/// Checks on a toolchain path.
enum ToolchainPath {
    /// Why `path` cannot serve inside the sandbox, or `nil` if it can: it must be an executable
    /// regular file, and every symbolic link on the way to it must stay inside `visibleRoots`.
    static func problem(with path: String, visibleRoots: [String]) -> String? {
        var current = path
        // Follow the chain link by link: realpath alone would hide a hop through /etc/alternatives.
        for _ in 0..<40 {
            guard isInside(current, roots: visibleRoots) else {
                return current == path
                    ? "\(path) is outside the directories the sandbox shows (\(visibleRoots.joined(separator: ", ")))"
                    : "\(path) leads through \(current), which the sandbox does not show"
            }
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: current) else { break }
            current = target.hasPrefix("/")
                ? target
                : URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(target).standardized.path
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "\(path) does not exist" }
        guard !isDirectory.boolValue, FileManager.default.isExecutableFile(atPath: path) else {
            return "\(path) is not an executable file"
        }
        return nil
    }

    private static func isInside(_ path: String, roots: [String]) -> Bool {
        roots.contains { path == $0 || path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
    }
}

/// What a host command did.
struct HostCommandResult: Sendable {
    /// Exit status, or 128 + signal number when killed by a signal.
    let exitStatus: Int32
    /// Standard output and standard error, interleaved as written.
    let output: [UInt8]
    let timedOut: Bool
}

/// Runs trusted host programs (toolchain version commands) with a deadline.
enum HostCommand {
    /// Runs `argv` directly (no shell) with exactly `environment`, in `directory` (default: the
    /// server's), killing it after `timeout`.
    ///
    /// Output goes to an unlinked temporary file rather than a pipe, so a chatty program can
    /// never block on a full pipe while we wait for it to exit.
    static func run(
        _ argv: [String], environment: [String: String], in directory: URL? = nil, timeout: Duration
    ) async throws -> HostCommandResult {
        precondition(!argv.isEmpty, "HostCommand.run needs a program")
        let outputURL = FileManager.default.temporaryDirectory
            .appendingPathComponent("sandbox-server-host-\(UUID().uuidString).out")
        guard FileManager.default.createFile(atPath: outputURL.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: outputURL.path])
        }
        defer { try? FileManager.default.removeItem(at: outputURL) }
        let outputHandle = try FileHandle(forWritingTo: outputURL)
        defer { try? outputHandle.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.environment = environment
        if let directory { process.currentDirectoryURL = directory }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outputHandle
        process.standardError = outputHandle

        // The exit is awaited through terminationHandler and the deadline enforced by a
        // dispatch timer, so neither waiting nor killing needs a thread of the (small)
        // cooperative pool: polling from a task missed its deadline when other tests kept
        // the pool busy.
        let state = HostCommandState()
        let (status, reason): (Int32, Process.TerminationReason) = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in
                state.markFinished()
                continuation.resume(returning: (finished.terminationStatus, finished.terminationReason))
            }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
                return
            }
            let pid = process.processIdentifier
            let (seconds, attoseconds) = timeout.components
            let delay = DispatchTimeInterval.nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) {
                if state.markTimedOutIfRunning() { kill(pid, SIGKILL) }
            }
        }
        let exitStatus = reason == .uncaughtSignal ? 128 + status : status
        let output = (try? Data(contentsOf: outputURL)).map { [UInt8]($0) } ?? []
        return HostCommandResult(exitStatus: exitStatus, output: output, timedOut: state.timedOut)
    }
}

/// Whether a host command finished or was killed for its deadline; shared by the
/// termination handler and the timer, which run on different threads.
private final class HostCommandState: Sendable {
    private struct Flags { var finished = false; var timedOut = false }
    private let flags = Mutex(Flags())

    func markFinished() { flags.withLock { $0.finished = true } }

    /// Marks the command timed out unless it already finished; true if the caller should kill it.
    func markTimedOutIfRunning() -> Bool {
        flags.withLock { flags in
            guard !flags.finished else { return false }
            flags.timedOut = true
            return true
        }
    }

    var timedOut: Bool { flags.withLock { $0.timedOut } }
}
