import ArgumentParser
import Foundation
import HTTPCore
import Isolation
import JobStore
import Logging
import Synchronization

/// The whole running service: job store, sandbox, runners, webhook sender and HTTP server,
/// started and stopped together. `serve`, the end-to-end tests and `bench e2e` all use it.
final class SandboxService: Sendable {
    let settings: ServerSettings
    let store: SQLiteJobStore
    let sandbox: Sandbox
    let service: JobService
    let runners: JobRunnerPool
    let webhooks: WebhookSender
    let routes: APIRoutes
    /// The Judge0-compatible API, served at the root next to `/v1`.
    let judge0: Judge0Routes
    let server: HTTPServer
    /// Deletes old finished jobs and cached files and vacuums the database.
    let retention: RetentionSweeper
    /// The API keys every front end checks; replaced by a configuration reload.
    let keyring: APIKeyring
    /// Everything `GET /metrics` reports (also ``JobService/metrics``).
    let metrics: ServerMetrics
    /// The router the server serves: the native, Judge0 and Jobe routes, observed for metrics.
    let router: Router
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    /// The shutdown grace period in seconds (reloadable).
    private let gracePeriodSeconds: Atomic<Int>

    /// The port the HTTP server listens on (the real one when 0 was asked for).
    var port: Int { server.localAddress.port }

    /// Why the service cannot start, with what to do about it.
    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    /// Opens the store in the data directory, sets up the sandbox, starts runners, the webhook
    /// sender and the HTTP server.
    /// - Parameters:
    ///   - languages: the result of `LanguageRegistry.detect()`; only available languages are offered.
    ///   - webhookPollInterval: how often due webhooks are looked for (tests shorten it).
    ///   - storeSynchronous: the store's durability; only `bench e2e` lowers it, to measure what
    ///     syncing costs (the server always syncs acknowledged writes).
    init(settings: ServerSettings, registry: LanguageRegistry, languages: [LanguageAvailability], logger: Logger,
         webhookPollInterval: Duration = .milliseconds(250), storeSynchronous: Synchronous = .full) throws {
        self.settings = settings
        self.logger = logger
        gracePeriodSeconds = Atomic(settings.shutdownGracePeriodSeconds)
        keyring = APIKeyring(settings.apiKeys)
        do {
            try FileManager.default.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw StartError(description: "cannot create the data directory \(settings.dataDirectory): \(error.localizedDescription)")
        }
        var storeConfiguration = SQLiteJobStore.Configuration(path: settings.dataDirectory + "/jobs.sqlite3")
        storeConfiguration.maxAttempts = settings.maxAttempts
        storeConfiguration.synchronous = storeSynchronous
        do {
            store = try SQLiteJobStore(configuration: storeConfiguration)
        } catch {
            throw StartError(description: "cannot open the job store: \(error)")
        }
        if !store.startupRequeue.requeued.isEmpty || !store.startupRequeue.abandoned.isEmpty {
            logger.warning("jobs of a previous run recovered", metadata: [
                "requeued": "\(store.startupRequeue.requeued.count)", "abandoned": "\(store.startupRequeue.abandoned.count)"])
        }

        var sandboxArguments = ["--work-root", settings.workRoot, "--cgroup-parent", settings.cgroupParent,
                                "--cgroup-version", settings.cgroupVersion, "--first-uid", String(settings.firstUID)]
        if settings.cgroupDelegated { sandboxArguments.append("--cgroup-delegated") }
        if settings.userNamespace { sandboxArguments.append("--user-namespace") }
        let sandboxOptions = try SandboxOptions.parse(sandboxArguments)
        do {
            sandbox = try Sandbox(configuration: try sandboxOptions.configuration(slots: settings.workers))
        } catch let error as SandboxError {
            throw StartError(description: "cannot set up the sandbox: \(error)")
        }
        let selfTest = sandbox.selfTest()
        let sandboxProblem: String? = selfTest.status == .ok ? nil : "self-test failed: \(selfTest.message ?? selfTest.status.rawValue)"
        if let sandboxProblem { logger.error("sandbox self-test failed; /v1/health reports unavailable", metadata: ["reason": "\(sandboxProblem)"]) }

        // Judge0's language 89 (zip with compile/run scripts) runs wherever bash and Python do.
        let (registry, languages) = Judge0MultiFileProgram.including(registry: registry, languages: languages)
        var limits = ServerLimits.standard
        limits.maxima.network = settings.allowNetwork
        let available = languages.filter(\.isAvailable)
        // Archives are unpacked by the sandboxed Python, so they need it available.
        let archivePython = available.first { $0.language.id == "python3" }?.language.toolchain.first
        let validator = JobRequestValidator(registry: registry.restricted(to: Set(available.map(\.language.id))), limits: limits,
                                            archivePython: archivePython)
        let policy = WebhookPolicy(allow: settings.webhookAllow)
        metrics = ServerMetrics(languages: registry.languages.map(\.id) + JobeLanguage.all.keys)
        service = JobService(
            store: store, validator: validator, webhookPolicy: policy,
            configuration: JobService.Configuration(maxQueuedJobs: settings.maxQueuedJobs, maxWait: .seconds(settings.maxWaitSeconds)),
            workAvailable: WorkSignal(capacity: settings.workers),
            jobLog: JobEventLog(logger: logger, includesContent: settings.logJobContent), metrics: metrics)
        // Jobs a dead process left running, requeued (or abandoned) when the store opened.
        service.jobLog.requeued(store.startupRequeue.requeued, reason: "lease expired")
        service.jobLog.abandoned(store.startupRequeue.abandoned)
        runners = JobRunnerPool(service: service, sandbox: sandbox, workers: settings.workers,
                                lease: .seconds(settings.leaseSeconds), logger: logger)
        webhooks = WebhookSender(store: store, policy: policy, secret: settings.webhookSecret, logger: logger,
                                 pollInterval: webhookPollInterval, metrics: metrics)
        var features: [String] = ["webhooks", "events", "batch", "idempotency"]
        if settings.webhookSecret != nil { features.append("webhook_signatures") }
        if settings.allowNetwork { features.append("network") }
        routes = APIRoutes(
            service: service, authenticator: Authenticator(keyring: keyring),
            serverInfo: APIRoutes.ServerInfo(version: APIRoutes.version, languages: languages, limits: limits, features: features,
                                             sandboxProblem: { sandboxProblem }))
        judge0 = Judge0Routes(
            service: service, authenticator: Authenticator(keyring: keyring),
            configuration: Judge0Configuration(settings: settings), languages: languages, workers: settings.workers)
        var router = routes.makeRouter()
        router.mount("/", judge0.makeRouter())
        var httpConfiguration = HTTPServerConfiguration()
        httpConfiguration.host = settings.host
        httpConfiguration.port = settings.port
        // A job's files, stdins and expected outputs are capped well below this (ServerLimits);
        // a batch of 100 may carry more.
        httpConfiguration.limits.maxBodySize = 64 << 20
        retention = RetentionSweeper(store: store, policy: RetentionSweeper.Policy(settings), finishedJobs: service.finishedJobs,
                                     logger: logger)
        JobeRoutes(store: store, sandbox: sandbox, authenticator: routes.authenticator, found: JobeLanguageDetection.detectedOnce,
                   metrics: metrics).mount(on: &router)
        // One observer per answered request, after every route is added: metrics, then the access log.
        let httpMetrics = HTTPMetrics(routes: router.routeTable)
        let accessLog = Self.accessLog(logger)
        router.requestObserver = { observation in
            httpMetrics.observe(observation)
            accessLog(observation)
        }
        self.router = router
        let (jobStore, databasePath, running, slots) = (store, storeConfiguration.path, service.running, settings.workers)
        let startTime = Date()
        metrics.addCollector { httpMetrics.families }
        metrics.addCollector { ScrapeCollectors.store(jobStore, databasePath: databasePath, running: running, slots: slots) }
        metrics.addCollector { ScrapeCollectors.process(version: APIRoutes.version, startTime: startTime) }
        do {
            server = try HTTPServer(configuration: httpConfiguration, router: router)
        } catch {
            sandbox.close()
            throw StartError(description: "cannot listen on \(settings.host):\(settings.port): \(error)")
        }
        runners.start()
        webhooks.start()
        retention.start()
        try server.start()
        logger.info("serving", metadata: [
            "address": "\(server.localAddress)", "workers": "\(settings.workers)", "data-dir": "\(settings.dataDirectory)",
            "languages": "\(available.map(\.language.id).joined(separator: ","))", "cgroup": "v\(sandbox.cgroupVersion)"])
    }

    /// Stops accepting requests (the listening socket is closed at once), lets running jobs
    /// finish for `gracePeriod` (default: the `shutdown-grace-period` setting), requeues those
    /// still running, stops the webhook sender and the retention sweep, then removes every
    /// sandbox cgroup and mount. Queued jobs stay queued for the next start.
    func stop(gracePeriod: Duration? = nil) {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let grace = gracePeriod ?? .seconds(gracePeriodSeconds.load(ordering: .relaxed))
        logger.info("stopping", metadata: ["event": "server.stopping", "grace_period_s": "\(grace.components.seconds)",
                                           "running_jobs": "\(service.running.all.count)"])
        server.shutdown(gracePeriod: .seconds(2))
        runners.stop(gracePeriod: grace)
        webhooks.stop()
        retention.stop()
        sandbox.close()
        logger.info("stopped", metadata: ["event": "server.stopped"])
    }

    /// Applies the settings that may change while running (``ServerSettings/reloadableNames``),
    /// except the log output's, which belongs to whoever created the logger.
    func applyReloaded(_ new: ServerSettings) {
        keyring.keys = new.apiKeys
        service.jobLog.includesContent = new.logJobContent
        retention.policy = RetentionSweeper.Policy(new)
        gracePeriodSeconds.store(new.shutdownGracePeriodSeconds, ordering: .relaxed)
    }

    /// One line per answered request: request id, method, target, status, duration, peer.
    static func accessLog(_ logger: Logger) -> HTTPRequestObserver {
        { request in
            // Skip building the line when it would be dropped (bench runs log errors only).
            guard logger.logLevel <= .info else { return }
            var metadata: Logger.Metadata = [
                "event": "http.request", "request_id": "\(request.requestID)", "method": "\(request.method?.rawValue ?? "-")",
                "target": "\(request.target)", "status": "\(request.statusCode)",
                "duration_ms": "\(Self.milliseconds(request.durationNanoseconds))",
            ]
            if let bytes = request.responseBodyBytes { metadata["bytes"] = "\(bytes)" }
            if let peer = request.peerAddress { metadata["peer"] = "\(peer.host)" }
            if !request.completed { metadata["aborted"] = "true" }
            logger.info("request", metadata: metadata)
        }
    }

    /// `nanoseconds` as milliseconds with three decimals (microseconds), without `String(format:)`.
    static func milliseconds(_ nanoseconds: UInt64) -> String {
        let microseconds = nanoseconds / 1_000
        let fraction = String(microseconds % 1_000)
        return "\(microseconds / 1_000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// Runs `LanguageRegistry.detect()` from synchronous code (not on the cooperative pool).
    static func detectLanguages(_ registry: LanguageRegistry) -> [LanguageAvailability] {
        let result = Mutex<[LanguageAvailability]>([])
        let done = DispatchSemaphore(value: 0)
        Task {
            let detected = await registry.detect()
            result.withLock { $0 = detected }
            done.signal()
        }
        done.wait()
        return result.withLock { $0 }
    }
}
