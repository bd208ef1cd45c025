import Foundation
import JobStore
import Logging
import Synchronization

/// Log lines for a job's life: submitted, started, finished (verdict and durations), cancelled,
/// requeued. Each carries the job id and, when this process saw the submission, the id of the
/// HTTP request that submitted it, so an access-log line and the job's events can be joined.
///
/// Job content — source files, stdin, expected and actual output — is private to whoever
/// submitted it and never logged, unless `includesContent` (the `log-job-content` debug
/// setting) is on; then `submitted` carries the stored request and `finished` the outputs.
final class JobEventLog: Sendable {
    let logger: Logger
    private let includesContentFlag: Atomic<Bool>
    /// Submitting request ids, in two generations: when the newer fills up the older is dropped,
    /// so memory stays bounded however many jobs never finish here (a restart forgets them all).
    private let requestIDs = Mutex<(current: [String: String], previous: [String: String])>(([:], [:]))
    private static let generationCapacity = 50_000
    /// Longest piece of job content one line carries when content logging is on.
    static let contentLimit = 16 * 1024

    init(logger: Logger, includesContent: Bool = false) {
        self.logger = logger
        includesContentFlag = Atomic(includesContent)
    }

    /// A log that writes nothing (the default for services built without one).
    static var disabled: JobEventLog {
        JobEventLog(logger: Logger(label: "sandbox-server.jobs", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// Whether job content is logged; SIGHUP may change it.
    var includesContent: Bool {
        get { includesContentFlag.load(ordering: .relaxed) }
        set { includesContentFlag.store(newValue, ordering: .relaxed) }
    }

    // MARK: Events

    func submitted(_ id: JobID, language: String, requestID: String?, request: Data) {
        if let requestID { remember(requestID, for: id.rawValue) }
        guard logsInfo else { return }
        var metadata: Logger.Metadata = ["event": "job.submitted", "job": "\(id)", "language": "\(language)"]
        if let requestID { metadata["request_id"] = "\(requestID)" }
        if includesContent { metadata["request"] = "\(Self.clipped(request))" }
        logger.info("job submitted", metadata: metadata)
    }

    func started(_ record: JobRecord, worker: String) {
        guard logsInfo else { return }
        var metadata = base(record.id.rawValue, event: "job.started")
        metadata["worker"] = "\(worker)"
        metadata["attempt"] = "\(record.attempts)"
        if let startedAt = record.startedAt {
            metadata["queued_ms"] = "\(startedAt.millisecondsSince1970 - record.createdAt.millisecondsSince1970)"
        }
        logger.info("job started", metadata: metadata)
    }

    /// `record` is the job as stored after its completion.
    func finished(_ record: JobRecord) {
        guard logsInfo else {
            forget(record.id.rawValue)
            return
        }
        var metadata = base(record.id.rawValue, event: "job.finished")
        forget(record.id.rawValue)
        metadata["language"] = "\(record.language)"
        metadata["attempts"] = "\(record.attempts)"
        if let result = record.result {
            metadata["verdict"] = "\(result.verdict.rawValue)"
            metadata["tests"] = "\(result.tests.count)"
            if let score = result.score { metadata["score"] = "\(score)" }
            if includesContent {
                var output: Logger.Metadata = [:]
                if let compile = result.compileOutput { output["compile"] = "\(Self.clipped(compile))" }
                for (index, test) in result.tests.enumerated() {
                    output["\(index)"] = ["stdout": "\(Self.clipped(test.stdout))", "stderr": "\(Self.clipped(test.stderr))"]
                }
                metadata["output"] = .dictionary(output)
            }
        }
        if let startedAt = record.startedAt {
            metadata["queued_ms"] = "\(startedAt.millisecondsSince1970 - record.createdAt.millisecondsSince1970)"
            if let finishedAt = record.finishedAt {
                metadata["run_ms"] = "\(finishedAt.millisecondsSince1970 - startedAt.millisecondsSince1970)"
            }
        }
        if let finishedAt = record.finishedAt {
            metadata["total_ms"] = "\(finishedAt.millisecondsSince1970 - record.createdAt.millisecondsSince1970)"
        }
        logger.info("job finished", metadata: metadata)
    }

    func cancelled(_ id: String, requestID: String?, wasRunning: Bool) {
        guard logsInfo else {
            forget(id)
            return
        }
        var metadata = base(id, event: "job.cancelled")
        forget(id)
        if let requestID { metadata["cancel_request_id"] = "\(requestID)" }
        metadata["was_running"] = "\(wasRunning)"
        logger.info("job cancelled", metadata: metadata)
    }

    /// Jobs put back in the queue: their runner stopped for shutdown, or their lease expired.
    func requeued(_ ids: [JobID], reason: String) {
        for id in ids {
            var metadata = base(id.rawValue, event: "job.requeued")
            metadata["reason"] = "\(reason)"
            logger.info("job requeued", metadata: metadata)
        }
    }

    /// Jobs finished as `internal_error` after their runner died too often.
    func abandoned(_ ids: [JobID]) {
        for id in ids {
            let metadata = base(id.rawValue, event: "job.abandoned")
            forget(id.rawValue)
            logger.warning("job abandoned after too many attempts", metadata: metadata)
        }
    }

    // MARK: Plumbing

    /// Whether `info` lines are written now (the level may change on SIGHUP). Every job passes
    /// through `submitted`, `started` and `finished`: with info lines off, their metadata —
    /// a dictionary of interpolated strings each — is not built at all.
    private var logsInfo: Bool { logger.logLevel <= .info }

    private func base(_ id: String, event: String) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["event": "\(event)", "job": "\(id)"]
        if let requestID = requestID(for: id) { metadata["request_id"] = "\(requestID)" }
        return metadata
    }

    /// The id of the request that submitted the job, when this process saw it.
    func requestID(for job: String) -> String? {
        requestIDs.withLock { $0.current[job] ?? $0.previous[job] }
    }

    private func remember(_ requestID: String, for job: String) {
        requestIDs.withLock { ids in
            if ids.current.count >= Self.generationCapacity {
                ids.previous = ids.current
                ids.current = [:]
            }
            ids.current[job] = requestID
        }
    }

    private func forget(_ job: String) {
        requestIDs.withLock { ids in
            ids.current[job] = nil
            ids.previous[job] = nil
        }
    }

    private static func clipped(_ data: Data) -> String {
        let text = String(decoding: data.prefix(contentLimit), as: UTF8.self)
        return data.count > contentLimit ? text + "…(\(data.count) bytes)" : text
    }
}
