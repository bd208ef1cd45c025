import ArgumentParser
import Foundation
import HTTPCore

/// `sandbox-server bench http`: HTTPCore against nginx serving a static file, side by side.
///
/// Starts our server in this process on a loopback port (a trivial text route and a JSON route)
/// and nginx as a child (generated config in a temp dir, one worker per core, a small static file)
/// on another, then runs wrk against the three targets, several rounds in rotating order, and
/// prints median req/s and the ratio to nginx. Then measures this process's RSS idle, after the
/// load, and with `--idle-connections` keep-alive connections open (opened from this process).
/// A benchmark, not a test: it reports figures and fails only if a tool cannot run.
struct BenchHTTP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "Benchmark HTTPCore against nginx static (wrk) and measure RSS with idle connections."
    )

    @Option(help: "Rounds per target; the median is reported.") var rounds = 3
    @Option(help: "Seconds per wrk run.") var duration = 10
    @OptionGroup var baseline: NginxBaselineOptions
    @Option(help: "wrk threads.") var threads = 2
    @Option(help: "Idle keep-alive connections to open for the RSS figure.") var idleConnections = 1000
    @Option(help: "HTTPCore worker threads kept (default: max(2, cores)).") var workers: Int?
    @Flag(help: "Observe requests with the service's HTTP metrics (what `serve` does), to measure their cost.")
    var metrics = false

    struct Target {
        let name: String
        let url: String
        var samples = Samples()
        var errors = 0
    }

    func run() throws {
        Self.raiseDescriptorLimit()
        for tool in [baseline.nginx, baseline.wrk] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw ValidationError("\(tool) not found (install nginx-light and wrk: make test-deps)")
        }

        let rssBeforeServer = processStatus("VmRSS")
        var router = Router()
        router.get("/plaintext") { _ in .text("Hello, World!") }
        router.get("/json") { _ in try .json(["message": "Hello, World!"]) }
        let httpMetrics = metrics ? HTTPMetrics.observing(&router) : nil
        var serverConfiguration = HTTPServerConfiguration()
        serverConfiguration.maxConnections = max(4096, idleConnections + baseline.connections + 64)
        if let workers { serverConfiguration.minWorkerThreads = workers }
        let server = try HTTPServer(configuration: serverConfiguration, router: router)
        try server.start()
        defer { server.shutdown(gracePeriod: .seconds(1)) }
        usleep(100_000)
        let rssIdle = processStatus("VmRSS")

        let nginxServer = try NginxChild(binary: baseline.nginx)
        defer { nginxServer.stop() }

        let port = server.localAddress.port
        var targets = [
            Target(name: "HTTPCore GET /plaintext", url: "http://127.0.0.1:\(port)/plaintext"),
            Target(name: "HTTPCore GET /json", url: "http://127.0.0.1:\(port)/json"),
            Target(name: "nginx static file", url: "http://127.0.0.1:\(nginxServer.port)/index.html"),
        ]
        print("wrk -t\(threads) -c\(baseline.connections) -d\(duration)s, \(rounds) rounds, \(ProcessInfo.processInfo.activeProcessorCount) cores"
              + (metrics ? ", HTTP metrics observed" : ""))
        for round in 0..<rounds {
            for offset in 0..<targets.count {
                let index = (round + offset) % targets.count
                let (requestsPerSecond, errors) = try runWrk(targets[index].url)
                targets[index].samples.append(requestsPerSecond)
                targets[index].errors += errors
                print("  round \(round + 1): \(targets[index].name): \(Int(requestsPerSecond)) req/s\(errors > 0 ? " (\(errors) errors)" : "")")
            }
        }
        let rssAfterLoad = processStatus("VmRSS")
        let workersAfterLoad = server.workerThreadCount

        // Two ratios: of the medians, and the median of per-round ratios (each round runs the
        // three targets back to back, so it cancels load that drifts between rounds).
        let nginxMedian = targets[2].samples.median
        var table = TextTable(header: ["target", "median req/s", "min", "max", "vs nginx (medians)",
                                       "vs nginx (median of rounds)", "errors"])
        for target in targets {
            let perRound = Samples(zip(target.samples.values, targets[2].samples.values).map { $0 / max($1, 1) })
            table.add([target.name, String(Int(target.samples.median)), String(Int(target.samples.quantile(0))),
                       String(Int(target.samples.quantile(1))),
                       nginxMedian > 0 ? String(format: "%.2fx", target.samples.median / nginxMedian) : "-",
                       String(format: "%.2fx", perRound.median), String(target.errors)])
        }
        print("")
        print(table.render())
        if metrics { print(Self.observerCost()) }
        if let httpMetrics {
            let counted = httpMetrics.families.first { $0.name == "sandbox_server_http_requests_total" }?.series.reduce(0.0) { total, series in
                if case .number(let value) = series.value { return total + value }
                return total
            } ?? 0
            print("requests counted by the HTTP metrics: \(Int(counted))")
        }

        // Idle keep-alive connections: each sends one request, reads the answer and stays open.
        let clients = try openIdleConnections(port: port, count: idleConnections)
        let waitUntil = monotonicNanoseconds() + 5_000_000_000
        while server.openConnectionCount < idleConnections, monotonicNanoseconds() < waitUntil { usleep(10_000) }
        usleep(200_000)
        let rssWithIdle = processStatus("VmRSS")
        let threadsWithIdle = processStatus("Threads")
        let openWithIdle = server.openConnectionCount
        for fd in clients { close(fd) }

        print("")
        var memory = TextTable(header: ["process memory (server in-process)", "value"])
        memory.add(["RSS before the server started (bench process)", "\(rssBeforeServer / 1024) MB (\(rssBeforeServer) kB)"])
        memory.add(["RSS idle (server started, no traffic)", "\(rssIdle / 1024) MB (\(rssIdle) kB)"])
        memory.add(["RSS after the wrk runs", "\(rssAfterLoad / 1024) MB (\(rssAfterLoad) kB)"])
        memory.add(["worker threads after the wrk runs", "\(workersAfterLoad)"])
        memory.add(["RSS with \(openWithIdle) idle keep-alive connections", "\(rssWithIdle / 1024) MB (\(rssWithIdle) kB)"])
        memory.add(["  growth per idle connection", "\(openWithIdle > 0 ? (rssWithIdle - rssAfterLoad) * 1024 / openWithIdle : 0) bytes"])
        memory.add(["threads in process with idle connections", "\(threadsWithIdle)"])
        print(memory.render())
    }

    /// The HTTP metrics' cost per request measured directly, apart from wrk: a million
    /// observations on one thread, then on two threads at once (as two server workers would
    /// record), with the per-thread stripes `serve` uses and, for comparison, one shared lock.
    static func observerCost() -> String {
        var router = Router()
        router.get("/plaintext") { _ in .text("Hello, World!") }
        let observation = HTTPRequestObservation(method: .GET, routeIndex: 0, statusCode: 200, durationNanoseconds: 15_000)
        let calls = 1_000_000
        func nanosecondsPerCall(_ metrics: HTTPMetrics, threads: Int) -> Double {
            let started = monotonicNanoseconds()
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                for _ in 0..<calls { metrics.observe(observation) }
            }
            return Double(monotonicNanoseconds() - started) / Double(calls)
        }
        var lines: [String] = []
        for (name, stripes) in [("per-thread stripes", ThreadStripeIndex.stripeCount), ("one shared lock", 1)] {
            let metrics = HTTPMetrics(routes: router.routeTable, stripeCount: stripes)
            _ = nanosecondsPerCall(metrics, threads: 2)  // warm up: stripes and dictionary entries exist
            let one = nanosecondsPerCall(metrics, threads: 1)
            let two = nanosecondsPerCall(metrics, threads: 2)
            lines.append(String(format: "HTTP metrics observer, %@: %.0f ns per request on one thread, %.0f ns each with two threads at once",
                                name, one, two))
        }
        return lines.joined(separator: "\n")
    }

    /// Runs wrk once; returns requests/s and the count of socket errors and non-2xx responses.
    private func runWrk(_ url: String) throws -> (Double, Int) {
        try Self.runWrk(baseline.wrk, threads: threads, connections: baseline.connections, duration: duration, url: url)
    }

    /// Runs `wrk` once against `url`; returns requests/s and the count of socket errors and
    /// non-2xx responses (shared with `bench e2e`).
    static func runWrk(_ wrk: String, threads: Int, connections: Int, duration: Int, url: String) throws -> (Double, Int) {
        let output = try runProcess(wrk, ["-t\(threads)", "-c\(connections)", "-d\(duration)s", url])
        guard let line = output.split(separator: "\n").first(where: { $0.contains("Requests/sec:") }),
              let value = Double(line.split(separator: " ").last ?? "")
        else { throw ValidationError("unexpected wrk output:\n\(output)") }
        var errors = 0
        for line in output.split(separator: "\n") where line.contains("Non-2xx") || line.contains("Socket errors") {
            errors += line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }.reduce(0, +)
        }
        return (value, errors)
    }

    private func openIdleConnections(port: Int, count: Int) throws -> [Int32] {
        var descriptors: [Int32] = []
        let request = Array("GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n".utf8)
        var buffer = [UInt8](repeating: 0, count: 512)
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard fd >= 0, connected == 0 else {
                throw ValidationError("could not open idle connection \(descriptors.count + 1): errno \(errno)")
            }
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            descriptors.append(fd)
        }
        return descriptors
    }

    /// A numeric field of /proc/self/status (VmRSS in kB, Threads).
    private func processStatus(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" })[1]) ?? 0
        }
        return 0
    }

    static func raiseDescriptorLimit() {
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(RLIMIT_NOFILE_VALUE, &limit)
    }
}

/// The nginx baseline both HTTP benchmarks measure against, and the wrk that loads it.
struct NginxBaselineOptions: ParsableArguments {
    @Option(help: "wrk connections.") var connections = 32
    @Option(help: "nginx binary.") var nginx = "/usr/sbin/nginx"
    @Option(help: "wrk binary.") var wrk = "/usr/bin/wrk"
}

private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(UInt32(RLIMIT_NOFILE.rawValue))

/// Runs a process to completion and returns its standard output.
func runProcess(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// nginx as a child process: generated config in a temp dir, one worker per core, serving a
/// 13-byte static file on a free loopback port.
final class NginxChild {
    let port: Int
    private let process = Process()
    private let directory: URL

    init(binary: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-nginx-\(getpid())")
        let www = directory.appendingPathComponent("www")
        try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
        try "Hello, World!".write(to: www.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        port = try NginxChild.freePort()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let config = """
            \(geteuid() == 0 ? "user root;" : "")
            worker_processes \(cores);
            daemon off;
            pid \(directory.path)/nginx.pid;
            error_log \(directory.path)/error.log warn;
            events { worker_connections 4096; }
            http {
                access_log off;
                sendfile on;
                tcp_nopush on;
                keepalive_requests 10000000;
                open_file_cache max=100;
                default_type text/html;
                server {
                    listen 127.0.0.1:\(port);
                    root \(www.path);
                }
            }
            """
        let configPath = directory.appendingPathComponent("nginx.conf")
        try config.write(to: configPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-p", directory.path, "-e", directory.appendingPathComponent("error.log").path, "-c", configPath.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until it accepts connections.
        let deadline = monotonicNanoseconds() + 5_000_000_000
        while monotonicNanoseconds() < deadline {
            if NginxChild.canConnect(port) { return }
            usleep(20_000)
        }
        stop()
        throw ValidationError("nginx did not start; see \(directory.path)/error.log")
    }

    func stop() {
        if process.isRunning {
            process.terminate()  // SIGTERM: nginx's fast shutdown, workers included
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    private static func freePort() throws -> Int {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        let probe = try HTTPServer(configuration: configuration, router: Router())
        let port = probe.localAddress.port
        probe.shutdown(gracePeriod: .zero)
        return port
    }

    private static func canConnect(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
