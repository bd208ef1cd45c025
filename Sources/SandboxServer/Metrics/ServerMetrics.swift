import Foundation
import Isolation
import JobStore
import Synchronization

/// The service's Prometheus metrics (`GET /metrics`, docs/service.md lists them).
///
/// Events are counted where they happen (a submission, a finished job, a sandbox run, a webhook
/// attempt); states — queue depth, store size, process facts — are read when scraped, by the
/// collectors the service registers. Every label is bounded by construction: languages come from
/// the registry (anything else is `other`), verdicts, outcomes and phases are enums, HTTP routes
/// are patterns (`/v1/jobs/{id}`), never paths. A job id never becomes a label.
final class ServerMetrics: Sendable {
    /// The API a job came in through.
    enum API: String, Sendable, CaseIterable {
        case native, judge0, jobe
    }

    /// Who held a sandbox slot: a queued job's runner, or a synchronous Jobe run.
    enum SlotUser: String, Sendable, CaseIterable {
        case jobs, jobe
    }

    /// How a webhook delivery attempt ended.
    enum WebhookOutcome: String, Sendable, CaseIterable {
        /// The receiver answered 2xx.
        case delivered
        /// It failed and will be attempted again later.
        case retry
        /// It failed for good: a permanent error, a refused address, or its attempts used up.
        case failed
    }

    /// Where the time of a sandbox run went (``RunPhases``).
    enum Phase: String, Sendable, CaseIterable {
        case prepare, spawn, run, collect
    }

    /// Language label values: the registry's ids (the native and Judge0 languages) and Jobe's.
    let languages: LabelDomain

    let jobsSubmitted: CounterFamily<[String]>
    let jobsFinished: CounterFamily<[String]>
    let jobsCancelled: CounterFamily<String>
    let jobeRuns: CounterFamily<[String]>
    let sandboxRuns: CounterFamily<RunStatus>
    let sandboxPhases: HistogramFamily<Phase>
    let slotBusyNanoseconds: CounterFamily<SlotUser>
    let webhookDeliveries: CounterFamily<WebhookOutcome>
    let queueWait: HistogramFamily<Int>
    let runDuration: HistogramFamily<Int>
    let jobLatency: HistogramFamily<Int>
    /// Sandbox slots held right now (jobs and Jobe runs).
    private let slotsInUse = Atomic<Int>(0)
    /// Families read at scrape time, registered by the service once its parts exist.
    private let collectors = Mutex<[@Sendable () -> [MetricFamily]]>([])

    /// - Parameter languages: every language id a job may have (others are labelled `other`).
    init(languages: some Sequence<String> = []) {
        let languages = LabelDomain(languages)
        self.languages = languages
        jobsSubmitted = CounterFamily(
            "sandbox_server_jobs_submitted_total", help: "Jobs accepted for running, by API and language (Jobe runs included).",
            labels: { [MetricLabel("api", $0[0]), MetricLabel("language", $0[1])] })
        jobsFinished = CounterFamily(
            "sandbox_server_jobs_finished_total", help: "Queued jobs that finished with a result, by language and verdict.",
            labels: { [MetricLabel("language", $0[0]), MetricLabel("verdict", $0[1])] })
        jobsCancelled = CounterFamily(
            "sandbox_server_jobs_cancelled_total", help: "Queued or running jobs cancelled by a client, by language.",
            labels: { [MetricLabel("language", $0)] })
        jobeRuns = CounterFamily(
            "sandbox_server_jobe_runs_total", help: "Synchronous Jobe runs, by language and Jobe outcome.",
            labels: { [MetricLabel("language", $0[0]), MetricLabel("outcome", $0[1])] })
        sandboxRuns = CounterFamily(
            "sandbox_server_sandbox_runs_total", help: "Sandboxed runs (compiles and tests), by how they ended.",
            labels: { [MetricLabel("status", $0.rawValue)] })
        sandboxPhases = HistogramFamily(
            "sandbox_server_sandbox_phase_duration_seconds",
            help: "Time of each phase of a sandboxed run: prepare (box, cgroup, pipes), spawn (clone to exec), run (exec to exit), collect (accounting, cleanup).",
            buckets: .sandboxPhase, initialKeys: Phase.allCases, labels: { [MetricLabel("phase", $0.rawValue)] })
        slotBusyNanoseconds = CounterFamily(
            "sandbox_server_sandbox_slot_busy_seconds_total",
            help: "Time sandbox slots were held, by user; divided by sandbox_server_sandbox_slots it is the runners' utilisation.",
            unitsPerExposedUnit: 1e9, initialKeys: SlotUser.allCases, labels: { [MetricLabel("user", $0.rawValue)] })
        webhookDeliveries = CounterFamily(
            "sandbox_server_webhook_deliveries_total", help: "Webhook delivery attempts, by outcome.",
            initialKeys: WebhookOutcome.allCases, labels: { [MetricLabel("outcome", $0.rawValue)] })
        queueWait = HistogramFamily(
            "sandbox_server_job_queue_wait_seconds", help: "Time from a job's submission to a runner claiming it.",
            buckets: .jobStage, initialKeys: [0], labels: { _ in [] })
        runDuration = HistogramFamily(
            "sandbox_server_job_run_seconds", help: "Time a runner spent on a job: compile and every test, in its sandbox slot.",
            buckets: .jobStage, initialKeys: [0], labels: { _ in [] })
        jobLatency = HistogramFamily(
            "sandbox_server_job_latency_seconds", help: "Time from a job's submission to its result being stored.",
            buckets: .jobStage, initialKeys: [0], labels: { _ in [] })
    }

    // MARK: Recording

    /// A job was queued (or a Jobe run started).
    func jobSubmitted(api: API, language: String) {
        jobsSubmitted.add([api.rawValue, languages.normalize(language)])
    }

    /// A runner claimed a job submitted at `createdAt` (store time) at `startedAt`.
    func jobClaimed(createdAt: JobStore::Timestamp, startedAt: JobStore::Timestamp?) {
        guard let startedAt else { return }
        queueWait.observe(0, Self.nanoseconds(from: createdAt, to: startedAt))
    }

    /// A job's result was stored.
    func jobFinished(language: String, verdict: JobStore::Verdict, createdAt: JobStore::Timestamp, finishedAt: JobStore::Timestamp?) {
        jobsFinished.add([languages.normalize(language), Self.verdictLabel(verdict)])
        jobLatency.observe(0, Self.nanoseconds(from: createdAt, to: finishedAt ?? .now))
    }

    /// A client cancelled a queued or running job.
    func jobCancelled(language: String) { jobsCancelled.add(languages.normalize(language)) }

    /// A Jobe run ended with `outcome`.
    func jobeRun(language: String, outcome: JobeOutcome) {
        jobeRuns.add([languages.normalize(language), outcome.label])
    }

    /// One sandboxed run ended: its status and phase timings.
    func sandboxRun(_ result: RunResult) {
        sandboxRuns.add(result.status)
        let phases = result.phases
        sandboxPhases.observe(.prepare, UInt64(max(0, phases.prepare)) &* 1_000)
        sandboxPhases.observe(.spawn, UInt64(max(0, phases.spawn)) &* 1_000)
        sandboxPhases.observe(.run, UInt64(max(0, phases.run)) &* 1_000)
        sandboxPhases.observe(.collect, UInt64(max(0, phases.collect)) &* 1_000)
    }

    /// Runs `body` while holding a sandbox slot for `user`, counting the slot busy meanwhile.
    func holdingSlot<T>(_ user: SlotUser, _ body: () throws -> T) rethrows -> T {
        slotsInUse.add(1, ordering: .relaxed)
        let start = DispatchTimeNanoseconds.now()
        defer {
            let elapsed = DispatchTimeNanoseconds.now() &- start
            slotBusyNanoseconds.add(user, elapsed)
            if user == .jobs { runDuration.observe(0, elapsed) }
            slotsInUse.subtract(1, ordering: .relaxed)
        }
        return try body()
    }

    /// A webhook attempt ended.
    func webhookAttempt(_ outcome: WebhookOutcome) { webhookDeliveries.add(outcome) }

    // MARK: Scraping

    /// Adds families read at every scrape (gauges of the store, the process, the HTTP server).
    func addCollector(_ collector: @escaping @Sendable () -> [MetricFamily]) {
        collectors.withLock { $0.append(collector) }
    }

    /// Every family: the recorded ones and the collectors'.
    var families: [MetricFamily] {
        var families = [jobsSubmitted.family, jobsFinished.family, jobsCancelled.family, jobeRuns.family, sandboxRuns.family,
                        sandboxPhases.family, slotBusyNanoseconds.family, webhookDeliveries.family,
                        queueWait.family, runDuration.family, jobLatency.family,
                        MetricFamily(name: "sandbox_server_sandbox_slots_in_use", help: "Sandbox slots held right now.", type: .gauge,
                                     series: [MetricSeries([], Double(slotsInUse.load(ordering: .relaxed)))])]
        for collector in collectors.withLock({ $0 }) { families += collector() }
        return families
    }

    /// The text exposition of every family.
    func exposition() -> String { MetricsExposition.render(families) }

    // MARK: Helpers

    static func verdictLabel(_ verdict: JobStore::Verdict) -> String {
        Verdict(rawValue: verdict.rawValue)?.rawValue ?? LabelDomain.other
    }

    static func nanoseconds(from start: JobStore::Timestamp, to end: JobStore::Timestamp) -> UInt64 {
        UInt64(max(0, end.millisecondsSince1970 - start.millisecondsSince1970)) &* 1_000_000
    }
}

extension JobeOutcome {
    /// The outcome as a metric label (`ok`, `compile_error`, …).
    var label: String {
        switch self {
        case .compileError: "compile_error"
        case .runtimeError: "runtime_error"
        case .timeLimit: "time_limit"
        case .ok: "ok"
        case .memoryLimit: "memory_limit"
        case .illegalSystemCall: "illegal_system_call"
        case .internalError: "internal_error"
        case .overload: "overload"
        }
    }
}
