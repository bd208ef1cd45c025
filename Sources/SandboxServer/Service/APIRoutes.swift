import Foundation
import HTTPCore
import JobStore
import Synchronization

/// The native API (`/v1/...`, see openapi.yaml) as an HTTPCore router over a ``JobService``.
///
/// Handlers run on HTTPCore's worker threads, which may block: `?wait=` and the event stream
/// wait there. Every error is `{"error": {"code", "message", "field"}}` with the status of its
/// code, including the router's own 404/405 and the parser's 400/413.
struct APIRoutes: Sendable {
    let service: JobService
    let authenticator: Authenticator
    /// What `/v1/languages`, `/v1/info` and `/v1/health` report.
    let serverInfo: ServerInfo

    /// Facts about the running server for the informational endpoints.
    struct ServerInfo: Sendable {
        var version: String
        var languages: [LanguageAvailability]
        var limits: ServerLimits
        var features: [String]
        /// Readiness beyond the store: the sandbox self-test at start-up (nil: passed).
        var sandboxProblem: @Sendable () -> String?
    }

    static let version = "0.5.0"

    /// The router with every route of the native API.
    func makeRouter() -> Router {
        var router = Router()
        router.errorRenderer = Self.renderError
        router.post("/v1/jobs") { request in try handle(request, role: .user) { try createJob(request) } }
        router.get("/v1/jobs") { request in try handle(request, role: .admin) { try listJobs(request) } }
        router.post("/v1/jobs/batch") { request in try handle(request, role: .user) { try createBatch(request) } }
        router.get("/v1/jobs/{id}") { request in try handle(request, role: .user) { try getJob(request) } }
        router.delete("/v1/jobs/{id}") { request in try handle(request, role: .user) { try deleteJob(request) } }
        router.get("/v1/jobs/{id}/events") { request in try handle(request, role: .user) { try streamEvents(request) } }
        router.get("/v1/languages") { request in try handle(request, role: .user) { try languages() } }
        router.get("/v1/health") { _ in try health() }
        router.get("/v1/info") { request in try handle(request, role: .user) { try info() } }
        // Admin-only when keys are configured: the figures describe every client's traffic.
        router.get("/metrics") { request in try handle(request, role: .admin) { metrics() } }
        return router
    }

    // MARK: Jobs

    private func createJob(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        try requireJSON(request)
        let wait = try waitDuration(request)
        let submitted = try service.submit(body: request.body, idempotencyKey: request.headers["Idempotency-Key"], requestID: request.requestID)
        var view = submitted.view
        var status: HTTPStatus = submitted.created ? .created : .ok
        var json: [UInt8]?
        if let wait {
            let waited = try service.waitRendered(id: view.id, timeout: wait, submitted: view)
            view = waited.view
            json = waited.json
            status = view.state == .finished || view.state == .cancelled ? .ok : .accepted
        }
        var response = json.map { Self.json(bytes: $0, status: status) } ?? Self.json(view, status: status)
        response.headers.replaceOrAdd(name: "Location", value: "/v1/jobs/\(view.id)")
        return response
    }

    private func createBatch(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        try requireJSON(request)
        return Self.json(JobBatchResponse(jobs: try service.submitBatch(body: request.body, requestID: request.requestID)), status: .created)
    }

    private func getJob(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let id = request.parameter("id") ?? ""
        if let wait = try waitDuration(request) { return Self.json(bytes: try service.waitRendered(id: id, timeout: wait).json) }
        return Self.json(bytes: try service.renderedJob(id: id).json)
    }

    private func deleteJob(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        Self.json(try service.cancel(id: request.parameter("id") ?? "", requestID: request.requestID))
    }

    private func listJobs(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let query = request.queryParameters
        var states: Set<JobState> = []
        for value in query.values("state") {
            for name in value.split(separator: ",") {
                guard let state = JobState(rawValue: String(name)) else {
                    throw APIError(.invalidValue, "state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))", field: "state")
                }
                states.insert(state)
            }
        }
        func date(_ name: String) throws(APIError) -> Date? {
            guard let text = query[name] else { return nil }
            guard let date = Timestamp.parse(text) else {
                throw APIError(.invalidValue, "\(name) must be an ISO 8601 UTC timestamp like 2026-11-29T07:35:07Z", field: name)
            }
            return date
        }
        var limit = 50
        if let text = query["limit"] {
            guard let value = Int(text), (1...100).contains(value) else {
                throw APIError(.invalidValue, "limit must be an integer between 1 and 100", field: "limit")
            }
            limit = value
        }
        return Self.json(try service.list(
            states: states, createdFrom: try date("created_after"), createdBefore: try date("created_before"),
            limit: limit, cursor: query["cursor"]))
    }

    /// `text/event-stream`: the job now, then every change and test result until it ends.
    private func streamEvents(_ request: HTTPRequest) throws(APIError) -> HTTPResponse {
        let id = request.parameter("id") ?? ""
        let events = service.events
        // Subscribe before reading, so no change between the read and the stream is lost.
        let subscription = events.subscribe(id)
        let initial: JobView
        do { initial = try service.job(id: id) } catch {
            events.unsubscribe(subscription)
            throw error
        }
        let service = self.service
        let headers: HTTPHeaders = ["Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"]
        return HTTPResponse.stream(status: .ok, headers: headers) { writer in
            defer { events.unsubscribe(subscription) }
            try writer.writeEvent(String(decoding: APIJSON.encode(initial), as: UTF8.self), event: "state")
            if initial.state == .finished || initial.state == .cancelled { return }
            var idleSeconds = 0
            while true {
                guard let event = subscription.next(timeout: .seconds(1)) else {
                    // Re-read now and then: the job may have ended without an event here
                    // (abandoned by the lease reaper), and a comment keeps proxies from timing out.
                    idleSeconds += 1
                    if idleSeconds % 15 == 0 {
                        try writer.write(": keep-alive\n\n")
                        if let view = try? service.job(id: id), view.state == .finished || view.state == .cancelled {
                            try writer.writeEvent(String(decoding: APIJSON.encode(view), as: UTF8.self), event: "state")
                            return
                        }
                    }
                    continue
                }
                switch event {
                case .state(let view):
                    try writer.writeEvent(String(decoding: APIJSON.encode(view), as: UTF8.self), event: "state")
                case .test(let index, let test):
                    try writer.writeEvent(String(decoding: APIJSON.encode(TestEventView(index: index, test: test)), as: UTF8.self), event: "test")
                }
                if event.isFinal { return }
            }
        }
    }

    // MARK: Server

    private func languages() throws(APIError) -> HTTPResponse {
        Self.json(serverInfo.languages.filter(\.isAvailable).map(LanguageView.init(availability:)))
    }

    private func info() throws(APIError) -> HTTPResponse {
        Self.json(InfoView(
            name: "sandbox-server", version: serverInfo.version,
            languages: serverInfo.languages.filter(\.isAvailable).map(\.language.id),
            limits: ServerLimitsView(serverInfo.limits), maxWaitSeconds: Int(service.configuration.maxWait.components.seconds),
            features: currentFeatures()))
    }

    /// The configured features, with `auth` as the keys are now (a SIGHUP reload can add or
    /// remove every key).
    func currentFeatures() -> [String] {
        authenticator.isEnabled ? serverInfo.features + ["auth"] : serverInfo.features
    }

    /// The Prometheus text exposition of ``JobService/metrics``.
    private func metrics() -> HTTPResponse {
        HTTPResponse(status: .ok, headers: ["Content-Type": MetricsExposition.contentType, "Cache-Control": "no-store"],
                     body: .bytes(Array(service.metrics.exposition().utf8)))
    }

    /// Liveness and readiness: 200 when the store answers and the sandbox passed its self-test.
    private func health() throws -> HTTPResponse {
        var storeProblem: String?
        do { _ = try service.store.storageStats() } catch { storeProblem = error.message }
        let sandboxProblem = serverInfo.sandboxProblem()
        let view = HealthView(
            status: storeProblem == nil && sandboxProblem == nil ? .ok : .unavailable,
            store: storeProblem == nil ? .ok : .unavailable, sandbox: sandboxProblem == nil ? .ok : .unavailable,
            message: [storeProblem.map { "store: \($0)" }, sandboxProblem.map { "sandbox: \($0)" }].compactMap { $0 }.first)
        return Self.json(view, status: view.status == .ok ? .ok : .serviceUnavailable)
    }

    // MARK: Plumbing

    /// Authenticates, runs `body`, and turns an ``APIError`` into its response.
    private func handle(_ request: HTTPRequest, role: APIKey.Role, _ body: () throws -> HTTPResponse) throws -> HTTPResponse {
        do {
            try authenticator.authorize(request, needs: role)
            return try body()
        } catch let error as APIError {
            return Self.errorResponse(error)
        }
    }

    private func requireJSON(_ request: HTTPRequest) throws(APIError) {
        // `curl -d '{…}'` without -H sends no type or the form type: the body decides for those.
        guard let type = request.headers["Content-Type"] else { return }
        let mediaType = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard mediaType == "application/json" || mediaType.hasSuffix("+json") || mediaType == "application/x-www-form-urlencoded" else {
            throw APIError(.unsupportedMediaType, "the body must be application/json, not \(type)")
        }
    }

    private func waitDuration(_ request: HTTPRequest) throws(APIError) -> Duration? {
        guard let text = request.queryParameters["wait"] else { return nil }
        let maximum = Double(service.configuration.maxWait.components.seconds)
        // Plain decimals only (`Double(_:)` would also read `0x10`, `inf` and `nan`).
        guard let seconds = OutputComparison.decimalNumber(ArraySlice(text.utf8)), seconds.isFinite, seconds >= 0 else {
            throw APIError(.invalidValue, "wait must be a number of seconds ≥ 0", field: "wait")
        }
        guard seconds <= maximum else {
            throw APIError(.invalidValue, "wait is \(text) seconds but the maximum is \(Int(maximum))", field: "wait")
        }
        return .milliseconds(Int64(seconds * 1000))
    }

    static func json(bytes: [UInt8], status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: .bytes(bytes))
    }

    static func json(_ value: some JSONWritable, status: HTTPStatus = .ok) -> HTTPResponse {
        json(bytes: value.jsonBytes, status: status)
    }

    static func json(_ value: some Encodable, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: .bytes(Array(APIJSON.encode(value))))
    }

    static func errorResponse(_ error: APIError) -> HTTPResponse {
        var response = json(error.body, status: HTTPStatus(code: error.httpStatus))
        if let seconds = error.retryAfterSeconds { response.headers.replaceOrAdd(name: "Retry-After", value: String(seconds)) }
        if error.code == .unauthorized { response.headers.replaceOrAdd(name: "WWW-Authenticate", value: "Bearer") }
        return response
    }

    /// Router and parser failures (404, 405, 400, 413, …) in the API's error shape. These come
    /// from HTTP itself, before any JSON is read: a 400 here is `bad_request`, not
    /// `malformed_json`.
    static let renderError: HTTPErrorRenderer = { context in
        let code: APIErrorCode = switch context.status.code {
        case 400: .badRequest
        case 401: .unauthorized
        case 403: .forbidden
        case 404: .notFound
        case 405: .methodNotAllowed
        case 408: .requestTimeout
        case 409: .conflict
        case 413: .payloadTooLarge
        case 414: .uriTooLong
        case 415: .unsupportedMediaType
        case 431: .headersTooLarge
        case 503: .serviceUnavailable
        case 400..<500: .badRequest
        default: .internalError
        }
        var response = json(ErrorResponse(error: ErrorDetail(code: code, message: context.message, field: nil)), status: context.status)
        if context.status.code == 503 { response.headers.replaceOrAdd(name: "Retry-After", value: "1") }
        return response
    }
}

/// One test's result in the event stream.
struct TestEventView: JSONWritable, Sendable, Equatable {
    var index: Int
    var test: TestResultView

    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("index")
            writer.integer(index)
            writer.key("test")
            test.write(to: &writer)
        }
    }
}

/// Checks API keys: `Authorization: Bearer KEY` or `X-Auth-Token: KEY`. With no keys
/// configured everything is allowed (the server then listens on loopback, or warns loudly).
struct Authenticator: Sendable {
    /// Shared by every front end, so SIGHUP can replace the keys of a running server.
    let keyring: APIKeyring

    init(keys: [APIKey]) { keyring = APIKeyring(keys) }
    init(keyring: APIKeyring) { self.keyring = keyring }

    var keys: [APIKey] { keyring.keys }
    var isEnabled: Bool { !keys.isEmpty }

    func authorize(_ request: HTTPRequest, needs role: APIKey.Role) throws(APIError) {
        let keys = keys
        guard !keys.isEmpty else { return }
        guard let token = Self.token(in: request) else {
            throw APIError(.unauthorized, "this server needs an API key: send Authorization: Bearer KEY or X-Auth-Token: KEY")
        }
        // Compare every key in constant time so timing does not reveal a prefix.
        let presented = Array(token.utf8)
        var match: APIKey?
        for key in keys where HMACSHA256.constantTimeEquals(Array(key.key.utf8), presented) { match = key }
        guard let match else { throw APIError(.unauthorized, "the API key is not valid") }
        if role == .admin && match.role != .admin { throw APIError(.forbidden, "this endpoint needs an admin key") }
    }

    static func token(in request: HTTPRequest) -> String? {
        if let authorization = request.headers["Authorization"] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return request.headers["X-Auth-Token"]
    }
}

/// The API keys in force; replaced as a whole when the configuration is reloaded.
final class APIKeyring: Sendable {
    private let current: Mutex<[APIKey]>

    init(_ keys: [APIKey]) { current = Mutex(keys) }

    var keys: [APIKey] {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}
