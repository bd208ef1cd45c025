import Foundation
import Glibc
import HTTPCore
import Synchronization
import Testing

/// The application-side router the conformance tests drive, in-process and over a socket.
enum TestApp {
    struct Job: Codable, Equatable {
        var id: String
        var language: String
    }

    static let errorRenderer: HTTPErrorRenderer = { context in
        struct Body: Encodable {
            let app_error: Int
            let message: String
            let request_id: String
        }
        return (try? HTTPResponse.json(Body(app_error: context.status.code, message: context.message,
                                            request_id: context.requestID), status: context.status))!
    }

    static var router: Router {
        var router = Router()
        router.errorRenderer = errorRenderer
        router.get("/hello") { _ in .text("hello") }
        router.get("/json") { _ in try .json(["message": "Hello, World!"]) }
        router.post("/echo") { request in
            var response = HTTPResponse(status: .ok, body: .bytes(request.body))
            response.headers.add(name: "Content-Type", value: "application/octet-stream")
            response.headers.add(name: "X-Saw-Trailer", value: request.headers.contains(name: "Trailer-A") ? "yes" : "no")
            response.headers.add(name: "X-Body-Length", value: String(request.body.count))
            return response
        }
        router.put("/echo") { request in .text(request.bodyText) }
        router.post("/v1/jobs") { request in
            let job = try request.decodeJSON(Job.self)
            return try .json(job, status: .created)
        }
        router.get("/v1/jobs/{id}") { request in try .json(Job(id: request.parameter("id")!, language: "c")) }
        router.delete("/v1/jobs/{id}") { _ in HTTPResponse(status: .noContent) }
        router.get("/v1/jobs/{id}/files/{name}") { request in
            .text("\(request.parameter("id")!)|\(request.parameter("name")!)")
        }
        router.get("/query") { request in
            .text(request.queryParameters.map { "\($0.name)=\($0.value)" }.joined(separator: ";"))
        }
        router.get("/path") { request in .text(request.path) }
        router.get("/sleep") { request in
            let milliseconds = Int(request.queryParameters["ms"] ?? "0") ?? 0
            usleep(UInt32(milliseconds * 1000))
            return .text("slept \(milliseconds)")
        }
        router.get("/stream") { _ in
            .stream(headers: ["Content-Type": "text/event-stream"]) { writer in
                for index in 1...3 {
                    try writer.writeEvent("tick \(index)", event: "tick")
                }
            }
        }
        router.get("/peer") { request in
            .text("\(request.peerAddress?.host ?? "none") loopback=\(request.peerAddress?.isLoopback ?? false)")
        }
        router.get("/conflict") { _ in throw HTTPError(.conflict, message: "already there", headers: ["Retry-After": "1"]) }
        router.get("/crash") { _ in throw CocoaError(.featureUnsupported) }
        router.get("/id") { request in .text(request.requestID) }
        router.get("/headers") { request in
            .text(request.headers.values(name: "X-Multi").joined(separator: "|"))
        }
        var jobe = Router()
        jobe.get("/languages") { _ in .text("languages") }
        jobe.post("/runs") { _ in .text("run") }
        jobe.get("/") { _ in .text("jobe root") }
        router.mount("/jobe/index.php/restapi", jobe, trailingSlashTolerant: true)
        return router
    }
}

/// A server on an ephemeral loopback port, shut down when the test releases it.
final class TestServer {
    let server: HTTPServer
    var port: Int { server.localAddress.port }

    init(router: Router = TestApp.router, _ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws {
        var configuration = HTTPServerConfiguration()
        configuration.timerResolution = .milliseconds(20)
        configure(&configuration)
        server = try HTTPServer(configuration: configuration, router: router)
        try server.start()
    }

    func connect() throws -> RawClient { try RawClient(port: port) }

    /// Sends `request` on a new connection and reads one response.
    func exchange(_ request: String, expectBody: Bool = true) throws -> RawResponse {
        let client = try connect()
        try client.send(request)
        return try client.readResponse(expectBody: expectBody)
    }

    deinit { server.shutdown(gracePeriod: .milliseconds(200)) }
}

/// A parsed response as it came off the wire.
struct RawResponse {
    var status: Int
    var reason: String
    var headers: [(String, String)]
    var body: [UInt8]
    var raw: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

struct ClientError: Error, CustomStringConvertible {
    var description: String
}

/// A blocking loopback client speaking raw bytes.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, receiveTimeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError(description: "socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw ClientError(description: "connect: \(code)")
        }
        setReceiveTimeout(receiveTimeout)
    }

    deinit { Glibc.close(fd) }

    func setReceiveTimeout(_ seconds: Double) {
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw ClientError(description: "send: \(errno)") }
            offset += written
        }
    }

    /// Reads more bytes; false on EOF, throws on timeout or reset.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
        if count == 0 { return false }
        throw ClientError(description: errno == EAGAIN ? "timed out waiting for the server" : "recv: \(errno)")
    }

    private func readLine() throws -> String {
        while true {
            if let index = buffer.firstIndex(of: 0x0A) {
                let line = buffer[..<index]
                buffer.removeFirst(index + 1)
                return String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
            }
            guard try fill() else { throw ClientError(description: "connection closed mid-line") }
        }
    }

    private func readBytes(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw ClientError(description: "connection closed mid-body") }
        }
        let bytes = Array(buffer[..<count])
        buffer.removeFirst(count)
        return bytes
    }

    /// Reads one response. Interim 1xx responses are returned like any other.
    func readResponse(expectBody: Bool = true) throws -> RawResponse {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw ClientError(description: "bad status line: \(statusLine)")
        }
        var headers: [(String, String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            let pieces = line.split(separator: ":", maxSplits: 1)
            headers.append((String(pieces[0]), pieces.count > 1 ? String(pieces[1]).trimmingCharacters(in: .whitespaces) : ""))
        }
        var response = RawResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: [], raw: [])
        if (100..<200).contains(status) || !expectBody || status == 204 || status == 304 { return response }
        if let length = response.header("Content-Length").flatMap(Int.init) {
            response.body = try readBytes(length)
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine, radix: 16) else { throw ClientError(description: "bad chunk size \(sizeLine)") }
                if size == 0 {
                    _ = try readLine()
                    break
                }
                response.body += try readBytes(size)
                _ = try readLine()
            }
        } else {
            while try fill() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    /// True when the server closed the connection (EOF) before `seconds`; unread bytes count as open.
    func isClosedByServer(within seconds: Double = 3) -> Bool {
        setReceiveTimeout(seconds)
        defer { setReceiveTimeout(5) }
        do {
            while try fill() {}
            return buffer.isEmpty
        } catch {
            return (error as? ClientError)?.description.hasPrefix("recv") ?? false  // reset counts as closed
        }
    }

    /// Bytes already read but not consumed.
    var pending: [UInt8] { buffer }
}

/// Milliseconds elapsed while running `body`.
func elapsedMilliseconds(_ body: () throws -> Void) rethrows -> Double {
    var start = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    try body()
    var end = timespec()
    clock_gettime(CLOCK_MONOTONIC, &end)
    return Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1_000_000
}

/// Runs `body` on a plain thread (blocking clients must not sit on the cooperative pool when a
/// test needs two of them at once) and lets the test wait for its result.
final class Background<T: Sendable>: Sendable {
    private let result = Mutex<Result<T, any Error>?>(nil)

    init(_ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let value = Result { try body() }
            self.result.withLock { $0 = value }
        }
        thread.start()
    }

    func wait(timeout seconds: Double = 10) throws -> T {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let value = result.withLock({ $0 }) { return try value.get() }
            usleep(2_000)
        }
        throw ClientError(description: "background work did not finish")
    }
}
