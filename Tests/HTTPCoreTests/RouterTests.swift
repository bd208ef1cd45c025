import HTTPCore
import Testing

/// The router driven in-process, without sockets.
@Suite("Router in-process")
struct RouterTests {
    let router = TestApp.router

    @Test func routeTableListsEveryRouteWithMountPrefixes() {
        let table = router.routeTable.map(\.description)
        #expect(table.contains("GET /v1/jobs/{id}"))
        #expect(table.contains("DELETE /v1/jobs/{id}"))
        #expect(table.contains("POST /jobe/index.php/restapi/runs"))
        #expect(table.contains("GET /jobe/index.php/restapi/"))
        #expect(table.count == 20)
    }

    @Test func parametersAndMethods() throws {
        let found = router.respond(to: HTTPRequest(method: .GET, target: "/v1/jobs/42"))
        #expect(found.status == .ok)
        #expect(String(decoding: found.bodyBytes, as: UTF8.self) == #"{"id":"42","language":"c"}"#)
        #expect(router.respond(to: HTTPRequest(method: .DELETE, target: "/v1/jobs/42")).status == .noContent)
        #expect(router.respond(to: HTTPRequest(method: .GET, target: "/v1/jobs/")).status == .notFound, "empty parameter")
        #expect(router.respond(to: HTTPRequest(method: .GET, target: "/v1/jobs/1/2")).status == .notFound)
        let head = router.respond(to: HTTPRequest(method: .HEAD, target: "/hello"))
        #expect(head.status == .ok, "HEAD served by the GET route")
        let notAllowed = router.respond(to: HTTPRequest(method: .PATCH, target: "/hello"))
        #expect(notAllowed.status == .methodNotAllowed)
        #expect(notAllowed.headers["Allow"] == "GET, HEAD, OPTIONS")
    }

    @Test func requestIDIsEchoed() {
        var headers = HTTPHeaders()
        headers.add(name: "x-request-id", value: "abc")
        let response = router.respond(to: HTTPRequest(method: .GET, target: "/id", headers: headers))
        #expect(response.headers["X-Request-Id"] == "abc")
        #expect(String(decoding: response.bodyBytes, as: UTF8.self) == "abc")
        let generated = router.respond(to: HTTPRequest(method: .GET, target: "/nope"))
        #expect(generated.status == .notFound)
        #expect(!(generated.headers["X-Request-Id"] ?? "").isEmpty)
    }

    @Test func defaultErrorRendererIsJSON() {
        var router = Router()
        router.get("/a") { _ in .text("a") }
        let response = router.respond(to: HTTPRequest(method: .GET, target: "/b"))
        #expect(response.status == .notFound)
        #expect(response.headers["Content-Type"] == "application/json")
        #expect(String(decoding: response.bodyBytes, as: UTF8.self).hasPrefix(#"{"error":{"message":"no route for \/b""#)
            || String(decoding: response.bodyBytes, as: UTF8.self).hasPrefix(#"{"error":{"message":"no route for /b""#))
    }

    @Test func firstRegisteredRouteWins() {
        var router = Router()
        router.get("/jobs/stats") { _ in .text("stats") }
        router.get("/jobs/{id}") { request in .text("job \(request.parameter("id")!)") }
        #expect(String(decoding: router.respond(to: HTTPRequest(method: .GET, target: "/jobs/stats")).bodyBytes, as: UTF8.self) == "stats")
        #expect(String(decoding: router.respond(to: HTTPRequest(method: .GET, target: "/jobs/7")).bodyBytes, as: UTF8.self) == "job 7")
    }

    @Test func headersAreCaseInsensitiveAndOrdered() {
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: "a")
        headers.add(name: "ACCEPT", value: "b")
        headers.add(name: "Connection", value: "Upgrade, keep-alive")
        #expect(headers["accept"] == "a")
        #expect(headers.values(name: "Accept") == ["a", "b"])
        #expect(headers.listContains(name: "connection", token: "KEEP-ALIVE"))
        #expect(!headers.listContains(name: "connection", token: "close"))
        headers.replaceOrAdd(name: "accept", value: "c")
        #expect(headers.values(name: "Accept") == ["c"])
    }
}
