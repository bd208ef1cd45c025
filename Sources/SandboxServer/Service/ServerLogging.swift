import Foundation
import Logging
import Synchronization

/// How log lines are written.
enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-29T10:09:25.123Z info sandbox-server: serving address=127.0.0.1:2358 workers=2`
    case text
    /// One JSON object per line: `ts`, `level`, `label`, `message`, then the metadata flattened.
    case json
}

/// Where the server's log lines go, in which format and from which level: one shared object
/// behind every ``ServerLogHandler``, so SIGHUP can change the level or format and reopen the
/// file for loggers that already exist.
///
/// A line is written with one `write(2)` on a descriptor opened with `O_APPEND`, so lines from
/// different threads never interleave and logrotate may rename the file at any time: lines go
/// to the renamed file until ``reopen()`` opens a new one at the configured path.
final class LogOutput: Sendable {
    /// What can change while the server runs.
    struct Options: Sendable, Equatable {
        var format: LogFormat = .text
        var level: Logger.Level = .info
        /// nil: standard error.
        var path: String?

        init(format: LogFormat = .text, level: Logger.Level = .info, path: String? = nil) {
            self.format = format
            self.level = level
            self.path = path
        }

        /// The log settings of `settings`.
        init(_ settings: ServerSettings) {
            self.init(format: settings.logFormat, level: settings.logLevel, path: settings.logFile)
        }
    }

    struct OpenError: Error, CustomStringConvertible {
        var description: String
    }

    private struct State {
        var options: Options
        var descriptor: Int32
    }

    private let state: Mutex<State>
    /// Copies of the level and format, read on every log call (each HTTP request logs a line)
    /// without taking the lock that writes hold.
    private let levelIndex: Atomic<Int>
    private let formatIndex: Atomic<Int>

    /// Opens the log file (created with mode 0640 if missing); throws naming the path when it cannot.
    init(_ options: Options) throws(OpenError) {
        let descriptor = try Self.open(options.path)
        state = Mutex(State(options: options, descriptor: descriptor))
        levelIndex = Atomic(Self.index(of: options.level))
        formatIndex = Atomic(Self.index(of: options.format))
    }

    var options: Options { state.withLock { $0.options } }
    var format: LogFormat { LogFormat.allCases[formatIndex.load(ordering: .relaxed)] }
    var level: Logger.Level { Logger.Level.allCases[levelIndex.load(ordering: .relaxed)] }

    private static func index<Value: CaseIterable & Equatable>(of value: Value) -> Int {
        Array(Value.allCases).firstIndex(of: value) ?? 0
    }

    /// Applies new options: the file is (re)opened at the new path — or the same one, which is
    /// what logrotate needs after renaming it. On failure nothing changes.
    func apply(_ options: Options) throws(OpenError) {
        let descriptor = try Self.open(options.path)
        let previous = state.withLock { state in
            defer {
                state = State(options: options, descriptor: descriptor)
                levelIndex.store(Self.index(of: options.level), ordering: .relaxed)
                formatIndex.store(Self.index(of: options.format), ordering: .relaxed)
            }
            return state.descriptor
        }
        if previous != STDERR_FILENO { close(previous) }
    }

    /// Opens the configured file again (after logrotate renamed it).
    func reopen() throws(OpenError) { try apply(options) }

    /// Writes one line (a newline is appended).
    func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        state.withLock { state in
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(state.descriptor, $0.baseAddress, $0.count) }
                if written < 0, errno == EINTR { continue }
                if written <= 0 { return }  // a full disk must not stop the server; the line is lost
                offset += written
            }
        }
    }

    private static func open(_ path: String?) throws(OpenError) -> Int32 {
        guard let path else { return STDERR_FILENO }
        let descriptor = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw OpenError(description: "cannot open log file \(path): \(String(cString: strerror(errno)))")
        }
        return descriptor
    }

    deinit {
        let descriptor = state.withLock { $0.descriptor }
        if descriptor != STDERR_FILENO { close(descriptor) }
    }
}

/// The server's swift-log handler: formats each message as text or a JSON line (per
/// ``LogOutput/format``) and writes it to the shared ``LogOutput``.
struct ServerLogHandler: LogHandler {
    let label: String
    let output: LogOutput
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    /// Set only when code sets a logger's level explicitly; otherwise the output's level (which
    /// SIGHUP can change) applies.
    private var levelOverride: Logger.Level?

    init(label: String, output: LogOutput, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.output = output
        self.metadataProvider = metadataProvider
    }

    var logLevel: Logger.Level {
        get { levelOverride ?? output.level }
        set { levelOverride = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit = event.metadata { merged.merge(explicit) { $1 } }
        let entry = LogEntry(date: Date(), level: event.level, label: label, message: event.message.description, metadata: merged)
        output.write(output.format == .json ? entry.jsonLine : entry.textLine)
    }
}

/// One formatted log message.
struct LogEntry: Sendable {
    var date: Date
    var level: Logger.Level
    var label: String
    var message: String
    var metadata: Logger.Metadata

    /// The keys a JSON line itself uses; metadata with one of these names is written as `metadata.<name>`.
    static let reservedKeys: Set<String> = ["ts", "level", "label", "message"]

    /// `ts level label: message key=value …`, metadata sorted by key; values with spaces, quotes,
    /// `=` or control characters are quoted and escaped, so a line stays one line.
    var textLine: String {
        var line = "\(Timestamp.format(date)) \(level.rawValue) \(label): \(Self.escapedForText(message, quoteIfNeeded: false))"
        for (key, value) in Self.flattened(metadata).sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(Self.escapedForText(Self.text(of: value), quoteIfNeeded: true))"
        }
        return line
    }

    /// `{"ts":"…","level":"…","label":"…","message":"…",<metadata>}`. Nested metadata dictionaries
    /// become dotted keys (`job.id`); arrays become JSON arrays of strings.
    var jsonLine: String {
        var line = "{\"ts\":\"\(Timestamp.format(date))\",\"level\":\"\(level.rawValue)\",\"label\":"
        Self.appendJSONString(label, to: &line)
        line += ",\"message\":"
        Self.appendJSONString(message, to: &line)
        for (key, value) in Self.flattened(metadata).sorted(by: { $0.key < $1.key }) {
            line += ","
            Self.appendJSONString(Self.reservedKeys.contains(key) ? "metadata." + key : key, to: &line)
            line += ":"
            if case .array(let items) = value {
                line += "["
                for (index, item) in items.enumerated() {
                    if index > 0 { line += "," }
                    Self.appendJSONString(Self.text(of: item), to: &line)
                }
                line += "]"
            } else {
                Self.appendJSONString(Self.text(of: value), to: &line)
            }
        }
        line += "}"
        return line
    }

    /// Nested dictionaries flattened into dotted keys; strings, convertibles and arrays kept.
    static func flattened(_ metadata: Logger.Metadata, prefix: String = "") -> [String: Logger.MetadataValue] {
        var result: [String: Logger.MetadataValue] = [:]
        for (key, value) in metadata {
            if case .dictionary(let nested) = value {
                result.merge(flattened(nested, prefix: prefix + key + ".")) { $1 }
            } else {
                result[prefix + key] = value
            }
        }
        return result
    }

    static func text(of value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let items): "[" + items.map { text(of: $0) }.joined(separator: ",") + "]"
        case .dictionary(let nested): "{" + nested.sorted { $0.key < $1.key }.map { "\($0.key)=\(text(of: $0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// JSON string literal with `"`, `\` and control characters escaped (JSON allows all other
    /// characters verbatim, and Swift strings are always valid Unicode).
    static func appendJSONString(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                line += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// Control characters escaped (a message can never forge a second line); with
    /// `quoteIfNeeded`, a value containing a space, `"` or `=` — or an empty one — is quoted.
    static func escapedForText(_ text: String, quoteIfNeeded: Bool) -> String {
        let needsQuotes = quoteIfNeeded && (text.isEmpty || text.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" })
        let needsEscaping = text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || (needsQuotes && ($0 == "\"" || $0 == "\\")) }
        guard needsQuotes || needsEscaping else { return text }
        var escaped = ""
        if needsQuotes {
            appendJSONString(text, to: &escaped)
            return escaped
        }
        appendJSONString(text, to: &escaped)
        return String(escaped.dropFirst().dropLast())
    }

}
