/// Splits Judge0's `compiler_options` and `command_line_arguments` strings into argument
/// vectors the way a POSIX shell would split words — quotes and backslashes — but without a
/// shell: nothing is expanded, substituted, redirected or globbed.
///
/// Whatever a shell would give a meaning we do not reproduce is refused rather than guessed:
/// unquoted `; & | < > ( )`, `$` and backquotes outside single quotes, and control characters
/// (newlines are how CVE-2024-28185 smuggled commands into Judge0's run script).
enum Judge0ArgumentSplitter {
    /// Why a string cannot be split safely.
    enum SplitError: Error, Equatable, CustomStringConvertible {
        case controlCharacter
        case unbalancedQuote
        case trailingBackslash
        case shellSyntax(Character)

        var description: String {
            switch self {
            case .controlCharacter: "must not contain control characters such as newlines"
            case .unbalancedQuote: "has an unbalanced quote"
            case .trailingBackslash: "ends with a lone backslash"
            case .shellSyntax(let character): "contains \"\(character)\", which only a shell could interpret; quote it"
            }
        }
    }

    static func split(_ text: String) throws(SplitError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var iterator = Array(text).makeIterator()
        while let character = iterator.next() {
            if character.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) {
                throw .controlCharacter
            }
            switch character {
            case " ", "\t":
                if inWord { words.append(current); current = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let next = iterator.next() {
                    if next == "'" { closed = true; break }
                    if next.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { throw .controlCharacter }
                    current.append(next)
                }
                guard closed else { throw .unbalancedQuote }
            case "\"":
                inWord = true
                var closed = false
                while let next = iterator.next() {
                    if next == "\"" { closed = true; break }
                    if next.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { throw .controlCharacter }
                    if next == "$" || next == "`" { throw .shellSyntax(next) }
                    if next == "\\" {
                        guard let escaped = iterator.next() else { throw .unbalancedQuote }
                        // Inside double quotes a backslash escapes only these; elsewhere it stays.
                        if !"$`\"\\".contains(escaped) { current.append("\\") }
                        current.append(escaped)
                        continue
                    }
                    current.append(next)
                }
                guard closed else { throw .unbalancedQuote }
            case "\\":
                guard let escaped = iterator.next() else { throw .trailingBackslash }
                if escaped.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { throw .controlCharacter }
                inWord = true
                current.append(escaped)
            case ";", "&", "|", "<", ">", "(", ")", "$", "`":
                throw .shellSyntax(character)
            default:
                inWord = true
                current.append(character)
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
