/// The location of a value in a request body, written the way clients write it:
/// `limits.cpu_time_ms`, `tests[2].expected_output`.
struct FieldPath: Sendable, Equatable, CustomStringConvertible {
    enum Component: Sendable, Equatable {
        case key(String)
        case index(Int)
    }

    var components: [Component]

    init(_ components: [Component] = []) { self.components = components }

    /// The path of a decoder's coding path; integer keys are array positions.
    init(_ codingPath: [any CodingKey]) {
        components = codingPath.map { key in key.intValue.map(Component.index) ?? .key(key.stringValue) }
    }

    func appending(_ key: String) -> FieldPath { FieldPath(components + [.key(key)]) }
    func appending(_ index: Int) -> FieldPath { FieldPath(components + [.index(index)]) }

    var description: String {
        var text = ""
        for component in components {
            switch component {
            case let .key(key): text += text.isEmpty ? key : "." + key
            case let .index(index): text += "[\(index)]"
            }
        }
        return text
    }
}

/// A coding key for any string, used to see every key an object really has.
struct AnyCodingKey: CodingKey, Sendable {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

/// A request object had a key its type does not define (usually a typo such as `cpu_tme_ms`).
struct UnknownFieldError: Error, Sendable, Equatable {
    /// Path of the unknown key itself.
    let path: FieldPath
    /// The keys that would have been accepted at that place, sorted.
    let allowedKeys: [String]
}

extension Decoder {
    /// Throws ``UnknownFieldError`` if the object being decoded has a key outside `Keys`.
    ///
    /// Synthesized `Decodable` silently ignores unknown keys; for a grading API that turns a
    /// typo in a limit into a silently applied default, so request types call this first.
    func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_: Keys.Type) throws {
        let container = try container(keyedBy: AnyCodingKey.self)
        // The common case, every key known, asks each key's own `init?(stringValue:)` and builds nothing.
        guard container.allKeys.contains(where: { Keys(stringValue: $0.stringValue) == nil }) else { return }
        let allowed = Set(Keys.allCases.map(\.stringValue))
        // Sorted so that with several unknown keys the error is the same on every run.
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !allowed.contains($0) }) {
            throw UnknownFieldError(path: FieldPath(codingPath).appending(unknown), allowedKeys: allowed.sorted())
        }
    }
}

extension KeyedDecodingContainer {
    /// An optional integer field, read as a JSON number.
    ///
    /// Foundation's `JSONDecoder` reports a non-integral or out-of-range number for an `Int`
    /// as "not valid JSON" without a coding path, which would blame the whole body; reading a
    /// `Double` and checking it here keeps the field's path and says what is wrong.
    func decodeIntegerIfPresent(forKey key: Key) throws -> Int? {
        let value: Double?
        do {
            value = try decodeIfPresent(Double.self, forKey: key)
        } catch let DecodingError.typeMismatch(_, context) {
            throw DecodingError.typeMismatch(Int.self, context)
        }
        guard let value else { return nil }
        // 2^53: beyond it doubles skip integers, and no limit or count is anywhere near it.
        guard value.rounded() == value, abs(value) <= 9_007_199_254_740_992 else {
            throw DecodingError.typeMismatch(
                Int.self, DecodingError.Context(codingPath: codingPath + [key], debugDescription: "\(value) is not an integer in range"))
        }
        return Int(value)
    }
}
