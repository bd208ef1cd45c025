/// Size limits enforced while parsing, each answered with its own status code.
public struct HTTPParserLimits: Sendable, Hashable {
    /// Longest request line in bytes, CRLF excluded (longer: 414).
    public var maxRequestLineLength: Int = 8 * 1024
    /// Longest header section in bytes after the request line (longer: 431).
    public var maxHeaderSectionLength: Int = 32 * 1024
    /// Most header fields in one request (more: 431).
    public var maxHeaderFields: Int = 100
    /// Largest request body in bytes (larger: 413, checked before the body is read when the
    /// length is declared, and as chunks arrive when it is not).
    public var maxBodySize: Int = 16 * 1024 * 1024

    /// The defaults: 8 KiB request line, 32 KiB / 100 header fields, 16 MiB body.
    public init() {}
}

/// Why a request was rejected: the status to answer with and a short explanation.
/// The connection is always closed after such a response.
public struct HTTPParseError: Error, Sendable, Hashable {
    /// The status the server answers with (400, 413, 414, 417, 431, 501 or 505).
    public let status: HTTPStatus
    /// A one-line explanation suitable for an error body.
    public let message: String

    init(_ status: HTTPStatus, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Parses a byte stream of HTTP/1.1 requests (RFC 9112) one request at a time.
///
/// Bytes are appended as they arrive; `next()` returns the next complete request, asks for more
/// data, or reports a fatal error after which the stream must not be used (the connection is closed,
/// which is what keeps request smuggling out: no ambiguous framing is ever guessed at).
public struct HTTPRequestParser: Sendable {
    /// What `next()` found.
    public enum Outcome: Sendable {
        /// No complete request yet: append more bytes.
        case needMoreData
        /// The head of a request announcing `Expect: 100-continue` is complete and its body has not
        /// arrived: the server sends `100 Continue` and keeps reading. Reported once per request.
        case expectsContinue
        /// A complete request, body included.
        case request(HTTPRequest)
        /// The stream is malformed or over a limit; answer with `error.status` and close.
        case failure(HTTPParseError)
    }

    private enum State: Sendable {
        case head(searchFrom: Int)
        case fixedBody(PendingHead, remaining: Int)
        case chunkedBody(PendingHead, ChunkedState)
        case failed(HTTPParseError)
    }

    private enum ChunkedState: Sendable {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailers(bytesSeen: Int, fields: Int)
    }

    struct PendingHead: Sendable {
        var request: HTTPRequest
        var expectsContinue: Bool
    }

    /// The limits applied to every request.
    public let limits: HTTPParserLimits
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var state: State = .head(searchFrom: 0)
    private var body: [UInt8] = []
    private var continueReported = false

    /// A parser with the given limits.
    public init(limits: HTTPParserLimits = HTTPParserLimits()) { self.limits = limits }

    /// Appends received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes.
    public mutating func append(_ bytes: [UInt8]) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    /// True between requests with nothing buffered: the connection is idle (keep-alive).
    public var isIdle: Bool {
        if case .head = state { return readIndex == buffer.count }
        return false
    }

    /// True while a request body is being read.
    public var isReadingBody: Bool {
        switch state {
        case .fixedBody, .chunkedBody: true
        default: false
        }
    }

    /// Bytes received and not yet consumed by a returned request.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Releases buffer memory while the connection is idle.
    mutating func releaseIdleMemory() {
        if readIndex == buffer.count, buffer.capacity > 0 {
            buffer = []
            readIndex = 0
            if case .head = state { state = .head(searchFrom: 0) }
        }
    }

    private mutating func compactIfUseful() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
            if case .head = state { state = .head(searchFrom: 0) }
        } else if readIndex >= 64 * 1024 {
            buffer.removeFirst(readIndex)  // offsets in `state` are relative to readIndex: unchanged
            readIndex = 0
        }
    }

    /// Parses as far as the buffered bytes allow.
    public mutating func next() -> Outcome {
        while true {
            switch state {
            case .failed(let error):
                return .failure(error)
            case .head(let searchFrom):
                let result = buffer.withUnsafeBufferPointer { all in
                    HeadParser.parse(UnsafeBufferPointer(rebasing: all[readIndex...]),
                                     searchFrom: searchFrom, limits: limits)
                }
                switch result {
                case .incomplete(let nextSearchFrom):
                    state = .head(searchFrom: nextSearchFrom)
                    return .needMoreData
                case .failure(let error):
                    state = .failed(error)
                    return .failure(error)
                case .complete(let request, let length):
                    readIndex += length
                    continueReported = false
                    switch Framing.determine(request, limits: limits) {
                    case .failure(let error):
                        state = .failed(error)
                        return .failure(error)
                    case .none:
                        state = .head(searchFrom: 0)
                        return .request(request)
                    case .length(let length, let expectsContinue):
                        body = []
                        body.reserveCapacity(min(length, 1 << 20))
                        state = .fixedBody(PendingHead(request: request, expectsContinue: expectsContinue),
                                           remaining: length)
                    case .chunked(let expectsContinue):
                        body = []
                        state = .chunkedBody(PendingHead(request: request, expectsContinue: expectsContinue),
                                             .size)
                    }
                }
            case .fixedBody(let head, let remaining):
                let available = buffer.count - readIndex
                let take = min(available, remaining)
                if take > 0 {
                    body.append(contentsOf: buffer[readIndex..<(readIndex + take)])
                    readIndex += take
                }
                if take == remaining {
                    var request = head.request
                    request.body = body
                    body = []
                    state = .head(searchFrom: 0)
                    return .request(request)
                }
                state = .fixedBody(head, remaining: remaining - take)
                if head.expectsContinue, !continueReported, body.isEmpty {
                    continueReported = true
                    return .expectsContinue
                }
                return .needMoreData
            case .chunkedBody(let head, let chunkState):
                switch decodeChunked(chunkState) {
                case .needMore(let newState):
                    state = .chunkedBody(head, newState)
                    if head.expectsContinue, !continueReported, body.isEmpty, case .size = newState {
                        continueReported = true
                        return .expectsContinue
                    }
                    return .needMoreData
                case .done:
                    var request = head.request
                    request.body = body
                    body = []
                    state = .head(searchFrom: 0)
                    return .request(request)
                case .failure(let error):
                    state = .failed(error)
                    return .failure(error)
                }
            }
        }
    }

    private enum ChunkResult {
        case needMore(ChunkedState)
        case done
        case failure(HTTPParseError)
    }

    /// Longest chunk-size line (size, extensions) accepted.
    static let maxChunkLineLength = 4096

    private mutating func decodeChunked(_ initial: ChunkedState) -> ChunkResult {
        var chunkState = initial
        while true {
            switch chunkState {
            case .size:
                guard let lineEnd = findLineFeed(maxLength: HTTPRequestParser.maxChunkLineLength + 2) else {
                    if buffer.count - readIndex > HTTPRequestParser.maxChunkLineLength + 1 {
                        return .failure(HTTPParseError(.badRequest, "chunk size line too long"))
                    }
                    return .needMore(chunkState)
                }
                guard let size = parseChunkSize(readIndex, lineEnd) else {
                    return .failure(HTTPParseError(.badRequest, "malformed chunk size"))
                }
                readIndex = lineEnd + 1
                if size == 0 {
                    chunkState = .trailers(bytesSeen: 0, fields: 0)
                } else {
                    if size > limits.maxBodySize - body.count {
                        return .failure(HTTPParseError(.contentTooLarge, "request body exceeds \(limits.maxBodySize) bytes"))
                    }
                    chunkState = .data(remaining: size)
                }
            case .data(let remaining):
                let take = min(remaining, buffer.count - readIndex)
                if take > 0 {
                    body.append(contentsOf: buffer[readIndex..<(readIndex + take)])
                    readIndex += take
                }
                if take < remaining { return .needMore(.data(remaining: remaining - take)) }
                chunkState = .dataEnd
            case .dataEnd:
                if buffer.count - readIndex < 2 {
                    if buffer.count - readIndex == 1, buffer[readIndex] != 0x0D {
                        return .failure(HTTPParseError(.badRequest, "chunk data not followed by CRLF"))
                    }
                    return .needMore(chunkState)
                }
                guard buffer[readIndex] == 0x0D, buffer[readIndex + 1] == 0x0A else {
                    return .failure(HTTPParseError(.badRequest, "chunk data not followed by CRLF"))
                }
                readIndex += 2
                chunkState = .size
            case .trailers(let bytesSeen, let fields):
                // Trailer fields are read and discarded: never merged into the headers.
                let remainingAllowance = limits.maxHeaderSectionLength - bytesSeen
                guard let lineEnd = findLineFeed(maxLength: remainingAllowance + 2) else {
                    if buffer.count - readIndex > remainingAllowance + 1 {
                        return .failure(HTTPParseError(.badRequest, "trailer section too large"))
                    }
                    return .needMore(chunkState)
                }
                let lineLength = lineEnd - readIndex
                guard lineLength >= 1, buffer[lineEnd - 1] == 0x0D else {
                    return .failure(HTTPParseError(.badRequest, "bare LF in trailer section"))
                }
                let line = buffer[readIndex..<(lineEnd - 1)]
                readIndex = lineEnd + 1
                if line.isEmpty { return .done }
                guard fields + 1 <= limits.maxHeaderFields, HeadParser.isValidFieldLine(line) else {
                    return .failure(HTTPParseError(.badRequest, "malformed trailer field"))
                }
                chunkState = .trailers(bytesSeen: bytesSeen + lineLength + 1, fields: fields + 1)
            }
        }
    }

    /// Index of the next LF at or after `readIndex`, looking at most `maxLength` bytes.
    private func findLineFeed(maxLength: Int) -> Int? {
        let end = min(buffer.count, readIndex + maxLength)
        var index = readIndex
        while index < end {
            if buffer[index] == 0x0A { return index }
            index += 1
        }
        return nil
    }

    /// `chunk-size [ chunk-ext ] CRLF` between `start` and the LF at `lineFeed`.
    private func parseChunkSize(_ start: Int, _ lineFeed: Int) -> Int? {
        guard lineFeed > start, buffer[lineFeed - 1] == 0x0D else { return nil }
        let end = lineFeed - 1
        var index = start
        var value = 0
        var digits = 0
        while index < end, let digit = HeadParser.hexValue(buffer[index]) {
            digits += 1
            if digits > 15 { return nil }  // larger than any allowed body; also avoids overflow
            value = value << 4 | digit
            index += 1
        }
        guard digits > 0 else { return nil }
        while index < end, buffer[index] == 0x20 || buffer[index] == 0x09 { index += 1 }
        if index == end { return value }
        guard buffer[index] == 0x3B else { return nil }  // ';' chunk extensions, ignored
        index += 1
        while index < end {
            let byte = buffer[index]
            if byte < 0x20 && byte != 0x09 || byte == 0x7F { return nil }
            index += 1
        }
        return value
    }
}

/// How a request's body is delimited (RFC 9112 §6.3), decided once from its head.
enum Framing {
    case none
    case length(Int, expectsContinue: Bool)
    case chunked(expectsContinue: Bool)
    case failure(HTTPParseError)

    static func determine(_ request: HTTPRequest, limits: HTTPParserLimits) -> Framing {
        // One pass over the fields; the lists are built only when the fields are present.
        var hostCount = 0
        var transferEncodings: [String] = []
        var contentLengths: [String] = []
        var expect: String?
        for field in request.headers {
            switch field.name.utf8.count {
            case 4 where HTTPHeaders.namesEqual(field.name, "Host"): hostCount += 1
            case 6 where HTTPHeaders.namesEqual(field.name, "Expect"): expect = expect ?? field.value
            case 14 where HTTPHeaders.namesEqual(field.name, "Content-Length"): contentLengths.append(field.value)
            case 17 where HTTPHeaders.namesEqual(field.name, "Transfer-Encoding"): transferEncodings.append(field.value)
            default: break
            }
        }
        if request.version == .http1_1, hostCount != 1 {
            return .failure(HTTPParseError(.badRequest, "HTTP/1.1 request needs exactly one Host header"))
        }
        var expectsContinue = false
        if let expect {
            guard HTTPHeaders.namesEqual(String(Substring(expect).trimmingASCIIWhitespace()), "100-continue") else {
                return .failure(HTTPParseError(.expectationFailed, "unsupported expectation"))
            }
            expectsContinue = request.version == .http1_1
        }
        if !transferEncodings.isEmpty {
            if request.version == .http1_0 {
                return .failure(HTTPParseError(.badRequest, "Transfer-Encoding in an HTTP/1.0 request"))
            }
            if !contentLengths.isEmpty {
                return .failure(HTTPParseError(.badRequest, "both Transfer-Encoding and Content-Length"))
            }
            var codings: [Substring] = []
            for value in transferEncodings {
                for item in value.split(separator: ",", omittingEmptySubsequences: false) {
                    codings.append(item.trimmingASCIIWhitespace())
                }
            }
            guard let last = codings.last, HTTPHeaders.namesEqual(String(last), "chunked") else {
                return .failure(HTTPParseError(.badRequest, "Transfer-Encoding must end with chunked"))
            }
            if codings.count > 1 {
                return .failure(HTTPParseError(.notImplemented, "only the chunked transfer coding is supported"))
            }
            return .chunked(expectsContinue: expectsContinue)
        }
        if !contentLengths.isEmpty {
            var length: Int?
            for value in contentLengths {
                for item in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let trimmed = item.trimmingASCIIWhitespace()
                    guard !trimmed.isEmpty, trimmed.utf8.count <= 18,
                          trimmed.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let parsed = Int(trimmed)
                    else { return .failure(HTTPParseError(.badRequest, "malformed Content-Length")) }
                    if let length, length != parsed {
                        return .failure(HTTPParseError(.badRequest, "conflicting Content-Length values"))
                    }
                    length = parsed
                }
            }
            let declared = length ?? 0
            if declared > limits.maxBodySize {
                return .failure(HTTPParseError(.contentTooLarge, "request body exceeds \(limits.maxBodySize) bytes"))
            }
            return declared == 0 ? .none : .length(declared, expectsContinue: expectsContinue)
        }
        return .none
    }
}

/// The request line and header section, parsed from one contiguous buffer.
enum HeadParser {
    enum Result {
        case incomplete(searchFrom: Int)
        case complete(HTTPRequest, length: Int)
        case failure(HTTPParseError)
    }

    /// Leading empty lines tolerated before a request line (RFC 9112 §2.2).
    static let maxLeadingEmptyLines = 2

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, searchFrom: Int, limits: HTTPParserLimits) -> Result {
        let count = bytes.count
        var start = 0
        var emptyLines = 0
        while start + 1 < count, bytes[start] == 0x0D, bytes[start + 1] == 0x0A {
            emptyLines += 1
            if emptyLines > maxLeadingEmptyLines { return .failure(HTTPParseError(.badRequest, "too many empty lines")) }
            start += 2
        }
        if start < count, bytes[start] == 0x0A { return .failure(HTTPParseError(.badRequest, "bare LF")) }
        if start == count || (start + 1 == count && bytes[start] == 0x0D) { return .incomplete(searchFrom: 0) }

        // Request line.
        let lineLimit = limits.maxRequestLineLength
        var lineFeed = -1
        var index = start
        let lineScanEnd = min(count, start + lineLimit + 2)
        while index < lineScanEnd {
            if bytes[index] == 0x0A { lineFeed = index; break }
            index += 1
        }
        if lineFeed < 0 {
            if count - start > lineLimit + 1 { return .failure(HTTPParseError(.uriTooLong, "request line too long")) }
            return .incomplete(searchFrom: 0)
        }
        guard lineFeed > start, bytes[lineFeed - 1] == 0x0D else {
            return .failure(HTTPParseError(.badRequest, "request line not terminated by CRLF"))
        }
        if lineFeed - 1 - start > lineLimit { return .failure(HTTPParseError(.uriTooLong, "request line too long")) }

        // End of the header section: an empty line. Resume the search where the last call stopped.
        let headersStart = lineFeed + 1
        var scan = max(headersStart, searchFrom)
        var sectionEnd = -1  // index just past the final CRLF
        if headersStart + 1 < count, bytes[headersStart] == 0x0D, bytes[headersStart + 1] == 0x0A {
            sectionEnd = headersStart + 2
        } else {
            let sectionLimit = limits.maxHeaderSectionLength
            let scanEnd = min(count, headersStart + sectionLimit + 4)
            while scan + 3 < scanEnd {
                if bytes[scan + 3] == 0x0A, bytes[scan + 2] == 0x0D, bytes[scan + 1] == 0x0A, bytes[scan] == 0x0D {
                    sectionEnd = scan + 4
                    break
                }
                scan += 1
            }
            if sectionEnd < 0 {
                if count - headersStart > sectionLimit + 2 {
                    return .failure(HTTPParseError(.requestHeaderFieldsTooLarge, "header section too large"))
                }
                return .incomplete(searchFrom: max(headersStart, count - 3))
            }
            if sectionEnd - 2 - headersStart > sectionLimit {
                return .failure(HTTPParseError(.requestHeaderFieldsTooLarge, "header section too large"))
            }
        }

        switch parseRequestLine(UnsafeBufferPointer(rebasing: bytes[start..<(lineFeed - 1)])) {
        case .failure(let error):
            return .failure(error)
        case .success(let (method, target, version)):
            var headers = HTTPHeaders()
            var lineStart = headersStart
            let fieldsEnd = sectionEnd - 2
            var fieldCount = 0
            while lineStart < fieldsEnd {
                var end = lineStart
                while bytes[end] != 0x0A { end += 1 }
                guard end > lineStart, bytes[end - 1] == 0x0D else {
                    return .failure(HTTPParseError(.badRequest, "header line not terminated by CRLF"))
                }
                fieldCount += 1
                if fieldCount > limits.maxHeaderFields {
                    return .failure(HTTPParseError(.requestHeaderFieldsTooLarge, "more than \(limits.maxHeaderFields) header fields"))
                }
                switch parseField(UnsafeBufferPointer(rebasing: bytes[lineStart..<(end - 1)])) {
                case .failure(let error): return .failure(error)
                case .success(let field): headers.add(name: field.name, value: field.value)
                }
                lineStart = end + 1
            }
            guard var request = HTTPRequest(parsedMethod: method, target: target, version: version, headers: headers) else {
                return .failure(HTTPParseError(.badRequest, "malformed percent-encoding in request target"))
            }
            request.keepAlive = version == .http1_1
                ? !headers.listContains(name: "Connection", token: "close")
                : headers.listContains(name: "Connection", token: "keep-alive")
            return .complete(request, length: sectionEnd)
        }
    }

    static func parseRequestLine(_ line: UnsafeBufferPointer<UInt8>) -> Swift.Result<(HTTPMethod, String, HTTPVersion), HTTPParseError> {
        guard let firstSpace = line.firstIndex(of: 0x20) else {
            return .failure(HTTPParseError(.badRequest, "malformed request line"))
        }
        let methodBytes = UnsafeBufferPointer(rebasing: line[0..<firstSpace])
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(isTokenByte) else {
            return .failure(HTTPParseError(.badRequest, "malformed method"))
        }
        let rest = UnsafeBufferPointer(rebasing: line[(firstSpace + 1)...])
        guard let secondSpace = rest.firstIndex(of: 0x20) else {
            return .failure(HTTPParseError(.badRequest, "malformed request line"))
        }
        let targetBytes = UnsafeBufferPointer(rebasing: rest[rest.startIndex..<secondSpace])
        let versionBytes = UnsafeBufferPointer(rebasing: rest[(secondSpace + 1)...])
        guard !targetBytes.isEmpty, targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(HTTPParseError(.badRequest, "malformed request target"))
        }
        guard versionBytes.count == 8, versionBytes[0] == 0x48, versionBytes[1] == 0x54, versionBytes[2] == 0x54,
              versionBytes[3] == 0x50, versionBytes[4] == 0x2F, versionBytes[6] == 0x2E,
              isDigit(versionBytes[5]), isDigit(versionBytes[7])
        else { return .failure(HTTPParseError(.badRequest, "malformed HTTP version")) }
        let version: HTTPVersion
        switch (versionBytes[5], versionBytes[7]) {
        case (0x31, 0x31): version = .http1_1
        case (0x31, 0x30): version = .http1_0
        default: return .failure(HTTPParseError(.httpVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are supported"))
        }
        guard let method = HTTPMethod(bytes: methodBytes) else {
            return .failure(HTTPParseError(.notImplemented, "method not implemented"))
        }
        // Origin-form only (RFC 9112 §3.2.1); asterisk-form for OPTIONS is mapped to "*".
        guard targetBytes[0] == 0x2F || (method == .OPTIONS && targetBytes.count == 1 && targetBytes[0] == 0x2A) else {
            return .failure(HTTPParseError(.badRequest, "request target must be in origin-form"))
        }
        return .success((method, String(decoding: targetBytes, as: UTF8.self), version))
    }

    static func parseField(_ line: UnsafeBufferPointer<UInt8>) -> Swift.Result<HTTPHeaders.Field, HTTPParseError> {
        guard let first = line.first else { return .failure(HTTPParseError(.badRequest, "empty header line")) }
        if first == 0x20 || first == 0x09 {
            return .failure(HTTPParseError(.badRequest, "obsolete line folding is not accepted"))
        }
        guard let colon = line.firstIndex(of: 0x3A) else {
            return .failure(HTTPParseError(.badRequest, "header field without a colon"))
        }
        let nameBytes = UnsafeBufferPointer(rebasing: line[0..<colon])
        guard !nameBytes.isEmpty, nameBytes.allSatisfy(isTokenByte) else {
            return .failure(HTTPParseError(.badRequest, "malformed header field name"))
        }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let valueBytes = UnsafeBufferPointer(rebasing: line[valueStart..<valueEnd])
        for byte in valueBytes where !(byte >= 0x20 && byte != 0x7F || byte == 0x09) {
            return .failure(HTTPParseError(.badRequest, "invalid character in header field value"))
        }
        return .success((String(decoding: nameBytes, as: UTF8.self), String(decoding: valueBytes, as: UTF8.self)))
    }

    /// Field-line syntax check without building strings (used for discarded trailers).
    static func isValidFieldLine(_ line: ArraySlice<UInt8>) -> Bool {
        line.withUnsafeBufferPointer { buffer in
            if case .success = parseField(buffer) { return true }
            return false
        }
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    @inline(__always)
    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x41...0x46: Int(byte - 0x41 + 10)
        case 0x61...0x66: Int(byte - 0x61 + 10)
        default: nil
        }
    }

    /// tchar (RFC 9110 §5.6.2).
    static let tokenTable: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in UInt8(0x30)...0x39 { table[Int(byte)] = true }
        for byte in UInt8(0x41)...0x5A { table[Int(byte)] = true }
        for byte in UInt8(0x61)...0x7A { table[Int(byte)] = true }
        for byte in "!#$%&'*+-.^_`|~".utf8 { table[Int(byte)] = true }
        return table
    }()

    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool { tokenTable[Int(byte)] }
}
