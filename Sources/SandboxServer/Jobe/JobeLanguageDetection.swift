import Foundation
import Synchronization

/// Which Jobe languages this machine has, found the way Jobe finds them: a language is listed
/// when its version command exits 0 with output, and its version is read from that output
/// (`Unknown` when it cannot be).
///
/// This is separate from the native registry's detection: Jobe's command lines call the
/// Debian program names (`/usr/bin/java`, `/usr/bin/php`, `fpc`, …), which are reached through
/// `/etc/alternatives`; the sandbox shows that directory, so they work inside it.
enum JobeLanguageDetection {
    /// A language found on this machine.
    struct Found: Sendable, Equatable {
        var language: JobeLanguage
        var version: String
    }

    /// The version command of each language, and the pattern whose first group is the version.
    static func versionProbe(for id: String) -> (command: [String], pattern: String) {
        switch id {
        case "c": (["/usr/bin/gcc", "--version"], #"^gcc .* ([0-9]+\.[0-9]+\.[0-9]+)"#)
        case "cpp": (["/usr/bin/g++", "--version"], #"^g\+\+ .* ([0-9]+\.[0-9]+\.[0-9]+)"#)
        case "java": ([JobeLanguage.Program.java, "-version"], #"version "([^"]+)""#)
        case "nodejs": ([JobeLanguage.Program.nodejs, "--version"], #"v?([0-9]+\.[0-9]+\.[0-9]+)"#)
        case "php": ([JobeLanguage.Program.php, "--version"], #"PHP ([0-9]+\.[0-9]+\.[0-9]+)"#)
        case "python3": ([JobeLanguage.Program.python3, "--version"], #"Python ([0-9]+\.[0-9]+\.[0-9]+)"#)
        case "pascal": (["/usr/bin/fpc", "-iV"], #"([0-9]+\.[0-9]+\.[0-9]+)"#)
        default: ([JobeLanguage.Program.octave, "--version"], #"version ([0-9]+\.[0-9]+\.[0-9]+)"#)
        }
    }

    /// ``detect(timeout:)`` run once per process (Jobe caches its list too): toolchains do not
    /// change under a running server, and tests start many services.
    static let detectedOnce: [Found] = detect()

    /// Runs every version command (in parallel, each bounded by `timeout`) and returns the
    /// languages found, in Jobe's (alphabetical) order. Blocks: call it at start-up, not on
    /// Swift's cooperative pool.
    static func detect(timeout: TimeInterval = 15) -> [Found] {
        let languages = JobeLanguage.all.values.sorted { $0.id < $1.id }
        let results = Mutex<[String: String]>([:])
        DispatchQueue.concurrentPerform(iterations: languages.count) { index in
            let language = languages[index]
            guard language.requiredPrograms.allSatisfy({ FileManager.default.isExecutableFile(atPath: $0) }) else { return }
            let probe = versionProbe(for: language.id)
            guard let output = run(probe.command, timeout: timeout), !output.isEmpty else { return }
            let version = LanguageRegistry.extractVersion(from: output, pattern: probe.pattern) ?? "Unknown"
            results.withLock { $0[language.id] = version }
        }
        let versions = results.withLock { $0 }
        return languages.compactMap { language in versions[language.id].map { Found(language: language, version: $0) } }
    }

    /// stdout and stderr of `command` when it exits 0 within `timeout`; nil otherwise.
    private static func run(_ command: [String], timeout: TimeInterval) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let finished = DispatchSemaphore(value: 0)
        let output = Mutex<Data>(Data())
        DispatchQueue.global().async {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            output.withLock { $0 = data }
            finished.signal()
        }
        if finished.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            return nil
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: output.withLock { $0 }, as: UTF8.self)
    }
}
