import Foundation
import JobStore
import Logging
import Synchronization

/// Keeps the database bounded: now and then deletes finished jobs and cached files older than
/// their retention, then gives the freed pages back to the file system with
/// `PRAGMA incremental_vacuum`. Every step is a short write transaction (the store purges 500
/// rows per transaction, the vacuum frees `vacuumBatchPages` per call), so submissions and
/// completions never wait long behind a sweep. Queued and running jobs are never touched.
final class RetentionSweeper: Sendable {
    /// How long things are kept; 0 keeps them forever.
    struct Policy: Sendable, Equatable {
        var jobRetentionSeconds: Int
        var fileRetentionSeconds: Int

        init(jobRetentionSeconds: Int, fileRetentionSeconds: Int) {
            self.jobRetentionSeconds = jobRetentionSeconds
            self.fileRetentionSeconds = fileRetentionSeconds
        }

        init(_ settings: ServerSettings) {
            self.init(jobRetentionSeconds: settings.jobRetentionSeconds, fileRetentionSeconds: settings.fileRetentionSeconds)
        }

        /// Often enough that nothing outlives its retention by more than a quarter of it, at most
        /// hourly, at least every second.
        var sweepInterval: Duration {
            let shortest = [jobRetentionSeconds, fileRetentionSeconds].filter { $0 > 0 }.min() ?? 3_600
            return .seconds(min(3_600, max(1, shortest / 4)))
        }
    }

    /// What one sweep did.
    struct Report: Sendable, Equatable {
        var jobsDeleted = 0
        var filesDeleted = 0
        var pagesFreed: Int64 = 0
    }

    let store: any JobStore
    /// Rendered finished jobs are cached in memory; a purged job must not be served from there.
    let finishedJobs: FinishedJobCache?
    /// Pages returned to the file system per vacuum transaction (4 MiB at 4 KiB pages).
    let vacuumBatchPages = 1_024
    private let logger: Logger
    private let currentPolicy: Mutex<Policy>
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)

    init(store: any JobStore, policy: Policy, finishedJobs: FinishedJobCache?, logger: Logger) {
        self.store = store
        self.finishedJobs = finishedJobs
        self.logger = logger
        currentPolicy = Mutex(policy)
    }

    /// The policy in force; SIGHUP may replace it (the next sweep uses the new one).
    var policy: Policy {
        get { currentPolicy.withLock { $0 } }
        set { currentPolicy.withLock { $0 = newValue } }
    }

    /// Deletes what is past its retention at `now` and vacuums the freed pages.
    @discardableResult
    func sweep(now: JobStore::Timestamp = .now) throws(JobStoreError) -> Report {
        let policy = policy
        var report = Report()
        if policy.jobRetentionSeconds > 0 {
            report.jobsDeleted = try store.purgeFinished(before: now.adding(milliseconds: -Int64(policy.jobRetentionSeconds) * 1_000))
            if report.jobsDeleted > 0 { finishedJobs?.removeAll() }
        }
        if policy.fileRetentionSeconds > 0 {
            report.filesDeleted = try store.purgeCachedFiles(unusedSince: now.adding(milliseconds: -Int64(policy.fileRetentionSeconds) * 1_000))
        }
        while true {
            let freed = try store.incrementalVacuum(maxPages: vacuumBatchPages)
            report.pagesFreed += freed
            if freed < vacuumBatchPages { break }
        }
        if report != Report() {
            logger.info("retention sweep", metadata: [
                "event": "retention.sweep", "jobs_deleted": "\(report.jobsDeleted)", "files_deleted": "\(report.filesDeleted)",
                "pages_freed": "\(report.pagesFreed)"])
        }
        return report
    }

    /// Sweeps on a thread of its own every `policy.sweepInterval` (re-read after each sweep).
    func start() {
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            defer { running.store(false, ordering: .releasing) }
            while !stopping.load(ordering: .acquiring) {
                do {
                    try sweep()
                } catch {
                    logger.warning("retention sweep failed", metadata: ["event": "retention.sweep", "error": "\(error)"])
                }
                let end = ContinuousClock.now + policy.sweepInterval
                while ContinuousClock.now < end, !stopping.load(ordering: .acquiring) { usleep(50_000) }
            }
        }
        thread.name = "retention"
        thread.start()
    }

    /// Stops the thread, waiting for a sweep in progress (its transactions are short).
    func stop() {
        stopping.store(true, ordering: .releasing)
        let deadline = ContinuousClock.now + .seconds(30)
        while running.load(ordering: .acquiring), ContinuousClock.now < deadline { usleep(10_000) }
    }
}
