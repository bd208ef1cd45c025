import Foundation
import Testing

@testable import SandboxServer

/// `GET /metrics` on a live service with real sandboxes: the counters move by exactly what was
/// done, and the exposition parses strictly.
@Suite("metrics end to end", .enabled(if: runningAsRoot, "needs root"), .timeLimit(.minutes(5)))
struct MetricsEndToEndTests {
    func scrape(_ api: any APITransport, headers: [String: String] = [:]) async throws -> PrometheusText {
        let response = try await api.get("/metrics", headers: headers)
        try #require(response.status == 200, "\(response)")
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        return try PrometheusText(response.text)
    }

    @Test func countersMoveByWhatWasDone() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.live)
        let before = try await scrape(api)

        var ids: [String] = []
        for source in ["echo one", "echo two", "exit 3"] {
            let job = try await api.run(["language": "bash", "source": source])
            #expect(job.status == 200, "\(job)")
            ids.append(try #require(job.json["id"] as? String))
        }
        for id in ids { #expect(try await api.get("/v1/jobs/\(id)").status == 200) }
        #expect(try await api.get("/v1/jobs/no-such-job").status == 404)
        let judge0 = try await api.post("/submissions?wait=true&fields=status_id", jsonText(["language_id": 71, "source_code": "print(1)"]))
        #expect(judge0.json["status_id"] as? Int == 3, "\(judge0)")

        let after = try await scrape(api)
        func delta(_ name: String, _ labels: [String: String]) -> Double {
            (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0)
        }
        #expect(delta("sandbox_server_jobs_submitted_total", ["api": "native", "language": "bash"]) == 3)
        #expect(delta("sandbox_server_jobs_submitted_total", ["api": "judge0", "language": "python3"]) == 1)
        #expect(delta("sandbox_server_jobs_finished_total", ["language": "bash", "verdict": "accepted"]) == 2)
        #expect(delta("sandbox_server_jobs_finished_total", ["language": "bash", "verdict": "runtime_error"]) == 1)
        #expect(delta("sandbox_server_jobs_finished_total", ["language": "python3", "verdict": "accepted"]) == 1)

        // Route patterns, never the job ids in the paths.
        #expect(delta("sandbox_server_http_requests_total", ["method": "POST", "route": "/v1/jobs", "status": "200"]) == 3)
        #expect(delta("sandbox_server_http_requests_total", ["method": "GET", "route": "/v1/jobs/{id}", "status": "200"]) == 3)
        #expect(delta("sandbox_server_http_requests_total", ["method": "GET", "route": "/v1/jobs/{id}", "status": "404"]) == 1)
        #expect(delta("sandbox_server_http_requests_total", ["method": "POST", "route": "/submissions", "status": "201"]) == 1)
        #expect(delta("sandbox_server_http_requests_total", ["method": "GET", "route": "/metrics", "status": "200"]) == 1,
                "the first scrape was counted once it was written")
        #expect(after.samples.allSatisfy { sample in !ids.contains { id in sample.labels.values.contains { $0.contains(id) } } })
        #expect(delta("sandbox_server_http_request_duration_seconds_count", ["route": "/v1/jobs"]) == 3)

        // One sandboxed run per job (bash and Python compile nothing), each with its phases.
        for phase in ServerMetrics.Phase.allCases {
            #expect(delta("sandbox_server_sandbox_phase_duration_seconds_count", ["phase": phase.rawValue]) == 4, "\(phase)")
        }
        #expect(delta("sandbox_server_sandbox_phase_duration_seconds_sum", ["phase": "spawn"]) > 0)
        #expect(delta("sandbox_server_sandbox_runs_total", ["status": "ok"]) == 3)
        #expect(delta("sandbox_server_sandbox_runs_total", ["status": "runtime_error"]) == 1)
        for stage in ["queue_wait", "run", "latency"] {
            #expect(delta("sandbox_server_job_\(stage)_seconds_count", [:]) == 4, "\(stage)")
        }
        #expect(delta("sandbox_server_sandbox_slot_busy_seconds_total", ["user": "jobs"]) > 0)

        #expect(after.value("sandbox_server_queue_depth") == 0)
        #expect(after.value("sandbox_server_jobs", ["state": "finished"]) == 4)
        #expect(after.value("sandbox_server_running_jobs") == 0)
        #expect(after.value("sandbox_server_sandbox_slots") == Double(fixture.settings.workers))
        #expect((after.value("sandbox_server_store_size_bytes", ["file": "database"]) ?? 0) > 0)
        #expect((after.value("sandbox_server_process_resident_memory_bytes") ?? 0) > 1_000_000)
        #expect((after.value("sandbox_server_process_open_fds") ?? 0) > 3)
        #expect(after.value("sandbox_server_build_info", ["version": APIRoutes.version]) == 1)
        #expect(after.types["sandbox_server_jobs_finished_total"] == "counter")
        #expect(after.types["sandbox_server_sandbox_phase_duration_seconds"] == "histogram")
        #expect(after.types["sandbox_server_queue_depth"] == "gauge")
    }

    @Test func cancelledJobsAndWebhookFailuresAreCounted() async throws {
        let fixture = try await TestService.start(workers: 1) { settings in settings.webhookAllow = ["127.0.0.1/32"] }
        let api = fixture.transport(.live)
        let before = try await scrape(api)
        // The receiver refuses for good (404): one attempt, failed.
        let receiver = try WebhookReceiver(statuses: [404])
        let hooked = try await api.run(["language": "bash", "source": "true", "callback_url": "http://127.0.0.1:\(receiver.port)/"])
        #expect(hooked.json["verdict"] as? String == "accepted")
        _ = try await receiver.waitForRequests(1)
        // One runner: a long job holds it while a second one waits and is cancelled.
        let blocker = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "sleep 30"]))
        let queued = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "true"]))
        for job in [queued, blocker] {
            let id = try #require(job.json["id"] as? String)
            #expect(try await api.delete("/v1/jobs/\(id)").status == 200)
        }
        var after = try await scrape(api)
        let deadline = ContinuousClock.now + .seconds(10)
        while (after.value("sandbox_server_webhook_deliveries_total", ["outcome": "failed"]) ?? 0) < 1, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            after = try await scrape(api)
        }
        #expect(after.value("sandbox_server_webhook_deliveries_total", ["outcome": "failed"]) == 1)
        #expect(after.value("sandbox_server_webhook_deliveries_total", ["outcome": "delivered"]) == 0)
        #expect((after.value("sandbox_server_jobs_cancelled_total", ["language": "bash"]) ?? 0)
                - (before.value("sandbox_server_jobs_cancelled_total", ["language": "bash"]) ?? 0) == 2)
        #expect(after.value("sandbox_server_jobs", ["state": "cancelled"]) == 2)
    }

    @Test func jobeRunsAreCounted() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.live)
        let before = try await scrape(api)
        let run = try await api.post("/jobe/index.php/restapi/runs",
                                     jsonText(["run_spec": ["language_id": "python3", "sourcecode": "print(6 * 7)"]]))
        try #require(run.status == 200, "\(run)")
        #expect(run.json["outcome"] as? Int == 15 && run.json["stdout"] as? String == "42\n", "\(run)")
        let after = try await scrape(api)
        func delta(_ name: String, _ labels: [String: String]) -> Double {
            (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0)
        }
        #expect(delta("sandbox_server_jobs_submitted_total", ["api": "jobe", "language": "python3"]) == 1)
        #expect(delta("sandbox_server_jobe_runs_total", ["language": "python3", "outcome": "ok"]) == 1)
        #expect(delta("sandbox_server_sandbox_slot_busy_seconds_total", ["user": "jobe"]) > 0)
        #expect(delta("sandbox_server_sandbox_slot_busy_seconds_total", ["user": "jobs"]) == 0)
        // Jobe's python3 compiles (py_compile) and then runs: two sandboxed runs.
        #expect(delta("sandbox_server_sandbox_phase_duration_seconds_count", ["phase": "spawn"]) == 2)
        #expect(delta("sandbox_server_http_requests_total",
                      ["method": "POST", "route": "/jobe/index.php/restapi/runs", "status": "200"]) == 1)
        #expect(delta("sandbox_server_jobs_finished_total", ["language": "python3", "verdict": "accepted"]) == 0,
                "a Jobe run is not a queued job")
    }

    @Test(arguments: TransportKind.allCases)
    func metricsNeedAnAdminKeyWhenKeysAreConfigured(_ kind: TransportKind) async throws {
        let fixture = try await TestService { settings in
            settings.apiKeys = [APIKey(key: "user-key", role: .user), APIKey(key: "admin-key", role: .admin)]
        }
        let api = fixture.transport(kind)
        let anonymous = try await api.get("/metrics")
        #expect(anonymous.status == 401)
        #expect(anonymous.headers["www-authenticate"] == "Bearer")
        #expect(try await api.get("/metrics", headers: ["Authorization": "Bearer user-key"]).status == 403)
        let parsed = try await scrape(api, headers: ["Authorization": "Bearer admin-key"])
        #expect(parsed.value("sandbox_server_queue_depth") == 0)
    }
}
