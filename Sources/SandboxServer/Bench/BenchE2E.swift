import ArgumentParser
import Foundation
import HTTPCore
import Isolation
import JobStore
import Logging
import Synchronization

/// `sandbox-server bench e2e`: the whole service — HTTP, store, runners, sandbox — against the
/// sandbox alone, for the same programs in the same run.
///
/// For a Python hello-world and a Bash `true` job it measures jobs/s through
/// `POST /v1/jobs?wait=` with `--clients` keep-alive clients and `--workers` runners, and jobs/s of
/// the very run such a job makes (a fresh box with the source) called on the sandbox
/// directly with as many threads, alternating the two in rounds so load drifts on a shared
/// machine hit both alike. Then `GET /v1/jobs/{id}` of a finished job against nginx serving a
/// static file, with wrk. A benchmark, not a test: it reports figures and the load average.
///
/// The clients are wrk (a Lua script posts the job and counts every response that is not a 200
/// with `"verdict":"accepted"` as a failure), as a grading system's own HTTP client would be: a
/// separate process, whose CPU still counts in the e2e figure (it is a reaped child). With
/// `--client builtin`, or without wrk, they are threads of this process instead, which share its
/// allocator and scheduler with the server and cost it more.
struct BenchE2E: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "End-to-end jobs/s through HTTP vs the sandbox alone; GET of a finished job vs nginx."
    )

    @Option(help: "Runner threads (and sandbox slots).") var workers = 2
    @Option(help: "Concurrent HTTP clients submitting jobs with ?wait=.") var clients = 4
    @Option(help: "Seconds per throughput measurement.") var seconds = 8.0
    @Option(help: "Rounds per program; medians are reported.") var rounds = 3
    @Option(help: "Seconds per wrk run.") var duration = 8
    @Option(help: "Who submits the e2e jobs: wrk (a separate process) or builtin (threads of this process).")
    var client = E2EClient.wrk
    @Option(help: "The store's durability: full (the server's: every acknowledged write synced) or normal (no syncs, to measure what they cost).")
    var synchronous = StoreDurability.full
    @OptionGroup var baseline: NginxBaselineOptions

    enum E2EClient: String, ExpressibleByArgument, CaseIterable {
        case wrk
        case builtin
    }

    enum StoreDurability: String, ExpressibleByArgument, CaseIterable {
        case full
        case normal
    }

    struct Program {
        var name: String
        var language: String
        var source: String
        var fileName: String
        var argv: [String]
    }

    func run() throws {
        let programs = [
            Program(name: "python hello", language: "python3", source: "print('hello')", fileName: "main.py",
                    argv: ["/usr/bin/python3", "-B", "main.py"]),
            Program(name: "bash true", language: "bash", source: "true", fileName: "main.sh", argv: ["/usr/bin/bash", "main.sh"]),
        ]
        var settings = ServerSettings()
        settings.port = 0
        settings.workers = workers
        settings.maxQueuedJobs = 100_000
        settings.dataDirectory = NSTemporaryDirectory() + "bench-e2e-\(getpid())"
        settings.workRoot = "/run/sandbox-server-bench-e2e-\(getpid())"
        settings.cgroupParent = "sandbox-server-bench-e2e"
        defer { try? FileManager.default.removeItem(atPath: settings.dataDirectory) }
        var logger = Logger(label: "bench-e2e")
        logger.logLevel = .error
        let registry = try LanguageRegistry.embedded()
        let service = try SandboxService(settings: settings, registry: registry, languages: SandboxService.detectLanguages(registry), logger: logger,
                                         storeSynchronous: synchronous == .full ? .full : .normal)
        defer { service.stop() }
        let port = service.port
        let load = { (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?" }
        let useWrk = client == .wrk && FileManager.default.isExecutableFile(atPath: baseline.wrk)
        print("bench e2e: \(workers) workers, \(clients) HTTP clients (\(useWrk ? "wrk" : "threads of this process")), \(seconds) s × \(rounds) rounds per figure, cgroup v\(service.sandbox.cgroupVersion), \(ProcessInfo.processInfo.activeProcessorCount) CPUs, store synchronous=\(synchronous.rawValue); load average before: \(load())")

        var table = TextTable(header: ["program", "sandbox only jobs/s", "end to end jobs/s", "e2e / sandbox",
                                       "CPU ms/job sandbox", "CPU ms/job e2e", "failures"])
        var lastFinishedID: String?
        for program in programs {
            var sandboxRates = Samples()
            var endToEndRates = Samples()
            // CPU per job (this process and its reaped sandboxes; the e2e figure includes the
            // in-process HTTP clients): it moves far less with machine load than jobs/s.
            var sandboxCPU = Samples()
            var endToEndCPU = Samples()
            let failures = BenchCounter()
            let files = [BoxFile(path: program.fileName, text: program.source)]
            let limits = JobExecutor.resourceLimits(ServerLimits.standard.defaults, killOnOutputLimit: true)
            let environment = registry.environment(for: registry.language(id: program.language)!)
            let sandbox = service.sandbox
            let body = Array(jsonBody(program).utf8)
            // Warm up both paths (page cache, JIT-less interpreters' .pyc-free start-up).
            _ = try submitLoop(port: port, body: body, clients: 1, seconds: 1, failures: failures)
            for round in 0..<rounds {
                let sandboxJobs = BenchCounter()
                let sandboxCPUBefore = BenchSandbox.processCPUMicroseconds()
                let sandboxRate = BenchSandbox.throughput(runners: workers, seconds: seconds) {
                    sandboxJobs.increment()
                    // The run JobExecutor makes for a one-test job of an interpreted language.
                    let result = sandbox.run(RunSpec(executable: program.argv[0], arguments: Array(program.argv.dropFirst()),
                                                     environment: environment, files: files,
                                                     box: JobExecutor.testBox(index: 0, of: 1, compiled: false), limits: limits))
                    let ok = result.status == .ok
                    if !ok { failures.increment() }
                }
                sandboxCPU.append((BenchSandbox.processCPUMicroseconds() - sandboxCPUBefore) / 1000 / Double(max(1, sandboxJobs.value)))
                let endToEndCPUBefore = BenchSandbox.processCPUMicroseconds()
                let (endToEndRate, endToEndJobs, finishedID) = useWrk
                    ? try wrkLoop(port: port, body: body, failures: failures)
                    : try submitLoop(port: port, body: body, clients: clients, seconds: seconds, failures: failures)
                // Jobs still running when the clients stop finish within a moment; wait so their CPU is counted.
                usleep(200_000)
                endToEndCPU.append((BenchSandbox.processCPUMicroseconds() - endToEndCPUBefore) / 1000 / Double(max(1, endToEndJobs)))
                lastFinishedID = finishedID ?? lastFinishedID
                sandboxRates.append(sandboxRate)
                endToEndRates.append(endToEndRate)
                print("  \(program.name) round \(round + 1): sandbox only \(fmt(sandboxRate, 1)) jobs/s, end to end \(fmt(endToEndRate, 1)) jobs/s")
            }
            table.add([program.name, fmt(sandboxRates.median, 1), fmt(endToEndRates.median, 1),
                       fmt(endToEndRates.median / sandboxRates.median), fmt(sandboxCPU.median), fmt(endToEndCPU.median),
                       String(failures.value)])
        }
        print("")
        print(table.render())

        // With wrk as the client no id is known yet: one more job, outside every measurement.
        let finishedID = try lastFinishedID
            ?? submitLoop(port: port, body: Array(jsonBody(programs[0]).utf8), clients: 1, seconds: 0.05, failures: BenchCounter()).2
        guard let finishedID else { throw ValidationError("no job finished; cannot measure GET") }
        guard FileManager.default.isExecutableFile(atPath: baseline.nginx), FileManager.default.isExecutableFile(atPath: baseline.wrk) else {
            print("\n(GET comparison skipped: \(baseline.nginx) or \(baseline.wrk) missing; install nginx-light and wrk)")
            return
        }
        BenchHTTP.raiseDescriptorLimit()
        let nginxServer = try NginxChild(binary: baseline.nginx)
        defer { nginxServer.stop() }
        let targets = [("GET /v1/jobs/{id} (finished)", "http://127.0.0.1:\(port)/v1/jobs/\(finishedID)"),
                       ("nginx static file", "http://127.0.0.1:\(nginxServer.port)/index.html")]
        var samples = [Samples](repeating: Samples(), count: targets.count)
        var errors = [Int](repeating: 0, count: targets.count)
        for round in 0..<rounds {
            for offset in 0..<targets.count {
                let index = (round + offset) % targets.count
                let (rate, failed) = try BenchHTTP.runWrk(baseline.wrk, threads: 2, connections: baseline.connections, duration: duration, url: targets[index].1)
                samples[index].append(rate)
                errors[index] += failed
            }
        }
        var getTable = TextTable(header: ["target", "median req/s", "vs nginx", "errors"])
        for (index, target) in targets.enumerated() {
            getTable.add([target.0, String(Int(samples[index].median)), fmt(samples[index].median / samples[1].median), String(errors[index])])
        }
        print("")
        print(getTable.render())
        print("\nload average after: \(load())")
    }

    /// Jobs/s finished through `POST /v1/jobs?wait=60` by wrk with `clients` connections (wrk
    /// does not say which jobs it made: no finished job's id).
    private func wrkLoop(port: Int, body: [UInt8], failures: BenchCounter) throws -> (Double, Int, String?) {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("bench-e2e-\(getpid()).lua")
        defer { try? FileManager.default.removeItem(at: script) }
        // Lua long brackets take the JSON as it is; the body never contains "]==]".
        let lua = """
            wrk.method = "POST"
            wrk.body = [==[\(String(decoding: body, as: UTF8.self))]==]
            wrk.headers["Content-Type"] = "application/json"
            failed = 0
            local threads = {}
            function setup(thread) table.insert(threads, thread) end
            function response(status, headers, body)
              if status ~= 200 or not string.find(body, '"verdict":"accepted"', 1, true) then failed = failed + 1 end
            end
            function done(summary, latency, requests)
              local total = 0
              for _, thread in ipairs(threads) do total = total + thread:get("failed") end
              io.write(string.format("failed jobs: %d\\n", total))
            end
            """
        try lua.write(to: script, atomically: true, encoding: .utf8)
        let seconds = max(1, Int(self.seconds.rounded()))
        let output = try runProcess(baseline.wrk, ["-t\(min(2, clients))", "-c\(clients)", "-d\(seconds)s", "-s", script.path,
                                                   "http://127.0.0.1:\(port)/v1/jobs?wait=60"])
        func number(after marker: String, in line: Substring) -> Double? {
            line.range(of: marker).flatMap { Double(line[$0.upperBound...].split(separator: " ").first ?? "") }
        }
        let lines = output.split(separator: "\n")
        guard let rateLine = lines.first(where: { $0.contains("Requests/sec:") }),
              let rate = number(after: "Requests/sec:", in: rateLine),
              let countLine = lines.first(where: { $0.contains(" requests in ") }),
              let count = Int(countLine.split(separator: " ").first ?? ""),
              let failedLine = lines.first(where: { $0.hasPrefix("failed jobs:") }),
              let failed = number(after: "failed jobs:", in: failedLine)
        else { throw ValidationError("unexpected wrk output:\n\(output)") }
        for _ in 0..<Int(failed) { failures.increment() }
        return (rate, count, nil)
    }

    private func jsonBody(_ program: Program) -> String {
        String(decoding: APIJSON.encode(JobRequest(language: program.language, source: program.source)), as: UTF8.self)
    }

    /// Jobs/s finished through `POST /v1/jobs?wait=60` by `clients` keep-alive connections.
    private func submitLoop(port: Int, body: [UInt8], clients: Int, seconds: Double, failures: BenchCounter) throws -> (Double, Int, String?) {
        let completed = Atomic<Int>(0)
        let lastID = Mutex<String?>(nil)
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let started = monotonicNanoseconds()
        let group = DispatchGroup()
        for _ in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                guard let connection = try? KeepAliveClient(port: port) else {
                    failures.increment()
                    return
                }
                let message = KeepAliveClient.message("POST", "/v1/jobs?wait=60", body: body)
                let accepted = Array(#""verdict":"accepted""#.utf8), idField = Array(#""id":""#.utf8)
                var lastResponse: [UInt8]?
                while monotonicNanoseconds() < deadline {
                    guard let (status, response) = try? connection.send(message),
                          status == 200, response.contains(accepted)
                    else {
                        failures.increment()
                        continue
                    }
                    completed.add(1, ordering: .relaxed)
                    lastResponse = response
                }
                if let response = lastResponse, let range = response.firstRange(of: idField) {
                    let idBytes = response[range.upperBound...].prefix { $0 != UInt8(ascii: "\"") }
                    lastID.withLock { $0 = String(decoding: idBytes, as: UTF8.self) }
                }
            }
            thread.start()
        }
        group.wait()
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        let jobs = completed.load(ordering: .relaxed)
        return (Double(jobs) / elapsed, jobs, lastID.withLock { $0 })
    }
}

/// A blocking HTTP/1.1 keep-alive client for the benchmark (Content-Length responses only).
final class KeepAliveClient {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw ValidationError("connect to 127.0.0.1:\(port) failed")
        }
    }

    deinit { close(fd) }

    /// A request's bytes, built once by callers that send it many times.
    static func message(_ method: String, _ target: String, body: [UInt8]) -> [UInt8] {
        let head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        return Array(head.utf8) + body
    }

    /// Sends a whole request message and returns the response's status and body. The response
    /// is parsed on its bytes: the client's own work must stay small beside the server's.
    func send(_ message: [UInt8]) throws -> (Int, [UInt8]) {
        var sent = 0
        while sent < message.count {
            let n = message[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ValidationError("send failed") }
            sent += n
        }
        while true {
            if let headEnd = buffer.firstRange(of: Self.headTerminator) {
                let head = buffer[..<headEnd.lowerBound]
                // "HTTP/1.1 200 ": the status is bytes 9 to 11.
                let status = head.count >= 12 ? head.dropFirst(9).prefix(3).reduce(0) { $0 * 10 + Int($1) - 48 } : 0
                let total = headEnd.upperBound + Self.contentLength(in: head)
                if buffer.count >= total {
                    let responseBody = Array(buffer[headEnd.upperBound..<total])
                    buffer.removeFirst(total)
                    return (status, responseBody)
                }
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw ValidationError("connection closed") }
            buffer += chunk[0..<n]
        }
    }

    private var chunk = [UInt8](repeating: 0, count: 65_536)
    private static let headTerminator = Array("\r\n\r\n".utf8)
    private static let contentLengthName = Array("\r\ncontent-length:".utf8)

    /// The Content-Length of a response head (0 when absent), its name matched without case.
    private static func contentLength(in head: ArraySlice<UInt8>) -> Int {
        let name = contentLengthName
        var index = head.startIndex
        while index + name.count <= head.endIndex {
            if zip(head[index..<(index + name.count)], name).allSatisfy({ ((65...90).contains($0) ? $0 | 0x20 : $0) == $1 }) {
                var value = 0
                for byte in head[(index + name.count)...] {
                    if byte == UInt8(ascii: " ") { continue }
                    guard (48...57).contains(byte) else { break }
                    value = value * 10 + Int(byte) - 48
                }
                return value
            }
            index += 1
        }
        return 0
    }
}

/// A count shared by benchmark threads.
final class BenchCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
