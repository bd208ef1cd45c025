import Foundation
import Isolation
import JobStore
import Synchronization

/// The job service: what every API front end calls — the native HTTP API, and the Judge0 and
/// Jobe adapters — so that submission, idempotency, overload protection, waiting and
/// cancellation behave the same whichever protocol a client speaks.
///
/// All methods are synchronous and may block (``wait(id:timeout:)``, ``run(_:timeout:)``): call
/// them from HTTP worker threads or other dedicated threads, never from Swift's cooperative pool.
/// Every failure is an ``APIError`` with the code and status a client should see; adapters
/// translate those into their protocol's errors.
final class JobService: Sendable {
    /// Policies of the service.
    struct Configuration: Sendable {
        /// Submissions are refused (503 + `Retry-After`) while this many jobs are queued.
        var maxQueuedJobs = 1_000
        /// Longest wait a client may ask for.
        var maxWait: Duration = .seconds(60)
        /// Suggested retry delay when overloaded.
        var retryAfterSeconds = 2
    }

    let store: any JobStore
    let validator: JobRequestValidator
    let events: JobEventHub
    /// Jobs running in this process, by id, so a cancel can kill their sandbox.
    let running: RunningJobs
    let webhookPolicy: WebhookPolicy
    let configuration: Configuration
    let workAvailable: WorkSignal
    /// Queued count cached for `queueDepthCacheMilliseconds`, so overload checks do not query
    /// the store on every submission.
    private let queueDepthCache = Mutex<(measuredAt: UInt64, queued: Int)?>(nil)
    private static let queueDepthCacheNanoseconds: UInt64 = 100_000_000
    /// Finished jobs never change (until deleted), so their rendered JSON is kept: reading a
    /// finished job — the most frequent request of a polling client — costs no store read and no
    /// JSON work.
    let finishedJobs = FinishedJobCache(capacity: 4_096)
    /// Jobs submitted here and not yet claimed, decoded and validated: the runner that claims one
    /// takes it from here instead of decoding and validating the stored request again.
    let submittedJobs = SubmittedJobs(maxBytes: 64 << 20)
    /// Job lifecycle lines in the log (the runners write the later events to it too).
    let jobLog: JobEventLog
    /// Counts submissions, results and cancellations (`GET /metrics`).
    let metrics: ServerMetrics

    init(store: any JobStore, validator: JobRequestValidator, events: JobEventHub = JobEventHub(),
         running: RunningJobs = RunningJobs(), webhookPolicy: WebhookPolicy = WebhookPolicy(allow: []),
         configuration: Configuration = Configuration(), workAvailable: WorkSignal = WorkSignal(capacity: 64),
         jobLog: JobEventLog = .disabled, metrics: ServerMetrics = ServerMetrics()) {
        self.jobLog = jobLog
        self.metrics = metrics
        self.store = store
        self.validator = validator
        self.events = events
        self.running = running
        self.webhookPolicy = webhookPolicy
        self.configuration = configuration
        self.workAvailable = workAvailable
    }

    // MARK: Submitting

    /// The outcome of a submission.
    struct Submitted: Sendable, Equatable {
        /// The job (the existing one when an idempotency key matched).
        var view: JobView
        /// False when an earlier job with the same idempotency key and body was returned.
        var created: Bool
    }

    /// Decodes, validates and queues one job from a request body (strict JSON).
    /// `requestID` is the submitting HTTP request's, for the job's log lines; `api` is the front
    /// end it came through (a metrics label).
    func submit(body: some Collection<UInt8>, idempotencyKey: String? = nil, requestID: String? = nil,
                api: ServerMetrics.API = .native) throws(APIError) -> Submitted {
        let json = Data(body)
        // The body is stored as it came: it decodes to this very request, and encoding the
        // request again (canonically) would cost as much as decoding it did.
        return try submit(try APIJSON.decodeRequest(JobRequest.self, from: json), storing: json,
                          idempotencyKey: idempotencyKey, requestID: requestID, api: api)
    }

    /// Validates and queues one job. With `idempotencyKey`, a repeat of the same request returns
    /// the first job (`created == false`) and a different request with the key is a 409.
    /// `storing` is JSON that decodes to `request` to store as the job's request (its canonical
    /// encoding otherwise).
    func submit(_ request: JobRequest, storing json: Data? = nil, idempotencyKey: String? = nil, requestID: String? = nil,
                api: ServerMetrics.API = .native) throws(APIError) -> Submitted {
        var idempotency: Idempotency?
        if let idempotencyKey {
            guard !idempotencyKey.isEmpty, idempotencyKey.utf8.count <= 255 else {
                throw APIError(.invalidValue, "Idempotency-Key must be 1 to 255 characters", field: "Idempotency-Key")
            }
            // A retried submission must get its job back even when the queue has filled since.
            let keyed = Idempotency(key: idempotencyKey, requestHash: StoredJob.requestHash(request))
            if let existing = try storeCall({ () throws(JobStoreError) in try store.job(idempotency: keyed) }) {
                return Submitted(view: try job(id: existing.rawValue), created: false)
            }
            idempotency = keyed
        }
        let (job, validated) = try newJob(request, storing: json, idempotency: idempotency)
        try checkCapacity(adding: 1)
        // Kept before the insert commits: a runner may claim the job the moment it does.
        submittedJobs.keep(job.id.rawValue, SubmittedJob(request: request, job: validated), bytes: job.request.count)
        let submission: Submission
        do throws(APIError) {
            submission = try storeCall { () throws(JobStoreError) in try store.insert(job) }
        } catch {
            submittedJobs.forget(job.id.rawValue)
            throw error
        }
        guard submission.created else {
            submittedJobs.forget(job.id.rawValue)
            return Submitted(view: try self.job(id: submission.id.rawValue), created: false)
        }
        jobLog.submitted(submission.id, language: job.language, requestID: requestID, request: job.request)
        noteQueued(1)
        workAvailable.signal()
        metrics.jobSubmitted(api: api, language: job.language)
        return Submitted(view: try view(of: submission, request: request), created: true)
    }

    /// Validates each job of a batch on its own and queues the valid ones in one transaction;
    /// the items say, in order, which job each became or why it was refused.
    func submitBatch(body: some Collection<UInt8>, requestID: String? = nil, api: ServerMetrics.API = .native) throws(APIError) -> [JobBatchItem] {
        let batch = try APIJSON.decodeRequest(JobBatchRequest.self, from: Data(body))
        try batch.validateSize()
        var items = [JobBatchItem](repeating: JobBatchItem(job: nil, error: nil), count: batch.jobs.count)
        var accepted: [(index: Int, job: NewJob, submitted: SubmittedJob)] = []
        for (index, decoded) in batch.decodeJobs().enumerated() {
            do {
                let request = try decoded.get()
                let (job, validated) = try newJob(request, idempotency: nil, fieldPrefix: "jobs[\(index)]")
                accepted.append((index, job, SubmittedJob(request: request, job: validated)))
            } catch {
                items[index].error = error.body.error
            }
        }
        guard !accepted.isEmpty else { return items }
        try checkCapacity(adding: accepted.count)
        // Kept before the insert commits, as in `submit`.
        for entry in accepted { submittedJobs.keep(entry.job.id.rawValue, entry.submitted, bytes: entry.job.request.count) }
        let submissions: [Submission]
        do throws(APIError) {
            submissions = try storeCall { () throws(JobStoreError) in try store.insert(batch: accepted.map(\.job)) }
        } catch {
            for entry in accepted { submittedJobs.forget(entry.job.id.rawValue) }
            throw error
        }
        for (entry, submission) in zip(accepted, submissions) {
            guard submission.created else {
                submittedJobs.forget(entry.job.id.rawValue)
                continue
            }
            jobLog.submitted(submission.id, language: entry.job.language, requestID: requestID, request: entry.job.request)
        }
        noteQueued(accepted.count)
        workAvailable.signal(count: accepted.count)
        for entry in accepted { metrics.jobSubmitted(api: api, language: entry.job.language) }
        for (entry, submission) in zip(accepted, submissions) {
            items[entry.index].job = try view(of: submission, request: entry.submitted.request)
        }
        return items
    }

    /// The view of a job just inserted: from the record the store returned, read when it gave none.
    private func view(of submission: Submission, request: JobRequest) throws(APIError) -> JobView {
        if let record = submission.record { return StoredJob.view(of: record, request: request) }
        return try job(id: submission.id.rawValue)
    }

    private func newJob(_ request: JobRequest, storing json: Data? = nil, idempotency: Idempotency?,
                        fieldPrefix: String? = nil) throws(APIError) -> (NewJob, ValidatedJob) {
        let validated: ValidatedJob
        do {
            validated = try validator.validate(request)
        } catch {
            var error = error
            if let fieldPrefix { error.field = error.field.map { "\(fieldPrefix).\($0)" } ?? fieldPrefix }
            throw error
        }
        if let url = validated.callbackURL, let problem = webhookPolicy.literalProblem(with: url) {
            throw APIError(.invalidValue, "callback_url is not allowed: \(problem)",
                           field: fieldPrefix.map { "\($0).callback_url" } ?? "callback_url")
        }
        let job = NewJob(
            language: validated.language.id, priority: validated.priority, request: json ?? request.canonicalJSON,
            callbackURL: validated.callbackURL?.absoluteString,
            idempotency: idempotency)
        return (job, validated)
    }

    // MARK: Reading

    /// The job as the API shows it; 404 when unknown.
    func job(id: String) throws(APIError) -> JobView {
        try renderedJob(id: id).view
    }

    /// The job with its JSON encoding (from the cache for finished jobs).
    func renderedJob(id: String) throws(APIError) -> RenderedJob {
        if let cached = finishedJobs[id] { return cached }
        guard let record = try record(id: id) else { throw Self.notFound(id) }
        return rendered(StoredJob.view(of: record))
    }

    /// Encodes a view, remembering it when the job is finished or cancelled.
    func rendered(_ view: JobView) -> RenderedJob {
        let rendered = RenderedJob(view: view, json: view.jsonBytes)
        if view.state == .finished || view.state == .cancelled { finishedJobs.insert(rendered) }
        return rendered
    }

    /// The job once it is finished or cancelled, or as it is when `timeout` (capped at
    /// `maxWait`) runs out. `submitted` is as in ``waitRendered(id:timeout:submitted:)``.
    func wait(id: String, timeout: Duration, submitted: JobView? = nil) throws(APIError) -> JobView {
        try waitRendered(id: id, timeout: timeout, submitted: submitted).view
    }

    /// ``wait(id:timeout:)`` with the JSON encoding of the job. A caller that has just submitted
    /// the job passes `submitted`, its view from the submission: when that view is unfinished,
    /// the wait starts without reading the job from the store.
    func waitRendered(id: String, timeout: Duration, submitted: JobView? = nil) throws(APIError) -> RenderedJob {
        if let cached = finishedJobs[id] { return cached }
        let subscription = events.subscribe(id)
        defer { events.unsubscribe(subscription) }
        let deadline = ContinuousClock.now + min(timeout, configuration.maxWait)
        // After subscribing, one look at the job (the store's, or the submitter's view) and then
        // its events say all that happens to it; the store is read again only on the periodic
        // wake-up, which covers jobs finished elsewhere (e.g. abandoned by the lease reaper).
        var mustRead = submitted.map { $0.state == .finished || $0.state == .cancelled } ?? true
        while true {
            // Finished and cancelled jobs are cached (rendered once) before their event is published.
            if let cached = finishedJobs[id] { return cached }
            let remaining = deadline - ContinuousClock.now
            if mustRead || remaining <= .zero {
                guard let record = try record(id: id) else { throw Self.notFound(id) }
                // Only a view that is returned gets rendered.
                if record.state == .finished || record.state == .cancelled || remaining <= .zero {
                    return rendered(StoredJob.view(of: record))
                }
            }
            switch subscription.next(timeout: min(remaining, .seconds(1))) {
            case .state(let view)? where view.state == .finished || view.state == .cancelled:
                // Normally cached by now (see the top of the loop); rendered here if evicted since.
                return finishedJobs[id] ?? rendered(view)
            case .some:
                mustRead = false
            case nil:
                mustRead = true
            }
        }
    }

    /// Submits a job and waits for it: the synchronous mode of Judge0 (`wait=true`) and Jobe.
    func run(_ request: JobRequest, timeout: Duration) throws(APIError) -> JobView {
        let submitted = try submit(request)
        return try wait(id: submitted.view.id, timeout: timeout, submitted: submitted.view)
    }

    /// A page of jobs, newest first (admin).
    func list(states: Set<JobState> = [], createdFrom: Date? = nil, createdBefore: Date? = nil, limit: Int = 50,
              cursor: String? = nil) throws(APIError) -> JobListResponse {
        guard (1...100).contains(limit) else { throw APIError(.invalidValue, "limit must be between 1 and 100", field: "limit") }
        let filter = JobFilter(
            states: Set(states.map { state -> JobStore::JobState in
                switch state {
                case .queued: .queued
                case .running: .running
                case .finished: .finished
                case .cancelled: .cancelled
                }
            }),
            createdFrom: createdFrom.map { JobStore::Timestamp($0) },
            createdBefore: createdBefore.map { JobStore::Timestamp($0) },
            limit: limit, cursor: cursor)
        let page: JobPage
        do {
            page = try store.list(filter)
        } catch where error.code == .invalidArgument {
            throw APIError(.invalidValue, "cursor is not one this server returned", field: "cursor")
        } catch {
            throw Self.apiError(error)
        }
        var views: [JobView] = []
        for summary in page.jobs {
            // A job purged between the page and this read is simply left out.
            if let record = try record(id: summary.id.rawValue) { views.append(StoredJob.view(of: record)) }
        }
        return JobListResponse(jobs: views, nextCursor: page.nextCursor)
    }

    // MARK: Cancelling

    /// Cancels a queued or running job (killing its sandbox) or deletes a finished or cancelled
    /// one; returns the job as it was last.
    func cancel(id: String, requestID: String? = nil) throws(APIError) -> JobView {
        guard let record = try record(id: id) else { throw Self.notFound(id) }
        switch record.state {
        case .queued, .running:
            // The cancel time is the webhook payload's `finished_at` and the store's alike (never
            // before the job was created or claimed, should the wall clock step back).
            let cancelledAt = max(JobStore::Timestamp.now, record.startedAt ?? record.createdAt)
            let webhook = record.callbackURL.map { url in
                var view = StoredJob.view(of: record)
                view.state = .cancelled
                view.message = "cancelled"
                view.finishedAt = cancelledAt.date
                return WebhookRequest(url: url, payload: Judge0Callback.payload(for: view))
            }
            let state = try storeCall { () throws(JobStoreError) in
                try store.cancel(id: JobID(id), webhook: webhook, cancelledAt: cancelledAt)
            }
            running.cancel(id)
            submittedJobs.forget(id)
            if record.state == .queued { invalidateQueueDepth() }
            guard let after = try self.record(id: id) else { throw Self.notFound(id) }
            // It finished on its own just before the cancel landed: delete it, as for any job
            // that has ended, so that a 200 always means the job is cancelled or gone.
            if state == .finished { return try delete(after) }
            let view = rendered(StoredJob.view(of: after)).view
            if state == .cancelled {
                jobLog.cancelled(id, requestID: requestID, wasRunning: record.state == .running)
                events.publish(id, .state(view))
                metrics.jobCancelled(language: record.language)
            }
            return view
        case .finished, .cancelled:
            return try delete(record)
        }
    }

    /// Deletes a job that has ended; returns its last view.
    private func delete(_ record: JobRecord) throws(APIError) -> JobView {
        let id = record.id.rawValue
        let view = StoredJob.view(of: record)
        let deleted = try storeCall { () throws(JobStoreError) in try store.deleteFinished(id: record.id) }
        if deleted { finishedJobs.removeDeleted(id) }
        guard deleted else { throw APIError(.conflict, "job \(id) changed state while it was being deleted; try again") }
        return view
    }

    // MARK: Load

    /// Jobs waiting in the queue.
    func queueDepth() throws(APIError) -> Int {
        let now = DispatchTimeNanoseconds.now()
        if let cached = queueDepthCache.withLock({ $0 }), now - cached.measuredAt < Self.queueDepthCacheNanoseconds {
            return cached.queued
        }
        let queued = try storeCall { () throws(JobStoreError) in try store.queuedCount() }
        queueDepthCache.withLock { $0 = (now, queued) }
        return queued
    }

    /// Throws 503 with `Retry-After` when `count` more jobs would exceed the queue maximum.
    func checkCapacity(adding count: Int) throws(APIError) {
        let queued = try queueDepth()
        guard queued + count <= configuration.maxQueuedJobs else {
            throw APIError(
                .serviceUnavailable,
                "the queue is full (\(queued) jobs waiting, maximum \(configuration.maxQueuedJobs)); retry later",
                retryAfterSeconds: configuration.retryAfterSeconds)
        }
    }

    private func noteQueued(_ count: Int) {
        queueDepthCache.withLock { cache in
            if let current = cache { cache = (current.measuredAt, current.queued + count) }
        }
    }

    /// Forgets the cached queue depth (after runners claim or cancels remove queued jobs).
    func invalidateQueueDepth() { queueDepthCache.withLock { $0 = nil } }

    // MARK: Store access

    private func record(id: String) throws(APIError) -> JobRecord? {
        // Ids are 22 base64url characters; anything else cannot exist, no need to ask the store.
        guard !id.isEmpty, id.utf8.count <= 64 else { return nil }
        return try storeCall { () throws(JobStoreError) in try store.job(id: JobID(id)) }
    }

    private func storeCall<T>(_ body: () throws(JobStoreError) -> T) throws(APIError) -> T {
        do { return try body() } catch { throw Self.apiError(error) }
    }

    /// The client-facing form of a store failure.
    static func apiError(_ error: JobStoreError) -> APIError {
        switch error.code {
        case .notFound: APIError(.notFound, error.message)
        case .idempotencyConflict:
            APIError(.idempotencyConflict, "this Idempotency-Key was used with a different request", field: "Idempotency-Key")
        default:
            error.isTemporarilyUnavailable
                ? APIError(.serviceUnavailable, "the job store is temporarily unavailable: \(error.message)", retryAfterSeconds: 1)
                : APIError(.internalError, "the job store failed: \(error.code.rawValue)")
        }
    }

    static func notFound(_ id: String) -> APIError { APIError(.notFound, "no job with id \(id)") }
}

/// Monotonic nanoseconds for short-lived caches.
enum DispatchTimeNanoseconds {
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// The cancellation tokens of jobs running in this process.
final class RunningJobs: Sendable {
    private let tokens = Mutex<[String: RunningJob]>([:])

    /// A job a runner holds: its token and the runner's worker name (for lease renewal).
    struct RunningJob: Sendable {
        let token: RunCancellation
        let worker: String
    }

    func register(_ id: String, worker: String, token: RunCancellation) {
        tokens.withLock { $0[id] = RunningJob(token: token, worker: worker) }
    }

    func remove(_ id: String) { _ = tokens.withLock { $0.removeValue(forKey: id) } }

    /// Cancels the job's runs if it runs here; returns whether it did.
    @discardableResult
    func cancel(_ id: String) -> Bool {
        guard let job = tokens.withLock({ $0[id] }) else { return false }
        job.token.cancel()
        return true
    }

    var all: [(id: String, job: RunningJob)] { tokens.withLock { $0.map { ($0.key, $0.value) } } }
}

/// A job view with its JSON, so handlers send bytes encoded once.
struct RenderedJob: Sendable {
    let view: JobView
    let json: [UInt8]
}

/// Rendered finished jobs by id, at most `capacity`, oldest insertions evicted first.
final class FinishedJobCache: Sendable {
    private struct State {
        var entries: [String: RenderedJob] = [:]
        var order: [String] = []
        var head = 0
        /// Jobs deleted lately, which must not be cached again (ids are never reused).
        var deleted: Set<String> = []
        var deletedOrder: [String] = []
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Forgets every entry (the retention sweep deleted jobs, and a purged job must read as 404).
    func removeAll() { state.withLock { $0 = State() } }

    /// Forgets a job a client deleted, and keeps it from coming back: the runner that finished it
    /// a moment before may not have cached its view yet, and a deleted job must read as 404.
    func removeDeleted(_ id: String) {
        state.withLock { state in
            state.entries[id] = nil
            guard state.deleted.insert(id).inserted else { return }
            state.deletedOrder.append(id)
            if state.deletedOrder.count > capacity {
                let forgotten = state.deletedOrder.count - capacity
                state.deletedOrder[..<forgotten].forEach { state.deleted.remove($0) }
                state.deletedOrder.removeFirst(forgotten)
            }
        }
    }

    /// The cached job, if any.
    subscript(id: String) -> RenderedJob? { state.withLock { $0.entries[id] } }

    /// Caches a finished job (unless it was deleted), evicting the oldest beyond `capacity`.
    func insert(_ job: RenderedJob) {
        let id = job.view.id
        state.withLock { state in
            guard !state.deleted.contains(id) else { return }
            if state.entries.updateValue(job, forKey: id) == nil { state.order.append(id) }
            while state.entries.count > capacity, state.head < state.order.count {
                state.entries[state.order[state.head]] = nil
                state.head += 1
            }
            // Compact the eviction order now and then so it does not grow without bound.
            if state.head > capacity {
                state.order.removeFirst(state.head)
                state.head = 0
            }
        }
    }
}

/// A job as it was submitted in this process: its request and what validating it gave.
struct SubmittedJob: Sendable {
    var request: JobRequest
    var job: ValidatedJob
}

/// Jobs submitted in this process that no runner has claimed yet, bounded by the size of their
/// stored requests. A job missing here (over the bound, or queued before a restart) is simply
/// decoded from the store by the runner that claims it.
final class SubmittedJobs: Sendable {
    private struct State {
        var entries: [String: (job: SubmittedJob, bytes: Int)] = [:]
        var bytes = 0
    }

    private let state = Mutex(State())
    let maxBytes: Int

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Keeps `job` under `id` unless that would pass `maxBytes`.
    func keep(_ id: String, _ job: SubmittedJob, bytes: Int) {
        state.withLock { state in
            guard state.bytes + bytes <= maxBytes, state.entries[id] == nil else { return }
            state.entries[id] = (job, bytes)
            state.bytes += bytes
        }
    }

    /// The job kept under `id`, which is forgotten.
    func take(_ id: String) -> SubmittedJob? {
        state.withLock { state in
            guard let entry = state.entries.removeValue(forKey: id) else { return nil }
            state.bytes -= entry.bytes
            return entry.job
        }
    }

    /// Forgets `id` (a queued job was cancelled).
    func forget(_ id: String) { _ = take(id) }

    /// Jobs kept and their total request bytes.
    var usage: (count: Int, bytes: Int) { state.withLock { ($0.entries.count, $0.bytes) } }
}
