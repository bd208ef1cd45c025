/// Machine-readable error codes of the native API. Each has one HTTP status.
enum APIErrorCode: String, Codable, Sendable, CaseIterable {
    /// The body is not JSON, or not a JSON object.
    case malformedJSON = "malformed_json"
    /// A key the request type does not define (often a typo).
    case unknownField = "unknown_field"
    case missingField = "missing_field"
    /// A value of the wrong JSON type, or `null` where a value is needed.
    case invalidType = "invalid_type"
    /// A value of the right type that is not acceptable.
    case invalidValue = "invalid_value"
    case unknownLanguage = "unknown_language"
    case invalidFileName = "invalid_file_name"
    case duplicateFileName = "duplicate_file_name"
    case tooManyFiles = "too_many_files"
    case tooManyTests = "too_many_tests"
    /// A batch with more jobs than allowed.
    case tooManyJobs = "too_many_jobs"
    /// A field is larger than this server accepts.
    case tooLarge = "too_large"
    /// A requested limit is above the server's maximum (the message names it).
    case limitExceedsMaximum = "limit_exceeds_maximum"
    case compileOptionNotAllowed = "compile_option_not_allowed"
    case unauthorized
    case forbidden
    case notFound = "not_found"
    /// The same `Idempotency-Key` was used with a different body.
    case idempotencyConflict = "idempotency_conflict"
    /// The job cannot change state any more (e.g. deleting a finished job that is kept).
    case conflict
    case payloadTooLarge = "payload_too_large"
    case unsupportedMediaType = "unsupported_media_type"
    /// The request is not well-formed HTTP (a bad request line, header or chunk size).
    case badRequest = "bad_request"
    /// The route exists but not for this method (`Allow` names those it has).
    case methodNotAllowed = "method_not_allowed"
    /// The request did not arrive in time (headers or body too slow).
    case requestTimeout = "request_timeout"
    /// The target (path and query) is longer than the server reads.
    case uriTooLong = "uri_too_long"
    /// The headers are larger than the server reads.
    case headersTooLarge = "headers_too_large"
    /// The queue is full; retry later.
    case tooManyRequests = "too_many_requests"
    case internalError = "internal_error"
    case serviceUnavailable = "service_unavailable"

    /// The HTTP status answering this error.
    var httpStatus: Int {
        switch self {
        case .malformedJSON: 400
        case .unknownField, .missingField, .invalidType, .invalidValue, .unknownLanguage, .invalidFileName,
             .duplicateFileName, .tooManyFiles, .tooManyTests, .tooManyJobs, .tooLarge, .limitExceedsMaximum, .compileOptionNotAllowed:
            422
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .idempotencyConflict, .conflict: 409
        case .payloadTooLarge: 413
        case .unsupportedMediaType: 415
        case .badRequest: 400
        case .methodNotAllowed: 405
        case .requestTimeout: 408
        case .uriTooLong: 414
        case .headersTooLarge: 431
        case .tooManyRequests: 429
        case .internalError: 500
        case .serviceUnavailable: 503
        }
    }
}

/// An error answered to an API client: `{"error": {"code": …, "message": …, "field": …}}`.
struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    var code: APIErrorCode
    /// A sentence for people, naming the offending value or the maximum.
    var message: String
    /// Path of the offending request field, e.g. `limits.cpu_time_ms`; `nil` when the error is not about one field.
    var field: String?
    /// Seconds after which a retry may succeed; sent as `Retry-After` (overload, store busy).
    var retryAfterSeconds: Int?

    init(_ code: APIErrorCode, _ message: String, field: String? = nil, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.retryAfterSeconds = retryAfterSeconds
    }

    init(_ code: APIErrorCode, _ message: String, field: FieldPath) {
        self.init(code, message, field: field.description)
    }

    var httpStatus: Int { code.httpStatus }

    var body: ErrorResponse { ErrorResponse(error: ErrorDetail(code: code, message: message, field: field)) }

    var description: String { "\(httpStatus) \(code.rawValue)\(field.map { " at \($0)" } ?? ""): \(message)" }
}

/// The body of every error response.
struct ErrorResponse: Codable, Sendable, Equatable {
    var error: ErrorDetail

    enum CodingKeys: String, CodingKey, CaseIterable {
        case error
    }
}

/// What went wrong; `field` is `null` when no single field is at fault.
struct ErrorDetail: Codable, Sendable, Equatable {
    var code: APIErrorCode
    var message: String
    var field: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case code, message, field
    }

    init(code: APIErrorCode, message: String, field: String?) {
        self.code = code
        self.message = message
        self.field = field
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(code, forKey: .code)
        try container.encode(message, forKey: .message)
        // Always present, null when absent, so clients see one shape.
        try container.encode(field, forKey: .field)
    }
}

/// Written by hand where it is nested in a hand-written response (batch items).
extension ErrorDetail: JSONWritable {
    func write(to writer: inout JSONWriter) {
        writer.object { writer in
            writer.key("code")
            writer.rawValue(code)
            writer.key("field")
            writer.optionalString(field)
            writer.key("message")
            writer.string(message)
        }
    }
}
