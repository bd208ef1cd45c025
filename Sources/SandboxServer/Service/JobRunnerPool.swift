import Foundation
import Isolation
import JobStore
import Logging
import Synchronization

/// A fixed pool of runner threads that claim jobs from the store and run them in the sandbox,
/// plus a keeper thread that renews their leases and requeues jobs whose runner died.
///
/// Runners are plain threads because `Sandbox` blocks the calling thread for a whole run. Each
/// runner holds one sandbox slot at a time (the sandbox has one slot per runner), so a claimed
/// job starts at once. A job is claimed with a lease the keeper renews while it runs; if this
/// process dies, the lease expires and the next reaper pass (here or after a restart) requeues
/// the job, up to the store's attempt limit. A runner stores its job's result and claims its next
/// job in one write (``JobStore/completeAndClaimNext(id:worker:result:webhook:leaseMilliseconds:)``):
/// one commit and one fsync per job on the runner's path instead of a synced completion plus a
/// separate claim (measured: about 5 % more `bash true` jobs/s end to end on 2 cores).
final class JobRunnerPool: Sendable {
    let service: JobService
    let sandbox: Sandbox
    let workers: Int
    let lease: Duration
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// Set once the runners are done: leases are renewed through the shutdown grace period.
    private let keeperStopping = Atomic<Bool>(false)
    private let liveThreads = Atomic<Int>(0)
    /// Unique per process, so a restarted server never mistakes an old lease for its own.
    private let workerPrefix: String

    init(service: JobService, sandbox: Sandbox, workers: Int, lease: Duration, logger: Logger) {
        self.service = service
        self.sandbox = sandbox
        self.workers = workers
        self.lease = lease
        self.logger = logger
        var host = [UInt8](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let hostName = String(decoding: host.prefix { $0 != 0 }, as: UTF8.self)
        workerPrefix = "\(hostName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    private var leaseMilliseconds: Int64 { Int64(lease.components.seconds * 1000 + lease.components.attoseconds / 1_000_000_000_000_000) }

    func start() {
        for index in 0..<workers {
            spawn(name: "runner-\(index)") { [self] in runnerLoop(worker: "\(workerPrefix)-runner-\(index)") }
        }
        spawn(name: "lease-keeper") { [self] in keeperLoop() }
    }

    /// Stops claiming jobs and waits up to `gracePeriod` for running jobs to finish; jobs still
    /// running then are stopped and put back in the queue at once (``JobStore/release(id:worker:)``),
    /// so the next start runs them without waiting for their lease. A runner that does not stop
    /// within 5 more seconds leaves its job to the lease expiry.
    func stop(gracePeriod: Duration = .seconds(10)) {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        service.workAvailable.signal(count: workers)
        let deadline = ContinuousClock.now + gracePeriod
        // The keeper is one of the live threads until told to stop below.
        while liveThreads.load(ordering: .acquiring) > 1, ContinuousClock.now < deadline { usleep(10_000) }
        for (_, job) in service.running.all { job.token.cancel() }
        let hardDeadline = ContinuousClock.now + .seconds(5)
        while liveThreads.load(ordering: .acquiring) > 1, ContinuousClock.now < hardDeadline { usleep(10_000) }
        keeperStopping.store(true, ordering: .releasing)
        while liveThreads.load(ordering: .acquiring) > 0, ContinuousClock.now < hardDeadline + .seconds(1) { usleep(10_000) }
    }

    private func spawn(name: String, _ body: @escaping @Sendable () -> Void) {
        liveThreads.add(1, ordering: .relaxed)
        let thread = Thread { [self] in
            body()
            liveThreads.subtract(1, ordering: .releasing)
        }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    // MARK: Runners

    private func runnerLoop(worker: String) {
        // The job the last completion claimed for this runner in the same write, if any.
        var handedOver: JobRecord?
        while !stopping.load(ordering: .acquiring) {
            let record: JobRecord
            if let next = handedOver {
                record = next
                handedOver = nil
            } else {
                do {
                    guard let claimed = try service.store.claimNext(worker: worker, leaseMilliseconds: leaseMilliseconds) else {
                        service.workAvailable.wait(timeout: .milliseconds(500))
                        continue
                    }
                    record = claimed
                } catch {
                    logger.error("claiming a job failed", metadata: ["error": "\(error)"])
                    service.workAvailable.wait(timeout: .seconds(1))
                    continue
                }
            }
            service.invalidateQueueDepth()
            handedOver = process(record, worker: worker)
        }
        // Shutdown began between claiming a job and starting it: it goes back to the queue now.
        if let handedOver { requeueForShutdown(handedOver.id, worker: worker) }
    }

    /// Runs a claimed job and stores its result; returns the job claimed in the same write, if any.
    private func process(_ record: JobRecord, worker: String) -> JobRecord? {
        let id = record.id.rawValue
        let token = RunCancellation()
        service.running.register(id, worker: worker, token: token)
        service.jobLog.started(record, worker: worker)
        service.metrics.jobClaimed(createdAt: record.createdAt, startedAt: record.startedAt)
        // A job submitted to this process comes decoded and validated; one from the store (queued
        // before a restart, say) is decoded here, once: it is the costly part of rendering its views.
        let submitted = service.submittedJobs.take(id)
        let request = submitted?.request ?? StoredJob.request(of: record)
        service.events.publish(id, .state(StoredJob.view(of: record, request: request)))

        guard let request else {
            return complete(record, request: nil, worker: worker, result: StoredJob.internalErrorResult("the stored request could not be read"))
        }
        let job: ValidatedJob
        if let submitted {
            job = submitted.job
        } else {
            do {
                job = try service.validator.validate(request)
            } catch {
                // Valid when submitted; e.g. the language's toolchain is gone after a restart.
                return complete(record, request: request, worker: worker,
                                result: StoredJob.internalErrorResult("the job can no longer run here: \(error.message)"))
            }
        }
        var executor = JobExecutor(job: job, cancellation: token)
        let events = service.events
        executor.testFinished = { index, grade in events.publish(id, .test(index: index, TestResultView(grade: grade))) }
        let metrics = service.metrics
        executor.runFinished = { metrics.sandboxRun($0) }
        let outcome = sandbox.withSlot { slot in metrics.holdingSlot(.jobs) { executor.execute(in: slot) } }
        switch outcome {
        case .cancelled:
            // Cancelled by a client (the store already says so) or stopped by shutdown: then the
            // job goes back to the queue now rather than when its lease runs out.
            service.running.remove(id)
            if stopping.load(ordering: .acquiring) { requeueForShutdown(record.id, worker: worker) }
            return nil
        case .graded(let grade, let compile):
            return complete(record, request: request, worker: worker, result: StoredJob.result(grade: grade, compile: compile))
        }
    }

    /// Puts a job this runner holds back in the queue at once rather than when its lease runs out.
    private func requeueForShutdown(_ id: JobID, worker: String) {
        do {
            if try service.store.release(id: id, worker: worker) {
                service.jobLog.requeued([id], reason: "shutdown")
            }
        } catch {
            logger.warning("requeueing a job at shutdown failed; it is requeued when its lease expires",
                           metadata: ["job": "\(id.rawValue)", "error": "\(error)"])
        }
    }

    /// Stores the result (with its webhook, in the same durable write), claims the runner's next
    /// job in that write unless the pool is stopping, and tells the waiters. The job stays
    /// registered (its lease renewed) until it is stored; if the process dies before, the job
    /// runs again after its lease expires.
    private func complete(_ record: JobRecord, request: JobRequest?, worker: String,
                          result: (result: JobResult, details: StoredJob.Details)) -> JobRecord? {
        let id = record.id.rawValue
        var next: JobRecord?
        defer { service.running.remove(id) }
        // The finished job as the store will have it, made here rather than read back: its view
        // is the webhook's payload and, once stored, what waiters are told, with one finish time.
        // Never before the claim (the store's time), should the wall clock have stepped back.
        let finishedAt = max(JobStore::Timestamp.now, record.startedAt ?? .now)
        var finishedRecord = record
        finishedRecord.state = .finished
        finishedRecord.result = result.result
        finishedRecord.finishedAt = finishedAt
        finishedRecord.leaseExpiresAt = nil
        let finishedView = StoredJob.view(of: finishedRecord, request: request, details: result.details)
        let webhook = record.callbackURL.map { WebhookRequest(url: $0, payload: Judge0Callback.payload(for: finishedView)) }
        /// Stores the result, with the runner's next claim unless the pool is stopping.
        func store() throws(JobStoreError) -> JobRecord? {
            if !stopping.load(ordering: .acquiring) {
                do {
                    return try service.store.completeAndClaimNext(
                        id: record.id, worker: worker, result: result.result, webhook: webhook, finishedAt: finishedAt,
                        leaseMilliseconds: leaseMilliseconds).next
                } catch where error.code != .leaseLost {
                    // The claim shares the completion's transaction, so a failure of either (the
                    // database at its size limit, say) undid both: store the result on its own.
                }
            }
            try service.store.complete(id: record.id, worker: worker, result: result.result, webhook: webhook, finishedAt: finishedAt)
            return nil
        }
        let view: JobView?
        do {
            next = try store()
            // Counted before waiters are told, so a client that saw the result also sees it counted.
            service.metrics.jobFinished(language: record.language, verdict: result.result.verdict,
                                        createdAt: record.createdAt, finishedAt: finishedAt)
            service.jobLog.finished(finishedRecord)
            view = finishedView
        } catch {
            if error.code == .leaseLost {
                logger.info("job result discarded", metadata: ["job": "\(id)", "reason": "\(error.message)"])
            } else {
                logger.error("storing a job result failed", metadata: ["job": "\(id)", "error": "\(error)"])
            }
            // The store refused the result (the job was cancelled meanwhile, say): tell waiters
            // what the job became instead.
            let current: JobRecord? = try? service.store.job(id: record.id)
            view = current.map { StoredJob.view(of: $0, request: request) }
        }
        // Rendered once, for waiters and the cache.
        if let view { service.events.publish(id, .state(service.rendered(view).view)) }
        // The job is over for this runner whatever the store said: drop its kept test events.
        service.events.forget(id)
        return next
    }

    // MARK: Leases

    private func keeperLoop() {
        let interval = max(Duration.milliseconds(200), lease / 3)
        while !keeperStopping.load(ordering: .acquiring) {
            for (id, job) in service.running.all {
                do {
                    _ = try service.store.renewLease(id: JobID(id), worker: job.worker, leaseMilliseconds: leaseMilliseconds)
                } catch where error.code == .leaseLost || error.code == .notFound {
                    // Cancelled, or requeued because we were too slow: either way it is not ours.
                    job.token.cancel()
                } catch {
                    logger.warning("renewing a lease failed", metadata: ["job": "\(id)", "error": "\(error)"])
                }
            }
            do {
                let report = try service.store.requeueExpiredLeases()
                if !report.requeued.isEmpty {
                    service.jobLog.requeued(report.requeued, reason: "lease expired")
                    service.invalidateQueueDepth()
                    service.workAvailable.signal(count: report.requeued.count)
                }
                service.jobLog.abandoned(report.abandoned)
                for id in report.abandoned {
                    // One read serves the waiters' view (rendered and cached) and the metrics.
                    guard let record = try? service.store.job(id: id) else { continue }
                    service.events.publish(id.rawValue, .state(service.rendered(StoredJob.view(of: record)).view))
                    if let result = record.result {
                        service.metrics.jobFinished(language: record.language, verdict: result.verdict,
                                                    createdAt: record.createdAt, finishedAt: record.finishedAt)
                    }
                }
            } catch {
                logger.warning("requeueing expired leases failed", metadata: ["error": "\(error)"])
            }
            sleepInterruptibly(interval)
        }
    }

    private func sleepInterruptibly(_ duration: Duration) {
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end, !keeperStopping.load(ordering: .relaxed) { usleep(50_000) }
    }
}
