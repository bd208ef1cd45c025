import Foundation

/// A complete request as handlers see it: head, body, route parameters and connection facts.
public struct HTTPRequest: Sendable {
    /// The request method.
    public var method: HTTPMethod
    /// The request target exactly as received (origin-form: path and optional query).
    public var target: String
    /// The path, percent-decoded (`/v1/jobs/a%20b` → `/v1/jobs/a b`).
    public var path: String
    /// The path as received, still percent-encoded; routing splits this before decoding segments.
    public var rawPath: String
    /// The query string as received, without the `?`; nil when the target has none.
    public var rawQuery: String?
    /// The protocol version of the request line.
    public var version: HTTPVersion
    /// Header fields in received order.
    public var headers: HTTPHeaders
    /// The body, de-chunked; empty when there is none.
    public var body: [UInt8]
    /// Values captured by `{name}` segments of the matched route pattern, percent-decoded.
    public var pathParameters: [String: String] = [:]
    /// The request id: a sane `X-Request-Id` received, or one generated; echoed in the response.
    public var requestID: String = ""
    /// The remote address of the connection; nil for requests built in-process.
    public var peerAddress: SocketAddress?
    /// Whether the client asked for the connection to persist after this response.
    public internal(set) var keepAlive: Bool = true

    /// A request built in-process (tests, internal dispatch). The target must start with `/`.
    public init(method: HTTPMethod, target: String, version: HTTPVersion = .http1_1, headers: HTTPHeaders = HTTPHeaders(),
                body: [UInt8] = [], peerAddress: SocketAddress? = nil) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.peerAddress = peerAddress
        let (rawPath, rawQuery) = HTTPRequest.split(target)
        self.rawPath = rawPath
        self.rawQuery = rawQuery
        self.path = PercentDecoding.decode(rawPath, plusAsSpace: false) ?? rawPath
    }

    init?(parsedMethod method: HTTPMethod, target: String, version: HTTPVersion, headers: HTTPHeaders) {
        let (rawPath, rawQuery) = HTTPRequest.split(target)
        guard let path = PercentDecoding.decode(rawPath, plusAsSpace: false) else { return nil }
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = []
        self.rawPath = rawPath
        self.rawQuery = rawQuery
        self.path = path
    }

    private static func split(_ target: String) -> (String, String?) {
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (target, nil) }
        return (String(target[..<mark]), String(target[target.index(after: mark)...]))
    }

    /// The value of the `{name}` route parameter.
    public func parameter(_ name: String) -> String? { pathParameters[name] }

    /// The query parameters, percent-decoded (`+` is a space), in order.
    public var queryParameters: QueryParameters { QueryParameters(rawQuery: rawQuery ?? "") }

    /// The body decoded as JSON; a malformed body throws an `HTTPError` with status 400.
    public func decodeJSON<T: Decodable>(_ type: T.Type = T.self, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        do {
            return try decoder.decode(T.self, from: Data(body))
        } catch {
            throw HTTPError(.badRequest, message: "invalid JSON body: \(JSONErrorDescription.describe(error))")
        }
    }

    /// The body as UTF-8 text (invalid sequences replaced).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Decoded query parameters of a request, in order, repeated names kept.
public struct QueryParameters: Sendable, Sequence {
    /// Name/value pairs in the order they appear.
    public let items: [(name: String, value: String)]

    /// Parses `a=1&b=x%20y`; a pair that cannot be decoded keeps its raw text.
    public init(rawQuery: String) {
        var items: [(String, String)] = []
        for pair in rawQuery.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count > 1 ? String(parts[1]) : ""
            items.append((PercentDecoding.decode(name, plusAsSpace: true) ?? name,
                          PercentDecoding.decode(value, plusAsSpace: true) ?? value))
        }
        self.items = items
    }

    /// The first value for `name`.
    public subscript(name: String) -> String? { items.first { $0.name == name }?.value }

    /// Every value for `name`, in order.
    public func values(_ name: String) -> [String] { items.filter { $0.name == name }.map(\.value) }

    /// Iterates the pairs in order.
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { items.makeIterator() }
}

enum PercentDecoding {
    /// Decodes `%XX` escapes; nil for a malformed escape or a result that is not UTF-8.
    static func decode(_ text: String, plusAsSpace: Bool) -> String? {
        let utf8 = text.utf8
        if !utf8.contains(where: { $0 == 0x25 || (plusAsSpace && $0 == 0x2B) }) { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var iterator = utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == 0x25 {
                guard let high = iterator.next().flatMap(HeadParser.hexValue),
                      let low = iterator.next().flatMap(HeadParser.hexValue) else { return nil }
                bytes.append(UInt8(high << 4 | low))
            } else if plusAsSpace && byte == 0x2B {
                bytes.append(0x20)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

enum JSONErrorDescription {
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing key '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted: "not valid JSON"
        default: "undecodable"
        }
    }
}

/// An IPv4 or IPv6 socket address.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// The numeric host (`127.0.0.1`, `::1`).
    public let host: String
    /// The port.
    public let port: Int
    /// Whether the address is in 127.0.0.0/8, `::1` or an IPv4-mapped loopback address.
    public var isLoopback: Bool {
        host.hasPrefix("127.") || host == "::1" || host.hasPrefix("::ffff:127.")
    }

    /// An address from its parts.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `127.0.0.1:8080` or `[::1]:8080`.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
