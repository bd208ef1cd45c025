import Foundation
import HTTPCore
import Isolation
import JobStore

/// Jobe's REST API (`/jobe/index.php/restapi/…`, see docs/jobe.md), so Moodle CodeRunner and
/// Jobe's own `testsubmit.py` work against this server unchanged.
///
/// `POST runs` is synchronous: the handler (on an HTTP worker thread, which may block) holds a
/// sandbox slot — the same slots the native job runners use — for the compile and the run.
/// Support files live in the job store's file cache. Errors are JSON strings with Jobe's exact
/// messages.
struct JobeRoutes: Sendable {
    /// Where Jobe's clients expect the API.
    static let mountPath = "/jobe/index.php/restapi"

    let store: any JobStore
    let runner: JobeRunner
    let authenticator: Authenticator
    /// Jobe languages offered here, by id.
    let languages: [String: JobeLanguage]
    /// `GET languages`: `[id, version]` pairs in Jobe's (alphabetical) order.
    let languageList: [[String]]

    /// - Parameter found: the Jobe languages of this machine (``JobeLanguageDetection/detect(timeout:)``).
    /// - Parameter metrics: counts runs (`GET /metrics`); nil counts nothing.
    init(store: any JobStore, sandbox: Sandbox, authenticator: Authenticator, found: [JobeLanguageDetection.Found],
         configuration: JobeRunner.Configuration = JobeRunner.Configuration(), metrics: ServerMetrics? = nil) {
        self.store = store
        self.authenticator = authenticator
        runner = JobeRunner(sandbox: sandbox, configuration: configuration, metrics: metrics)
        languages = Dictionary(uniqueKeysWithValues: found.map { ($0.language.id, $0.language) })
        languageList = found.sorted { $0.language.id < $1.language.id }.map { [$0.language.id, $0.version] }
    }

    /// Adds Jobe's routes to `router` under ``mountPath``, trailing slashes accepted.
    func mount(on router: inout Router) {
        var jobe = Router()
        jobe.get("/languages") { request in try handle(request) { listLanguages() } }
        jobe.post("/runs") { request in try handle(request) { () throws(JobeError) in try submitRun(request) } }
        jobe.put("/files/{id}") { request in try handle(request) { () throws(JobeError) in try putFile(request) } }
        jobe.add(.HEAD, "/files/{id}") { request in try handle(request) { () throws(JobeError) in try checkFile(request) } }
        router.mount(Self.mountPath, jobe, trailingSlashTolerant: true)
    }

    // MARK: Handlers

    private func listLanguages() -> HTTPResponse { Self.json(languageList) }

    private func submitRun(_ request: HTTPRequest) throws(JobeError) -> HTTPResponse {
        let spec = try JobeRunSpec.parse(body: request.body, languages: languages)
        var files: [BoxFile] = []
        for reference in spec.files {
            let contents: Data?
            do { contents = try store.fileContents(id: reference.id) } catch {
                throw JobeError(500, "Server exception (\(error.message))")
            }
            guard let contents else { throw JobeError(404, "One or more of the specified files is missing/unavailable") }
            files.append(BoxFile(path: reference.name, contents: Array(contents)))
        }
        if spec.sourceCode == JobeRunSpec.overloadTestString { return Self.result(JobeRunResult.overload) }
        runner.metrics?.jobSubmitted(api: .jobe, language: spec.language.id)
        let result = runner.run(spec, files: files)
        runner.metrics?.jobeRun(language: spec.language.id, outcome: result.outcome)
        return Self.result(result)
    }

    private func putFile(_ request: HTTPRequest) throws(JobeError) -> HTTPResponse {
        let id = try fileID(request)
        guard let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
              let encoded = object["file_contents"] as? String
        else { throw .badRequest("put: missing file_contents parameter") }
        // Strict base-64 (as PHP's base64_decode(…, true)), line breaks and blanks aside.
        guard let contents = Base64Text.decode(encoded) else {
            throw .badRequest("put: contents of file \(id) are not valid base-64")
        }
        do { try store.putFile(id: id, contents: contents) } catch {
            throw JobeError(500, "put: failed to write file \(id) to cache")
        }
        return HTTPResponse(status: .noContent)
    }

    private func checkFile(_ request: HTTPRequest) throws(JobeError) -> HTTPResponse {
        let id = try fileID(request)
        let info: CachedFile?
        do { info = try store.fileInfo(id: id) } catch { throw JobeError(500, "Server exception (\(error.message))") }
        return HTTPResponse(status: info == nil ? .notFound : .noContent)
    }

    /// The `{id}` of a files route; Jobe routes only `[A-Za-z0-9]+`, anything else is a 404.
    private func fileID(_ request: HTTPRequest) throws(JobeError) -> String {
        let id = request.parameter("id") ?? ""
        guard !id.isEmpty, id.utf8.allSatisfy(JobeRunSpec.isASCIIAlphanumeric) else { throw JobeError(404, "Not found") }
        return id
    }

    // MARK: Plumbing

    /// Checks the API key (when the server has keys; Jobe's clients send `X-API-KEY`), runs
    /// `body` and renders a ``JobeError`` as Jobe does: its message as a JSON string.
    private func handle(_ request: HTTPRequest, _ body: () throws(JobeError) -> HTTPResponse) throws -> HTTPResponse {
        if authenticator.isEnabled {
            var keyed = request
            if let key = request.headers["X-API-KEY"], Authenticator.token(in: request) == nil {
                keyed.headers.replaceOrAdd(name: "X-Auth-Token", value: key)
            }
            do { try authenticator.authorize(keyed, needs: .user) } catch {
                return Self.error(JobeError(403, "Unauthorized"))
            }
        }
        do { return try body() } catch { return Self.error(error) }
    }

    static func error(_ error: JobeError) -> HTTPResponse {
        HTTPResponse(status: HTTPStatus(code: error.status), headers: ["Content-Type": "application/json"],
                     body: .bytes(Array(encode(error.message))))
    }

    /// A run result with its keys in Jobe's order (`run_id, outcome, cmpinfo, stdout, stderr`),
    /// which Foundation's encoder would not keep.
    static func result(_ result: JobeRunResult) -> HTTPResponse {
        var body = Data("{\"run_id\":".utf8) + encode(result.runID)
        body += Data(",\"outcome\":\(result.outcome.rawValue),\"cmpinfo\":".utf8) + encode(result.cmpinfo)
        body += Data(",\"stdout\":".utf8) + encode(result.stdout) + Data(",\"stderr\":".utf8) + encode(result.stderr)
        body += Data("}".utf8)
        return HTTPResponse(status: .ok, headers: ["Content-Type": "application/json"], body: .bytes(Array(body)))
    }

    static func json(_ value: some Encodable) -> HTTPResponse {
        HTTPResponse(status: .ok, headers: ["Content-Type": "application/json"], body: .bytes(Array(encode(value))))
    }

    private static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        // Every value here (strings, codes, string lists) is encodable.
        return (try? encoder.encode(value)) ?? Data("\"Server exception (encoding)\"".utf8)
    }
}

extension JobeLanguage {
    /// Host programs Jobe's command lines for this language name.
    var requiredPrograms: [String] {
        switch id {
        case "c": ["/usr/bin/gcc"]
        case "cpp": ["/usr/bin/g++"]
        case "python3": [Program.python3]
        case "java": [Program.javac, Program.java]
        case "nodejs": [Program.nodejs]
        case "php": [Program.php]
        case "pascal": ["/usr/bin/fpc"]
        default: [Program.octave]
        }
    }
}
