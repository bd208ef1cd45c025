import Foundation
import Glibc
import HTTPCore
import Synchronization
import Testing

/// Collects what the server reports, for the tests to read.
final class ReportedRequests: Sendable {
    private let reports = Mutex<[HTTPRequestObservation]>([])

    var all: [HTTPRequestObservation] { reports.withLock { $0 } }

    /// The test app's router, observed by this collector.
    var router: Router {
        var router = TestApp.router
        router.requestObserver = { [self] observation in reports.withLock { $0.append(observation) } }
        return router
    }

    /// Waits for `count` reports (a report follows the response write, so it can trail the client's read).
    func wait(for count: Int) -> [HTTPRequestObservation] {
        let deadline = ContinuousClock.now + .seconds(5)
        while all.count < count, ContinuousClock.now < deadline { usleep(5_000) }
        return all
    }
}

@Suite("Request observations carry what an access log needs")
struct AccessLogObservationTests {
    @Test func everyAnsweredRequestIsReportedWithItsIdStatusAndDuration() throws {
        let reports = ReportedRequests()
        let server = try TestServer(router: reports.router)
        let client = try server.connect()
        // Three requests on one keep-alive connection, the last two pipelined.
        try client.send("GET /sleep?ms=30 HTTP/1.1\r\nHost: a\r\nX-Request-Id: first-id\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        try client.send("GET /missing HTTP/1.1\r\nHost: a\r\n\r\nHEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        let missing = try client.readResponse()
        #expect(missing.status == 404)
        #expect(try client.readResponse(expectBody: false).status == 200)

        let reported = reports.wait(for: 3)
        #expect(reported.count == 3)
        let first = try #require(reported.first)
        #expect(first.requestID == "first-id")
        #expect(first.method == .GET)
        #expect(first.target == "/sleep?ms=30")
        #expect(first.statusCode == 200)
        #expect(first.responseBodyBytes == "slept 30".utf8.count)
        #expect(first.completed)
        #expect(first.peerAddress?.isLoopback == true)
        let duration = first.durationNanoseconds
        #expect(duration >= 30_000_000 && duration < 5_000_000_000, "the handler slept 30 ms: \(duration) ns")
        #expect(reported[1].statusCode == 404)
        #expect(reported[1].requestID == missing.header("X-Request-Id"), "the generated id, as echoed to the client")
        #expect(reported[2].method == .HEAD)
        #expect(reported[2].responseBodyBytes == 0, "HEAD sends no body")
    }

    @Test func streamedResponsesHaveNoBodySizeAndParseFailuresAreReportedWithoutAMethod() throws {
        let reports = ReportedRequests()
        let server = try TestServer(router: reports.router)
        #expect(try server.exchange("GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").status == 200)
        #expect(try server.exchange("BROKEN\r\n\r\n").status == 400)
        let reported = reports.wait(for: 2)
        #expect(reported.count == 2)
        let stream = try #require(reported.first { $0.target == "/stream" })
        #expect(stream.responseBodyBytes == nil)
        let broken = try #require(reported.first { $0.statusCode == 400 })
        #expect(broken.method == nil, "the parser's 400 has no request")
        #expect(broken.routeIndex == nil)
        #expect(broken.target.isEmpty)
        #expect(!broken.requestID.isEmpty, "the generated id the error response carries")
        #expect(broken.peerAddress?.isLoopback == true)
    }
}
