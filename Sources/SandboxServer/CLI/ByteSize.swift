import ArgumentParser

/// A size on the command line: bytes, or a number with K, M, G (powers of 1024), e.g. `64M`.
struct ByteSize: ExpressibleByArgument, Sendable, Hashable, CustomStringConvertible {
    let bytes: Int

    init(bytes: Int) { self.bytes = bytes }

    init?(argument: String) {
        guard let parsed = ByteSize.parse(argument) else { return nil }
        bytes = parsed
    }

    static func parse(_ text: String) -> Int? {
        var digits = Substring(text.uppercased())
        if digits.hasSuffix("B") { digits = digits.dropLast() }
        var multiplier = 1
        switch digits.last {
        case "K": multiplier = 1 << 10
        case "M": multiplier = 1 << 20
        case "G": multiplier = 1 << 30
        case "T": multiplier = 1 << 40
        default: break
        }
        if multiplier != 1 { digits = digits.dropLast() }
        guard let value = Int(digits), value >= 0, value <= Int.max / multiplier else { return nil }
        return value * multiplier
    }

    var description: String { String(bytes) }

    static var defaultCompletionKind: CompletionKind { .default }
}
