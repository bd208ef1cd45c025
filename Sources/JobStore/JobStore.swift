import Foundation

/// The durable job queue the service depends on. `SQLiteJobStore` is the embedded default; a
/// PostgreSQL backend for multi-node deployments can conform without changing callers.
///
/// Every method is synchronous and safe to call from any thread. Writes either happen completely
/// or not at all; a thrown `JobStoreError` with `isTemporarilyUnavailable` maps to HTTP 503.
public protocol JobStore: Sendable {
    // MARK: Jobs

    /// Inserts a job, or returns the existing job with the same idempotency key and request hash.
    /// Throws `.idempotencyConflict` when the key was used with a different request hash.
    func insert(_ job: NewJob) throws(JobStoreError) -> Submission

    /// Inserts all jobs in one transaction: all are stored, or none are.
    func insert(batch jobs: [NewJob]) throws(JobStoreError) -> [Submission]

    /// The job with this id, with its request and result; nil when unknown (or purged).
    func job(id: JobID) throws(JobStoreError) -> JobRecord?

    /// The job previously submitted with this idempotency key; throws `.idempotencyConflict` when
    /// it was submitted with a different request hash.
    func job(idempotency: Idempotency) throws(JobStoreError) -> JobID?

    /// Jobs matching the filter, newest first, one page at a time.
    func list(_ filter: JobFilter) throws(JobStoreError) -> JobPage

    /// Atomically takes the next queued job (highest priority, then oldest) for `worker`, with a
    /// lease of `leaseMilliseconds`; nil when the queue is empty.
    func claimNext(worker: String, leaseMilliseconds: Int64) throws(JobStoreError) -> JobRecord?

    /// Extends the worker's lease; returns the new expiry. Throws `.leaseLost` when the worker no
    /// longer owns the job.
    func renewLease(id: JobID, worker: String, leaseMilliseconds: Int64) throws(JobStoreError) -> Timestamp

    /// Stores the result and finishes the job; enqueues `webhook` in the same transaction.
    /// `finishedAt` is when the job finished, for a caller that has already put that time in the
    /// webhook's payload; nil means the store's clock now. Returns the job's `finishedAt`, so a
    /// caller holding the claimed record has the finished one without reading it back. Throws
    /// `.leaseLost` when the worker no longer owns the job (cancelled, requeued, reclaimed).
    @discardableResult
    func complete(id: JobID, worker: String, result: JobResult, webhook: WebhookRequest?,
                  finishedAt: Timestamp?) throws(JobStoreError) -> Timestamp

    /// `complete` followed by `claimNext` for the same worker, in one write: a runner that goes
    /// straight on to its next job waits for one commit instead of two. Returns the finished
    /// job's `finishedAt` and the next job, if one was queued. If the completion fails nothing
    /// is claimed.
    func completeAndClaimNext(
        id: JobID, worker: String, result: JobResult, webhook: WebhookRequest?, finishedAt: Timestamp?,
        leaseMilliseconds: Int64
    ) throws(JobStoreError) -> (finishedAt: Timestamp, next: JobRecord?)

    /// Cancels a queued or running job (enqueueing `webhook` with it); returns the state after the
    /// call, which is the unchanged final state when the job had already finished or was cancelled.
    /// `cancelledAt` is the job's `finishedAt`, for a caller that has put it in the webhook's
    /// payload; nil means the store's clock now.
    func cancel(id: JobID, webhook: WebhookRequest?, cancelledAt: Timestamp?) throws(JobStoreError) -> JobState

    /// Requeues running jobs whose lease has expired; a job that has used all its attempts finishes
    /// as `internal_error` with a message saying why (and a webhook if it has a callback URL).
    func requeueExpiredLeases() throws(JobStoreError) -> RequeueReport

    /// Hands a running job back to the queue at once (a runner stopping for shutdown), instead of
    /// leaving it to wait for its lease to expire. The claim is not counted against the job's
    /// attempt limit: the job did nothing wrong. Returns false (and changes nothing) when the
    /// worker no longer owns the job (it finished, was cancelled or was requeued meanwhile).
    func release(id: JobID, worker: String) throws(JobStoreError) -> Bool

    /// Deletes finished and cancelled jobs that finished before `cutoff`, with their test results
    /// and webhook deliveries; returns how many jobs were deleted.
    func purgeFinished(before cutoff: Timestamp) throws(JobStoreError) -> Int

    /// Deletes one finished or cancelled job with its test results and webhook deliveries.
    /// Returns false (and deletes nothing) when the job is queued or running; throws `.notFound`
    /// for an unknown id.
    func deleteFinished(id: JobID) throws(JobStoreError) -> Bool

    /// How many jobs are in each state (scans every job: for occasional callers such as a
    /// metrics scrape; the admission check uses ``queuedCount()``).
    func countsByState() throws(JobStoreError) -> StateCounts

    /// How many jobs are queued, counted over an index range holding only them: the cost grows with the
    /// queue, never with the history kept.
    func queuedCount() throws(JobStoreError) -> Int

    /// Jobs counted by language, by outcome, and by UTC day of creation for the days from
    /// `createdSince`'s day on — aggregate queries, never loading jobs.
    func statistics(createdSince: Timestamp) throws(JobStoreError) -> JobStatistics

    // MARK: Webhooks

    /// Enqueues a webhook delivery for a job, due now.
    func enqueueWebhook(jobID: JobID, _ webhook: WebhookRequest) throws(JobStoreError) -> Int64

    /// Takes up to `limit` pending deliveries that are due, counts an attempt for each and hides
    /// them from other callers for `inFlightMilliseconds` (so a crashed sender's deliveries retry).
    func claimDueWebhooks(limit: Int, inFlightMilliseconds: Int64) throws(JobStoreError) -> [WebhookDelivery]

    /// Records a successful delivery.
    func markWebhookDelivered(id: Int64) throws(JobStoreError)

    /// Records a failed attempt: reschedules with exponential backoff, or marks the delivery failed
    /// once its attempts are used up. Returns the resulting state.
    func recordWebhookFailure(id: Int64, error: String) throws(JobStoreError) -> WebhookState

    /// Gives up on a delivery at once (e.g. the receiver answered with a permanent error).
    func markWebhookFailed(id: Int64, error: String) throws(JobStoreError)

    /// One delivery by id (for inspection and tests).
    func webhook(id: Int64) throws(JobStoreError) -> WebhookDelivery?

    // MARK: File cache

    /// Stores (or replaces) a support file, evicting least-recently-used files to stay under the
    /// cache capacity. Throws `.fileTooLarge` when the file alone exceeds the capacity.
    func putFile(id: String, contents: Data) throws(JobStoreError)

    /// The file's metadata, marking it used; nil when absent (never stored or evicted).
    func fileInfo(id: String) throws(JobStoreError) -> CachedFile?

    /// The file's bytes, marking it used; nil when absent.
    func fileContents(id: String) throws(JobStoreError) -> Data?

    /// Total bytes of all cached files.
    func fileCacheSize() throws(JobStoreError) -> Int64

    /// Deletes cached files not used since `cutoff`, a bounded number per transaction; returns how
    /// many were deleted.
    func purgeCachedFiles(unusedSince cutoff: Timestamp) throws(JobStoreError) -> Int

    // MARK: Storage

    /// The database file's size in pages. Throws when the store refuses writes (a sync of its log
    /// failed), so health checks that call it see the store as down.
    func storageStats() throws(JobStoreError) -> StorageStats

    /// Returns up to `maxPages` free pages (all when nil) to the file system; returns pages freed.
    func incrementalVacuum(maxPages: Int?) throws(JobStoreError) -> Int64
}

extension JobStore {
    /// ``complete(id:worker:result:webhook:finishedAt:)`` finishing the job at the store's now.
    @discardableResult
    public func complete(id: JobID, worker: String, result: JobResult, webhook: WebhookRequest?) throws(JobStoreError) -> Timestamp {
        try complete(id: id, worker: worker, result: result, webhook: webhook, finishedAt: nil)
    }

    /// ``cancel(id:webhook:cancelledAt:)`` at the store's now.
    public func cancel(id: JobID, webhook: WebhookRequest?) throws(JobStoreError) -> JobState {
        try cancel(id: id, webhook: webhook, cancelledAt: nil)
    }

    /// ``completeAndClaimNext(id:worker:result:webhook:finishedAt:leaseMilliseconds:)`` finishing
    /// the job at the store's now.
    public func completeAndClaimNext(
        id: JobID, worker: String, result: JobResult, webhook: WebhookRequest?, leaseMilliseconds: Int64
    ) throws(JobStoreError) -> (finishedAt: Timestamp, next: JobRecord?) {
        try completeAndClaimNext(id: id, worker: worker, result: result, webhook: webhook, finishedAt: nil,
                                 leaseMilliseconds: leaseMilliseconds)
    }
}
