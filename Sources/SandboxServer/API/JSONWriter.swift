import Foundation

/// A type whose API JSON is written by hand, byte for byte what ``APIJSON``'s `JSONEncoder`
/// would produce (sorted keys, unescaped slashes, API timestamps).
///
/// The job views and every response that holds them take this path, and only it (they are not
/// `Encodable`): a finished job is encoded once to store its details and once more for its
/// waiters, and `JSONEncoder`'s generic containers cost about a tenth of the service's CPU per
/// job. Tests compare each writer with a `JSONEncoder` encoding of the same fields.
protocol JSONWritable {
    /// Appends the value's JSON text.
    func write(to writer: inout JSONWriter)
}

extension JSONWritable {
    /// The value's JSON text as bytes.
    var jsonBytes: [UInt8] {
        var writer = JSONWriter()
        write(to: &writer)
        return writer.bytes
    }
}

/// Appends JSON text to a byte buffer: the writer behind ``JSONWritable``.
///
/// Keys are written in the order given; callers pass them sorted by their UTF-8 bytes, as
/// `JSONEncoder`'s `.sortedKeys` orders them. Strings are escaped as `JSONEncoder` escapes
/// them: `"` and `\`, control characters as `\b \t \n \f \r` or `\u00xx`, everything else
/// verbatim (slashes included).
struct JSONWriter {
    /// The text so far.
    private(set) var bytes: [UInt8]
    /// Whether the innermost open object or array has no member yet (no comma before the next).
    private var atFirstMember = true

    init(capacity: Int = 512) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    // MARK: Structure

    /// Writes `{`, the members `body` writes, and `}`.
    mutating func object(_ body: (inout JSONWriter) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        atFirstMember = true
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        // The object is a value of its parent, which therefore has a member now.
        atFirstMember = false
    }

    /// Writes `[`, one element per item, and `]`.
    mutating func array<Items: Sequence>(_ items: Items, _ element: (inout JSONWriter, Items.Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for item in items {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            element(&self, item)
        }
        bytes.append(UInt8(ascii: "]"))
        atFirstMember = false
    }

    /// Starts an object member: the separator, the key and the colon. The value follows.
    mutating func key(_ name: StaticString) {
        if !atFirstMember { bytes.append(UInt8(ascii: ",")) }
        atFirstMember = false
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    /// Starts an object member whose key is not known at compile time (escaped like any string).
    mutating func key(_ name: String) {
        if !atFirstMember { bytes.append(UInt8(ascii: ",")) }
        atFirstMember = false
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    // MARK: Values

    mutating func null() { append("null") }

    mutating func bool(_ value: Bool) { append(value ? "true" : "false") }

    mutating func integer(_ value: Int) {
        guard value != 0 else {
            bytes.append(UInt8(ascii: "0"))
            return
        }
        // Digits from the end into a small stack buffer; magnitude as UInt so Int.min works.
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            while magnitude > 0 {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            }
            if value < 0 { bytes.append(UInt8(ascii: "-")) }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start..<20]))
        }
    }

    /// A number as `JSONEncoder` spells a `Double`: Swift's shortest round-trip form without a
    /// trailing `.0`. Callers never pass non-finite values (the API's numbers come from JSON).
    mutating func number(_ value: Double) {
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        append(text)
    }

    /// A number its caller has spelled already (as JSON: Judge0's Ruby-style `5.0`, say).
    mutating func number(spelled text: String) { append(text) }

    /// A string literal, escaped.
    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { appendEscaped($0) }
    }

    /// A timestamp in the API's format (see ``Timestamp``).
    mutating func date(_ date: Date) { string(Timestamp.format(date)) }

    /// The raw value of a string-backed enum (its cases need no escaping, but are escaped anyway).
    mutating func rawValue<Value: RawRepresentable<String>>(_ value: Value) { string(value.rawValue) }

    mutating func optional<Value>(_ value: Value?, _ write: (inout JSONWriter, Value) -> Void) {
        if let value { write(&self, value) } else { null() }
    }

    mutating func optionalString(_ value: String?) { optional(value) { $0.string($1) } }
    mutating func optionalInteger(_ value: Int?) { optional(value) { $0.integer($1) } }
    mutating func optionalDate(_ value: Date?) { optional(value) { $0.date($1) } }
    mutating func optionalRawValue<Value: RawRepresentable<String>>(_ value: Value?) { optional(value) { $0.rawValue($1) } }

    /// Any JSON value, with object keys sorted by their UTF-8 bytes and integral numbers
    /// written as integers, as ``JSONValue``'s `Encodable` conformance writes them.
    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .integer(let number): integer(Int(number))
        case .number(let number):
            if number.rounded() == number, abs(number) < 9.007_199_254_740_992e15 {
                integer(Int(number))
            } else {
                self.number(number)
            }
        case .string(let text): string(text)
        case .array(let items): array(items) { $0.value($1) }
        case .object(let members):
            let sorted = members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            object { writer in
                for (name, member) in sorted {
                    writer.key(name)
                    writer.value(member)
                }
            }
        }
    }

    // MARK: Bytes

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// Copies runs of bytes that need no escape in one go; UTF-8 sequences are all ≥ 0x80 and
    /// pass through whole.
    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var runStart = 0
        for index in 0..<utf8.count {
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
            runStart = index + 1
            bytes.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            default:
                let hex: StaticString = "0123456789abcdef"
                hex.withUTF8Buffer { digits in
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                              digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
                }
            }
        }
        if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        bytes.append(UInt8(ascii: "\""))
    }
}
