import Dispatch
import Synchronization

/// Something that happened to a job, as `GET /v1/jobs/{id}/events` streams it.
enum JobEvent: Sendable, Equatable {
    /// The job's state changed (queued, running, finished, cancelled); the view is the whole job.
    case state(JobView)
    /// One test finished while the job runs (`index` is its position in the request).
    case test(index: Int, TestResultView)

    /// Whether no event can follow this one.
    var isFinal: Bool {
        if case .state(let view) = self { return view.state == .finished || view.state == .cancelled }
        return false
    }
}

/// In-process fan-out of job events from runners and the service to waiters (`?wait=`, SSE).
///
/// State events are not stored: a subscriber sees the state changes after it subscribed, so
/// callers read the job from the store *after* subscribing and then follow events, which cannot
/// miss a change. The test results of a job that is still running are kept until its final
/// event and replayed to a late subscriber (atomically with subscribing), so a stream opened
/// mid-run still reports every test.
final class JobEventHub: Sendable {
    private struct Table {
        var subscribers: [String: [ObjectIdentifier: JobSubscription]] = [:]
        /// Test events of running jobs, in order.
        var runningTests: [String: [JobEvent]] = [:]
    }

    private let table = Mutex(Table())

    /// Starts following the job `id` (already finished tests of a running job are queued first);
    /// call ``unsubscribe(_:)`` when done.
    func subscribe(_ id: String) -> JobSubscription {
        let subscription = JobSubscription(jobID: id)
        table.withLock { table in
            table.subscribers[id, default: [:]][ObjectIdentifier(subscription)] = subscription
            for event in table.runningTests[id] ?? [] { subscription.deliver(event) }
        }
        return subscription
    }

    func unsubscribe(_ subscription: JobSubscription) {
        table.withLock { table in
            table.subscribers[subscription.jobID]?[ObjectIdentifier(subscription)] = nil
            if table.subscribers[subscription.jobID]?.isEmpty == true { table.subscribers[subscription.jobID] = nil }
        }
    }

    /// Delivers `event` to everyone following job `id` (never blocks on a slow subscriber).
    func publish(_ id: String, _ event: JobEvent) {
        let targets = table.withLock { table in
            if case .test = event { table.runningTests[id, default: []].append(event) }
            if event.isFinal { table.runningTests[id] = nil }
            return table.subscribers[id].map { Array($0.values) } ?? []
        }
        for subscription in targets { subscription.deliver(event) }
    }

    /// Forgets the kept test events of a job that ended without a final event (its runner gave
    /// it up, e.g. a lost lease).
    func forget(_ id: String) {
        table.withLock { _ = $0.runningTests.removeValue(forKey: id) }
    }

    /// How many subscriptions are open (for tests: waiters must not leak).
    var subscriptionCount: Int { table.withLock { $0.subscribers.values.reduce(0) { $0 + $1.count } } }
}

/// One follower's queue of events; ``next(timeout:)`` blocks its (non-cooperative) thread.
final class JobSubscription: Sendable {
    let jobID: String
    private let queue = Mutex<[JobEvent]>([])
    /// Counts queued events.
    private let available = DispatchSemaphore(value: 0)

    init(jobID: String) { self.jobID = jobID }

    func deliver(_ event: JobEvent) {
        queue.withLock { $0.append(event) }
        available.signal()
    }

    /// The next event, or nil when none arrives within `timeout`.
    func next(timeout: Duration) -> JobEvent? {
        let nanoseconds = max(0, timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        guard available.wait(timeout: .now() + .nanoseconds(Int(min(nanoseconds, Int64(Int.max))))) == .success else { return nil }
        return queue.withLock { $0.removeFirst() }
    }
}

/// Wakes idle runners when jobs are submitted, so a job starts at once rather than at the next
/// poll. Extra signals only cause a claim that finds nothing.
final class WorkSignal: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let pending = Atomic<Int>(0)
    private let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Wakes up to `count` idle runners (at most one per runner is remembered).
    func signal(count: Int = 1) {
        for _ in 0..<count {
            // Bounded so a burst of submissions cannot leave thousands of stale wake-ups behind.
            guard pending.add(1, ordering: .relaxed).newValue <= capacity else {
                pending.subtract(1, ordering: .relaxed)
                return
            }
            semaphore.signal()
        }
    }

    /// Waits for a signal or `timeout`.
    func wait(timeout: Duration) {
        let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        if semaphore.wait(timeout: .now() + .milliseconds(milliseconds)) == .success {
            pending.subtract(1, ordering: .relaxed)
        }
    }
}
