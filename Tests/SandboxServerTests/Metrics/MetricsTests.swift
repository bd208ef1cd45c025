import Foundation
import HTTPCore
import Isolation
import JobStore
import Testing

@testable import SandboxServer

/// The exposition format and the instruments, without a server.
@Suite struct MetricsExpositionTests {
    @Test func labelValuesAndHelpAreEscaped() throws {
        let family = MetricFamily(name: "demo_total", help: "Back\\slash and\nnewline \"quoted\"", type: .counter, series: [
            MetricSeries([MetricLabel("path", #"C:\dir "x""# + "\nnext")], 3),
        ])
        let text = MetricsExposition.render([family])
        #expect(text == #"""
            # HELP demo_total Back\\slash and\nnewline "quoted"
            # TYPE demo_total counter
            demo_total{path="C:\\dir \"x\"\nnext"} 3

            """#)
        let parsed = try PrometheusText(text)
        #expect(parsed.value("demo_total", ["path": #"C:\dir "x""# + "\nnext"]) == 3, "escaping round-trips")
        #expect(parsed.helps["demo_total"] == "Back\\slash and\nnewline \"quoted\"")
    }

    @Test func histogramBucketsAreCumulativeAndEndInInf() throws {
        let histogram = HistogramSnapshot(upperBounds: [0.1, 1, 10], bucketCounts: [2, 0, 3, 1], sum: 17.5)
        let text = MetricsExposition.render([
            MetricFamily(name: "demo_seconds", help: "h", type: .histogram, series: [MetricSeries([MetricLabel("phase", "run")], histogram: histogram)]),
        ])
        #expect(text == """
            # HELP demo_seconds h
            # TYPE demo_seconds histogram
            demo_seconds_bucket{phase="run",le="0.1"} 2
            demo_seconds_bucket{phase="run",le="1"} 2
            demo_seconds_bucket{phase="run",le="10"} 5
            demo_seconds_bucket{phase="run",le="+Inf"} 6
            demo_seconds_sum{phase="run"} 17.5
            demo_seconds_count{phase="run"} 6

            """)
        #expect(try PrometheusText(text).value("demo_seconds_count", ["phase": "run"]) == 6)
    }

    @Test func familiesAndSeriesAreSortedSoScrapesAreStable() {
        let counter = CounterFamily<String>("b_total", help: "b", labels: { [MetricLabel("k", $0)] })
        for key in ["zeta", "alpha", "mid", "alpha"] { counter.add(key) }
        let gauge = MetricFamily(name: "a_gauge", help: "a", type: .gauge, series: [MetricSeries([], 1)])
        let first = MetricsExposition.render([counter.family, gauge])
        #expect(first == """
            # HELP a_gauge a
            # TYPE a_gauge gauge
            a_gauge 1
            # HELP b_total b
            # TYPE b_total counter
            b_total{k="alpha"} 2
            b_total{k="mid"} 1
            b_total{k="zeta"} 1

            """)
        #expect(MetricsExposition.render([gauge, counter.family]) == first, "input order does not matter")
    }

    @Test func numbersAreFormattedAsPrometheusParsesThem() {
        #expect(MetricsExposition.format(3) == "3")
        #expect(MetricsExposition.format(-2) == "-2")
        #expect(MetricsExposition.format(0.25) == "0.25")
        #expect(MetricsExposition.format(.infinity) == "+Inf")
        #expect(MetricsExposition.format(-.infinity) == "-Inf")
        #expect(MetricsExposition.format(.nan) == "NaN")
        #expect(Double(MetricsExposition.format(1e20)) == 1e20)
    }

    @Test func histogramBucketsFollowTheirBounds() {
        let buckets = HistogramBuckets.seconds([0.001, 0.01])
        #expect(buckets.index(of: 0) == 0)
        #expect(buckets.index(of: 1_000_000) == 0, "a bound is inclusive")
        #expect(buckets.index(of: 1_000_001) == 1)
        #expect(buckets.index(of: 10_000_001) == 2, "above every bound")
        let family = HistogramFamily<Int>("d_seconds", help: "d", buckets: buckets, labels: { _ in [] })
        family.observe(0, .milliseconds(5))
        family.observe(0, .seconds(2))
        let cells = family.values[0]
        #expect(cells?.counts == [0, 1, 1])
        #expect(cells?.sum == 2_005_000_000)
        guard case .histogram(let snapshot) = family.family.series.first?.value else {
            Issue.record("not a histogram")
            return
        }
        #expect(snapshot.upperBounds == [0.001, 0.01], "le labels are the bounds as given, not rounded nanoseconds")
        #expect(snapshot.sum == 2.005)
    }

    @Test func countsFromManyThreadsAllArrive() async throws {
        let counter = CounterFamily<Int>("c_total", help: "c", labels: { [MetricLabel("k", String($0))] })
        let threads = 12
        let perThread = 5_000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<threads {
                group.addTask {
                    try await onOwnThread {
                        for index in 0..<perThread { counter.add(index % 3) }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(counter.values.values.reduce(0, +) == UInt64(threads * perThread))
        #expect(counter.values[0] == UInt64(threads * 1_667))
    }

    @Test func unknownLabelValuesBecomeOther() {
        let metrics = ServerMetrics(languages: ["python", "bash"])
        metrics.jobSubmitted(api: .native, language: "python")
        metrics.jobSubmitted(api: .native, language: "rm -rf /; \"inject\"")
        metrics.jobSubmitted(api: .judge0, language: "brainfuck")
        let values = metrics.jobsSubmitted.values
        #expect(values[["native", "python"]] == 1)
        #expect(values[["native", "other"]] == 1)
        #expect(values[["judge0", "other"]] == 1)
        #expect(values.count == 3)
        #expect(ServerMetrics.verdictLabel(JobStore::Verdict(rawValue: "accepted")) == "accepted")
        #expect(ServerMetrics.verdictLabel(JobStore::Verdict(rawValue: "made_up")) == "other")
    }

    @Test func sandboxRunsFeedThePhaseHistogram() throws {
        let metrics = ServerMetrics()
        var result = RunResult(status: .ok)
        result.phases = RunPhases(prepare: 300, spawn: 2_000, run: 40_000, collect: 100)  // microseconds
        metrics.sandboxRun(result)
        metrics.sandboxRun(RunResult(status: .timeLimit))
        let parsed = try PrometheusText(metrics.exposition())
        #expect(parsed.value("sandbox_server_sandbox_phase_duration_seconds_count", ["phase": "run"]) == 2)
        #expect(parsed.value("sandbox_server_sandbox_phase_duration_seconds_sum", ["phase": "run"]) == 0.04)
        #expect(parsed.value("sandbox_server_sandbox_phase_duration_seconds_bucket", ["phase": "spawn", "le": "0.0025"]) == 2)
        #expect(parsed.value("sandbox_server_sandbox_phase_duration_seconds_bucket", ["phase": "spawn", "le": "0.001"]) == 1)
        #expect(parsed.value("sandbox_server_sandbox_runs_total", ["status": "ok"]) == 1)
        #expect(parsed.value("sandbox_server_sandbox_runs_total", ["status": "time_limit"]) == 1)
    }
}

/// The HTTP observer: route patterns, not paths; bounded series.
@Suite struct HTTPMetricsTests {
    func router() -> (Router, HTTPMetrics) {
        var router = Router()
        router.get("/v1/jobs/{id}") { request in .text(request.parameter("id") ?? "") }
        router.post("/v1/jobs") { _ in HTTPResponse(status: .created) }
        let metrics = HTTPMetrics.observing(&router)
        return (router, metrics)
    }

    @Test func requestsAreCountedByMethodRoutePatternAndStatus() throws {
        let (router, metrics) = router()
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/v1/jobs/abc"))
        _ = router.respond(to: HTTPRequest(method: .HEAD, target: "/v1/jobs/abc"))
        _ = router.respond(to: HTTPRequest(method: .POST, target: "/v1/jobs"))
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/nothing/here"))
        metrics.observe(HTTPRequestObservation(method: nil, routeIndex: nil, statusCode: 400, durationNanoseconds: 10))
        let parsed = try PrometheusText(MetricsExposition.render(metrics.families))
        #expect(parsed.value("sandbox_server_http_requests_total", ["method": "GET", "route": "/v1/jobs/{id}", "status": "200"]) == 1)
        #expect(parsed.value("sandbox_server_http_requests_total", ["method": "HEAD", "route": "/v1/jobs/{id}", "status": "200"]) == 1)
        #expect(parsed.value("sandbox_server_http_requests_total", ["method": "POST", "route": "/v1/jobs", "status": "201"]) == 1)
        #expect(parsed.value("sandbox_server_http_requests_total", ["method": "GET", "route": "unmatched", "status": "404"]) == 1)
        #expect(parsed.value("sandbox_server_http_requests_total", ["method": "unknown", "route": "unmatched", "status": "400"]) == 1)
        #expect(parsed.value("sandbox_server_http_request_duration_seconds_count", ["route": "/v1/jobs/{id}"]) == 2)
        #expect(parsed.value("sandbox_server_http_request_duration_seconds_count", ["route": "unmatched"]) == 2)
    }

    @Test func distinctJobIDsAndPathsCreateNoNewSeries() throws {
        let (router, metrics) = router()
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/v1/jobs/first"))
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/unknown/first"))
        let before = try PrometheusText(MetricsExposition.render(metrics.families))
        for index in 0..<2_000 {
            _ = router.respond(to: HTTPRequest(method: .GET, target: "/v1/jobs/job-\(index)-\(UUID().uuidString)"))
            _ = router.respond(to: HTTPRequest(method: .GET, target: "/unknown/\(index)?q=\(index)"))
        }
        let after = try PrometheusText(MetricsExposition.render(metrics.families))
        func identities(_ text: PrometheusText) -> Set<String> {
            Set(text.samples.map { "\($0.name)\($0.labels.sorted { $0.key < $1.key })" })
        }
        #expect(identities(after) == identities(before), "the same series, only their values grew")
        #expect(after.value("sandbox_server_http_requests_total", ["method": "GET", "route": "/v1/jobs/{id}", "status": "200"]) == 2_001)
        #expect(after.value("sandbox_server_http_requests_total", ["method": "GET", "route": "unmatched", "status": "404"]) == 2_001)
    }
}
