import Foundation
import Glibc
import HTTPCore
import Logging
import Synchronization
import Testing

@testable import SandboxServer

/// End-to-end tests need root (sandboxes: namespaces, mounts, cgroups).
let runningAsRoot = getuid() == 0

private let serviceCounter = Atomic<Int>(0)
private let detectedLanguages = Mutex<[LanguageAvailability]?>(nil)

/// The languages of this machine, detected once per test process.
func languagesOfThisMachine() async throws -> (LanguageRegistry, [LanguageAvailability]) {
    let registry = try LanguageRegistry.embedded()
    if let cached = detectedLanguages.withLock({ $0 }) { return (registry, cached) }
    let detected = await registry.detect()
    detectedLanguages.withLock { $0 = detected }
    return (registry, detected)
}

/// A whole service (store, sandbox, runners, webhooks, HTTP on a free loopback port) with its
/// own data dir, work root, cgroup parent and uids, so suites can run side by side.
final class TestService {
    let name: String
    let dataDirectory: String
    private(set) var service: SandboxService
    let settings: ServerSettings

    static func settings(workers: Int = 2) -> ServerSettings {
        let number = serviceCounter.add(1, ordering: .relaxed).newValue
        let name = "ss-e2e-\(getpid())-\(number)"
        var settings = ServerSettings()
        settings.port = 0
        settings.workers = workers
        settings.dataDirectory = NSTemporaryDirectory() + name + "/data"
        settings.workRoot = "/run/" + name
        settings.cgroupParent = name
        // Away from the Isolation tests' uid ranges (61000+) and from each other.
        settings.firstUID = UInt32(70_000 + (Int(getpid()) % 100) * 400 + number * 8)
        settings.leaseSeconds = 3
        return settings
    }

    /// `logger`: where the service logs (default: warnings and worse, to standard error).
    init(_ settings: ServerSettings = TestService.settings(), languages: (LanguageRegistry, [LanguageAvailability]),
         logger: Logger? = nil) throws {
        self.settings = settings
        name = URL(fileURLWithPath: settings.workRoot).lastPathComponent
        dataDirectory = settings.dataDirectory
        var quiet = Logger(label: "test-service")
        quiet.logLevel = .warning
        let logger = logger ?? quiet
        service = try SandboxService(settings: settings, registry: languages.0, languages: languages.1, logger: logger,
                                     webhookPollInterval: .milliseconds(50))
    }

    convenience init(workers: Int = 2, configure: (inout ServerSettings) -> Void = { _ in }) async throws {
        var settings = TestService.settings(workers: workers)
        configure(&settings)
        try self.init(settings, languages: try await languagesOfThisMachine())
    }

    /// A service started off the cooperative pool (sandbox set-up blocks for a moment).
    static func start(workers: Int = 2, logger: Logger? = nil,
                      configure: (inout ServerSettings) -> Void = { _ in }) async throws -> TestService {
        var settings = TestService.settings(workers: workers)
        configure(&settings)
        let languages = try await languagesOfThisMachine()
        let configured = settings
        let box = try await onOwnThread { UncheckedBox(try TestService(configured, languages: languages, logger: logger)) }
        return box.value
    }

    var port: Int { service.port }

    /// Stops the service and starts a new one on the same data directory (new sandbox, new port).
    func restart(gracePeriod: Duration = .seconds(10)) async throws {
        let languages = try await languagesOfThisMachine()
        let old = UncheckedBox(service)
        let settings = self.settings
        let started = try await onOwnThread { () -> UncheckedBox<SandboxService> in
            old.value.stop(gracePeriod: gracePeriod)
            var logger = Logger(label: "test-service")
            logger.logLevel = .warning
            return UncheckedBox(try SandboxService(settings: settings, registry: languages.0, languages: languages.1, logger: logger,
                                                   webhookPollInterval: .milliseconds(50)))
        }
        service = started.value
    }

    func transport(_ kind: TransportKind) -> any APITransport {
        switch kind {
        case .inProcess: InProcessTransport(router: service.routes.makeRouter())
        case .live: LiveTransport(port: port)
        }
    }

    deinit {
        service.stop(gracePeriod: .seconds(2))
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: dataDirectory).deletingLastPathComponent().path)
    }
}

/// A response as the tests read it.
struct TestResponse: CustomStringConvertible {
    var status: Int
    /// Header names lower-cased.
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (empty when it is not one).
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }

    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }

    var description: String { "\(status) \(text.prefix(600))" }
}

/// The same request tests run against the router in-process and against the live server.
enum TransportKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inProcess, live
    var testDescription: String { rawValue }
}

protocol APITransport: Sendable {
    /// Sends a request and blocks until the whole response is there (handlers may block too).
    func sendBlocking(_ method: HTTPMethod, _ target: String, body: String?, headers: [String: String]) throws -> TestResponse
}

extension APITransport {
    /// Sends on a thread of its own: requests block (`?wait=`, event streams), and blocking
    /// Swift's cooperative threads would starve other tests running in parallel.
    func send(_ method: HTTPMethod, _ target: String, body: String?, headers: [String: String]) async throws -> TestResponse {
        try await onOwnThread { try sendBlocking(method, target, body: body, headers: headers) }
    }

    func get(_ target: String, headers: [String: String] = [:]) async throws -> TestResponse {
        try await send(.GET, target, body: nil, headers: headers)
    }

    func post(_ target: String, _ body: String, headers: [String: String] = [:]) async throws -> TestResponse {
        try await send(.POST, target, body: body, headers: ["Content-Type": "application/json"].merging(headers) { $1 })
    }

    func delete(_ target: String, headers: [String: String] = [:]) async throws -> TestResponse {
        try await send(.DELETE, target, body: nil, headers: headers)
    }

    /// Submits a job and waits (server side) for its result.
    func run(_ job: [String: Any], wait: Int = 60, headers: [String: String] = [:]) async throws -> TestResponse {
        try await post("/v1/jobs?wait=\(wait)", jsonText(job), headers: headers)
    }
}

/// Runs blocking work on a new thread and awaits its result without holding a cooperative thread.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
        }
        thread.start()
    }
}

func jsonText(_ value: Any) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]), as: UTF8.self)
}

/// Calls the router directly, as the server would (no sockets).
struct InProcessTransport: APITransport {
    let router: Router

    func sendBlocking(_ method: HTTPMethod, _ target: String, body: String?, headers: [String: String]) throws -> TestResponse {
        var fields = HTTPHeaders()
        for (name, value) in headers { fields.add(name: name, value: value) }
        let request = HTTPRequest(method: method, target: target, headers: fields, body: Array((body ?? "").utf8),
                                  peerAddress: SocketAddress(host: "127.0.0.1", port: 40_000))
        let response = router.respond(to: request)
        var headerTable: [String: String] = [:]
        for field in response.headers { headerTable[field.name.lowercased()] = field.value }
        return TestResponse(status: response.status.code, headers: headerTable, body: response.bodyBytes)
    }
}

/// A minimal HTTP/1.1 client on a blocking socket (`Connection: close`, reads to EOF, de-chunks).
struct LiveTransport: APITransport {
    let port: Int
    var timeoutSeconds = 120

    func sendBlocking(_ method: HTTPMethod, _ target: String, body: String?, headers: [String: String]) throws -> TestResponse {
        let raw = try exchange(method, target, body: body, headers: headers)
        return try Self.parse(raw)
    }

    func exchange(_ method: HTTPMethod, _ target: String, body: String?, headers: [String: String]) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect to port \(port): errno \(errno)") }
        let bodyBytes = Array((body ?? "").utf8)
        var head = "\(method.rawValue) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if body != nil || method == .POST { head += "Content-Length: \(bodyBytes.count)\r\n" }
        head += "\r\n"
        let request = Array(head.utf8) + bodyBytes
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send: errno \(errno)") }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { received += buffer[0..<n]; continue }
            if n == 0 { break }
            throw TestFailure("recv: errno \(errno) after \(received.count) bytes")
        }
        return received
    }

    static func parse(_ raw: [UInt8]) throws -> TestResponse {
        guard let message = splitMessage(raw) else { throw TestFailure("no complete response head in \(raw.count) bytes") }
        let statusParts = message.firstLine.split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestFailure("bad status line \(message.firstLine)") }
        var body = message.body
        if message.headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return TestResponse(status: status, headers: message.headers, body: body)
    }

    /// First line, headers (names lower-cased) and the bytes after the head; nil without a complete head.
    static func splitMessage(_ raw: [UInt8]) -> (firstLine: String, headers: [String: String], body: [UInt8])? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = raw.indices.first(where: { raw[$0...].starts(with: separator) }) else { return nil }
        let head = String(decoding: raw[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (head[0], headers, Array(raw[(end + 4)...]))
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = (index..<bytes.count - 1).first(where: { bytes[$0] == 0x0D && bytes[$0 + 1] == 0x0A }),
                  let size = Int(String(decoding: bytes[index..<lineEnd], as: UTF8.self), radix: 16)
            else { break }
            if size == 0 { break }
            let start = lineEnd + 2
            output += bytes[start..<min(start + size, bytes.count)]
            index = start + size + 2
        }
        return output
    }
}

/// Carries a value across a thread hop in tests (the value is used by one thread at a time).
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A tiny HTTP receiver on 127.0.0.1 for webhook tests: records each request and answers with
/// the next status of `statuses` (the last one repeats).
final class WebhookReceiver: @unchecked Sendable {
    struct Received {
        var headers: [String: String]
        var body: [UInt8]
        /// The request line's method (`POST`, or `PUT` for Judge0 callbacks).
        var method = ""
    }

    let port: Int
    private let fd: Int32
    private let statuses: [Int]
    // Guarded by `lock`; written by the accept thread, read by the test.
    private let lock = NSLock()
    private var received: [Received] = []
    private var stopped = false

    init(statuses: [Int]) throws {
        self.statuses = statuses
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestFailure("webhook receiver: bind failed, errno \(errno)")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var requests: [Received] { lock.withLock { received } }

    /// Waits until `count` requests arrived (or `timeout`).
    func waitForRequests(_ count: Int, timeout: Duration = .seconds(30)) async throws -> [Received] {
        let deadline = ContinuousClock.now + timeout
        while requests.count < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        return requests
    }

    private func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return }
            var raw: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            // Read the head, then Content-Length bytes of body.
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                raw += buffer[0..<n]
                if let response = LiveTransport.splitMessage(raw), let length = Int(response.headers["content-length"] ?? "0"),
                   response.body.count >= length {
                    let status = lock.withLock { () -> Int in
                        received.append(Received(headers: response.headers, body: Array(response.body.prefix(length)),
                                                 method: String(decoding: raw.prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)))
                        return statuses[min(received.count - 1, statuses.count - 1)]
                    }
                    let reply = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    _ = reply.withCString { Glibc.send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    break
                }
            }
            close(client)
        }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
