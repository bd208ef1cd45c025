import Foundation
import HTTPCore
import Testing

@testable import JobStore
@testable import SandboxServer

/// Webhooks, authentication, overload and restarts, over real sandboxes and HTTP.
@Suite("service operations end to end", .enabled(if: runningAsRoot, "needs root"), .timeLimit(.minutes(5)))
struct OperationsEndToEndTests {
    @Test func webhookIsSignedAndRetriedUntilDelivered() async throws {
        let receiver = try WebhookReceiver(statuses: [500, 503, 200])
        let fixture = try await TestService { settings in
            settings.webhookSecret = "s3cret"
            settings.webhookAllow = ["127.0.0.1/32"]
        }
        // Retries back off from one second; the third attempt succeeds.
        let api = fixture.transport(.live)
        let job = try await api.run(["language": "bash", "source": "echo hook", "callback_url": "http://127.0.0.1:\(receiver.port)/hook"])
        let id = try #require(job.json["id"] as? String)
        let requests = try await receiver.waitForRequests(3, timeout: .seconds(30))
        #expect(requests.count == 3, "delivered after two failures")
        let signer = WebhookSigner(secret: Array("s3cret".utf8))
        for request in requests {
            let timestamp = try #require(Int64(request.headers["x-sandbox-timestamp"] ?? ""))
            let signature = try #require(request.headers["x-sandbox-signature"])
            #expect(signer.verify(signature: signature, body: request.body, timestamp: timestamp))
            #expect(!signer.verify(signature: signature, body: request.body + [0x20], timestamp: timestamp), "a changed body fails")
            #expect(abs(timestamp - Int64(Date().timeIntervalSince1970)) < 60)
            #expect(request.headers["x-sandbox-job-id"] == id)
            let payload = try #require((try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any])
            #expect(payload["id"] as? String == id)
            #expect(payload["verdict"] as? String == "accepted")
            #expect((payload["tests"] as? [[String: Any]])?.first?["stdout"] as? String == "hook\n")
            // The payload is the job as stored, to the millisecond (the answer to `?wait=` came
            // from memory, so the store is asked).
            let stored = try #require(try fixture.service.store.job(id: JobID(id))?.finishedAt)
            #expect(payload["finished_at"] as? String == SandboxServer.Timestamp.format(stored.date))
        }
        // Once delivered, nothing more is sent.
        try await Task.sleep(for: .seconds(2))
        #expect(receiver.requests.count == 3)
    }

    /// The webhook of a cancelled job carries the cancel time the job is stored with.
    @Test func webhookOfACancelledJobHasItsFinishTime() async throws {
        let receiver = try WebhookReceiver(statuses: [200])
        let fixture = try await TestService { settings in settings.webhookAllow = ["127.0.0.1/32"] }
        let api = fixture.transport(.live)
        let id = try #require(try await api.post("/v1/jobs", jsonText([
            "language": "bash", "source": "sleep 30", "callback_url": "http://127.0.0.1:\(receiver.port)/hook"])).json["id"] as? String)
        let cancelled = try await api.send(.DELETE, "/v1/jobs/\(id)", body: nil, headers: [:])
        #expect(cancelled.json["state"] as? String == "cancelled", "\(cancelled)")
        let requests = try await receiver.waitForRequests(1, timeout: .seconds(20))
        let payload = try #require(requests.first.flatMap { (try? JSONSerialization.jsonObject(with: Data($0.body))) as? [String: Any] })
        #expect(payload["state"] as? String == "cancelled")
        #expect(payload["finished_at"] is String, "\(payload)")
        #expect(payload["finished_at"] as? String == cancelled.json["finished_at"] as? String)
    }

    @Test func webhookToAPrivateAddressIsRefusedUnlessAllowed() async throws {
        let receiver = try WebhookReceiver(statuses: [200])
        let fixture = try await TestService.start()
        let api = fixture.transport(.inProcess)
        let refused = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "true",
                                                        "callback_url": "http://127.0.0.1:\(receiver.port)/"]))
        #expect(refused.status == 422)
        #expect((refused.json["error"] as? [String: Any])?["field"] as? String == "callback_url")
        let metadata = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "true",
                                                         "callback_url": "http://169.254.169.254/latest/meta-data"]))
        #expect(metadata.status == 422)
        // A name that resolves to loopback passes submission but is refused when sending.
        let byName = try await api.run(["language": "bash", "source": "true", "callback_url": "http://localhost:\(receiver.port)/"])
        #expect(byName.json["verdict"] as? String == "accepted")
        try await Task.sleep(for: .seconds(2))
        #expect(receiver.requests.isEmpty, "localhost resolves to a loopback address: never called")
    }

    @Test(arguments: TransportKind.allCases)
    func apiKeysWithRoles(_ kind: TransportKind) async throws {
        let fixture = try await TestService { settings in
            settings.apiKeys = [APIKey(key: "user-key", role: .user), APIKey(key: "admin-key", role: .admin)]
        }
        let api = fixture.transport(kind)
        let anonymous = try await api.get("/v1/info")
        #expect(anonymous.status == 401)
        #expect(anonymous.errorCode == "unauthorized")
        #expect(anonymous.headers["www-authenticate"] == "Bearer")
        #expect(try await api.get("/v1/info", headers: ["Authorization": "Bearer wrong"]).status == 401)
        #expect(try await api.get("/v1/info", headers: ["Authorization": "Bearer user-key"]).status == 200)
        #expect(try await api.get("/v1/info", headers: ["X-Auth-Token": "user-key"]).status == 200)
        // Health stays open for load balancers.
        #expect(try await api.get("/v1/health").status == 200)
        // Listing every job is for admins.
        let forbidden = try await api.get("/v1/jobs", headers: ["X-Auth-Token": "user-key"])
        #expect(forbidden.status == 403)
        #expect(forbidden.errorCode == "forbidden")
        let job = try await api.run(["language": "bash", "source": "echo hi"], headers: ["Authorization": "Bearer user-key"])
        #expect(job.json["verdict"] as? String == "accepted")
        let listed = try await api.get("/v1/jobs?state=finished&limit=10", headers: ["Authorization": "Bearer admin-key"])
        #expect(listed.status == 200)
        #expect((listed.json["jobs"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [job.json["id"] as? String].compactMap { $0 })
        #expect(try await api.post("/v1/jobs", "{}").status == 401)
    }

    @Test func listingPagesWithACursor() async throws {
        let fixture = try await TestService.start()
        let api = fixture.transport(.inProcess)
        var ids: [String] = []
        for index in 0..<5 {
            ids.append(try #require(try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "echo \(index)"])).json["id"] as? String))
        }
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = try await api.get("/v1/jobs?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""))
            #expect(page.status == 200, "\(page)")
            seen += (page.json["jobs"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = page.json["next_cursor"] as? String
        } while cursor != nil && seen.count < 20
        #expect(seen == ids.reversed(), "newest first, every job once")
        #expect(try await api.get("/v1/jobs?state=bogus").status == 422)
        #expect(try await api.get("/v1/jobs?cursor=%%%").status == 422)
    }

    @Test func overloadAnswers503WithRetryAfter() async throws {
        let fixture = try await TestService.start(workers: 1) { settings in settings.maxQueuedJobs = 2 }
        let api = fixture.transport(.live)
        let slow = jsonText(["language": "bash", "source": "sleep 2"])
        var statuses: [Int] = []
        var refusal: TestResponse?
        for _ in 0..<6 {
            let response = try await api.post("/v1/jobs", slow)
            statuses.append(response.status)
            if response.status == 503 { refusal = response }
        }
        #expect(statuses.filter { $0 == 201 }.count >= 2)
        let rejected = try #require(refusal, "statuses: \(statuses)")
        #expect(rejected.errorCode == "service_unavailable")
        #expect(Int(rejected.headers["retry-after"] ?? "") ?? 0 >= 1)
        let batch = try await api.post("/v1/jobs/batch", jsonText(["jobs": Array(repeating: ["language": "bash", "source": "true"], count: 5)]))
        #expect(batch.status == 503)
    }

    /// A runner whose complete-and-claim write fails (the failed claim undoing the completion)
    /// stores the result on its own and claims its next job afterwards: no result waits for its
    /// lease to expire and its job to run again.
    @Test func aFailedCompleteAndClaimStillStoresTheResult() async throws {
        let fixture = try await TestService.start(workers: 1) { $0.leaseSeconds = 120 }
        // Set before anything runs, so the first completion is the one that fails, however
        // slowly a loaded machine gets the requests through.
        fixture.service.store.failClaimsAfterCompletion(1)
        let api = fixture.transport(.live)
        let first = try #require(try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "sleep 0.5; echo first"])).json["id"] as? String)
        // Normally queued behind the running job, so the failed write would have claimed it.
        let second = try #require(try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "echo second"])).json["id"] as? String)
        for (id, output) in [(first, "first\n"), (second, "second\n")] {
            // Far below the lease: a result lost with the failed write would leave the job running.
            let job = try await api.get("/v1/jobs/\(id)?wait=45")
            #expect(job.json["state"] as? String == "finished", "\(job)")
            #expect(job.json["verdict"] as? String == "accepted", "\(job)")
            #expect((job.json["tests"] as? [[String: Any]])?.first?["stdout"] as? String == output, "\(job)")
        }
        #expect(fixture.service.store.pendingClaimFailures == 0, "the injected failure was never reached")
    }

    @Test func restartResumesTheQueuedBacklogAndRequeuesAnInterruptedJob() async throws {
        let fixture = try await TestService.start(workers: 1)
        var api = fixture.transport(.live)
        var ids: [String] = []
        // The first job is running when the service stops (given no grace); the rest are queued.
        ids.append(try #require(try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "sleep 4; echo first"])).json["id"] as? String))
        for index in 0..<4 {
            ids.append(try #require(try await api.post("/v1/jobs", jsonText(["language": "python3", "source": "print(\(index))"])).json["id"] as? String))
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while try await api.get("/v1/jobs/\(ids[0])").json["state"] as? String != "running", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await fixture.restart(gracePeriod: .zero)
        api = fixture.transport(.live)
        for (index, id) in ids.enumerated() {
            let job = try await api.get("/v1/jobs/\(id)?wait=60")
            #expect(job.json["state"] as? String == "finished", "job \(index): \(job)")
            #expect(job.json["verdict"] as? String == "accepted", "job \(index): \(job)")
        }
        let first = try await api.get("/v1/jobs/\(ids[0])")
        #expect((first.json["tests"] as? [[String: Any]])?.first?["stdout"] as? String == "first\n", "the interrupted job ran again")
    }
}
