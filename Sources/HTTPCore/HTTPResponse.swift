import Foundation

/// A response a handler returns: status, headers and a body that is either complete or streamed.
///
/// The server owns framing: it sets `Content-Length` (or chunked encoding for streams), `Date`,
/// `Connection` and `X-Request-Id`, and drops any framing headers a handler set itself.
public struct HTTPResponse: Sendable {
    /// The body of a response.
    public enum Body: Sendable {
        /// A complete body sent with `Content-Length`.
        case bytes([UInt8])
        /// A body produced while the response is being sent (Server-Sent Events, long output):
        /// sent with chunked transfer coding to HTTP/1.1 clients, close-delimited to HTTP/1.0 ones.
        /// The producer runs on the connection's worker thread and may block between writes.
        case stream(@Sendable (ResponseBodyWriter) throws -> Void)
    }

    /// The status.
    public var status: HTTPStatus
    /// Header fields the handler sets (`Content-Type`, `Allow`, …).
    public var headers: HTTPHeaders
    /// The body.
    public var body: Body
    /// When true the connection is closed after this response.
    public var closesConnection: Bool = false

    /// A response with the given parts.
    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: .bytes(Array(text.utf8)))
    }

    /// An `application/json` response of `value` encoded with `encoder`.
    public static func json<T: Encodable>(_ value: T, status: HTTPStatus = .ok,
                                          encoder: JSONEncoder = HTTPResponse.defaultJSONEncoder) throws -> HTTPResponse {
        let data = try encoder.encode(value)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: .bytes(Array(data)))
    }

    /// A streamed response; `producer` writes the body piece by piece.
    public static func stream(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(),
                              _ producer: @escaping @Sendable (ResponseBodyWriter) throws -> Void) -> HTTPResponse {
        HTTPResponse(status: status, headers: headers, body: .stream(producer))
    }

    /// The encoder `json(_:)` uses by default: sorted keys, ISO 8601 dates.
    public static var defaultJSONEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// The complete body bytes (empty for a stream).
    public var bodyBytes: [UInt8] {
        if case .bytes(let bytes) = body { return bytes }
        return []
    }
}

/// An error a handler throws to answer with a status; the router renders it with the
/// application's error renderer.
public struct HTTPError: Error, Sendable {
    /// The response status.
    public var status: HTTPStatus
    /// A message for the error body.
    public var message: String
    /// Extra headers for the response (`Allow`, `Retry-After`, …).
    public var headers: HTTPHeaders

    /// An error answered with `status`.
    public init(_ status: HTTPStatus, message: String? = nil, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.message = message ?? status.reason
        self.headers = headers
    }
}

/// What the application's error renderer is given: the failure and, when one was parsed, the request.
public struct HTTPErrorContext: Sendable {
    /// The status to answer with (400, 404, 405, 413, 500, 503, …).
    public var status: HTTPStatus
    /// A short explanation.
    public var message: String
    /// The request id, echoed in the response.
    public var requestID: String
    /// The request, when the failure happened after parsing (404, 405, handler errors).
    public var request: HTTPRequest?

    /// A context for rendering an error.
    public init(status: HTTPStatus, message: String, requestID: String, request: HTTPRequest? = nil) {
        self.status = status
        self.message = message
        self.requestID = requestID
        self.request = request
    }
}

/// Renders every error response (404, 405, parse errors, handler errors) as the application wants.
public typealias HTTPErrorRenderer = @Sendable (HTTPErrorContext) -> HTTPResponse

/// Writes the body of a streamed response. Confined to the thread running the producer; using
/// it after the producer returned throws.
public final class ResponseBodyWriter: @unchecked Sendable {
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private let chunked: Bool
    private let discardsBody: Bool
    private var finished = false

    init(chunked: Bool, discardsBody: Bool, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.sink = sink
        self.chunked = chunked
        self.discardsBody = discardsBody
    }

    /// Sends `bytes` to the client at once; throws `SocketError` when the client has gone.
    public func write(_ bytes: [UInt8]) throws {
        if finished { throw SocketError(errno: EPIPE, operation: "write after the response ended") }
        if bytes.isEmpty || discardsBody { return }
        if chunked {
            var framed: [UInt8] = Array(String(bytes.count, radix: 16).utf8)
            framed.reserveCapacity(framed.count + bytes.count + 4)
            framed.append(0x0D); framed.append(0x0A)
            framed.append(contentsOf: bytes)
            framed.append(0x0D); framed.append(0x0A)
            try framed.withUnsafeBytes { raw in try sink(raw) }
        } else {
            try bytes.withUnsafeBytes { raw in try sink(raw) }
        }
    }

    /// Sends `text` as UTF-8.
    public func write(_ text: String) throws { try write(Array(text.utf8)) }

    /// Sends one Server-Sent Event (`event:` line when given, one `data:` line per line of `data`).
    public func writeEvent(_ data: String, event: String? = nil, id: String? = nil) throws {
        var text = ""
        if let event { text += "event: \(event)\n" }
        if let id { text += "id: \(id)\n" }
        for line in data.split(separator: "\n", omittingEmptySubsequences: false) { text += "data: \(line)\n" }
        text += "\n"
        try write(text)
    }

    func finish() throws {
        if finished { return }
        finished = true
        if chunked && !discardsBody {
            let last: [UInt8] = Array("0\r\n\r\n".utf8)
            try last.withUnsafeBytes { raw in try sink(raw) }
        }
    }

    func abandon() { finished = true }
}

/// Builds the status line and header section of a response.
enum ResponseHead {
    static func serialize(_ response: HTTPResponse, requestID: String, date: [UInt8], contentLength: Int?,
                          chunked: Bool, keepAlive: Bool, requestVersion: HTTPVersion, into out: inout [UInt8]) {
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(response.status.code, to: &out)
        out.append(0x20)
        out.append(contentsOf: response.status.reason.utf8)
        out.append(contentsOf: "\r\n".utf8)
        for field in response.headers {
            if HTTPHeaders.namesEqual(field.name, "Content-Length") || HTTPHeaders.namesEqual(field.name, "Transfer-Encoding")
                || HTTPHeaders.namesEqual(field.name, "Connection") || HTTPHeaders.namesEqual(field.name, "Date")
                || HTTPHeaders.namesEqual(field.name, "X-Request-Id") { continue }
            appendField(field.name, field.value, to: &out)
        }
        out.append(contentsOf: "Date: ".utf8)
        out.append(contentsOf: date)
        out.append(contentsOf: "\r\n".utf8)
        if !requestID.isEmpty { appendField("X-Request-Id", requestID, to: &out) }
        if let contentLength {
            out.append(contentsOf: "Content-Length: ".utf8)
            appendDecimal(contentLength, to: &out)
            out.append(contentsOf: "\r\n".utf8)
        }
        if chunked { out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8) }
        if !keepAlive {
            out.append(contentsOf: "Connection: close\r\n".utf8)
        } else if requestVersion == .http1_0 {
            out.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
    }

    /// Header values are sent as given except CR and LF, which would split the response.
    private static func appendField(_ name: String, _ value: String, to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(0x3A); out.append(0x20)
        for byte in value.utf8 where byte != 0x0D && byte != 0x0A { out.append(byte) }
        out.append(0x0D); out.append(0x0A)
    }

    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value < 10 { out.append(UInt8(0x30 + value)); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { buffer in
            while rest > 0 {
                buffer[count] = UInt8(0x30 + rest % 10)
                rest /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[index]) }
        }
    }
}

/// The IMF-fixdate of the current second, recomputed at most once per second per worker.
struct DateCache {
    private var second: Int = -1
    private(set) var bytes: [UInt8] = []

    mutating func current() -> [UInt8] {
        var now = time(nil)
        if now != second {
            second = now
            var parts = tm()
            gmtime_r(&now, &parts)
            let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
            let text = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
            bytes = Array(text.utf8)
        }
        return bytes
    }
}
