import Foundation

/// JSON conventions of the native API: sorted keys (deterministic bodies, stable hashes of
/// requests), unescaped slashes, and timestamps as ISO 8601 UTC with milliseconds
/// (`2026-11-29T07:35:07.123Z`).
enum APIJSON {
    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        return encoder
    }

    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not an ISO 8601 UTC timestamp")
            }
            return date
        }
        return decoder
    }

    /// `value` as API JSON. Encoding the API's own types cannot fail (no non-finite numbers
    /// are ever stored in them), so a failure is a programming error.
    static func encode(_ value: some Encodable) -> Data {
        do { return try makeEncoder().encode(value) } catch {
            preconditionFailure("API value failed to encode: \(error)")
        }
    }

    /// `value` as API JSON, written by hand (see ``JSONWritable``).
    static func encode(_ value: some JSONWritable) -> Data { Data(value.jsonBytes) }

    /// Decodes a request body, turning every decoding failure into the ``APIError`` the client gets.
    static func decodeRequest<Request: Decodable>(_ type: Request.Type, from body: Data) throws(APIError) -> Request {
        guard !nestsTooDeeply(body) else {
            throw APIError(.malformedJSON, "the body nests arrays and objects more than \(maximumNesting) levels deep")
        }
        do {
            return try makeDecoder().decode(Request.self, from: body)
        } catch {
            throw apiError(for: error)
        }
    }

    /// The client-facing error for a failure while decoding a request.
    static func apiError(for error: any Error, under prefix: FieldPath = FieldPath()) -> APIError {
        func path(_ codingPath: [any CodingKey]) -> FieldPath { FieldPath(prefix.components + FieldPath(codingPath).components) }
        switch error {
        case let error as APIError:
            return error
        case let error as UnknownFieldError:
            let fullPath = FieldPath(prefix.components + error.path.components)
            let unknown = fullPath.components.last.flatMap { if case let .key(key) = $0 { key } else { nil } } ?? ""
            var message = "unknown field \(fullPath)"
            if let suggestion = FieldNameSuggestion.closest(to: unknown, among: error.allowedKeys) {
                message += "; did you mean \(suggestion)?"
            } else {
                message += "; allowed fields here: \(error.allowedKeys.joined(separator: ", "))"
            }
            return APIError(.unknownField, message, field: fullPath)
        case let DecodingError.keyNotFound(key, context):
            let fieldPath = path(context.codingPath + [key])
            return APIError(.missingField, "\(fieldPath) is required", field: fieldPath)
        case let DecodingError.valueNotFound(type, context):
            let fieldPath = path(context.codingPath)
            // A body of `null` is no more an object than `1` or `"s"` are.
            if fieldPath.components.isEmpty {
                return APIError(.malformedJSON, "the request body must be a JSON object, not null")
            }
            return APIError(.invalidType, "\(fieldPath) must be \(describe(type)), not null", field: fieldPath)
        case let DecodingError.typeMismatch(type, context):
            let fieldPath = path(context.codingPath)
            if fieldPath.components.isEmpty {
                return APIError(.malformedJSON, "the request body must be a JSON object")
            }
            return APIError(.invalidType, "\(fieldPath) must be \(describe(type))", field: fieldPath)
        case let DecodingError.dataCorrupted(context):
            let fieldPath = path(context.codingPath)
            if fieldPath.components.isEmpty {
                let detail = (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
                return APIError(.malformedJSON, "the request body is not valid JSON" + (detail.map { ": \($0)" } ?? ""))
            }
            return APIError(.invalidValue, "\(fieldPath): \(context.debugDescription)", field: fieldPath)
        default:
            return APIError(.malformedJSON, "the request body could not be read: \(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is String.Type: "a string"
        case is [Any].Type: "an array"
        case is [String: Any].Type: "an object"
        default: "of type \(type)"
        }
    }
}

/// The timestamp format of the API: ISO 8601, UTC, milliseconds, `Z`.
enum Timestamp {
    /// `date` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, milliseconds rounded down.
    static func format(_ date: Date) -> String {
        let totalMilliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let (seconds, milliseconds) = totalMilliseconds.quotientAndRemainder(dividingBy: 1000)
        // Before 1970 the remainder is negative; borrow a second so milliseconds stay 0…999.
        let wholeSeconds = milliseconds < 0 ? seconds - 1 : seconds
        let fraction = milliseconds < 0 ? milliseconds + 1000 : milliseconds
        var time = time_t(wholeSeconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        // Digits by hand: String(format:) goes through CoreFoundation's formatter, which cost
        // more than the rest of a job view's encoding (every view has three timestamps).
        var text = [UInt8]()
        text.reserveCapacity(24)
        func append(_ value: Int, digits: Int, then separator: Character?) {
            var divisor = 1
            for _ in 1..<digits { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                text.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
            if let separator { text.append(separator.asciiValue!) }
        }
        append(Int(parts.tm_year) + 1900, digits: 4, then: "-")
        append(Int(parts.tm_mon) + 1, digits: 2, then: "-")
        append(Int(parts.tm_mday), digits: 2, then: "T")
        append(Int(parts.tm_hour), digits: 2, then: ":")
        append(Int(parts.tm_min), digits: 2, then: ":")
        append(Int(parts.tm_sec), digits: 2, then: ".")
        append(Int(fraction), digits: 3, then: "Z")
        return String(decoding: text, as: UTF8.self)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff…]Z`; `nil` for anything else.
    static func parse(_ text: String) -> Date? {
        guard let match = text.wholeMatch(of: /(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z/),
              let year = Int(match.output.1), let month = Int(match.output.2), let day = Int(match.output.3),
              let hour = Int(match.output.4), let minute = Int(match.output.5), let second = Int(match.output.6),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        var fraction = 0.0
        if let digits = match.output.7 { fraction = Double("0." + digits) ?? 0 }
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}

/// Suggests the allowed field a mistyped one was probably meant to be.
enum FieldNameSuggestion {
    /// The allowed name closest to `name` by edit distance, if it is close enough to be a typo.
    static func closest(to name: String, among allowed: [String]) -> String? {
        let scored = allowed.map { ($0, editDistance(name, $0)) }
        guard let best = scored.min(by: { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }) else { return nil }
        return best.1 <= max(1, min(name.count, best.0.count) / 3) ? best.0 : nil
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}

extension APIJSON {
    /// How deep a request body may nest arrays and objects. Decoding recurses once per level on
    /// an HTTP worker's 512 KB stack, which a `metadata` value nested about 250 levels deep
    /// overflowed (Foundation's own parser only stops at 512); real requests nest a few levels.
    static let maximumNesting = 64

    /// Whether `body` nests arrays and objects more than `limit` levels deep. One pass over the
    /// bytes before any decoding; brackets inside strings do not count. Malformed text is left
    /// for the decoder to refuse.
    static func nestsTooDeeply(_ body: some Collection<UInt8>, limit: Int = maximumNesting) -> Bool {
        func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            var depth = 0
            var inString = false
            var escaped = false
            for byte in bytes {
                if inString {
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                    continue
                }
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    depth += 1
                    if depth > limit { return true }
                case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
                default: break
                }
            }
            return false
        }
        return body.withContiguousStorageIfAvailable(scan) ?? Array(body).withUnsafeBufferPointer(scan)
    }
}
