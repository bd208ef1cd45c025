import ArgumentParser
import Foundation
import Logging

/// `sandbox-server serve`: the job service over HTTP.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the job service: the native HTTP API, runners, webhooks.",
        discussion: """
            Every setting can be given as a flag, an environment variable or a key of the JSON \
            file named by --config; a flag wins over the environment, which wins over the file, \
            which wins over the default. Needs root (sandboxes use namespaces, mounts and cgroups).

            SIGTERM or SIGINT stops the server: it stops accepting, lets running jobs finish within \
            shutdown-grace-period, requeues the rest and exits 0. SIGHUP reopens the log file and \
            reloads the settings marked "Reloaded on SIGHUP" from the config file.

            SETTINGS
            \(ServerSettings.helpText)
            """
    )

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings as --name VALUE (see SETTINGS below).", valueName: "settings"))
    var settingArguments: [String] = []

    func run() throws {
        let resolved: ServerSettings.Resolution
        do {
            resolved = try ServerSettings.resolve(arguments: settingArguments, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
        let settings = resolved.settings
        let logOutput: LogOutput
        do {
            logOutput = try LogOutput(LogOutput.Options(settings))
        } catch {
            throw ValidationError(error.description)
        }
        LoggingSystem.bootstrap { label in ServerLogHandler(label: label, output: logOutput) }
        let logger = Logger(label: "sandbox-server")
        if settings.apiKeys.isEmpty && !Self.isLoopback(settings.host) {
            let warning = """
                WARNING: listening on \(settings.host) WITHOUT AUTHENTICATION. Anyone who can reach this port \
                can run programs on this machine. Set api-keys (SANDBOX_SERVER_API_KEYS=KEY:admin,...) or bind 127.0.0.1.
                """
            FileHandle.standardError.write(Data((String(repeating: "!", count: 78) + "\n" + warning + "\n" + String(repeating: "!", count: 78) + "\n").utf8))
            logger.critical("no API keys on a non-loopback address", metadata: ["host": "\(settings.host)"])
        }
        if settings.webhookSecret == nil { logger.notice("webhook-secret not set: webhooks are sent unsigned") }

        // Block the signals before any thread starts, so only sigwait below receives them.
        var handledSignals = sigset_t()
        sigemptyset(&handledSignals)
        sigaddset(&handledSignals, SIGINT)
        sigaddset(&handledSignals, SIGTERM)
        sigaddset(&handledSignals, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &handledSignals, nil)

        let registry: LanguageRegistry
        do { registry = try LanguageRegistry.embedded() } catch { throw ValidationError("the language registry is invalid: \(error)") }
        let languages = SandboxService.detectLanguages(registry)
        for language in languages where !language.isAvailable {
            logger.notice("language unavailable", metadata: ["language": "\(language.language.id)", "reason": "\(language.unavailableReason ?? "")"])
        }
        let service: SandboxService
        do {
            service = try SandboxService(settings: settings, registry: registry, languages: languages, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("sandbox-server: \(error)\n".utf8))
            throw ExitCode(1)
        }
        // What each setting was given as, to tell which ones a reload changes.
        var given = resolved.given
        while true {
            var received: Int32 = 0
            guard sigwait(&handledSignals, &received) == 0 else { continue }
            if received == SIGHUP {
                given = reload(given, logOutput: logOutput, service: service, logger: logger)
                continue
            }
            logger.notice("signal received: stopping", metadata: ["event": "server.signal", "signal": "\(Self.signalName(received))"])
            break
        }
        service.stop()
    }

    /// SIGHUP: resolves the settings again (the config file may have changed), reopens the log
    /// file, and applies the reloadable settings. Invalid settings leave everything as it was,
    /// except that the log file is still reopened (logrotate renamed it before sending SIGHUP).
    /// Returns the given values now in force.
    private func reload(_ current: [String: String], logOutput: LogOutput, service: SandboxService,
                        logger: Logger) -> [String: String] {
        let environment = ProcessInfo.processInfo.environment
        do {
            let resolved = try ServerSettings.resolve(arguments: settingArguments, environment: environment)
            let (settings, given) = (resolved.settings, resolved.given)
            try logOutput.apply(LogOutput.Options(settings))
            service.applyReloaded(settings)
            let changed = ServerSettings.definitions.map(\.name).filter { given[$0] != current[$0] }
            let needRestart = changed.filter { !ServerSettings.reloadableNames.contains($0) }
            logger.notice("configuration reloaded", metadata: [
                "event": "config.reloaded", "changed": .array(changed.filter { !needRestart.contains($0) }.map { .string($0) })])
            if !needRestart.isEmpty {
                logger.warning("changed settings that only take effect on restart were not applied", metadata: [
                    "event": "config.reloaded", "settings": .array(needRestart.map { .string($0) })])
            }
            // Settings that need a restart keep the value in force, so the next reload names them again.
            var inForce = given
            for name in needRestart { inForce[name] = current[name] }
            return inForce
        } catch {
            do { try logOutput.reopen() } catch {
                FileHandle.standardError.write(Data("sandbox-server: \(error)\n".utf8))
            }
            logger.error("configuration reload failed; the previous settings stay in force", metadata: [
                "event": "config.reload_failed", "error": "\(error)"])
            return current
        }
    }

    static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: String(signal)
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
