import Foundation

/// How a test's output is compared with its expected output.
enum ComparisonMode: String, Codable, Sendable, CaseIterable {
    /// Byte for byte.
    case exact
    /// Equal after removing trailing whitespace (including `\r`) from each line and blank
    /// lines at the end. The default: it forgives what a reader cannot see.
    case trailingWhitespace = "trailing_whitespace"
    /// The same whitespace-separated tokens.
    case tokens
    /// The same tokens, where numbers may differ by the tolerance.
    case float
}

/// The outcome of one comparison.
struct ComparisonResult: Sendable, Equatable {
    let matches: Bool
    /// Where output and expectation part, without quoting either (expected outputs of hidden
    /// tests must not leak through the verdict); `nil` when they match.
    let difference: String?

    static let match = ComparisonResult(matches: true, difference: nil)
    static func mismatch(_ difference: String) -> ComparisonResult { ComparisonResult(matches: false, difference: difference) }
}

/// A configured output comparison. Works on bytes, so invalid UTF-8 compares like any other
/// bytes; only ASCII whitespace separates lines and tokens.
struct OutputComparison: Sendable, Equatable {
    var mode: ComparisonMode
    /// `float` mode: numbers match when they differ by at most this much…
    var absoluteTolerance: Double
    /// …or by at most this fraction of the expected number.
    var relativeTolerance: Double

    static let defaultTolerance = 1e-6

    init(mode: ComparisonMode = .trailingWhitespace, tolerance: Double = OutputComparison.defaultTolerance) {
        self.init(mode: mode, absoluteTolerance: tolerance, relativeTolerance: tolerance)
    }

    init(mode: ComparisonMode, absoluteTolerance: Double, relativeTolerance: Double) {
        self.mode = mode
        self.absoluteTolerance = absoluteTolerance
        self.relativeTolerance = relativeTolerance
    }

    func compare(expected: [UInt8], actual: [UInt8]) -> ComparisonResult {
        switch mode {
        case .exact: Self.compareExact(expected: expected, actual: actual)
        case .trailingWhitespace: Self.compareLines(expected: expected, actual: actual)
        case .tokens: compareTokens(expected: expected, actual: actual, numeric: false)
        case .float: compareTokens(expected: expected, actual: actual, numeric: true)
        }
    }

    // MARK: - exact

    private static func compareExact(expected: [UInt8], actual: [UInt8]) -> ComparisonResult {
        if expected == actual { return .match }
        let common = zip(expected, actual).prefix { $0 == $1 }.count
        if common == expected.count { return .mismatch("output has \(actual.count - common) extra bytes at the end") }
        if common == actual.count { return .mismatch("output ends after \(actual.count) of \(expected.count) bytes") }
        return .mismatch("output differs at byte \(common + 1)")
    }

    // MARK: - trailing_whitespace

    /// Space, tab, CR, vertical tab, form feed: whitespace that may trail a line. CR is here so
    /// CRLF output matches LF expectations (and the other way round).
    private static func isLineTrailingSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0B || byte == 0x0C
    }

    /// Lines without trailing whitespace, with trailing empty lines removed.
    static func normalizedLines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            var end = line.endIndex
            while end > line.startIndex, isLineTrailingSpace(line[end - 1]) { end -= 1 }
            return line[line.startIndex..<end]
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        return lines
    }

    private static func compareLines(expected: [UInt8], actual: [UInt8]) -> ComparisonResult {
        let expectedLines = normalizedLines(expected)
        let actualLines = normalizedLines(actual)
        for (index, (expectedLine, actualLine)) in zip(expectedLines, actualLines).enumerated() where expectedLine != actualLine {
            return .mismatch("line \(index + 1) differs")
        }
        if expectedLines.count != actualLines.count {
            return .mismatch("output has \(actualLines.count) lines, expected \(expectedLines.count)")
        }
        return .match
    }

    // MARK: - tokens and float

    private static func isTokenSeparator(_ byte: UInt8) -> Bool { byte == 0x0A || isLineTrailingSpace(byte) }

    static func tokens(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(whereSeparator: isTokenSeparator)
    }

    private func compareTokens(expected: [UInt8], actual: [UInt8], numeric: Bool) -> ComparisonResult {
        let expectedTokens = Self.tokens(expected)
        let actualTokens = Self.tokens(actual)
        for (index, (expectedToken, actualToken)) in zip(expectedTokens, actualTokens).enumerated() {
            if expectedToken == actualToken { continue }
            if numeric, numbersMatch(expected: expectedToken, actual: actualToken) { continue }
            return .mismatch("token \(index + 1) differs")
        }
        if expectedTokens.count != actualTokens.count {
            return .mismatch("output has \(actualTokens.count) tokens, expected \(expectedTokens.count)")
        }
        return .match
    }

    /// Finite numbers within tolerance; NaN matches NaN however it is spelled (`nan`, `-nan` of
    /// C, `NaN` of Java); infinities match infinities of the same sign, a decimal too large for
    /// a double (`1e309`) included.
    private func numbersMatch(expected: ArraySlice<UInt8>, actual: ArraySlice<UInt8>) -> Bool {
        guard let expectedValue = Self.floatValue(expected), let actualValue = Self.floatValue(actual) else { return false }
        if expectedValue.isNaN || actualValue.isNaN { return expectedValue.isNaN && actualValue.isNaN }
        if expectedValue.isInfinite || actualValue.isInfinite { return expectedValue == actualValue }
        let difference = abs(expectedValue - actualValue)
        return difference <= absoluteTolerance || difference <= relativeTolerance * abs(expectedValue)
    }

    /// A `float`-mode token's value: a plain decimal (see ``decimalNumber(_:)``), or NaN or an
    /// infinity as C, Java, Python and JavaScript print them (`nan`, `-nan`, `NaN`, `inf`,
    /// `-Infinity`, any case, optional sign); `nil` for anything else.
    static func floatValue(_ token: ArraySlice<UInt8>) -> Double? {
        if let value = decimalNumber(token) { return value }
        var word = token
        var negative = false
        if let sign = word.first, sign == 0x2B || sign == 0x2D {
            negative = sign == 0x2D
            word = word.dropFirst()
        }
        switch String(decoding: word, as: UTF8.self).lowercased() {
        case "nan": return .nan
        case "inf", "infinity": return negative ? -.infinity : .infinity
        default: return nil
        }
    }

    /// The value of a plain decimal token (`-12`, `3.`, `.5`, `6.02e23`), or `nil` for anything
    /// else. Stricter than `Double(_:)`, which would also read `0x1p3` and other forms graders
    /// do not mean as numbers.
    static func decimalNumber(_ token: ArraySlice<UInt8>) -> Double? {
        var index = token.startIndex
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        func skipDigits() -> Int {
            let start = index
            while index < token.endIndex, isDigit(token[index]) { index += 1 }
            return index - start
        }
        if index < token.endIndex, token[index] == 0x2B || token[index] == 0x2D { index += 1 }
        var mantissaDigits = skipDigits()
        if index < token.endIndex, token[index] == 0x2E {
            index += 1
            mantissaDigits += skipDigits()
        }
        guard mantissaDigits > 0 else { return nil }
        if index < token.endIndex, token[index] == 0x65 || token[index] == 0x45 {
            index += 1
            if index < token.endIndex, token[index] == 0x2B || token[index] == 0x2D { index += 1 }
            guard skipDigits() > 0 else { return nil }
        }
        guard index == token.endIndex else { return nil }
        return Double(String(decoding: token, as: UTF8.self))
    }
}
