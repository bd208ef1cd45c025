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

            SETTINGS
            \(ServerSettings.helpText)
            """
    )

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("Settings as --name VALUE (see SETTINGS below).", valueName: "settings"))
    var settingArguments: [String] = []

    func run() throws {
        let resolved: (settings: ServerSettings, sources: [String: ServerSettings.Source])
        do {
            resolved = try ServerSettings.resolve(arguments: settingArguments, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
        let settings = resolved.settings
        var logger = Logger(label: "sandbox-server")
        logger.logLevel = .info
        if settings.apiKeys.isEmpty && !Self.isLoopback(settings.host) {
            let warning = """
                WARNING: listening on \(settings.host) WITHOUT AUTHENTICATION. Anyone who can reach this port \
                can run programs on this machine. Set api-keys (SANDBOX_SERVER_API_KEYS=KEY:admin,...) or bind 127.0.0.1.
                """
            FileHandle.standardError.write(Data((String(repeating: "!", count: 78) + "\n" + warning + "\n" + String(repeating: "!", count: 78) + "\n").utf8))
            logger.critical("no API keys on a non-loopback address", metadata: ["host": "\(settings.host)"])
        }
        if settings.webhookSecret == nil { logger.notice("webhook-secret not set: webhooks are sent unsigned") }

        // Block the stop signals before any thread starts, so only sigwait below receives them.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

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
        var received: Int32 = 0
        sigwait(&stopSignals, &received)
        logger.info("stopping", metadata: ["signal": "\(received)"])
        service.stop()
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
