import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JobStore
import Logging
import Synchronization

/// Delivers the webhooks the store has queued: POSTs the job JSON to its `callback_url`, signed
/// (see ``WebhookSigner``), retrying failures with the store's exponential backoff. Deliveries
/// live in the store, so they survive restarts; a delivery claimed by a process that died is
/// retried once its in-flight window passes.
final class WebhookSender: Sendable {
    let store: any JobStore
    let policy: WebhookPolicy
    let signer: WebhookSigner?
    let requestTimeout: Duration
    let pollInterval: Duration
    /// Counts delivery attempts by outcome (`GET /metrics`); nil counts nothing.
    let metrics: ServerMetrics?
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)

    init(store: any JobStore, policy: WebhookPolicy, secret: String?, logger: Logger,
         requestTimeout: Duration = .seconds(10), pollInterval: Duration = .milliseconds(250), metrics: ServerMetrics? = nil) {
        self.metrics = metrics
        self.store = store
        self.policy = policy
        self.signer = secret.map { WebhookSigner(secret: Array($0.utf8)) }
        self.logger = logger
        self.requestTimeout = requestTimeout
        self.pollInterval = pollInterval
    }

    func start() {
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            while !stopping.load(ordering: .acquiring) {
                let delivered = deliverDue()
                if delivered == 0 { usleep(UInt32(pollInterval.components.attoseconds / 1_000_000_000_000) + UInt32(pollInterval.components.seconds) * 1_000_000) }
            }
            running.store(false, ordering: .releasing)
        }
        thread.name = "webhooks"
        thread.start()
    }

    func stop() {
        stopping.store(true, ordering: .releasing)
        let deadline = ContinuousClock.now + requestTimeout + .seconds(1)
        while running.load(ordering: .acquiring), ContinuousClock.now < deadline { usleep(10_000) }
    }

    /// Sends every delivery that is due; returns how many were attempted.
    @discardableResult
    func deliverDue() -> Int {
        let inFlight = Int64(requestTimeout.components.seconds * 1000) * 3
        let due: [WebhookDelivery]
        do {
            due = try store.claimDueWebhooks(limit: 16, inFlightMilliseconds: inFlight)
        } catch {
            logger.warning("claiming webhooks failed", metadata: ["error": "\(error)"])
            return 0
        }
        for delivery in due { deliver(delivery) }
        return due.count
    }

    private func deliver(_ delivery: WebhookDelivery) {
        guard let url = URL(string: delivery.url) else {
            try? store.markWebhookFailed(id: delivery.id, error: "invalid URL")
            metrics?.webhookAttempt(.failed)
            return
        }
        if let problem = policy.problem(with: url) {
            logger.warning("webhook refused", metadata: ["job": "\(delivery.jobID)", "reason": "\(problem)"])
            try? store.markWebhookFailed(id: delivery.id, error: "refused: \(problem)")
            metrics?.webhookAttempt(.failed)
            return
        }
        let body: Data
        // The job decides the method (Judge0 submissions are PUT, as Judge0 sends them).
        let record = try? store.job(id: delivery.jobID)
        if let payload = delivery.payload {
            body = payload
        } else if let record {
            body = Judge0Callback.payload(for: StoredJob.view(of: record))
        } else {
            try? store.markWebhookFailed(id: delivery.id, error: "the job no longer exists")
            metrics?.webhookAttempt(.failed)
            return
        }
        switch post(body, to: url, method: Judge0Callback.httpMethod(for: record), delivery: delivery) {
        case .delivered:
            try? store.markWebhookDelivered(id: delivery.id)
            metrics?.webhookAttempt(.delivered)
        case .permanentFailure(let reason):
            logger.warning("webhook rejected", metadata: ["job": "\(delivery.jobID)", "reason": "\(reason)"])
            try? store.markWebhookFailed(id: delivery.id, error: reason)
            metrics?.webhookAttempt(.failed)
        case .retry(let reason):
            let state = try? store.recordWebhookFailure(id: delivery.id, error: reason)
            metrics?.webhookAttempt(state == .failed ? .failed : .retry)
            logger.info("webhook failed", metadata: ["job": "\(delivery.jobID)", "reason": "\(reason)", "state": "\(state?.rawValue ?? "?")"])
        }
    }

    private enum Attempt: Sendable {
        case delivered
        case permanentFailure(String)
        case retry(String)
    }

    private func post(_ body: Data, to url: URL, method: String, delivery: WebhookDelivery) -> Attempt {
        var request = URLRequest(url: url, timeoutInterval: Double(requestTimeout.components.seconds))
        request.httpMethod = method
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("sandbox-server-webhook", forHTTPHeaderField: "User-Agent")
        request.setValue(delivery.jobID.rawValue, forHTTPHeaderField: "X-Sandbox-Job-Id")
        request.setValue(String(delivery.id), forHTTPHeaderField: "X-Sandbox-Delivery")
        if let signer {
            let timestamp = Int64(Date().timeIntervalSince1970)
            request.setValue(String(timestamp), forHTTPHeaderField: WebhookSigner.timestampHeader)
            request.setValue(signer.signature(body: Array(body), timestamp: timestamp), forHTTPHeaderField: WebhookSigner.signatureHeader)
        }
        let outcome = Mutex<Attempt>(.retry("no response"))
        let done = DispatchSemaphore(value: 0)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = Double(requestTimeout.components.seconds)
        let session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
        let task = session.dataTask(with: request) { _, response, error in
            let attempt: Attempt
            if let error {
                attempt = .retry(error.localizedDescription)
            } else if let status = (response as? HTTPURLResponse)?.statusCode {
                switch status {
                case 200..<300: attempt = .delivered
                // The receiver says the request itself is wrong; resending it will not help.
                case 400, 401, 403, 404, 405, 410, 413, 422: attempt = .permanentFailure("HTTP \(status)")
                default: attempt = .retry("HTTP \(status)")
                }
            } else {
                attempt = .retry("no HTTP response")
            }
            outcome.withLock { $0 = attempt }
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + .seconds(Int(requestTimeout.components.seconds) + 1)) == .timedOut {
            task.cancel()
            session.invalidateAndCancel()
            return .retry("timed out")
        }
        session.finishTasksAndInvalidate()
        return outcome.withLock { $0 }
    }
}

/// A redirect could point the request at an address the SSRF check never saw; never follow one.
private final class NoRedirects: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
