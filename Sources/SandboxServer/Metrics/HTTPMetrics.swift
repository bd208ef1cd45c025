import HTTPCore

/// Requests the HTTP server answered, by method, route pattern and status, and their durations
/// by route: the router's ``HTTPRequestObserver``.
///
/// The observer runs on every request (the trivial route does tens of thousands a second), so it
/// builds no strings and takes no shared lock: it updates the calling worker's own stripe (see
/// ``ThreadStripes``) — a dictionary keyed by one integer and an array indexed by route.
/// Labels are made at scrape time from the route table. Series are bounded by the route table,
/// the seven methods and the status codes the server sends.
final class HTTPMetrics: Sendable {
    /// The route table of the router observed; `routeIndex` values index it.
    let routes: [Router.RouteDescription]
    private let buckets = HistogramBuckets.httpRequest
    private let stripes: ThreadStripes<Tally>

    /// What one stripe has counted.
    struct Tally: Sendable {
        /// Requests by ``HTTPMetrics/key(_:)``.
        var requests: [UInt64: UInt64] = [:]
        /// Durations by route index + 1 (0: no route).
        var durations: [HistogramCells]
    }

    /// Label of requests no route handled (404, 405, automatic OPTIONS, parse failures).
    static let unmatchedRoute = "unmatched"
    /// Label of requests that could not be parsed, so have no method.
    static let unknownMethod = "unknown"

    /// - Parameter stripeCount: how many stripes (the benchmark compares one shared lock).
    init(routes: [Router.RouteDescription], stripeCount: Int = ThreadStripeIndex.stripeCount) {
        self.routes = routes
        let cells = HistogramCells(bucketCount: buckets.bounds.count)
        stripes = ThreadStripes(count: stripeCount, initial: Tally(durations: Array(repeating: cells, count: routes.count + 1)))
    }

    /// Installs this as `router`'s only observer; call once every route is added.
    static func observing(_ router: inout Router) -> HTTPMetrics {
        let metrics = HTTPMetrics(routes: router.routeTable)
        router.requestObserver = { metrics.observe($0) }
        return metrics
    }

    /// Counts one request.
    func observe(_ observation: HTTPRequestObservation) {
        var slot = 0
        if let index = observation.routeIndex, index >= 0, index < routes.count { slot = index + 1 }
        let key = Self.key(method: observation.method, slot: slot, status: observation.statusCode)
        let bucket = buckets.index(of: observation.durationNanoseconds)
        let duration = observation.durationNanoseconds
        stripes.withCurrent { tally in
            tally.requests[key, default: 0] &+= 1
            tally.durations[slot].counts[bucket] &+= 1
            tally.durations[slot].sum &+= duration
        }
    }

    /// Method (0: unknown, else 1 + its index), route slot and status code in one integer.
    static func key(method: HTTPMethod?, slot: Int, status: Int) -> UInt64 {
        // A switch, not `allCases.firstIndex`: that would build an array per request.
        let methodNumber: UInt64 = switch method {
        case nil: 0
        case .GET: 1
        case .HEAD: 2
        case .POST: 3
        case .PUT: 4
        case .DELETE: 5
        case .OPTIONS: 6
        case .PATCH: 7
        }
        return methodNumber << 48 | UInt64(truncatingIfNeeded: slot) << 16 | UInt64(truncatingIfNeeded: min(max(status, 0), 0xFFFF))
    }

    private func labels(method methodNumber: UInt64, slot: Int) -> (method: String, route: String) {
        let methods: [HTTPMethod] = [.GET, .HEAD, .POST, .PUT, .DELETE, .OPTIONS, .PATCH]
        let method = methodNumber == 0 || methodNumber > methods.count ? Self.unknownMethod : methods[Int(methodNumber) - 1].rawValue
        return (method, slot == 0 ? Self.unmatchedRoute : routes[slot - 1].pattern)
    }

    /// The requests counter and the duration histogram.
    var families: [MetricFamily] {
        var requests: [UInt64: UInt64] = [:]
        var durations = [HistogramCells](repeating: HistogramCells(bucketCount: buckets.bounds.count), count: routes.count + 1)
        stripes.forEach { tally in
            for (key, count) in tally.requests { requests[key, default: 0] &+= count }
            for slot in durations.indices { durations[slot].merge(tally.durations[slot]) }
        }
        let requestSeries = requests.map { key, count in
            let (method, route) = labels(method: key >> 48, slot: Int((key >> 16) & 0xFFFF_FFFF))
            return MetricSeries([MetricLabel("method", method), MetricLabel("route", route), MetricLabel("status", String(key & 0xFFFF))],
                                Double(count))
        }
        // One histogram per route pattern (a pattern served for several methods shares it).
        var byPattern: [String: HistogramCells] = [:]
        for (slot, cells) in durations.enumerated() where cells.counts.contains(where: { $0 > 0 }) {
            byPattern[slot == 0 ? Self.unmatchedRoute : routes[slot - 1].pattern, default: HistogramCells(bucketCount: buckets.bounds.count)]
                .merge(cells)
        }
        let durationSeries = byPattern.map { pattern, cells in
            MetricSeries([MetricLabel("route", pattern)], histogram: HistogramSnapshot(
                upperBounds: buckets.exposedBounds, bucketCounts: cells.counts, sum: buckets.exposed(cells.sum)))
        }
        return [
            MetricFamily(name: "sandbox_server_http_requests_total",
                         help: "HTTP requests answered, by method, route pattern (unmatched: no route) and status code.",
                         type: .counter, series: requestSeries),
            MetricFamily(name: "sandbox_server_http_request_duration_seconds",
                         help: "Time from a parsed request to its response written (a stream: until it ended), by route pattern.",
                         type: .histogram, series: durationSeries),
        ]
    }
}
