import Foundation
import Glibc
import HTTPCore
import Testing

/// Timeouts, the connection cap, blocking handlers and graceful shutdown, with short test timeouts.
@Suite("Timeouts, limits and shutdown")
struct LifecycleTests {
    @Test func incompleteHeadersTimeOutWith408() throws {
        let server = try TestServer { $0.headerTimeout = .milliseconds(300) }
        let client = try server.connect()
        try client.send("GET /hello HTTP/1.1\r\nHost:")
        var response: RawResponse?
        let milliseconds = try elapsedMilliseconds { response = try client.readResponse() }
        #expect(response?.status == 408)
        #expect(milliseconds >= 250 && milliseconds < 2000)
        #expect(client.isClosedByServer())
    }

    @Test func slowlorisCannotExtendTheHeaderDeadline() throws {
        let server = try TestServer { $0.headerTimeout = .milliseconds(400) }
        let client = try server.connect()
        let milliseconds = elapsedMilliseconds {
            // One byte every 50 ms keeps the connection busy but must not reset the deadline.
            for byte in "GET /hello HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8 {
                if (try? client.send([byte])) == nil { break }
                usleep(50_000)
            }
        }
        #expect(milliseconds > 400)
        let response = try? client.readResponse()
        #expect(response?.status == 408)
        #expect(client.isClosedByServer())
    }

    @Test func idleKeepAliveConnectionsAreClosedSilently() throws {
        let server = try TestServer { $0.idleTimeout = .milliseconds(300) }
        let client = try server.connect()
        try client.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        var closed = false
        let milliseconds = elapsedMilliseconds { closed = client.isClosedByServer(within: 3) }
        #expect(closed)
        #expect(client.pending.isEmpty, "no response on idle close")
        #expect(milliseconds >= 250 && milliseconds < 2000)
        #expect(server.server.openConnectionCount == 0)
    }

    @Test func stalledBodyTimesOutWith408() throws {
        let server = try TestServer { $0.bodyReadTimeout = .milliseconds(300) }
        let client = try server.connect()
        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        #expect(try client.readResponse().status == 408)
        #expect(client.isClosedByServer())
    }

    @Test func bodyReadTimeoutIsPerRead() throws {
        let server = try TestServer { $0.bodyReadTimeout = .milliseconds(400) }
        let client = try server.connect()
        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
        for byte in "abcdef".utf8 {  // 6 × 150 ms > 400 ms in total, but each gap is shorter
            usleep(150_000)
            try client.send([byte])
        }
        #expect(try client.readResponse().bodyText == "abcdef")
    }

    @Test func connectionsBeyondTheCapGet503() throws {
        let server = try TestServer { $0.maxConnections = 3 }
        let held = try (0..<3).map { _ in try server.connect() }
        for client in held {  // make sure all three are registered
            try client.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try client.readResponse().status == 200)
        }
        let extra = try server.connect()
        let refused = try extra.readResponse()
        #expect(refused.status == 503)
        #expect(refused.bodyText.contains("\"app_error\":503"))
        #expect(extra.isClosedByServer())
        #expect(server.server.openConnectionCount == 3)

        try held[0].send("GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        _ = try held[0].readResponse()
        #expect(held[0].isClosedByServer())
        usleep(50_000)
        #expect(try server.exchange("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n").status == 200, "a slot freed up")
    }

    @Test func blockedHandlersDoNotStarveOtherConnections() throws {
        let server = try TestServer {
            $0.minWorkerThreads = 1
            $0.maxWorkerThreads = 8
        }
        let port = server.port
        let sleepers = (0..<4).map { _ in
            Background {
                let client = try RawClient(port: port)
                try client.send("GET /sleep?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n")
                return try client.readResponse().bodyText
            }
        }
        usleep(200_000)
        var quick: RawResponse?
        let milliseconds = try elapsedMilliseconds { quick = try server.exchange("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n") }
        #expect(quick?.bodyText == "hello")
        #expect(milliseconds < 700, "served while four handlers block")
        for sleeper in sleepers { #expect(try sleeper.wait() == "slept 1500") }
        #expect(server.server.workerThreadCount <= 8)
    }

    @Test func workerThreadsAreBounded() throws {
        let server = try TestServer {
            $0.minWorkerThreads = 1
            $0.maxWorkerThreads = 2
        }
        let port = server.port
        let sleepers = (0..<3).map { _ in
            Background {
                let client = try RawClient(port: port)
                try client.send("GET /sleep?ms=600 HTTP/1.1\r\nHost: a\r\n\r\n")
                return try client.readResponse().status
            }
        }
        usleep(200_000)
        #expect(server.server.workerThreadCount == 2, "never more than maxWorkerThreads")
        for sleeper in sleepers { #expect(try sleeper.wait() == 200, "the third waits for a worker, then is served") }
    }

    @Test func manyIdleConnectionsHoldNoThreads() throws {
        let server = try TestServer { $0.minWorkerThreads = 2 }
        let clients = try (0..<300).map { _ in try server.connect() }
        for client in clients.prefix(1) {
            try client.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
            _ = try client.readResponse()
        }
        usleep(100_000)
        #expect(server.server.openConnectionCount == 300)
        #expect(server.server.workerThreadCount <= 4)
        try clients[299].send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try clients[299].readResponse().bodyText == "hello")
    }

    @Test func gracefulShutdownFinishesInFlightRequests() throws {
        let server = try TestServer()
        let port = server.port
        let idle = try server.connect()
        try idle.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        _ = try idle.readResponse()
        let inFlight = Background {
            let client = try RawClient(port: port)
            try client.send("GET /sleep?ms=500 HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try client.readResponse()
            return "\(response.bodyText) \(response.header("Connection") ?? "-") closed=\(client.isClosedByServer())"
        }
        usleep(150_000)
        let milliseconds = elapsedMilliseconds { server.server.shutdown(gracePeriod: .seconds(5)) }
        #expect(try inFlight.wait() == "slept 500 close closed=true")
        #expect(idle.isClosedByServer(within: 1), "idle connections are closed")
        #expect(milliseconds < 3000)
        #expect(throws: (any Error).self) { _ = try RawClient(port: port) }
    }

    @Test func shutdownGivesUpOnSlowHandlersAfterTheGracePeriod() throws {
        let server = try TestServer()
        let port = server.port
        let inFlight = Background {
            let client = try RawClient(port: port)
            try client.send("GET /sleep?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n")
            return (try? client.readResponse())?.status ?? -1
        }
        usleep(150_000)
        let milliseconds = elapsedMilliseconds { server.server.shutdown(gracePeriod: .milliseconds(200)) }
        #expect(milliseconds < 4000)
        #expect(try inFlight.wait() == -1, "the connection was cut at the end of the grace period")
    }

    @Test func concurrentKeepAliveClientsNeverStall() throws {
        let server = try TestServer()
        let port = server.port
        let clients = (0..<16).map { index in
            Background {
                let client = try RawClient(port: port)
                for request in 0..<300 {
                    try client.send("GET /v1/jobs/\(index)-\(request) HTTP/1.1\r\nHost: a\r\n\r\n")
                    let response = try client.readResponse()
                    guard response.bodyText.contains("\"\(index)-\(request)\"") else { return false }
                }
                return true
            }
        }
        for client in clients { #expect(try client.wait(timeout: 60)) }
    }

    @Test func pipelinedBatchLargerThanOneReadIsAnsweredCompletely() throws {
        let server = try TestServer()
        let client = try server.connect()
        let count = 3000  // ≈ 120 KB of requests: several reads, boundaries anywhere
        let batch = (0..<count).map { "GET /v1/jobs/\($0) HTTP/1.1\r\nHost: a\r\n\r\n" }.joined()
        // Sent from another thread while this one reads, so neither side's buffer fills up.
        let sender = Background { [fd = client.fd] in
            let bytes = Array(batch.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if written <= 0 { return false }
                offset += written
            }
            return true
        }
        for index in 0..<count {
            let response = try client.readResponse()
            #expect(response.bodyText.contains("\"\(index)\""))
            if !response.bodyText.contains("\"\(index)\"") { break }
        }
        #expect(try sender.wait())
    }
}
