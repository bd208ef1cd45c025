import Foundation
import Glibc
import HTTPCore
import JobStore
import Logging
import Synchronization
import Testing

@testable import SandboxServer

private let processCounter = Atomic<Int>(0)

/// The built `sandbox-server serve` as a child process, with its own data directory, work root,
/// cgroup parent, uid range and port, logging JSON lines to a file.
final class ServerProcess {
    let name: String
    let directory: String
    let port: Int
    let firstUID: Int
    var dataDirectory: String { directory + "/data" }
    var logPath: String { directory + "/server.log" }
    private(set) var process: Process?

    /// `sandbox-server` next to the test bundle (`swift build` puts both in the same directory).
    static var binary: String? {
        var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        candidates.append(candidates[0].deletingLastPathComponent())
        candidates.append(repositoryRoot.appendingPathComponent(".build/debug"))
        return candidates.map { $0.appendingPathComponent("sandbox-server").path }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init() throws {
        let number = processCounter.add(1, ordering: .relaxed).newValue
        name = "sandbox-server-test-\(getpid())-ops-\(number)"
        directory = NSTemporaryDirectory() + name
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        // Away from TestService's uids (70000–110000) and the Isolation tests'.
        firstUID = 120_000 + (Int(getpid()) % 100) * 200 + number * 10
    }

    /// The arguments every start shares, then `extra`; `--log-format json` unless `jsonLog` is false.
    func arguments(_ extra: [String], jsonLog: Bool = true) -> [String] {
        ["serve", "--port", String(port), "--data-dir", dataDirectory, "--work-root", "/run/" + name, "--cgroup-parent", name,
         "--first-uid", String(firstUID), "--log-file", logPath] + (jsonLog ? ["--log-format", "json"] : []) + extra
    }

    /// Starts the server and waits until it answers `/v1/health`.
    func start(_ extra: [String] = ["--workers", "2"], jsonLog: Bool = true) async throws {
        guard let binary = Self.binary else { throw TestFailure("sandbox-server binary not found; run swift build") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments(extra, jsonLog: jsonLog)
        process.standardOutput = FileHandle.nullDevice
        _ = FileManager.default.createFile(atPath: directory + "/stderr", contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/stderr"))
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                throw TestFailure("the server exited with \(process.terminationStatus): \(stderrText)")
            }
            if let health = try? LiveTransport(port: port, timeoutSeconds: 5).sendBlocking(.GET, "/v1/health", body: nil, headers: [:]),
               health.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("the server did not answer within 90 s: \(stderrText)")
    }

    var stderrText: String { (try? String(contentsOfFile: directory + "/stderr", encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) {
        if let process { kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to end; its exit status, or nil when it was killed by a signal.
    func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32? {
        guard let process else { throw TestFailure("not started") }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                kill(process.processIdentifier, SIGKILL)
                throw TestFailure("the server did not exit within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    var api: LiveTransport { LiveTransport(port: port, timeoutSeconds: 30) }

    /// The log's JSON lines.
    func logObjects(at path: String? = nil) throws -> [[String: Any]] {
        let text = (try? String(contentsOfFile: path ?? logPath, encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestFailure("not a JSON log line: \(line)")
            }
            return object
        }
    }

    /// Whether a TCP connect to the port is refused (nothing listens).
    var isRefusingConnections: Bool {
        (try? LiveTransport(port: port, timeoutSeconds: 2).exchange(.GET, "/v1/health", body: nil, headers: [:])) == nil
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("no free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Polls until `condition` holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// Logging of jobs through the real service (sandboxes, HTTP), captured in a log file.
@Suite("job logging end to end", .enabled(if: runningAsRoot, "needs root"), .timeLimit(.minutes(3)))
struct JobLoggingEndToEndTests {
    @Test(arguments: [false, true])
    func jobContentIsLoggedOnlyWithTheDebugSetting(_ logJobContent: Bool) async throws {
        let log = try TemporaryLog()
        let output = try LogOutput(LogOutput.Options(format: .json, level: .info, path: log.path))
        let logger = Logger(label: "sandbox-server") { ServerLogHandler(label: $0, output: output) }
        let fixture = try await TestService.start(logger: logger) { $0.logJobContent = logJobContent }
        let unique = UUID().uuidString
        let sourceMarker = "SOURCE-\(unique)"
        let stdinMarker = "STDIN-\(unique)"
        // The output is neither in the source nor in stdin: dashes become underscores.
        let source = "# \(sourceMarker)\nread line\necho \"${line//-/_}\"\n"
        let outputMarker = stdinMarker.replacingOccurrences(of: "-", with: "_")
        let response = try await fixture.transport(.live).run(
            ["language": "bash", "source": source, "stdin": stdinMarker + "\n"], headers: ["X-Request-Id": "req-\(unique)"])
        #expect(response.json["verdict"] as? String == "accepted")
        #expect((response.json["tests"] as? [[String: Any]])?.first?["stdout"] as? String == outputMarker + "\n")
        let id = try #require(response.json["id"] as? String)
        // The finished line is written after the result is stored, possibly after the response.
        #expect(await eventually { log.lines().contains { $0.contains("job.finished") } })

        let text = log.lines().joined(separator: "\n")
        for marker in [sourceMarker, stdinMarker, outputMarker] {
            #expect(text.contains(marker) == logJobContent, "\(marker) in the log: \(text.contains(marker)), setting \(logJobContent)")
        }
        let objects = try log.objects()
        let jobEvents = objects.filter { $0["job"] as? String == id }
        #expect(jobEvents.compactMap { $0["event"] as? String } == ["job.submitted", "job.started", "job.finished"])
        #expect(jobEvents.allSatisfy { $0["request_id"] as? String == "req-\(unique)" }, "every event names the submitting request")
        let finished = try #require(jobEvents.last)
        #expect(finished["verdict"] as? String == "accepted")
        #expect(Int(finished["run_ms"] as? String ?? "") != nil)
        #expect(Int(finished["queued_ms"] as? String ?? "") != nil)
        let access = try #require(objects.first { $0["event"] as? String == "http.request" && $0["request_id"] as? String == "req-\(unique)" })
        #expect(access["method"] as? String == "POST")
        #expect(access["status"] as? String == "201" || access["status"] as? String == "200")
        #expect(Double(access["duration_ms"] as? String ?? "") != nil)

        // A Judge0 submission's events carry its request id too.
        let judge0 = try await fixture.transport(.live).post(
            "/submissions?wait=true", jsonText(["language_id": 46, "source_code": "echo judge0"]), headers: ["X-Request-Id": "judge0-\(unique)"])
        let token = try #require(judge0.json["token"] as? String, "\(judge0)")
        #expect(await eventually { log.lines().contains { $0.contains("job.finished") && $0.contains(token) } })
        let judge0Events = try log.objects().filter { $0["job"] as? String == token }
        #expect(judge0Events.count == 3)
        #expect(judge0Events.allSatisfy { $0["request_id"] as? String == "judge0-\(unique)" })
    }
}

/// Signals to the real `sandbox-server serve` process, and restarts under load.
@Suite("server process operations", .enabled(if: runningAsRoot, "needs root"), .serialized, .timeLimit(.minutes(10)))
struct OperationsProcessTests {
    @Test func sighupReopensTheLogAndReloadsSafeSettings() async throws {
        let server = try ServerProcess()
        let config = server.directory + "/config.json"
        try Data(#"{"log-level": "info"}"#.utf8).write(to: URL(fileURLWithPath: config))
        // No --log-format flag: it would win over the config file.
        try await server.start(["--workers", "1", "--config", config], jsonLog: false)
        let openInfo = try await server.api.get("/v1/info")
        #expect(openInfo.status == 200)
        #expect((openInfo.json["features"] as? [String])?.contains("auth") == false)

        // logrotate: rename the file, then SIGHUP; the server writes to a new file at the path.
        let rotated = server.logPath + ".1"
        try FileManager.default.moveItem(atPath: server.logPath, toPath: rotated)
        try Data(#"{"log-level": "debug", "api-keys": "reloaded-key:admin", "max-queue": 5}"#.utf8)
            .write(to: URL(fileURLWithPath: config))
        server.signal(SIGHUP)
        #expect(await eventually { ((try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? "").contains("configuration reloaded") })
        let reopened = (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? ""
        #expect(reopened.contains("config.reloaded"))
        #expect(reopened.contains("changed=[api-keys,log-level]"), "\(reopened)")
        #expect(reopened.contains("settings=[max-queue]"), "a setting that needs a restart is named: \(reopened)")
        let before = (try? String(contentsOfFile: rotated, encoding: .utf8)) ?? ""
        #expect(before.contains(" info sandbox-server: serving "), "the lines before the rotation stay in the renamed file")
        #expect(!before.contains("configuration reloaded"))

        // The new keys are in force at once.
        #expect(try await server.api.get("/v1/info").status == 401)
        let keyedInfo = try await server.api.get("/v1/info", headers: ["Authorization": "Bearer reloaded-key"])
        #expect(keyedInfo.status == 200)
        #expect((keyedInfo.json["features"] as? [String])?.contains("auth") == true, "/v1/info says auth is on: \(keyedInfo)")

        // An invalid file: one clear error, the previous settings stay.
        try Data(#"{"log-level": "loud", "api-keys": ""}"#.utf8).write(to: URL(fileURLWithPath: config))
        server.signal(SIGHUP)
        #expect(await eventually { ((try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? "").contains("reload failed") })
        let failed = (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? ""
        #expect(failed.contains("log-level must be one of"), "\(failed)")
        #expect(try await server.api.get("/v1/info").status == 401, "the keys of the last good configuration stay")

        // The JSON format takes effect on the next reload.
        try Data(#"{"log-format": "json", "api-keys": "reloaded-key:admin"}"#.utf8).write(to: URL(fileURLWithPath: config))
        server.signal(SIGHUP)
        #expect(await eventually { ((try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? "").split(separator: "\n").last?.hasPrefix("{") == true })

        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
    }

    @Test func sigtermStopsAcceptingRequeuesRunningJobsAndExitsZero() async throws {
        let server = try ServerProcess()
        try await server.start(["--workers", "1", "--shutdown-grace-period", "1s"])
        let api = server.api
        let slow = try await api.post("/v1/jobs", jsonText([
            "language": "bash", "source": "sleep 6; echo slow", "limits": ["wall_time_ms": 20_000]]))
        let queued = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "echo queued"]))
        let slowID = try #require(slow.json["id"] as? String)
        let queuedID = try #require(queued.json["id"] as? String)
        #expect(await eventually { (try? await api.get("/v1/jobs/\(slowID)"))?.json["state"] as? String == "running" })

        let stopped = ContinuousClock.now
        server.signal(SIGTERM)
        #expect(await eventually(timeout: .seconds(3)) { server.isRefusingConnections }, "the listener closes at once")
        #expect(try await server.waitForExit() == 0)
        let stopTime = ContinuousClock.now - stopped
        #expect(stopTime < .seconds(5), "the grace period is 1 s and the slow job needs 6: \(stopTime)")

        // The running job was handed back to the queue at once, its attempt refunded.
        do {
            let store = try SQLiteJobStore(path: server.dataDirectory + "/jobs.sqlite3")
            let requeued = try #require(try store.job(id: JobID(slowID)))
            #expect(requeued.state == .queued)
            #expect(requeued.attempts == 0)
            #expect(try store.job(id: JobID(queuedID))?.state == .queued)
        }
        let events = try server.logObjects()
        #expect(events.contains { $0["event"] as? String == "job.requeued" && $0["job"] as? String == slowID && $0["reason"] as? String == "shutdown" })

        // After a restart both run; a job that finishes within the grace period is not cut short.
        try await server.start(["--workers", "1", "--shutdown-grace-period", "20s"])
        for id in [slowID, queuedID] {
            let finished = try await api.get("/v1/jobs/\(id)?wait=30")
            #expect(finished.json["verdict"] as? String == "accepted", "\(finished)")
        }
        let short = try await api.post("/v1/jobs", jsonText(["language": "bash", "source": "sleep 2; echo short"]))
        let shortID = try #require(short.json["id"] as? String)
        #expect(await eventually { (try? await api.get("/v1/jobs/\(shortID)"))?.json["state"] as? String == "running" })
        server.signal(SIGINT)
        #expect(try await server.waitForExit() == 0)
        let store = try SQLiteJobStore(path: server.dataDirectory + "/jobs.sqlite3")
        let finished = try #require(try store.job(id: JobID(shortID)))
        #expect(finished.state == .finished)
        #expect(finished.result?.verdict.rawValue == "accepted")
    }

    /// Several hundred jobs submitted continuously while the server is stopped (SIGTERM) or
    /// killed (SIGKILL) and restarted on the same data directory: every acknowledged job finishes
    /// exactly once, with its own output.
    @Test(arguments: [SIGTERM, SIGKILL])
    func restartUnderLoadLosesNothing(_ stopSignal: Int32) async throws {
        let server = try ServerProcess()
        let settings = ["--workers", "2", "--lease", "2", "--shutdown-grace-period", "1s", "--max-queue", "10000"]
        try await server.start(settings)
        let jobCount = 300
        let clients = 4
        let progress = SubmissionProgress()

        // Each client submits its share one after another, with an idempotency key per job, and
        // retries through the restart until the job is acknowledged.
        let port = server.port
        let submitting = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<clients {
                    group.addTask {
                        try await onOwnThread {
                            let api = LiveTransport(port: port, timeoutSeconds: 30)
                            for index in stride(from: client, to: jobCount, by: clients) {
                                // One job in ten runs long enough to be running when the signal comes.
                                let source = index % 10 == 0 ? "sleep 1.5; echo job-\(index)" : "echo job-\(index)"
                                // Generous wall time: the machine may be loaded by other tests.
                                let body = jsonText(["language": "bash", "source": source, "limits": ["wall_time_ms": 30_000]])
                                let deadline = ContinuousClock.now + .seconds(120)
                                while true {
                                    guard ContinuousClock.now < deadline else { throw TestFailure("job \(index) never acknowledged") }
                                    if let response = try? api.sendBlocking(.POST, "/v1/jobs", body: body, headers: [
                                        "Content-Type": "application/json", "Idempotency-Key": "job-\(index)-\(port)"]),
                                       response.status == 201 || response.status == 200, let id = response.json["id"] as? String {
                                        progress.acknowledge(index, id: id)
                                        break
                                    }
                                    progress.retried.add(1, ordering: .relaxed)
                                    usleep(100_000)
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }

        #expect(await eventually(timeout: .seconds(60)) { progress.count >= jobCount / 3 })
        server.signal(stopSignal)
        let status = try await server.waitForExit()
        if stopSignal == SIGTERM { #expect(status == 0) } else { #expect(status == nil, "killed") }
        let atStop = progress.count
        try await server.start(settings)
        try await submitting.value
        let ids = progress.acknowledged
        #expect(ids.count == jobCount)
        #expect(Set(ids.values).count == jobCount, "a retried submission returns its job, never a second one")
        #expect(atStop < jobCount, "the signal came mid-stream (\(atStop) of \(jobCount) acknowledged)")

        // Every acknowledged job finishes with its own output.
        let api = server.api
        for (index, id) in ids.sorted(by: { $0.key < $1.key }) {
            let job = try await api.get("/v1/jobs/\(id)?wait=60")
            #expect(job.json["verdict"] as? String == "accepted", "job \(index): \(job.text.prefix(1_000))")
            #expect((job.json["tests"] as? [[String: Any]])?.first?["stdout"] as? String == "job-\(index)\n", "job \(index)")
        }
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)

        // Exactly once: one stored job per submission, and no job completed twice.
        let store = try SQLiteJobStore(path: server.dataDirectory + "/jobs.sqlite3")
        let counts = try store.countsByState()
        #expect(counts.finished == jobCount && counts.queued == 0 && counts.running == 0 && counts.cancelled == 0, "\(counts)")
        var finishedLines: [String: Int] = [:]
        for event in try server.logObjects() where event["event"] as? String == "job.finished" {
            finishedLines[event["job"] as? String ?? "", default: 0] += 1
        }
        #expect(finishedLines.values.allSatisfy { $0 == 1 }, "a job completed twice: \(finishedLines.filter { $0.value > 1 })")
        if stopSignal == SIGTERM {
            // A clean stop logs every completion; after SIGKILL a completion stored just before the
            // kill may have missed its log line.
            #expect(Set(finishedLines.keys) == Set(ids.values))
        }
        let requeuedEvents = try server.logObjects().filter { $0["event"] as? String == "job.requeued" }
        let requeued = requeuedEvents.count
        let reason = stopSignal == SIGTERM ? "shutdown" : "lease expired"
        #expect(requeuedEvents.allSatisfy { $0["reason"] as? String == reason }, "\(requeuedEvents)")
        print("restart under load (\(stopSignal == SIGTERM ? "SIGTERM" : "SIGKILL")): \(atStop) of \(jobCount) acknowledged before the signal, \(progress.retried.load(ordering: .relaxed)) submissions retried while down, \(requeued) jobs requeued")
    }
}

/// What the submitting clients of a load test have been told so far.
final class SubmissionProgress: Sendable {
    private let ids = Mutex<[Int: String]>([:])
    /// Submissions that got no acknowledgement (server down or stopping) and were sent again.
    let retried = Atomic<Int>(0)

    func acknowledge(_ index: Int, id: String) { ids.withLock { $0[index] = id } }
    var acknowledged: [Int: String] { ids.withLock { $0 } }
    var count: Int { ids.withLock { $0.count } }
}
