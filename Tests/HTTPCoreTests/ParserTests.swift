import Foundation
import HTTPCore
import Testing

/// The parser alone: incremental feeding, and the committed fuzz corpus replayed.
@Suite("Request parser")
struct ParserTests {
    static let pipeline = Array(("POST /a?b=c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        + "GET /b HTTP/1.0\r\n\r\nPUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").utf8)

    private func parseAll(_ chunks: [[UInt8]]) -> [String] {
        var parser = HTTPRequestParser()
        var results: [String] = []
        for chunk in chunks {
            if results.last?.hasPrefix("failure") == true { break }
            parser.append(chunk)
            loop: while true {
                switch parser.next() {
                case .needMoreData: break loop
                case .expectsContinue: continue
                case .request(let request):
                    results.append("\(request.method.rawValue) \(request.target) \(request.bodyText) \(request.keepAlive)")
                case .failure(let error):
                    results.append("failure \(error.status.code)")
                    break loop
                }
            }
        }
        return results
    }

    @Test func byteByByteEqualsWhole() {
        let whole = parseAll([ParserTests.pipeline])
        #expect(whole == ["POST /a?b=c abc true", "GET /b  false", "PUT /c hi true"])
        #expect(parseAll(ParserTests.pipeline.map { [$0] }) == whole)
    }

    @Test func incompleteInputAsksForMore() {
        var parser = HTTPRequestParser()
        parser.append(Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8))
        guard case .needMoreData = parser.next() else {
            Issue.record("expected needMoreData")
            return
        }
        #expect(!parser.isIdle)
        parser.append(Array("\r\n".utf8))
        guard case .request = parser.next() else {
            Issue.record("expected a request")
            return
        }
        #expect(parser.isIdle)
    }

    @Test func corpusReplaysWithoutFailureOfInvariants() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzCorpus")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files.count >= 20)
        for name in files {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))
            #expect(parseAll([bytes]) == parseAll(bytes.map { [$0] }), "\(name)")
        }
    }
}
