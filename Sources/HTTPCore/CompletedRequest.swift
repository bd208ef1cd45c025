/// What the server reports about each request it answered (see
/// ``HTTPServerConfiguration/completedRequestReporter``): enough for an access log line.
public struct HTTPCompletedRequest: Sendable {
    /// The request id (`X-Request-Id` received or generated), as echoed in the response.
    public var requestID: String
    public var method: HTTPMethod
    /// The request target as received (path and query).
    public var target: String
    public var peerAddress: SocketAddress?
    /// The status code sent.
    public var statusCode: Int
    /// Body bytes of the response; nil for a streamed body.
    public var responseBodyBytes: Int?
    /// Nanoseconds from the first byte of the request read to the response written (the whole
    /// stream for a streamed body); nil for a pipelined request that was already buffered when
    /// its predecessor was answered.
    public var durationNanoseconds: UInt64?
    /// False when the client went away (or was too slow) before the response was fully written.
    public var completed: Bool

    public init(requestID: String, method: HTTPMethod, target: String, peerAddress: SocketAddress?, statusCode: Int,
                responseBodyBytes: Int?, durationNanoseconds: UInt64?, completed: Bool) {
        self.requestID = requestID
        self.method = method
        self.target = target
        self.peerAddress = peerAddress
        self.statusCode = statusCode
        self.responseBodyBytes = responseBodyBytes
        self.durationNanoseconds = durationNanoseconds
        self.completed = completed
    }
}

/// Receives an ``HTTPCompletedRequest`` on the worker thread that served the request, after its
/// response was written; it must be quick (a log line), and must not block.
public typealias HTTPCompletedRequestReporter = @Sendable (HTTPCompletedRequest) -> Void
