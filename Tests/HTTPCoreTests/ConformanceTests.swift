import Foundation
import Glibc
import HTTPCore
import Testing

/// RFC 9110/9112 behaviour over a real socket: raw bytes in, raw bytes out.
@Suite("Conformance over a socket")
struct ConformanceTests {
    /// A request the server must reject with `status` and then close the connection.
    struct Rejection: CustomTestStringConvertible, Sendable {
        let name: String
        let request: String
        let status: Int
        var testDescription: String { name }
    }

    static let longTarget = "/" + String(repeating: "a", count: 8 * 1024)
    static let rejections: [Rejection] = [
        .init(name: "Content-Length and Transfer-Encoding (smuggling)",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
              status: 400),
        .init(name: "Transfer-Encoding then Content-Length (smuggling)",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
              status: 400),
        .init(name: "two different Content-Length fields",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", status: 400),
        .init(name: "Content-Length list with different values",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd", status: 400),
        .init(name: "signed Content-Length",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", status: 400),
        .init(name: "non-numeric Content-Length",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\nabc", status: 400),
        .init(name: "negative chunk size",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n", status: 400),
        .init(name: "0x-prefixed chunk size",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", status: 400),
        .init(name: "garbage after chunk size",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n0\r\n\r\n", status: 400),
        .init(name: "chunk size overflow",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n", status: 400),
        .init(name: "chunk data longer than its size",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", status: 400),
        .init(name: "chunk size line with bare LF",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", status: 400),
        .init(name: "transfer coding other than chunked last",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", status: 400),
        .init(name: "unsupported transfer coding",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501),
        .init(name: "Transfer-Encoding in HTTP/1.0",
              request: "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        .init(name: "whitespace before the colon",
              request: "GET /hello HTTP/1.1\r\nHost : a\r\n\r\n", status: 400),
        .init(name: "obs-fold continuation line",
              request: "GET /hello HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n", status: 400),
        .init(name: "header line without colon",
              request: "GET /hello HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", status: 400),
        .init(name: "control character in a value",
              request: "GET /hello HTTP/1.1\r\nHost: a\r\nX-A: a\u{01}b\r\n\r\n", status: 400),
        .init(name: "bare LF line endings",
              request: "GET /hello HTTP/1.1\nHost: a\n\n", status: 400),
        .init(name: "HTTP/1.1 without Host",
              request: "GET /hello HTTP/1.1\r\nAccept: */*\r\n\r\n", status: 400),
        .init(name: "two Host fields",
              request: "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        .init(name: "absolute-form target",
              request: "GET http://a/hello HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "double space in the request line",
              request: "GET  /hello HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "lower-case protocol name",
              request: "GET /hello http/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "HTTP/2.0 request line", request: "GET /hello HTTP/2.0\r\nHost: a\r\n\r\n", status: 505),
        .init(name: "unknown method", request: "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", status: 501),
        .init(name: "malformed percent-encoding", request: "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        .init(name: "unsupported expectation",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx", status: 417),
        .init(name: "request line over 8 KiB", request: "GET \(longTarget) HTTP/1.1\r\nHost: a\r\n\r\n", status: 414),
        .init(name: "header section over 32 KiB",
              request: "GET /hello HTTP/1.1\r\nHost: a\r\n" + (0..<40).map { "X-Fill-\($0): \(String(repeating: "v", count: 1000))\r\n" }.joined() + "\r\n",
              status: 431),
        .init(name: "101 header fields",
              request: "GET /hello HTTP/1.1\r\nHost: a\r\n" + (0..<100).map { "X-\($0): v\r\n" }.joined() + "\r\n", status: 431),
        .init(name: "declared body over the maximum",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n", status: 413),
        .init(name: "chunked body over the maximum",
              request: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + String(repeating: "x", count: 1024)
                  + "\r\n1\r\nx\r\n0\r\n\r\n", status: 413),
    ]

    @Test("rejects with the right status and closes", arguments: rejections)
    func rejection(_ rejection: Rejection) throws {
        let server = try TestServer { $0.limits.maxBodySize = 1024 }
        let client = try server.connect()
        // A pipelined follow-up must never be answered: that is what smuggling would look like.
        try client.send(rejection.request + "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == rejection.status, "\(rejection.name)")
        #expect(response.header("Connection") == "close")
        #expect(response.header("Content-Type") == "application/json")
        #expect(response.bodyText.contains("\"app_error\":\(rejection.status)"), "rendered by the application")
        #expect(client.isClosedByServer(), "connection closed after \(rejection.name)")
    }

    @Test func maximumsAreInclusive() throws {
        let server = try TestServer { $0.limits.maxBodySize = 1024 }
        // Request line of exactly 8 KiB.
        let target = "/path?" + String(repeating: "q", count: 8 * 1024 - "GET /path? HTTP/1.1".count)
        let line = "GET \(target) HTTP/1.1"
        #expect(line.utf8.count == 8 * 1024)
        #expect(try server.exchange(line + "\r\nHost: a\r\n\r\n").status == 200)
        // 100 header fields.
        let fields = "Host: a\r\n" + (0..<99).map { "X-\($0): v\r\n" }.joined()
        #expect(try server.exchange("GET /hello HTTP/1.1\r\n\(fields)\r\n").status == 200)
        // A body of exactly the maximum.
        let body = String(repeating: "b", count: 1024)
        let response = try server.exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n\(body)")
        #expect(response.status == 200)
        #expect(response.body.count == 1024)
    }

    @Test func identicalContentLengthsAreAccepted() throws {
        let server = try TestServer()
        let response = try server.exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc")
        #expect(response.status == 200)
        #expect(response.bodyText == "abc")
    }

    @Test func oversizedBodyIsRejectedBeforeItIsSent() throws {
        let server = try TestServer { $0.limits.maxBodySize = 1024 }
        let client = try server.connect()
        // Only the head is sent: the 413 must come without the server waiting for the body.
        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n")
        var status = 0
        let milliseconds = try elapsedMilliseconds { status = try client.readResponse().status }
        #expect(status == 413)
        #expect(milliseconds < 1000)
    }

    @Test func keepAliveIsTheHTTP11Default() throws {
        let server = try TestServer()
        let client = try server.connect()
        for _ in 0..<3 {
            try client.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 200)
            #expect(response.bodyText == "hello")
            #expect(response.header("Connection") == nil)
            #expect(response.header("Content-Length") == "5")
        }
        try client.send("GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(try client.readResponse().header("Connection") == "close")
        #expect(client.isClosedByServer())
    }

    @Test func http10ClosesByDefaultAndHonoursKeepAlive() throws {
        let server = try TestServer()
        let closing = try server.connect()
        try closing.send("GET /hello HTTP/1.0\r\n\r\n")
        let first = try closing.readResponse()
        #expect(first.status == 200)
        #expect(first.header("Connection") == "close")
        #expect(closing.isClosedByServer())

        let persistent = try server.connect()
        try persistent.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(try persistent.readResponse().header("Connection") == "keep-alive")
        try persistent.send("GET /hello HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        #expect(try persistent.readResponse().bodyText == "hello")
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let server = try TestServer()
        let client = try server.connect()
        var batch = ""
        for index in 1...5 { batch += "GET /v1/jobs/job\(index) HTTP/1.1\r\nHost: a\r\n\r\n" }
        batch += "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nlast"
        try client.send(batch)
        for index in 1...5 {
            #expect(try client.readResponse().bodyText == #"{"id":"job\#(index)","language":"c"}"#)
        }
        let head = try client.readResponse(expectBody: false)
        #expect(head.header("Content-Length") == "5")
        #expect(try client.readResponse().bodyText == "last", "HEAD sent no body bytes before the next response")
    }

    @Test func headCarriesHeadersButNoBody() throws {
        let server = try TestServer()
        let client = try server.connect()
        try client.send("HEAD /json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let response = try client.readResponse(expectBody: false)
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "application/json")
        #expect(response.header("Content-Length") == String(#"{"message":"Hello, World!"}"#.utf8.count))
        #expect(client.isClosedByServer())
        #expect(client.pending.isEmpty, "no body bytes after the header section")
    }

    @Test func chunkedRequestBodyWithTrailers() throws {
        let server = try TestServer()
        let response = try server.exchange(
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;name=value\r\nhello\r\n1 \r\n,\r\n6\r\n world\r\n0\r\nTrailer-A: x\r\nContent-Length: 99\r\n\r\n")
        #expect(response.status == 200)
        #expect(response.bodyText == "hello, world")
        #expect(response.header("X-Saw-Trailer") == "no", "trailers are discarded, never merged into headers")
    }

    @Test func expectContinueIsAnswered() throws {
        let server = try TestServer { $0.limits.maxBodySize = 1024 }
        let client = try server.connect()
        try client.send("PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        let interim = try client.readResponse()
        #expect(interim.status == 100)
        try client.send("hello")
        let final = try client.readResponse()
        #expect(final.status == 200)
        #expect(final.bodyText == "hello")

        // Over the limit: 413 at once, no 100.
        let refused = try server.connect()
        try refused.send("PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        #expect(try refused.readResponse().status == 413)

        // Body sent along with the head: no 100 needed.
        let eager = try server.connect()
        try eager.send("PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok")
        #expect(try eager.readResponse().status == 200)
    }

    @Test func responsesCarryDateAndRequestID() throws {
        let server = try TestServer()
        let response = try server.exchange("GET /id HTTP/1.1\r\nHost: a\r\n\r\n")
        let date = try #require(response.header("Date"))
        #expect(date.range(of: #"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$"#, options: .regularExpression) != nil)
        let generated = try #require(response.header("X-Request-Id"))
        #expect(!generated.isEmpty)
        #expect(response.bodyText == generated, "the handler sees the id that is echoed")

        let given = try server.exchange("GET /id HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-42.a_b:c\r\n\r\n")
        #expect(given.header("X-Request-Id") == "client-42.a_b:c")
        #expect(given.bodyText == "client-42.a_b:c")

        let insane = try server.exchange("GET /id HTTP/1.1\r\nHost: a\r\nX-Request-Id: <script>\r\n\r\n")
        #expect(insane.header("X-Request-Id") != "<script>")
        #expect(insane.header("X-Request-Id") == insane.bodyText)
    }

    @Test func routingErrorsAreRenderedByTheApplication() throws {
        let server = try TestServer()
        let missing = try server.exchange("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(missing.status == 404)
        #expect(missing.bodyText.contains("\"app_error\":404"))
        #expect(missing.bodyText.contains(missing.header("X-Request-Id")!))

        let wrongMethod = try server.exchange("PUT /v1/jobs/7 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.header("Allow") == "GET, HEAD, DELETE, OPTIONS")
        #expect(wrongMethod.bodyText.contains("\"app_error\":405"))

        let options = try server.exchange("OPTIONS /v1/jobs/7 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(options.status == 204)
        #expect(options.header("Allow") == "GET, HEAD, DELETE, OPTIONS")

        let conflict = try server.exchange("GET /conflict HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(conflict.status == 409)
        #expect(conflict.header("Retry-After") == "1")
        #expect(conflict.bodyText.contains("already there"))

        let crash = try server.exchange("GET /crash HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(crash.status == 500)
        #expect(crash.bodyText.contains("\"app_error\":500"))
    }

    @Test func pathAndQueryParametersAreDecoded() throws {
        let server = try TestServer()
        #expect(try server.exchange("GET /v1/jobs/a%2Fb%20c/files/x%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n").bodyText == "a/b c|xé")
        #expect(try server.exchange("GET /query?wait=5&name=a+b%26c&flag HTTP/1.1\r\nHost: a\r\n\r\n").bodyText
            == "wait=5;name=a b&c;flag=")
        #expect(try server.exchange("GET /path?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").bodyText == "/path")
        #expect(try server.exchange("GET /headers HTTP/1.1\r\nHost: a\r\nX-Multi: 1\r\nx-multi: 2\r\nX-MULTI: 3\r\n\r\n").bodyText
            == "1|2|3", "repeated fields kept in order, names case-insensitive")
    }

    @Test func mountsToleratesTrailingSlash() throws {
        let server = try TestServer()
        #expect(try server.exchange("GET /jobe/index.php/restapi/languages HTTP/1.1\r\nHost: a\r\n\r\n").bodyText == "languages")
        #expect(try server.exchange("GET /jobe/index.php/restapi/languages/ HTTP/1.1\r\nHost: a\r\n\r\n").bodyText == "languages")
        #expect(try server.exchange("GET /jobe/index.php/restapi/ HTTP/1.1\r\nHost: a\r\n\r\n").bodyText == "jobe root")
        #expect(try server.exchange("GET /jobe/index.php/restapi HTTP/1.1\r\nHost: a\r\n\r\n").bodyText == "jobe root")
        #expect(try server.exchange("GET /hello/ HTTP/1.1\r\nHost: a\r\n\r\n").status == 404, "only mounts opted in")
    }

    @Test func jsonBodiesDecodeAndBadJSONIs400() throws {
        let server = try TestServer()
        let body = #"{"id":"j1","language":"python3"}"#
        let created = try server.exchange("POST /v1/jobs HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(created.status == 201)
        #expect(try JSONDecoder().decode(TestApp.Job.self, from: Data(created.body)) == TestApp.Job(id: "j1", language: "python3"))
        let bad = try server.exchange("POST /v1/jobs HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n{nope")
        #expect(bad.status == 400)
        #expect(bad.bodyText.contains("invalid JSON"))
    }

    @Test func streamingResponsesAreChunked() throws {
        let server = try TestServer()
        let client = try server.connect()
        try client.send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.header("Transfer-Encoding") == "chunked")
        #expect(response.header("Content-Length") == nil)
        #expect(response.header("Content-Type") == "text/event-stream")
        #expect(response.bodyText == "event: tick\ndata: tick 1\n\nevent: tick\ndata: tick 2\n\nevent: tick\ndata: tick 3\n\n")
        try client.send("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().bodyText == "hello", "connection reusable after a stream")

        // HTTP/1.0 has no chunked coding: the body is delimited by closing the connection.
        let old = try server.connect()
        try old.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let closeDelimited = try old.readResponse()
        #expect(closeDelimited.header("Transfer-Encoding") == nil)
        #expect(closeDelimited.header("Connection") == "close")
        #expect(closeDelimited.bodyText.hasSuffix("data: tick 3\n\n"))
    }

    @Test func peerAddressIsLoopback() throws {
        let server = try TestServer()
        #expect(try server.exchange("GET /peer HTTP/1.1\r\nHost: a\r\n\r\n").bodyText == "127.0.0.1 loopback=true")
    }

    @Test func leadingEmptyLineIsIgnored() throws {
        let server = try TestServer()
        #expect(try server.exchange("\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n").status == 200)
    }
}
