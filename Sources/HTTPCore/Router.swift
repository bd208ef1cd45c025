import Synchronization

/// What the server reports about each request it answered, for metrics and access logs (see
/// ``Router/requestObserver``). Built without allocating: the route is an index, and the strings
/// are the request's own.
public struct HTTPRequestObservation: Sendable, Hashable {
    /// The request's method; nil when no request could be parsed (a 400, 408 or 413 from the
    /// parser, or the 503 for a connection over the cap).
    public var method: HTTPMethod?
    /// The index in ``Router/routeTable`` of the route that handled the request; nil when no
    /// route did (404, 405, an automatic `OPTIONS` answer, a parse failure).
    public var routeIndex: Int?
    /// The status code sent.
    public var statusCode: Int
    /// Nanoseconds from the request's first byte read to its response written (the whole stream
    /// for a streamed body; a pipelined request already buffered when its predecessor was
    /// answered: from its routing). Through ``Router/respond(to:)``, which reads and writes
    /// nothing: the handler's time. 0 when unknown (the 503 for a connection over the cap).
    public var durationNanoseconds: UInt64
    /// The request id echoed in `X-Request-Id` (received or generated).
    public var requestID: String
    /// The request target as received (path and query); empty when no request could be parsed.
    public var target: String
    /// The client's address, when known.
    public var peerAddress: SocketAddress?
    /// Body bytes of the response; nil for a streamed body.
    public var responseBodyBytes: Int?
    /// False when the client went away (or was too slow) before the response was fully written.
    public var completed: Bool

    /// An observation.
    public init(method: HTTPMethod?, routeIndex: Int?, statusCode: Int, durationNanoseconds: UInt64,
                requestID: String = "", target: String = "", peerAddress: SocketAddress? = nil,
                responseBodyBytes: Int? = nil, completed: Bool = true) {
        self.method = method
        self.routeIndex = routeIndex
        self.statusCode = statusCode
        self.durationNanoseconds = durationNanoseconds
        self.requestID = requestID
        self.target = target
        self.peerAddress = peerAddress
        self.responseBodyBytes = responseBodyBytes
        self.completed = completed
    }

    /// The observation of `request` answered with `response` (a HEAD response counts no body bytes).
    init(_ request: HTTPRequest, _ response: HTTPResponse, routeIndex: Int?, durationNanoseconds: UInt64, completed: Bool = true) {
        var bodyBytes: Int?
        if case .bytes(let body) = response.body { bodyBytes = request.method == .HEAD ? 0 : body.count }
        self.init(method: request.method, routeIndex: routeIndex, statusCode: response.status.code,
                  durationNanoseconds: durationNanoseconds, requestID: request.requestID, target: request.target,
                  peerAddress: request.peerAddress, responseBodyBytes: bodyBytes, completed: completed)
    }
}

/// Receives an ``HTTPRequestObservation`` per answered request, on the thread that answered it,
/// after the response was written; it must be quick and must not block.
public typealias HTTPRequestObserver = @Sendable (HTTPRequestObservation) -> Void

/// Maps method + path patterns to handlers and renders routing failures.
///
/// Patterns are literal segments and `{name}` parameters: `/v1/jobs/{id}`. Paths are split on `/`
/// before percent-decoding, so an encoded slash stays inside one parameter. Routes are tried in
/// registration order; the first whose pattern and method match handles the request. A path that
/// matches some pattern but not the method is answered 405 with `Allow`; no pattern: 404. `HEAD`
/// is served by the `GET` route (the server drops the body), and `OPTIONS` without its own route
/// is answered 204 with `Allow`.
public struct Router: Sendable {
    /// A request handler. It runs on a server worker thread (never Swift's cooperative pool), so it
    /// may block, e.g. for a long-poll.
    public typealias Handler = @Sendable (HTTPRequest) throws -> HTTPResponse

    /// One row of the route table.
    public struct RouteDescription: Sendable, Hashable, CustomStringConvertible {
        /// The method.
        public let method: HTTPMethod
        /// The full pattern, mount prefix included (`/v1/jobs/{id}`).
        public let pattern: String
        /// `"GET /v1/jobs/{id}"`.
        public var description: String { "\(method.rawValue) \(pattern)" }
    }

    private enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter(String)
    }

    private struct Route: Sendable {
        var method: HTTPMethod
        var pattern: String
        var segments: [Segment]
        var trailingSlashTolerant: Bool
        var handler: Handler
    }

    private var routes: [Route] = []

    /// Renders 404, 405, handler and parse errors. Defaults to `Router.defaultErrorRenderer`.
    public var errorRenderer: HTTPErrorRenderer = Router.defaultErrorRenderer

    /// Told about every answered request (metrics). Nil, the default, costs nothing; set, it
    /// costs two clock reads and the call per request. Not carried over by ``mount(_:_:trailingSlashTolerant:)``:
    /// set it on the router the server serves, after the last route is added, so the indices it
    /// reports match ``routeTable``.
    public var requestObserver: HTTPRequestObserver?

    /// An empty router.
    public init() {}

    /// `{"error":{"status":404,"message":"…","requestId":"…"}}`.
    public static let defaultErrorRenderer: HTTPErrorRenderer = { context in
        struct Envelope: Encodable {
            struct Detail: Encodable {
                let status: Int
                let message: String
                let requestId: String
            }
            let error: Detail
        }
        let envelope = Envelope(error: .init(status: context.status.code, message: context.message, requestId: context.requestID))
        return (try? HTTPResponse.json(envelope, status: context.status)) ?? .text(context.message, status: context.status)
    }

    /// Registers `handler` for `method` on `pattern` (which must start with `/`). With
    /// `trailingSlashTolerant`, `/a/b` and `/a/b/` both match.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, trailingSlashTolerant: Bool = false,
                             _ handler: @escaping Handler) {
        precondition(pattern.hasPrefix("/"), "route pattern must start with /: \(pattern)")
        routes.append(Route(method: method, pattern: pattern, segments: Router.compile(pattern),
                            trailingSlashTolerant: trailingSlashTolerant, handler: handler))
    }

    /// Registers a `GET` handler (also serving `HEAD`).
    public mutating func get(_ pattern: String, _ handler: @escaping Handler) { add(.GET, pattern, handler) }
    /// Registers a `POST` handler.
    public mutating func post(_ pattern: String, _ handler: @escaping Handler) { add(.POST, pattern, handler) }
    /// Registers a `PUT` handler.
    public mutating func put(_ pattern: String, _ handler: @escaping Handler) { add(.PUT, pattern, handler) }
    /// Registers a `DELETE` handler.
    public mutating func delete(_ pattern: String, _ handler: @escaping Handler) { add(.DELETE, pattern, handler) }
    /// Registers a `PATCH` handler.
    public mutating func patch(_ pattern: String, _ handler: @escaping Handler) { add(.PATCH, pattern, handler) }

    /// Adds every route of `router` under `prefix` (`/jobe/index.php/restapi`). With
    /// `trailingSlashTolerant` every mounted route accepts an extra trailing slash. The mounted
    /// router's error renderer is not used: this router's renders all errors.
    public mutating func mount(_ prefix: String, _ router: Router, trailingSlashTolerant: Bool = false) {
        precondition(prefix.hasPrefix("/"), "mount prefix must start with /: \(prefix)")
        var base = prefix
        while base.hasSuffix("/") { base.removeLast() }
        for route in router.routes {
            let pattern = route.pattern == "/" ? base + "/" : base + route.pattern
            routes.append(Route(method: route.method, pattern: pattern, segments: Router.compile(pattern),
                                trailingSlashTolerant: route.trailingSlashTolerant || trailingSlashTolerant,
                                handler: route.handler))
        }
    }

    /// Every registered route (method and full pattern) in registration order.
    public var routeTable: [RouteDescription] {
        routes.map { RouteDescription(method: $0.method, pattern: $0.pattern) }
    }

    /// Routes `request` and runs its handler; every failure is rendered with `errorRenderer`. The
    /// response carries `X-Request-Id` (a request without an id gets one generated). The
    /// ``requestObserver`` is told once the handler returned.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        var request = request
        if request.requestID.isEmpty { request.requestID = RequestID.resolve(request.headers) }
        let started = requestObserver == nil ? 0 : Syscall.now()
        var (response, routeIndex) = route(request)
        response.headers.replaceOrAdd(name: "X-Request-Id", value: request.requestID)
        if let requestObserver {
            requestObserver(HTTPRequestObservation(request, response, routeIndex: routeIndex,
                                                   durationNanoseconds: Syscall.now() &- started))
        }
        return response
    }

    /// Routes a request whose id is set; the server writes `X-Request-Id` itself. Also returns
    /// the index of the route that handled it (nil: none did).
    func route(_ request: HTTPRequest) -> (HTTPResponse, routeIndex: Int?) {
        if request.target == "*" {
            return (HTTPResponse(status: .noContent, headers: ["Allow": "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"]), nil)
        }
        guard let segments = Router.decodedSegments(request.rawPath) else {
            return (renderError(.badRequest, "malformed path", request), nil)
        }
        var allowed: Set<HTTPMethod> = []
        var headFallback: (index: Int, parameters: [String: String])?
        for (index, route) in routes.enumerated() {
            guard let parameters = Router.match(route, segments) else { continue }
            if route.method == request.method {
                return (run(route.handler, request, parameters), index)
            }
            if request.method == .HEAD, route.method == .GET, headFallback == nil { headFallback = (index, parameters) }
            allowed.insert(route.method)
        }
        if let (index, parameters) = headFallback { return (run(routes[index].handler, request, parameters), index) }
        if allowed.isEmpty { return (renderError(.notFound, "no route for \(request.path)", request), nil) }
        allowed.insert(.OPTIONS)
        if allowed.contains(.GET) { allowed.insert(.HEAD) }
        let allow = allowed.sorted().map(\.rawValue).joined(separator: ", ")
        if request.method == .OPTIONS { return (HTTPResponse(status: .noContent, headers: ["Allow": allow]), nil) }
        var response = renderError(.methodNotAllowed, "\(request.method.rawValue) is not allowed on \(request.path)", request)
        response.headers.replaceOrAdd(name: "Allow", value: allow)
        return (response, nil)
    }

    private func run(_ handler: Handler, _ request: HTTPRequest, _ parameters: [String: String]) -> HTTPResponse {
        var request = request
        request.pathParameters = parameters
        do {
            return try handler(request)
        } catch let error as HTTPError {
            var response = renderError(error.status, error.message, request)
            for field in error.headers { response.headers.replaceOrAdd(name: field.name, value: field.value) }
            return response
        } catch {
            return renderError(.internalServerError, "internal error", request)
        }
    }

    func renderError(_ status: HTTPStatus, _ message: String, _ request: HTTPRequest?) -> HTTPResponse {
        errorRenderer(HTTPErrorContext(status: status, message: message, requestID: request?.requestID ?? "", request: request))
    }

    private static func compile(_ pattern: String) -> [Segment] {
        pattern.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map { part in
            if part.hasPrefix("{"), part.hasSuffix("}"), part.count > 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
    }

    private static func decodedSegments(_ rawPath: String) -> [String]? {
        if !rawPath.utf8.contains(UInt8(ascii: "%")) {  // the common case: nothing to decode
            return rawPath.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
                .map { String(Substring($0)) }
        }
        var result: [String] = []
        for part in rawPath.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            let raw = String(Substring(part))
            guard let decoded = PercentDecoding.decode(raw, plusAsSpace: false) else { return nil }
            result.append(decoded)
        }
        return result
    }

    private static func match(_ route: Route, _ path: [String]) -> [String: String]? {
        var pattern = route.segments[...]
        var segments = path[...]
        if route.trailingSlashTolerant {
            if pattern.count > 1, pattern.last == .literal("") { pattern = pattern.dropLast() }
            if segments.count > 1, segments.last == "" { segments = segments.dropLast() }
        }
        guard pattern.count == segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (expected, actual) in zip(pattern, segments) {
            switch expected {
            case .literal(let literal): if literal != actual { return nil }
            case .parameter(let name):
                if actual.isEmpty { return nil }
                parameters[name] = actual
            }
        }
        return parameters
    }
}

/// Request ids: a sane incoming `X-Request-Id` is kept, otherwise one is generated.
enum RequestID {
    private static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() as UInt32, radix: 16) + "-"
    }()
    private static let counter = Atomic<UInt64>(0)

    /// 1–128 characters from `[A-Za-z0-9._:-]`.
    static func isSane(_ value: String) -> Bool {
        let utf8 = value.utf8
        guard !utf8.isEmpty, utf8.count <= 128 else { return false }
        return utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x3A || byte == 0x2D
        }
    }

    static func resolve(_ headers: HTTPHeaders) -> String {
        if let incoming = headers.first(name: "X-Request-Id"), isSane(incoming) { return incoming }
        return generate()
    }

    static func generate() -> String {
        var value = counter.add(1, ordering: .relaxed).newValue
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(16)
        repeat {
            hex.append(digits[Int(value & 0xF)])
            value >>= 4
        } while value > 0
        return prefix + String(decoding: hex.reversed(), as: UTF8.self)
    }
}
