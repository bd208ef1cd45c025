import Foundation
import HTTPCore
import JobStore

/// Judge0 CE v1.13.1's API (`/submissions`, `/languages`, `/config_info`, …) as a thin adapter
/// over the same ``JobService`` as the native API: one pipeline, two vocabularies. Judge0's
/// paths are at the root; the service mounts this router next to `/v1`.
///
/// Every response is shaped as Judge0 shapes it — bodies, status codes, key order, decimals as
/// strings — because existing clients (the official Python SDK among them) check all of it.
struct Judge0Routes: Sendable {
    let service: JobService
    let authenticator: Authenticator
    let configuration: Judge0Configuration
    /// Available languages with a Judge0 id, by that id.
    let languages: [Int: Judge0Language]
    /// Runner threads, for `/workers`.
    let workers: Int
    /// `/statistics` is computed at most every ten minutes, as Judge0 caches it.
    let statisticsCache = Judge0StatisticsCache()

    /// A language as Judge0 lists it.
    struct Judge0Language: Sendable {
        var id: Int
        /// Judge0's display name with the version this machine really has.
        var name: String
        var definition: LanguageDefinition
    }

    init(service: JobService, authenticator: Authenticator, configuration: Judge0Configuration,
         languages: [LanguageAvailability], workers: Int) {
        self.service = service
        self.authenticator = authenticator
        self.configuration = configuration
        self.workers = workers
        var table: [Int: Judge0Language] = [:]
        for availability in languages where availability.isAvailable {
            for alias in availability.language.judge0 {
                table[alias.id] = Judge0Language(
                    id: alias.id, name: Self.displayName(alias.name, version: availability.version),
                    definition: availability.language)
                for (olderID, olderName) in Self.olderVersions[alias.id] ?? [] where table[olderID] == nil {
                    table[olderID] = Judge0Language(
                        id: olderID, name: Self.displayName(olderName, version: availability.version), definition: availability.language)
                }
            }
        }
        self.languages = table
    }

    /// Active Judge0 ids that name an older compiler of a language we run under its newest id.
    /// Clients pick them (the Python SDK resolves `CPP` to 52, "C++ (GCC 7.4.0)"), and the
    /// compiler installed here serves them all; the listed name shows its real version.
    static let olderVersions: [Int: [(Int, String)]] = [
        50: [(48, "C (GCC 7.4.0)"), (49, "C (GCC 8.3.0)")],
        54: [(52, "C++ (GCC 7.4.0)"), (53, "C++ (GCC 8.3.0)")],
    ]

    /// Judge0's name with its version replaced by the detected one: `Python (3.8.1)` on a
    /// machine with Python 3.11.2 is listed as `Python (3.11.2)`.
    static func displayName(_ judge0Name: String, version: String?) -> String {
        guard let version, !version.isEmpty else { return judge0Name }
        guard let range = judge0Name.firstRange(of: /\d+(\.\d+)+/) else { return judge0Name }
        return judge0Name.replacingCharacters(in: range, with: version)
    }

    var mapper: Judge0RequestMapper { Judge0RequestMapper(configuration: configuration, languages: languages.mapValues(\.definition)) }

    /// The router with every Judge0 route.
    func makeRouter() -> Router {
        var router = Router()
        router.get("/") { request in guarded(request) { HTTPResponse(status: .ok) } }
        router.post("/submissions/batch") { request in guarded(request) { try createBatch(request) } }
        router.get("/submissions/batch") { request in guarded(request) { try getBatch(request) } }
        router.post("/submissions") { request in guarded(request) { try createSubmission(request) } }
        router.get("/submissions") { request in guarded(request, authorize: true) { try listSubmissions(request) } }
        router.get("/submissions/{token}") { request in guarded(request) { try getSubmission(request) } }
        router.delete("/submissions/{token}") { request in guarded(request, authorize: true) { try deleteSubmission(request) } }
        router.get("/languages") { request in guarded(request) { listLanguages(all: false) } }
        router.get("/languages/all") { request in guarded(request) { listLanguages(all: true) } }
        router.get("/languages/{id}") { request in guarded(request) { try language(request) } }
        router.get("/statuses") { request in
            guarded(request) { Self.json(.array(Judge0Status.allCases.map(\.json))) }
        }
        router.get("/config_info") { request in guarded(request) { Self.json(configuration.configInfo) } }
        router.get("/about") { request in guarded(request) { Self.json(Self.about) } }
        router.get("/version") { request in guarded(request) { Self.text(Judge0Configuration.version) } }
        router.get("/isolate") { request in
            guarded(request) {
                Self.text("sandbox-server \(APIRoutes.version): namespaces, cgroups and seccomp (Judge0 uses isolate; this server does not)")
            }
        }
        router.get("/license") { request in
            guarded(request) { Self.text("sandbox-server implements the Judge0 CE v1.13.1 API; it contains no Judge0 code.") }
        }
        router.get("/workers") { request in guarded(request) { try workersStatus() } }
        router.get("/system_info") { request in guarded(request) { Self.json(SystemInfo.current()) } }
        router.get("/statistics") { request in guarded(request) { try statistics(request) } }
        router.post("/authenticate") { request in guarded(request) { HTTPResponse(status: .ok) } }
        router.post("/authorize") { request in guarded(request, authorize: true) { HTTPResponse(status: .ok) } }
        // CORS preflights, answered without credentials as browsers send them.
        for pattern in Set(router.routeTable.map(\.pattern)) {
            router.add(.OPTIONS, pattern) { _ in Self.withCORS(HTTPResponse(status: .noContent)) }
        }
        return router
    }

    /// Judge0 allows every origin by default (browser IDEs call it directly); keys travel in
    /// headers, never cookies, so a wildcard grants a page nothing the key does not.
    static func withCORS(_ response: HTTPResponse) -> HTTPResponse {
        var response = response
        response.headers.replaceOrAdd(name: "Access-Control-Allow-Origin", value: "*")
        response.headers.replaceOrAdd(name: "Access-Control-Allow-Methods", value: "GET, POST, DELETE, OPTIONS")
        response.headers.replaceOrAdd(name: "Access-Control-Allow-Headers", value: "Content-Type, X-Auth-Token, X-Auth-User, tokens")
        return response
    }

    static let about = Judge0JSON.object([
        ("version", .string(Judge0Configuration.version)),
        ("homepage", .string("https://judge0.com")),
        ("source_code", .string("https://github.com/judge0/judge0")),
        ("maintainer", .string("sandbox-server (Judge0-compatible API; not affiliated with Judge0)")),
    ])

    // MARK: Submissions

    private func createSubmission(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        let query = request.queryParameters
        let base64 = query["base64_encoded"] == "true"
        let wait = query["wait"] == "true"
        let fields = wait ? try selectedFields(query["fields"]) : ["token"]
        guard let body = Judge0SubmissionRequest.fields(body: request.body, contentType: request.headers["Content-Type"]) else {
            throw Judge0Failure(status: .badRequest, body: Self.errorBody("the body must be a JSON object"))
        }
        let jobRequest = try mapSubmission(body, base64Encoded: base64)
        let view: JobView
        do {
            let submitted = try service.submit(jobRequest, requestID: request.requestID, api: .judge0)
            view = wait ? try service.wait(id: submitted.view.id, timeout: .seconds(configuration.maxWaitSeconds), submitted: submitted.view)
                        : submitted.view
        } catch {
            throw Self.failure(error)
        }
        guard wait else { return Self.json(.object([("token", .string(view.id))]), status: .created) }
        do {
            return Self.json(try submissionView(view).render(fields: fields, base64Encoded: base64), status: .created)
        } catch {
            // Judge0 answers 201 with the token when the result cannot be shown as UTF-8.
            return Self.json(.object([("token", .string(view.id)), ("error", .string(Self.notUTF8Message))]), status: .created)
        }
    }

    private func getSubmission(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        let query = request.queryParameters
        let fields = try selectedFields(query["fields"])
        let view: JobView
        do { view = try service.job(id: request.parameter("token") ?? "") } catch { throw Self.failure(error) }
        return Self.json(try render(view, fields: fields, base64Encoded: query["base64_encoded"] == "true"))
    }

    private func deleteSubmission(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        guard configuration.enableSubmissionDelete else {
            throw Judge0Failure(status: .badRequest, body: Self.errorBody("delete not allowed"))
        }
        let fields = try selectedFields(request.queryParameters["fields"])
        let token = request.parameter("token") ?? ""
        do {
            let current = try service.job(id: token)
            let status = Judge0Outcome(view: current).status
            // Judge0 deletes only submissions that have finished; cancelling is not its vocabulary.
            guard current.state == .finished || current.state == .cancelled else {
                throw Judge0Failure(status: .badRequest, body: Self.errorBody(
                    "submission cannot be deleted because its status is \(status.rawValue) (\(status.description))"))
            }
            let deleted = try service.cancel(id: token, requestID: request.requestID)
            // Judge0 always answers a delete in base64.
            return Self.json(try render(deleted, fields: fields, base64Encoded: true))
        } catch let failure as Judge0Failure {
            throw failure
        } catch let error as APIError {
            throw Self.failure(error)
        } catch {
            throw Judge0Failure(status: .internalServerError, body: Self.errorBody("\(error)"))
        }
    }

    private func listSubmissions(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        let query = request.queryParameters
        let base64 = query["base64_encoded"] == "true"
        let fields = try selectedFields(query["fields"])
        func positive(_ name: String, default defaultValue: Int) throws(Judge0Failure) -> Int {
            guard let text = query[name] else { return defaultValue }
            guard let value = Int(text), value >= 1 else {
                throw Judge0Failure(status: .badRequest, body: Self.errorBody("invalid \(name): \(text)"))
            }
            return value
        }
        let page = try positive("page", default: 1)
        // Judge0 has no ceiling; ours keeps one response bounded.
        let perPage = min(try positive("per_page", default: 20), 100)
        do {
            let counts = try Self.storeCall { () throws(JobStoreError) in try service.store.countsByState() }
            let total = counts.queued + counts.running + counts.finished + counts.cancelled
            // The store pages by cursor, newest first; walk to the page's offset (a page past
            // the end is empty without walking, and cannot overflow the offset).
            let (offset, overflow) = (page - 1).multipliedReportingOverflow(by: perPage)
            var skip = overflow ? Int.max : offset
            var cursor: String?
            var views: [JobView] = []
            while views.count < perPage && skip < total {
                let take = min(100, skip + perPage - views.count)
                let listed = try service.list(limit: take, cursor: cursor)
                var jobs = listed.jobs[...]
                let skipped = min(skip, jobs.count)
                jobs = jobs.dropFirst(skipped)
                skip -= skipped
                views += jobs.prefix(perPage - views.count)
                guard let next = listed.nextCursor else { break }
                cursor = next
            }
            var rendered: [Judge0JSON] = []
            for view in views { rendered.append(try render(view, fields: fields, base64Encoded: base64)) }
            let totalPages = max(1, (total + perPage - 1) / perPage)
            let meta = Judge0JSON.object([
                ("current_page", .integer(page)),
                ("next_page", page < totalPages ? .integer(page + 1) : .null),
                ("prev_page", page > 1 ? .integer(page - 1) : .null),
                ("total_pages", .integer(totalPages)),
                ("total_count", .integer(total)),
            ])
            return Self.json(.object([("submissions", .array(rendered)), ("meta", meta)]))
        } catch let error as APIError {
            throw Self.failure(error)
        } catch let failure as Judge0Failure {
            throw failure
        } catch {
            throw Judge0Failure(status: .internalServerError, body: Self.errorBody("\(error)"))
        }
    }

    // MARK: Batches

    private func createBatch(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        let base64 = request.queryParameters["base64_encoded"] == "true"
        guard !APIJSON.nestsTooDeeply(request.body),
              case .object(let body)? = try? JSONDecoder().decode(JSONValue.self, from: Data(request.body)),
              case .array(let items)? = body["submissions"], !items.isEmpty
        else {
            throw Judge0Failure(status: .badRequest, body: Self.errorBody("there should be at least one submission in a batch"))
        }
        guard items.count <= configuration.maxSubmissionBatchSize else {
            throw Judge0Failure(status: .badRequest, body: Self.errorBody(
                "number of submissions in a batch should be less than or equal to \(configuration.maxSubmissionBatchSize)"))
        }
        var results = [Judge0JSON](repeating: .null, count: items.count)
        var accepted: [(index: Int, request: JobRequest)] = []
        for (index, item) in items.enumerated() {
            guard case .object(let fields) = item else {
                results[index] = Self.validationBody(field: "base", "must be a JSON object")
                continue
            }
            do {
                accepted.append((index, try mapSubmission(fields, base64Encoded: base64)))
            } catch {
                results[index] = error.body ?? .null
            }
        }
        if !accepted.isEmpty {
            // One native batch: validated item by item and queued in one transaction.
            let nativeBatch = JSONValue.object(["jobs": .array(accepted.map { entry in
                (try? JSONDecoder().decode(JSONValue.self, from: APIJSON.encode(entry.request))) ?? .null
            })])
            let submitted: [JobBatchItem]
            do { submitted = try service.submitBatch(body: Array(APIJSON.encode(nativeBatch)), requestID: request.requestID, api: .judge0) } catch { throw Self.failure(error) }
            for (entry, item) in zip(accepted, submitted) {
                if let job = item.job {
                    results[entry.index] = .object([("token", .string(job.id))])
                } else if let error = item.error {
                    results[entry.index] = Self.validationBody(field: Self.judge0Field(error.field), error.message)
                }
            }
        }
        let anyQueued = results.contains { $0["token"] != nil }
        return Self.json(.array(results), status: anyQueued ? .created : .unprocessableContent)
    }

    private func getBatch(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        let query = request.queryParameters
        let base64 = query["base64_encoded"] == "true"
        let fields = try selectedFields(query["fields"])
        let list = query["tokens"] ?? request.headers["tokens"] ?? ""
        let tokens = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !tokens.isEmpty else {
            throw Judge0Failure(status: .badRequest, body: Self.errorBody("there should be at least one submission in a batch"))
        }
        guard tokens.count <= configuration.maxSubmissionBatchSize else {
            throw Judge0Failure(status: .badRequest, body: Self.errorBody(
                "number of submissions in a batch should be less than or equal to \(configuration.maxSubmissionBatchSize)"))
        }
        var submissions: [Judge0JSON] = []
        for token in tokens {
            let view: JobView
            do {
                view = try service.job(id: token)
            } catch where error.code == .notFound {
                submissions.append(.null)
                continue
            } catch {
                throw Self.failure(error)
            }
            submissions.append(try render(view, fields: fields, base64Encoded: base64))
        }
        return Self.json(.object([("submissions", .array(submissions))]))
    }

    // MARK: Languages and server

    private func listLanguages(all: Bool) -> HTTPResponse {
        let sorted = languages.values.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
        return Self.json(.array(sorted.map { language in
            var pairs: [(String, Judge0JSON)] = [("id", .integer(language.id)), ("name", .string(language.name))]
            if all { pairs.append(("is_archived", .bool(false))) }
            return .object(pairs)
        }))
    }

    private func language(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        guard let id = Int(request.parameter("id") ?? ""), let language = languages[id] else {
            throw Judge0Failure(status: .notFound, body: Self.errorBody("language not found"))
        }
        let definition = language.definition
        // Our commands are argv vectors, never shell lines; shown joined for information only.
        return Self.json(.object([
            ("id", .integer(language.id)),
            ("name", .string(language.name)),
            ("is_archived", .bool(false)),
            ("source_file", .string(definition.sourceFile)),
            ("compile_cmd", .optional(definition.compile?.joined(separator: " "))),
            ("run_cmd", .string(definition.run.joined(separator: " "))),
        ]))
    }

    private func workersStatus() throws(Judge0Failure) -> HTTPResponse {
        let counts: StateCounts
        do { counts = try Self.storeCall { () throws(JobStoreError) in try service.store.countsByState() } } catch { throw Self.failure(error) }
        let working = min(counts.running, workers)
        return Self.json(.array([.object([
            ("queue", .string(Judge0Configuration.version)),
            ("size", .integer(counts.queued)),
            ("available", .integer(workers)),
            ("idle", .integer(workers - working)),
            ("working", .integer(working)),
            ("paused", .integer(0)),
            ("failed", .integer(0)),
        ])]))
    }

    private func statistics(_ request: HTTPRequest) throws(Judge0Failure) -> HTTPResponse {
        do {
            let answer = try statisticsCache.answer(invalidate: request.queryParameters["invalidate_cache"] == "true") { () throws(APIError) in
                // Each native language is named by its first Judge0 id (48, 49 and 50 all count as 50).
                var names: [String: Judge0Statistics.LanguageName] = [:]
                for language in languages.values {
                    guard let primary = language.definition.judge0.first?.id, let listed = languages[primary] else { continue }
                    names[language.definition.id] = (listed.id, listed.name)
                }
                let now = Date()
                let since = JobStore::Timestamp(now)
                    .adding(milliseconds: -Judge0Statistics.pastDays * JobStatistics.millisecondsPerDay)
                let (counts, storage) = try Self.storeCall { () throws(JobStoreError) in
                    (try service.store.statistics(createdSince: since), try service.store.storageStats())
                }
                return Judge0Statistics.render(counts, storage: storage, now: now, languageNames: names)
            }
            return Self.json(answer)
        } catch let error as APIError {
            throw Self.failure(error)
        } catch {
            throw Judge0Failure(status: .internalServerError, body: Self.errorBody("\(error)"))
        }
    }

    // MARK: Mapping

    /// Parses and maps one submission, and checks it as the native validator would, so a
    /// batch item fails alone.
    private func mapSubmission(_ fields: Judge0SubmissionRequest.Fields, base64Encoded: Bool) throws(Judge0Failure) -> JobRequest {
        do {
            let submission = try Judge0SubmissionRequest(fields: fields, base64Encoded: base64Encoded)
            let request = try mapper.map(submission)
            do { _ = try service.validator.validate(request) } catch {
                throw Judge0Failure(status: .unprocessableContent, body: Self.validationBody(field: Self.judge0Field(error.field), error.message))
            }
            return request
        } catch let errors as Judge0ValidationErrors {
            throw Judge0Failure(status: .unprocessableContent, body: errors.json)
        } catch let failure as Judge0Failure {
            throw failure
        } catch {
            throw Judge0Failure(status: .unprocessableContent, body: Self.validationBody(field: "base", "\(error)"))
        }
    }

    /// The Judge0 field a native validation error is about.
    static func judge0Field(_ native: String?) -> String {
        guard let native else { return "base" }
        let table: [(prefix: String, field: String)] = [
            ("language", "language_id"), ("files", "source_code"), ("source", "source_code"),
            ("compile_options", "compiler_options"), ("args", "command_line_arguments"),
            ("limits.cpu_time_ms", "cpu_time_limit"), ("limits.wall_time_ms", "wall_time_limit"),
            ("limits.memory_bytes", "memory_limit"), ("limits.processes", "max_processes_and_or_threads"),
            ("limits.output_bytes", "max_file_size"), ("limits.file_size_bytes", "max_file_size"),
            ("limits.network", "enable_network"), ("stdin", "stdin"), ("tests", "expected_output"),
            ("callback_url", "callback_url"), ("archive", "additional_files"), ("jobs[", "base"),
        ]
        return table.first { native.hasPrefix($0.prefix) }?.field ?? "base"
    }

    private func submissionView(_ view: JobView) -> Judge0SubmissionView {
        let settings = Judge0SubmissionSettings(metadata: view.metadata)
        let record = try? service.store.job(id: JobID(view.id))
        let request = record.flatMap(StoredJob.request(of:))
        var language: (Int, String)?
        if let settings, let known = languages[settings.languageID] {
            language = (known.id, known.name)
        } else if let settings {
            language = (settings.languageID, view.language)
        } else if let known = languages.values.first(where: { $0.definition.id == view.language }) {
            language = (known.id, known.name)
        }
        return Judge0SubmissionView(view: view, request: request, settings: settings, language: language)
    }

    private func render(_ view: JobView, fields: [String], base64Encoded: Bool) throws(Judge0Failure) -> Judge0JSON {
        do {
            return try submissionView(view).render(fields: fields, base64Encoded: base64Encoded)
        } catch {
            throw Judge0Failure(status: .badRequest, body: Self.errorBody(Self.notUTF8Message))
        }
    }

    private func selectedFields(_ parameter: String?) throws(Judge0Failure) -> [String] {
        do {
            return try Judge0SubmissionView.selectedFields(parameter)
        } catch {
            guard case .invalidFields(let names) = error else { return Judge0SubmissionView.defaultFields }
            throw Judge0Failure(status: .badRequest, body: Self.errorBody("invalid fields: [\(names.joined(separator: ", "))]"))
        }
    }

    static let notUTF8Message = "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter"

    // MARK: Plumbing

    /// A response Judge0 would give instead of the handler's.
    struct Judge0Failure: Error {
        var status: HTTPStatus
        /// `nil`: an empty body (Judge0's 401 and 403).
        var body: Judge0JSON?
    }

    /// Authenticates (`X-Auth-Token`), authorizes (`X-Auth-User`) when asked, runs `body`
    /// and renders its failure.
    private func guarded(_ request: HTTPRequest, authorize: Bool = false,
                         _ body: () throws -> HTTPResponse) -> HTTPResponse {
        Self.withCORS(respond(request, authorize: authorize, body))
    }

    private func respond(_ request: HTTPRequest, authorize: Bool, _ body: () throws -> HTTPResponse) -> HTTPResponse {
        if authenticator.isEnabled {
            let token = request.headers["X-Auth-Token"] ?? request.queryParameters["X-Auth-Token"] ?? Authenticator.token(in: request)
            guard let token, key(token) != nil else { return HTTPResponse(status: .unauthorized) }
            if authorize {
                guard let user = request.headers["X-Auth-User"] ?? request.queryParameters["X-Auth-User"],
                      key(user)?.role == .admin
                else { return HTTPResponse(status: .forbidden) }
            }
        }
        do {
            return try body()
        } catch let error as Judge0Failure {
            guard let payload = error.body else { return HTTPResponse(status: error.status) }
            var response = Self.json(payload, status: error.status)
            if error.status == .serviceUnavailable { response.headers.replaceOrAdd(name: "Retry-After", value: "2") }
            return response
        } catch {
            // Handlers throw only Judge0Failure; anything else is a bug, answered as Judge0 would.
            return Self.json(Self.errorBody("internal error: \(error)"), status: .internalServerError)
        }
    }

    /// The configured key equal to `presented`, compared in constant time.
    private func key(_ presented: String) -> APIKey? {
        let bytes = Array(presented.utf8)
        var match: APIKey?
        for key in authenticator.keys where HMACSHA256.constantTimeEquals(Array(key.key.utf8), bytes) { match = key }
        return match
    }

    /// A native error in Judge0's words.
    static func failure(_ error: APIError) -> Judge0Failure {
        switch error.code {
        case .serviceUnavailable:
            let full = error.message.contains("queue is full")
            return Judge0Failure(status: .serviceUnavailable, body: errorBody(full ? "queue is full" : error.message))
        case .notFound:
            return Judge0Failure(status: .notFound, body: errorBody("Couldn't find Submission"))
        case .unauthorized: return Judge0Failure(status: .unauthorized, body: nil)
        case .forbidden: return Judge0Failure(status: .forbidden, body: nil)
        default:
            if error.httpStatus == 422 {
                return Judge0Failure(status: .unprocessableContent, body: validationBody(field: judge0Field(error.field), error.message))
            }
            return Judge0Failure(status: HTTPStatus(code: error.httpStatus), body: errorBody(error.message))
        }
    }

    static func errorBody(_ message: String) -> Judge0JSON { .object([("error", .string(message))]) }

    static func validationBody(field: String, _ message: String) -> Judge0JSON {
        .object([(field, .array([.string(message)]))])
    }

    private static func storeCall<T>(_ body: () throws(JobStoreError) -> T) throws(APIError) -> T {
        do { return try body() } catch { throw JobService.apiError(error) }
    }

    static func json(_ value: Judge0JSON, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json; charset=utf-8"], body: .bytes(value.bytes))
    }

    static func text(_ text: String) -> HTTPResponse {
        HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain; charset=utf-8"], body: .bytes(Array((text + "\n").utf8)))
    }
}

extension Judge0ValidationErrors {
    var body: Judge0JSON { json }
}

/// `GET /system_info`: Judge0 prints `lscpu` and `free -h`; these are the same facts read
/// from `/proc`, without running a program.
enum SystemInfo {
    static func current() -> Judge0JSON {
        var pairs: [(String, Judge0JSON)] = [
            ("Architecture", .string(architecture)),
            ("CPU(s)", .string(String(ProcessInfo.processInfo.activeProcessorCount))),
        ]
        if let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            pairs.append(("Model name", .string(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))))
        }
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            func kilobytes(_ key: String) -> Double? {
                guard let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
                return line.split(separator: " ").dropFirst().first.flatMap { Double($0) }
            }
            if let total = kilobytes("MemTotal") { pairs.append(("Mem", .string(humanReadable(kilobytes: total)))) }
            if let swap = kilobytes("SwapTotal") { pairs.append(("Swap", .string(humanReadable(kilobytes: swap)))) }
        }
        return .object(pairs)
    }

    /// `free -h` style: `7.7G`, `512M`, `0B`.
    static func humanReadable(kilobytes: Double) -> String {
        if kilobytes <= 0 { return "0B" }
        let units = ["K", "M", "G", "T"]
        var value = kilobytes, index = 0
        while value >= 1024 && index < units.count - 1 { value /= 1024; index += 1 }
        return (value < 10 ? String(format: "%.1f", value) : String(format: "%.0f", value)) + units[index]
    }

    private static var architecture: String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
