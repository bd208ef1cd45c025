import Foundation
import Synchronization

/// State split into stripes, one per thread as far as there are stripes, each behind its own lock.
///
/// Recording takes the calling thread's stripe: threads are given stripes round-robin the first
/// time they record, so the first `count` threads (the HTTP workers, the runners) never share a
/// lock and the lock taken on the hot path is uncontended — a compare-and-swap, no cache line
/// bouncing between cores. A scrape visits every stripe and merges.
final class ThreadStripes<State: Sendable>: Sendable {
    /// A lock with its state, padded to a cache line so neighbouring stripes do not false-share.
    private final class Stripe: Sendable {
        let state: Mutex<State>
        private let padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        init(_ state: State) { self.state = Mutex(state) }
    }

    private let stripes: [Stripe]

    /// `count` stripes, each starting as `initial`.
    init(count: Int = ThreadStripeIndex.stripeCount, initial: State) {
        stripes = (0..<max(1, count)).map { _ in Stripe(initial) }
    }

    /// Runs `body` on the calling thread's stripe.
    @inline(__always)
    func withCurrent(_ body: (inout State) -> Void) {
        stripes[ThreadStripeIndex.current % stripes.count].state.withLock { body(&$0) }
    }

    /// Visits every stripe's state in turn (each under its lock, briefly).
    func forEach(_ body: (State) -> Void) {
        for stripe in stripes { stripe.state.withLock { body($0) } }
    }
}

/// The calling thread's stripe number, assigned round-robin on first use and kept in a pthread
/// key (a load from thread-local storage, no syscall).
enum ThreadStripeIndex {
    /// Enough stripes that the usual threads (HTTP workers, runners) get one each.
    static let stripeCount = max(8, min(64, 2 * ProcessInfo.processInfo.activeProcessorCount))

    private static let next = Atomic<Int>(0)
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    static var current: Int {
        if let stored = pthread_getspecific(key) { return Int(bitPattern: stored) - 1 }
        let index = next.add(1, ordering: .relaxed).oldValue
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: index + 1))
        return index
    }
}

/// A family of counters keyed by `Key`, a type whose values are few by construction (enums,
/// route indices, normalised label values), so the series count never depends on input.
///
/// Values are integers (events, or nanoseconds for time counters); `unitsPerExposedUnit` converts
/// at scrape (1e9 for a `_seconds_total` counter kept in nanoseconds).
final class CounterFamily<Key: Hashable & Sendable>: Sendable {
    let name: String
    let help: String
    let unitsPerExposedUnit: Double
    private let labels: @Sendable (Key) -> [MetricLabel]
    private let stripes = ThreadStripes<[Key: UInt64]>(initial: [:])
    /// Series shown at zero before anything is recorded, so `rate()` sees the first increment.
    private let initialKeys: [Key]

    init(_ name: String, help: String, unitsPerExposedUnit: Double = 1, initialKeys: [Key] = [],
         labels: @escaping @Sendable (Key) -> [MetricLabel]) {
        self.name = name
        self.help = help
        self.unitsPerExposedUnit = unitsPerExposedUnit
        self.labels = labels
        self.initialKeys = initialKeys
    }

    /// Adds `amount` to the series of `key`.
    @inline(__always)
    func add(_ key: Key, _ amount: UInt64 = 1) {
        stripes.withCurrent { $0[key, default: 0] &+= amount }
    }

    /// Every series' value, merged over the stripes.
    var values: [Key: UInt64] {
        var merged = Dictionary(uniqueKeysWithValues: initialKeys.map { ($0, UInt64(0)) })
        stripes.forEach { stripe in
            for (key, value) in stripe { merged[key, default: 0] &+= value }
        }
        return merged
    }

    var family: MetricFamily {
        MetricFamily(name: name, help: help, type: .counter,
                     series: values.map { MetricSeries(labels($0.key), Double($0.value) / unitsPerExposedUnit) })
    }
}

/// Fixed bucket bounds of a histogram, in the unit observations are recorded in (nanoseconds for
/// durations) and in the exposed unit (seconds).
struct HistogramBuckets: Sendable, Equatable {
    /// Ascending upper bounds in recorded units.
    let bounds: [UInt64]
    /// The same bounds in exposed units, as written in `le` labels.
    let exposedBounds: [Double]
    /// Recorded units per exposed unit (1e9 nanoseconds per second).
    let unitsPerExposedUnit: Double

    /// Duration buckets given in seconds, recorded in nanoseconds.
    static func seconds(_ bounds: [Double]) -> HistogramBuckets {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bucket bounds must ascend")
        return HistogramBuckets(bounds: bounds.map { UInt64(($0 * 1e9).rounded()) }, exposedBounds: bounds, unitsPerExposedUnit: 1e9)
    }

    /// `value` recorded units in exposed units.
    func exposed(_ value: UInt64) -> Double { Double(value) / unitsPerExposedUnit }

    /// Sandbox phases: set-up steps take milliseconds, runs up to the wall limit.
    static let sandboxPhase = seconds([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
    /// HTTP requests: a trivial route answers in microseconds, a long-poll in up to a minute.
    static let httpRequest = seconds([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    /// Job stages: from an idle queue's milliseconds to a backlog's minutes.
    static let jobStage = seconds([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600])

    /// The bucket an observation falls in (`bounds.count` for above every bound).
    @inline(__always)
    func index(of value: UInt64) -> Int {
        var index = 0
        while index < bounds.count, value > bounds[index] { index += 1 }
        return index
    }
}

/// One histogram's counts in recorded units.
struct HistogramCells: Sendable {
    /// Per-bucket counts, the last for above every bound.
    var counts: [UInt64]
    var sum: UInt64 = 0

    init(bucketCount: Int) { counts = [UInt64](repeating: 0, count: bucketCount + 1) }

    mutating func merge(_ other: HistogramCells) {
        for index in counts.indices { counts[index] &+= other.counts[index] }
        sum &+= other.sum
    }
}

/// A family of histograms keyed by `Key` (few values by construction, as for ``CounterFamily``),
/// with the same fixed buckets for every series.
final class HistogramFamily<Key: Hashable & Sendable>: Sendable {
    let name: String
    let help: String
    let buckets: HistogramBuckets
    private let labels: @Sendable (Key) -> [MetricLabel]
    private let stripes = ThreadStripes<[Key: HistogramCells]>(initial: [:])
    private let initialKeys: [Key]

    init(_ name: String, help: String, buckets: HistogramBuckets, initialKeys: [Key] = [],
         labels: @escaping @Sendable (Key) -> [MetricLabel]) {
        self.name = name
        self.help = help
        self.buckets = buckets
        self.labels = labels
        self.initialKeys = initialKeys
    }

    /// Records one observation (in recorded units, e.g. nanoseconds) in the series of `key`.
    @inline(__always)
    func observe(_ key: Key, _ value: UInt64) {
        let bucket = buckets.index(of: value)
        let bucketCount = buckets.bounds.count
        stripes.withCurrent { table in
            if let position = table.index(forKey: key) {
                table.values[position].counts[bucket] &+= 1
                table.values[position].sum &+= value
            } else {
                var cells = HistogramCells(bucketCount: bucketCount)
                cells.counts[bucket] = 1
                cells.sum = value
                table[key] = cells
            }
        }
    }

    /// Records a duration.
    func observe(_ key: Key, _ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        observe(key, UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds) / 1_000_000_000))
    }

    /// Every series, merged over the stripes.
    var values: [Key: HistogramCells] {
        var merged = Dictionary(uniqueKeysWithValues: initialKeys.map { ($0, HistogramCells(bucketCount: buckets.bounds.count)) })
        stripes.forEach { stripe in
            for (key, cells) in stripe { merged[key, default: HistogramCells(bucketCount: buckets.bounds.count)].merge(cells) }
        }
        return merged
    }

    var family: MetricFamily {
        MetricFamily(name: name, help: help, type: .histogram, series: values.map { key, cells in
            MetricSeries(labels(key), histogram: HistogramSnapshot(upperBounds: buckets.exposedBounds, bucketCounts: cells.counts,
                                                                   sum: buckets.exposed(cells.sum)))
        })
    }
}

/// The values a label may take. Anything else is recorded as `other`, so what clients send can
/// never create series.
struct LabelDomain: Sendable {
    /// What an unknown value becomes.
    static let other = "other"

    let values: Set<String>

    init(_ values: some Sequence<String>) { self.values = Set(values) }

    func normalize(_ value: String) -> String { values.contains(value) ? value : Self.other }
}
