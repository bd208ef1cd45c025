/// A request method this server routes. Unknown but well-formed methods are answered with 501.
public enum HTTPMethod: String, Sendable, Hashable, CaseIterable, Comparable {
    case GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH

    /// Orders methods as they are listed in an `Allow` header.
    public static func < (lhs: HTTPMethod, rhs: HTTPMethod) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    init?(bytes: UnsafeBufferPointer<UInt8>) {
        // Compared by bytes: this runs once per request.
        switch bytes.count {
        case 3:
            if bytes[0] == 0x47, bytes[1] == 0x45, bytes[2] == 0x54 { self = .GET; return }
            if bytes[0] == 0x50, bytes[1] == 0x55, bytes[2] == 0x54 { self = .PUT; return }
        case 4:
            if bytes.elementsEqual("HEAD".utf8) { self = .HEAD; return }
            if bytes.elementsEqual("POST".utf8) { self = .POST; return }
        case 5:
            if bytes.elementsEqual("PATCH".utf8) { self = .PATCH; return }
        case 6:
            if bytes.elementsEqual("DELETE".utf8) { self = .DELETE; return }
        case 7:
            if bytes.elementsEqual("OPTIONS".utf8) { self = .OPTIONS; return }
        default: break
        }
        return nil
    }
}

/// The protocol version of a request: HTTP/1.0 or HTTP/1.1.
public enum HTTPVersion: Sendable, Hashable {
    /// HTTP/1.0: connections close after each response unless `Connection: keep-alive`.
    case http1_0
    /// HTTP/1.1: connections persist unless `Connection: close`.
    case http1_1
}

/// A response status: the code and its reason phrase.
public struct HTTPStatus: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit status code.
    public let code: Int
    /// The reason phrase sent on the status line.
    public let reason: String

    /// A status with a custom reason phrase (the standard one when `reason` is nil).
    public init(code: Int, reason: String? = nil) {
        self.code = code
        self.reason = reason ?? HTTPStatus.standardReason(code)
    }

    /// `"404 Not Found"`.
    public var description: String { "\(code) \(reason)" }

    /// 1xx, 204 and 304 responses never carry a body.
    public var allowsBody: Bool { !(100..<200).contains(code) && code != 204 && code != 304 }

    public static let `continue` = HTTPStatus(code: 100)
    public static let ok = HTTPStatus(code: 200)
    public static let created = HTTPStatus(code: 201)
    public static let accepted = HTTPStatus(code: 202)
    public static let noContent = HTTPStatus(code: 204)
    public static let badRequest = HTTPStatus(code: 400)
    public static let unauthorized = HTTPStatus(code: 401)
    public static let forbidden = HTTPStatus(code: 403)
    public static let notFound = HTTPStatus(code: 404)
    public static let methodNotAllowed = HTTPStatus(code: 405)
    public static let requestTimeout = HTTPStatus(code: 408)
    public static let conflict = HTTPStatus(code: 409)
    public static let contentTooLarge = HTTPStatus(code: 413)
    public static let uriTooLong = HTTPStatus(code: 414)
    public static let unsupportedMediaType = HTTPStatus(code: 415)
    public static let expectationFailed = HTTPStatus(code: 417)
    public static let unprocessableContent = HTTPStatus(code: 422)
    public static let tooManyRequests = HTTPStatus(code: 429)
    public static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431)
    public static let internalServerError = HTTPStatus(code: 500)
    public static let notImplemented = HTTPStatus(code: 501)
    public static let serviceUnavailable = HTTPStatus(code: 503)
    public static let httpVersionNotSupported = HTTPStatus(code: 505)

    static func standardReason(_ code: Int) -> String {
        switch code {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Status \(code)"
        }
    }
}

/// Header fields in the order received (or added); names compare case-insensitively.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    /// One field as received: name spelling is preserved.
    public typealias Field = (name: String, value: String)

    private var fields: [Field] = []

    /// An empty header list.
    public init() {}

    /// Fields in the given order.
    public init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { (name: $0.0, value: $0.1) }
    }

    /// Number of fields (repeated names count once each).
    public var count: Int { fields.count }

    /// Appends a field, keeping any existing ones with the same name.
    public mutating func add(name: String, value: String) { fields.append((name, value)) }

    /// Replaces every field named `name` with a single one.
    public mutating func replaceOrAdd(name: String, value: String) {
        remove(name: name)
        fields.append((name, value))
    }

    /// Removes every field named `name`.
    public mutating func remove(name: String) {
        fields.removeAll { HTTPHeaders.namesEqual($0.name, name) }
    }

    /// The first value of the field named `name`.
    public subscript(name: String) -> String? { first(name: name) }

    /// The first value of the field named `name`.
    public func first(name: String) -> String? {
        for field in fields where HTTPHeaders.namesEqual(field.name, name) { return field.value }
        return nil
    }

    /// Every value of the field named `name`, in order.
    public func values(name: String) -> [String] {
        fields.filter { HTTPHeaders.namesEqual($0.name, name) }.map(\.value)
    }

    /// Whether a field named `name` is present.
    public func contains(name: String) -> Bool { first(name: name) != nil }

    /// Whether a comma-separated list field contains `token` (case-insensitively), as
    /// `Connection: keep-alive, Upgrade` contains `keep-alive`.
    public func listContains(name: String, token: String) -> Bool {
        for value in values(name: name) {
            for item in value.split(separator: ",") {
                let trimmed = item.trimmingASCIIWhitespace()
                if HTTPHeaders.namesEqual(String(trimmed), token) { return true }
            }
        }
        return false
    }

    /// Iterates fields in order.
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    static func namesEqual(_ a: String, _ b: String) -> Bool {
        if a.utf8.count != b.utf8.count { return false }
        var left = a.utf8.makeIterator()
        var right = b.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return true
            case let (x?, y?):
                if x == y { continue }
                if x | 0x20 == y | 0x20, (x | 0x20) >= 0x61, (x | 0x20) <= 0x7A { continue }
                return false
            default: return false
            }
        }
    }
}

extension Substring {
    func trimmingASCIIWhitespace() -> Substring {
        var slice = self
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return slice
    }
}
