import Foundation
import Logging

/// An API key and what it may do.
struct APIKey: Sendable, Equatable {
    enum Role: String, Sendable, Equatable, CaseIterable {
        /// Submits, reads and cancels jobs.
        case user
        /// Everything `user` may, plus listing all jobs.
        case admin
    }

    var key: String
    var role: Role
}

/// Everything `sandbox-server serve` can be told, resolved from flags, environment variables,
/// a JSON config file and defaults (in that order of precedence).
///
/// Each setting is declared once, in ``ServerSettings/definitions``: its name (the config-file
/// key and, with `--`, the flag), environment variable, default and help. The command-line
/// parser, `--help`, the environment and config-file readers and the documentation table all
/// come from that list.
struct ServerSettings: Sendable, Equatable {
    var host = "127.0.0.1"
    var port = 2358
    var dataDirectory = "./data"
    var workers = ProcessInfo.processInfo.activeProcessorCount
    var configFile: String?
    /// Queued jobs beyond which submissions are refused with 503 and `Retry-After`.
    var maxQueuedJobs = 1_000
    /// Longest `?wait=` a client may ask for, in seconds.
    var maxWaitSeconds = 60
    /// A runner's lease on a job; renewed while it runs, so it bounds how long a dead runner's
    /// job waits before it is requeued.
    var leaseSeconds = 30
    /// Claims a job may use before it finishes as `internal_error` (a job that keeps killing its runner).
    var maxAttempts = 3
    /// HMAC-SHA256 key for webhook signatures; webhooks are sent unsigned without one.
    var webhookSecret: String?
    /// Hosts or CIDR ranges webhooks may reach although they are loopback or private.
    var webhookAllow: [String] = []
    /// API keys; empty means no authentication.
    var apiKeys: [APIKey] = []
    /// Whether jobs may ask for network access (`limits.network`).
    var allowNetwork = false
    /// Sandbox placement (see `SandboxOptions`).
    var workRoot = "/run/sandbox-server"
    var cgroupParent = "sandbox-server"
    var cgroupVersion = "auto"
    var firstUID: UInt32 = 60_000
    /// cgroup v2 in a delegated subtree (systemd `Delegate=yes`).
    var cgroupDelegated = false
    /// Each job also in a user namespace.
    var userNamespace = false
    /// Log lines as text or JSON, from which level, to which file (nil: standard error).
    var logFormat: LogFormat = .text
    var logLevel: Logger.Level = .info
    var logFile: String?
    /// Debug: job sources, stdin and outputs in the job log lines.
    var logJobContent = false
    /// How long a stop (SIGTERM, SIGINT) lets running jobs finish before requeueing them.
    var shutdownGracePeriodSeconds = 30
    /// Finished and cancelled jobs are deleted this long after finishing; 0 keeps them forever.
    var jobRetentionSeconds = 7 * 86_400
    /// Cached files (Judge0 additional files, Jobe uploads) are deleted this long after their
    /// last use; 0 keeps them (the cache's size cap still evicts).
    var fileRetentionSeconds = 86_400

    /// Settings SIGHUP applies to a running server; a change to any other is logged and ignored
    /// until the next start.
    static let reloadableNames: Set<String> = [
        "log-format", "log-level", "log-file", "log-job-content", "api-keys", "job-retention", "file-retention",
        "shutdown-grace-period",
    ]

    /// Where a value came from, for the start-up log.
    enum Source: String, Sendable { case flag, environment, file, `default` }

    /// One setting: how it is spelled everywhere and how its text is applied.
    struct Definition: Sendable {
        /// Config-file key and flag name (`port` → `--port`).
        let name: String
        /// Environment variable (`SANDBOX_SERVER_PORT`).
        var environmentVariable: String { "SANDBOX_SERVER_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
        /// The flag (`--port`).
        var flag: String { "--" + name }
        /// Placeholder in help (`N`, `PATH`…); nil for on/off switches written `--name` alone.
        let valueName: String?
        /// The default as documentation shows it.
        let defaultDescription: String
        let help: String
        /// Parses `text` into `settings`; throws a message naming the problem.
        let apply: @Sendable (inout ServerSettings, String) throws -> Void
    }

    struct SettingError: Error, CustomStringConvertible, Equatable {
        var description: String
    }

    /// The settings table. Order is the order of `--help` and of the documentation.
    static let definitions: [Definition] = [
        Definition(name: "host", valueName: "ADDRESS", defaultDescription: "127.0.0.1",
                   help: "Address to listen on. Binding a non-loopback address without api-keys logs a loud warning.") {
            $0.host = try nonEmpty($1, "host")
        },
        Definition(name: "port", valueName: "PORT", defaultDescription: "2358", help: "TCP port (0 picks a free one).") {
            $0.port = try integer($1, "port", in: 0...65_535)
        },
        Definition(name: "data-dir", valueName: "PATH", defaultDescription: "./data",
                   help: "Directory of the job database (jobs.sqlite3); created if missing.") {
            $0.dataDirectory = try nonEmpty($1, "data-dir")
        },
        Definition(name: "workers", valueName: "N", defaultDescription: "number of CPUs",
                   help: "Jobs run at once (runner threads and sandbox slots).") {
            $0.workers = try integer($1, "workers", in: 1...256)
        },
        Definition(name: "config", valueName: "FILE", defaultDescription: "none",
                   help: "JSON file of settings: an object whose keys are these names (\"port\": 2358). Flag or environment only.") {
            $0.configFile = try nonEmpty($1, "config")
        },
        Definition(name: "max-queue", valueName: "N", defaultDescription: "1000",
                   help: "Queued jobs beyond which submissions get 503 with Retry-After.") {
            $0.maxQueuedJobs = try integer($1, "max-queue", in: 1...10_000_000)
        },
        Definition(name: "max-wait", valueName: "SECONDS", defaultDescription: "60",
                   help: "Longest ?wait= a request may hold the connection.") {
            $0.maxWaitSeconds = try integer($1, "max-wait", in: 0...3_600)
        },
        Definition(name: "lease", valueName: "SECONDS", defaultDescription: "30",
                   help: "Runner lease on a job, renewed while it runs; a crashed runner's job is requeued after it.") {
            $0.leaseSeconds = try integer($1, "lease", in: 2...3_600)
        },
        Definition(name: "max-attempts", valueName: "N", defaultDescription: "3",
                   help: "Claims per job before a job whose runner keeps dying finishes as internal_error.") {
            $0.maxAttempts = try integer($1, "max-attempts", in: 1...100)
        },
        Definition(name: "webhook-secret", valueName: "SECRET", defaultDescription: "none (unsigned)",
                   help: "Key of the X-Sandbox-Signature HMAC-SHA256 header on webhook requests.") {
            $0.webhookSecret = $1.isEmpty ? nil : $1
        },
        Definition(name: "webhook-allow", valueName: "LIST", defaultDescription: "none",
                   help: "Comma-separated hosts or CIDR ranges (127.0.0.1/32, hooks.internal) webhooks may reach although they resolve to loopback or private addresses.") {
            $0.webhookAllow = try list($1).map { entry in
                guard AddressRule(entry) != nil else { throw SettingError(description: "webhook-allow: \"\(entry)\" is neither a host name nor an address/CIDR range") }
                return entry
            }
        },
        Definition(name: "api-keys", valueName: "LIST", defaultDescription: "none (no authentication)",
                   help: "Comma-separated KEY:ROLE pairs, ROLE user or admin. Clients send Authorization: Bearer KEY or X-Auth-Token: KEY.") {
            $0.apiKeys = try list($1).map { entry in
                let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, let role = APIKey.Role(rawValue: parts[1]) else {
                    throw SettingError(description: "api-keys: expected KEY:user or KEY:admin, got \"\(entry.prefix(4))…\"")
                }
                return APIKey(key: parts[0], role: role)
            }
        },
        Definition(name: "allow-network", valueName: nil, defaultDescription: "false",
                   help: "Let jobs ask for network access (limits.network); off, every job has loopback only.") {
            $0.allowNetwork = try boolean($1, "allow-network")
        },
        Definition(name: "work-root", valueName: "PATH", defaultDescription: "/run/sandbox-server",
                   help: "Directory for the sandbox's mount points and boxes.") {
            $0.workRoot = try nonEmpty($1, "work-root")
        },
        Definition(name: "cgroup-parent", valueName: "NAME", defaultDescription: "sandbox-server",
                   help: "Name of the parent cgroup of all sandboxes.") {
            $0.cgroupParent = try nonEmpty($1, "cgroup-parent")
        },
        Definition(name: "cgroup-version", valueName: "auto|1|2", defaultDescription: "auto", help: "cgroup version to use.") {
            guard ["auto", "1", "2", "v1", "v2"].contains($1) else { throw SettingError(description: "cgroup-version must be auto, 1 or 2") }
            $0.cgroupVersion = $1
        },
        Definition(name: "first-uid", valueName: "UID", defaultDescription: "60000",
                   help: "uid of the first sandbox slot; slot n runs as first-uid + n.") {
            $0.firstUID = UInt32(try integer($1, "first-uid", in: 1_000...4_000_000_000))
        },
        Definition(name: "cgroup-delegated", valueName: nil, defaultDescription: "false",
                   help: "cgroup v2 in a delegated subtree (systemd Delegate=yes, a container's cgroup namespace): the server moves itself into a leaf 'supervisor' group and creates job groups beside it, touching nothing outside its own group.") {
            $0.cgroupDelegated = try boolean($1, "cgroup-delegated")
        },
        Definition(name: "user-namespace", valueName: nil, defaultDescription: "false",
                   help: "Also put every job in a user namespace: root inside is the slot's unprivileged uid outside.") {
            $0.userNamespace = try boolean($1, "user-namespace")
        },
        Definition(name: "log-format", valueName: "text|json", defaultDescription: "text",
                   help: "Log lines as human-readable text or as JSON objects, one per line. Reloaded on SIGHUP.") {
            guard let format = LogFormat(rawValue: $1.lowercased()) else { throw SettingError(description: "log-format must be text or json, not \"\($1)\"") }
            $0.logFormat = format
        },
        Definition(name: "log-level", valueName: "LEVEL", defaultDescription: "info",
                   help: "Least severe level logged: trace, debug, info, notice, warning, error or critical. Reloaded on SIGHUP.") {
            guard let level = Logger.Level(rawValue: $1.lowercased()) else {
                throw SettingError(description: "log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \"\($1)\"")
            }
            $0.logLevel = level
        },
        Definition(name: "log-file", valueName: "PATH", defaultDescription: "standard error",
                   help: "Append log lines to this file instead of standard error. SIGHUP reopens it (rename it, then send SIGHUP: logrotate's way).") {
            $0.logFile = try nonEmpty($1, "log-file")
        },
        Definition(name: "log-job-content", valueName: nil, defaultDescription: "false",
                   help: "Debugging only: put job sources, stdin and outputs in the job log lines. Off, they never appear in logs. Reloaded on SIGHUP.") {
            $0.logJobContent = try boolean($1, "log-job-content")
        },
        Definition(name: "shutdown-grace-period", valueName: "DURATION", defaultDescription: "30s",
                   help: "On SIGTERM or SIGINT, how long running jobs may take to finish; the rest are requeued for the next start. Reloaded on SIGHUP.") {
            $0.shutdownGracePeriodSeconds = try duration($1, "shutdown-grace-period", in: 0...3_600)
        },
        Definition(name: "job-retention", valueName: "DURATION", defaultDescription: "7d",
                   help: "Finished and cancelled jobs (results, webhooks) are deleted this long after they finished; 0 keeps them forever. Queued and running jobs are never deleted. Reloaded on SIGHUP.") {
            $0.jobRetentionSeconds = try duration($1, "job-retention", in: 0...(10 * 365 * 86_400))
        },
        Definition(name: "file-retention", valueName: "DURATION", defaultDescription: "1d",
                   help: "Cached files (Judge0 additional files, Jobe uploads) are deleted this long after their last use; 0 keeps them until the cache's size cap evicts them. Reloaded on SIGHUP.") {
            $0.fileRetentionSeconds = try duration($1, "file-retention", in: 0...(10 * 365 * 86_400))
        },
    ]

    static func definition(named name: String) -> Definition? { definitions.first { $0.name == name } }

    /// Settings as resolved from flags, environment and config file.
    struct Resolution {
        var settings: ServerSettings
        /// Where each setting came from, by name.
        var sources: [String: Source]
        /// The text each setting was given, by name, from the highest-precedence layer that has
        /// it (settings left at their default are absent). Two resolutions differ in a setting
        /// exactly when its entry differs, which is how a reload finds what changed.
        var given: [String: String]
    }

    /// Resolves every setting: flags over environment over config file over defaults. The config
    /// file is read once, so the settings and the given values always describe the same file.
    /// - Parameters:
    ///   - arguments: `--name value`, `--name=value`, or `--name` alone for switches.
    ///   - environment: the process environment.
    ///   - readFile: reads the config file (replaceable in tests).
    static func resolve(
        arguments: [String], environment: [String: String],
        readFile: (String) throws -> Data = { try Data(contentsOf: URL(fileURLWithPath: $0)) }
    ) throws(SettingError) -> Resolution {
        try resolve(layers(arguments: arguments, environment: environment, readFile: readFile))
    }

    private struct Layers {
        var flags: [String: String]
        var environment: [String: String]
        var file: [String: String]
    }

    private static func layers(
        arguments: [String], environment: [String: String], readFile: (String) throws -> Data
    ) throws(SettingError) -> Layers {
        let flags = try parseFlags(arguments)
        var fromEnvironment: [String: String] = [:]
        for definition in definitions {
            if let value = environment[definition.environmentVariable] { fromEnvironment[definition.name] = value }
        }
        var fromFile: [String: String] = [:]
        if let path = flags["config"] ?? fromEnvironment["config"] {
            let data: Data
            do { data = try readFile(path) } catch {
                throw SettingError(description: "cannot read config file \(path): \(error.localizedDescription)")
            }
            fromFile = try parseConfigFile(data, path: path)
        }
        return Layers(flags: flags, environment: fromEnvironment, file: fromFile)
    }

    private static func resolve(_ layers: Layers) throws(SettingError) -> Resolution {
        let (flags, fromEnvironment, fromFile) = (layers.flags, layers.environment, layers.file)
        var settings = ServerSettings()
        var sources: [String: Source] = [:]
        var given: [String: String] = [:]
        for definition in definitions {
            let layered: [(Source, String?)] = [(.flag, flags[definition.name]), (.environment, fromEnvironment[definition.name]),
                                                (.file, fromFile[definition.name])]
            guard let (source, value) = layered.first(where: { $0.1 != nil }).map({ ($0.0, $0.1!) }) else {
                sources[definition.name] = .default
                continue
            }
            do {
                try definition.apply(&settings, value)
            } catch {
                let origin = switch source {
                case .flag: definition.flag
                case .environment: definition.environmentVariable
                case .file: "\"\(definition.name)\" in the config file"
                case .default: "default"
                }
                throw SettingError(description: "\(origin): \((error as? SettingError)?.description ?? "\(error)")")
            }
            sources[definition.name] = source
            given[definition.name] = value
        }
        return Resolution(settings: settings, sources: sources, given: given)
    }

    private static func parseFlags(_ arguments: [String]) throws(SettingError) -> [String: String] {
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else { throw SettingError(description: "unexpected argument \"\(argument)\"") }
            var name = String(argument.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let definition = definition(named: name) else {
                let suggestion = FieldNameSuggestion.closest(to: name, among: definitions.map(\.name))
                throw SettingError(description: "unknown option --\(name)" + (suggestion.map { "; did you mean --\($0)?" } ?? ""))
            }
            if value == nil {
                if definition.valueName == nil {
                    value = "true"
                } else {
                    guard index < arguments.count else { throw SettingError(description: "--\(name) needs a value (\(definition.valueName!))") }
                    value = arguments[index]
                    index += 1
                }
            }
            values[name] = value
        }
        return values
    }

    /// A JSON object whose keys are setting names; values may be strings, numbers, booleans,
    /// or (for lists) arrays of strings.
    static func parseConfigFile(_ data: Data, path: String) throws(SettingError) -> [String: String] {
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw SettingError(description: "config file \(path) is not a JSON object")
        }
        var values: [String: String] = [:]
        for (key, value) in object {
            guard definition(named: key) != nil, key != "config" else {
                let suggestion = FieldNameSuggestion.closest(to: key, among: definitions.map(\.name))
                throw SettingError(description: "config file \(path): unknown setting \"\(key)\"" + (suggestion.map { "; did you mean \"\($0)\"?" } ?? ""))
            }
            func scalar(_ value: JSONValue) -> String? {
                switch value {
                case .string(let text): text
                case .bool(let flag): flag ? "true" : "false"
                case .integer(let number): String(number)
                case .number(let number): number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
                default: nil
                }
            }
            if let text = scalar(value) {
                values[key] = text
            } else if case .array(let items) = value, case let texts = items.compactMap(scalar), texts.count == items.count {
                values[key] = texts.joined(separator: ",")
            } else {
                throw SettingError(description: "config file \(path): \"\(key)\" must be a string, number, boolean or list of them")
            }
        }
        return values
    }

    /// `--help` text: every setting with its flag, environment variable and default.
    static var helpText: String {
        definitions.map { definition in
            let flag = definition.flag + (definition.valueName.map { " <\($0)>" } ?? "")
            return "  \(flag)\n      \(definition.help)\n      env \(definition.environmentVariable); default: \(definition.defaultDescription)"
        }.joined(separator: "\n")
    }

    /// The configuration table as Markdown (docs and README are generated from this).
    static var markdownTable: String {
        var lines = ["| Setting (config key) | Flag | Environment | Default | Meaning |", "|---|---|---|---|---|"]
        for definition in definitions {
            let flag = definition.flag + (definition.valueName.map { " \($0)" } ?? "")
            lines.append("| `\(definition.name)` | `\(flag)` | `\(definition.environmentVariable)` | \(definition.defaultDescription) | \(definition.help.replacingOccurrences(of: "|", with: "\\|")) |")
        }
        return lines.joined(separator: "\n")
    }

    // MARK: Value parsers

    private static func nonEmpty(_ text: String, _ name: String) throws(SettingError) -> String {
        guard !text.isEmpty else { throw SettingError(description: "\(name) must not be empty") }
        return text
    }

    private static func integer(_ text: String, _ name: String, in range: ClosedRange<Int>) throws(SettingError) -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw SettingError(description: "\(name) must be an integer, not \"\(text)\"")
        }
        guard range.contains(value) else {
            throw SettingError(description: "\(name) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
        }
        return value
    }

    /// Seconds from `90`, `90s`, `15m`, `12h` or `7d` (`0` is zero whatever the unit).
    static func duration(_ text: String, _ name: String, in range: ClosedRange<Int>) throws(SettingError) -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(suffix: String, seconds: Int)] = [("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)]
        var number = Substring(trimmed)
        var multiplier = 1
        if let unit = units.first(where: { trimmed.hasSuffix($0.suffix) }) {
            number = number.dropLast(unit.suffix.count)
            multiplier = unit.seconds
        }
        guard let value = Int(number), value >= 0, value <= Int.max / 86_400 else {
            throw SettingError(description: "\(name) must be a duration such as 30s, 15m, 12h or 7d (or 0), not \"\(text)\"")
        }
        let seconds = value * multiplier
        guard range.contains(seconds) else {
            throw SettingError(description: "\(name) must be between \(range.lowerBound) and \(range.upperBound) seconds, not \(seconds)")
        }
        return seconds
    }

    private static func boolean(_ text: String, _ name: String) throws(SettingError) -> Bool {
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw SettingError(description: "\(name) must be true or false, not \"\(text)\"")
        }
    }

    private static func list(_ text: String) throws(SettingError) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
