import Foundation
import HTTPCore
import Synchronization
import Testing

/// `Router.requestObserver`: one observation per answered request, with the route's index in the
/// route table, in-process and from the server.
@Suite("Request observer")
struct RequestObserverTests {
    /// Collects observations from any thread.
    final class Recorder: Sendable {
        private let observations = Mutex<[HTTPRequestObservation]>([])
        var all: [HTTPRequestObservation] { observations.withLock { $0 } }
        func record(_ observation: HTTPRequestObservation) { observations.withLock { $0.append(observation) } }

        /// Waits until `count` observations arrived (the server reports after writing, so a
        /// client may read its response a moment before the observation is made).
        func waitFor(_ count: Int) -> [HTTPRequestObservation] {
            let deadline = Date().addingTimeInterval(5)
            while all.count < count, Date() < deadline { usleep(1_000) }
            return all
        }
    }

    func observedRouter(_ recorder: Recorder) -> Router {
        var router = TestApp.router
        router.requestObserver = { recorder.record($0) }
        return router
    }

    func index(_ description: String, in router: Router) -> Int? {
        router.routeTable.firstIndex { $0.description == description }
    }

    @Test func inProcessRequestsReportRouteIndexStatusAndMethod() throws {
        let recorder = Recorder()
        let router = observedRouter(recorder)
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/v1/jobs/42"))
        _ = router.respond(to: HTTPRequest(method: .HEAD, target: "/hello"))
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/nowhere"))
        _ = router.respond(to: HTTPRequest(method: .PATCH, target: "/hello"))
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/conflict"))
        _ = router.respond(to: HTTPRequest(method: .GET, target: "/jobe/index.php/restapi/languages/"))
        let observed = recorder.all
        try #require(observed.count == 6)
        #expect(observed[0].method == .GET)
        #expect(observed[0].routeIndex == index("GET /v1/jobs/{id}", in: router), "the pattern's route, not the path")
        #expect(observed[0].statusCode == 200)
        #expect(observed[1].method == .HEAD && observed[1].routeIndex == index("GET /hello", in: router), "HEAD counts for the GET route")
        #expect(observed[2].routeIndex == nil && observed[2].statusCode == 404)
        #expect(observed[3].routeIndex == nil && observed[3].statusCode == 405 && observed[3].method == .PATCH)
        #expect(observed[4].routeIndex == index("GET /conflict", in: router) && observed[4].statusCode == 409, "a thrown HTTPError")
        #expect(observed[5].routeIndex == index("GET /jobe/index.php/restapi/languages", in: router), "mounted, trailing slash")
    }

    @Test func serverReportsEveryRequestIncludingParseFailures() throws {
        let recorder = Recorder()
        let router = observedRouter(recorder)
        let server = try TestServer(router: router)
        let client = try server.connect()
        try client.send("GET /sleep?ms=30 HTTP/1.1\r\nHost: a\r\n\r\nGET /v1/jobs/7 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        #expect(try client.readResponse().status == 200)
        let streamed = try server.exchange("GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(streamed.status == 200)
        let malformed = try server.exchange("GET / HTTP/1.1\r\nHost a\r\n\r\n")
        #expect(malformed.status == 400)

        let observed = recorder.waitFor(4)
        try #require(observed.count == 4)
        let sleep = try #require(observed.first { $0.routeIndex == index("GET /sleep", in: router) })
        #expect(sleep.statusCode == 200 && sleep.method == .GET)
        #expect(sleep.durationNanoseconds >= 30_000_000, "the handler's 30 ms are in the duration")
        #expect(sleep.durationNanoseconds < 5_000_000_000)
        #expect(observed.contains { $0.routeIndex == index("GET /v1/jobs/{id}", in: router) && $0.statusCode == 200 })
        #expect(observed.contains { $0.routeIndex == index("GET /stream", in: router) && $0.statusCode == 200 })
        let failure = try #require(observed.first { $0.method == nil })
        #expect(failure.statusCode == 400 && failure.routeIndex == nil)
    }
}
