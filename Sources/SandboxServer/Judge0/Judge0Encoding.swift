import Foundation

/// JSON exactly as Judge0 writes it: keys in Judge0's order, integers as integers, decimals
/// as Ruby spells them. Written with ``JSONWriter`` (strings escaped as everywhere in the API),
/// not `JSONEncoder`, which neither keeps key order nor promises how a `Double` like `5.0` is
/// spelled, and Judge0 clients compare both.
indirect enum Judge0JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    /// A JSON number with a fraction (`callbacks_timeout: 5.0` in `/config_info`).
    case float(Double)
    case string(String)
    case array([Judge0JSON])
    case object([(String, Judge0JSON)])

    static func == (lhs: Judge0JSON, rhs: Judge0JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case let (.bool(a), .bool(b)): a == b
        case let (.integer(a), .integer(b)): a == b
        case let (.float(a), .float(b)): a == b
        case let (.string(a), .string(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.object(a), .object(b)): a.map(\.0) == b.map(\.0) && zip(a, b).allSatisfy { $0.1 == $1.1 }
        default: false
        }
    }

    /// A string, or `null` when absent.
    static func optional(_ text: String?) -> Judge0JSON { text.map(Judge0JSON.string) ?? .null }
    static func optional(_ number: Int?) -> Judge0JSON { number.map(Judge0JSON.integer) ?? .null }

    /// The value of `key` in an object.
    subscript(key: String) -> Judge0JSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    /// The UTF-8 bytes of the JSON text.
    var bytes: [UInt8] {
        var writer = JSONWriter(capacity: 256)
        write(to: &writer)
        return writer.bytes
    }

    private func write(to writer: inout JSONWriter) {
        switch self {
        case .null: writer.null()
        case .bool(let value): writer.bool(value)
        case .integer(let value): writer.integer(value)
        case .float(let value):
            // Always with a fraction, as Ruby prints floats: 5.0, 0.1.
            writer.number(spelled: value == value.rounded() && abs(value) < 1e15 ? String(format: "%.1f", value) : String(value))
        case .string(let text): writer.string(text)
        case .array(let items): writer.array(items) { $1.write(to: &$0) }
        case .object(let pairs):
            writer.object { writer in
                for (key, value) in pairs {
                    writer.key(key)
                    value.write(to: &writer)
                }
            }
        }
    }
}

/// Judge0's base64: MIME-wrapped on output (Ruby's `Base64.encode64`), lenient on input
/// (`Base64.decode64` skips anything outside the alphabet and tolerates missing padding).
enum Judge0Base64 {
    /// 60 characters per line, each line ending in `\n`; empty input gives an empty string.
    static func encode(_ bytes: [UInt8]) -> String {
        let plain = Data(bytes).base64EncodedString()
        var wrapped = ""
        wrapped.reserveCapacity(plain.utf8.count + plain.utf8.count / 60 + 1)
        var index = plain.startIndex
        while index < plain.endIndex {
            let end = plain.index(index, offsetBy: 60, limitedBy: plain.endIndex) ?? plain.endIndex
            wrapped += plain[index..<end]
            wrapped += "\n"
            index = end
        }
        return wrapped
    }

    /// Decodes like Ruby's `decode64`: characters outside `A–Z a–z 0–9 + /` (newlines, spaces,
    /// URL-safe `-_` translated first) are skipped, and decoding stops at the first `=`.
    static func decode(_ text: String) -> [UInt8] {
        var sextets: [UInt8] = []
        sextets.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): sextets.append(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): sextets.append(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): sextets.append(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"), UInt8(ascii: "-"): sextets.append(62)
            case UInt8(ascii: "/"), UInt8(ascii: "_"): sextets.append(63)
            case UInt8(ascii: "="): break
            default: continue
            }
            if byte == UInt8(ascii: "=") { break }
        }
        var output: [UInt8] = []
        output.reserveCapacity(sextets.count * 3 / 4)
        var index = 0
        while index + 4 <= sextets.count {
            let s = sextets[index..<index + 4].map(UInt32.init)
            let value = s[0] << 18 | s[1] << 12 | s[2] << 6 | s[3]
            output += [UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
            index += 4
        }
        // A tail of 2 or 3 sextets carries 1 or 2 bytes; a lone sextet carries none.
        let tail = sextets[index...].map(UInt32.init)
        if tail.count >= 2 {
            let value = tail[0] << 18 | tail[1] << 12 | (tail.count == 3 ? tail[2] << 6 : 0)
            output.append(UInt8(value >> 16 & 0xFF))
            if tail.count == 3 { output.append(UInt8(value >> 8 & 0xFF)) }
        }
        return output
    }
}

/// Judge0's number and time spellings.
enum Judge0Format {
    /// Seconds as Rails prints a decimal column: at least one fractional digit, no trailing
    /// zeros beyond it (`2000` ms → `"2.0"`, `282` → `"0.282"`, `1500` → `"1.5"`).
    static func seconds(milliseconds: Int) -> String {
        let whole = milliseconds / 1000, fraction = milliseconds % 1000
        var digits = String(format: "%03d", fraction)
        while digits.count > 1 && digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// Seconds given as a decimal to whole milliseconds (rounded to nearest).
    static func milliseconds(seconds: Double) -> Int { Int((seconds * 1000).rounded()) }

    /// `2024-04-03T05:40:51.306Z`.
    static func datetime(_ date: Date?) -> Judge0JSON { date.map { .string(Timestamp.format($0)) } ?? .null }
}
