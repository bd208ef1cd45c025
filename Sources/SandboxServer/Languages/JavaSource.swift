/// Facts read from Java source text without compiling it.
enum JavaSource {
    /// The name of the first top-level `public class` (or interface, enum, record) in `source`,
    /// or `nil` if there is none.
    ///
    /// `javac` insists that a public class `X` lives in `X.java`; the Jobe adapter uses this to
    /// name the file sent as a bare source. Comments and string literals are blanked first so
    /// that `// public class Foo` or `"public class Foo"` do not count.
    static func publicClassName(in source: String) -> String? {
        let code = blankingCommentsAndLiterals(source)
        let declaration = /\bpublic\s+(?:(?:final|abstract|strictfp|sealed|non-sealed)\s+)*(?:class|interface|enum|record)\s+([A-Za-z_$][A-Za-z0-9_$]*)/
        guard let match = code.firstMatch(of: declaration) else { return nil }
        return String(match.output.1)
    }

    /// `source` with comments, string literals and character literals replaced by spaces,
    /// keeping everything else in place.
    static func blankingCommentsAndLiterals(_ source: String) -> String {
        enum State { case code, lineComment, blockComment, string, character, textBlock }
        var state = State.code
        var output: [Character] = []
        let characters = Array(source)
        var index = 0
        func peek(_ offset: Int) -> Character? {
            index + offset < characters.count ? characters[index + offset] : nil
        }
        while index < characters.count {
            let character = characters[index]
            switch state {
            case .code:
                if character == "/" && peek(1) == "/" { state = .lineComment; output.append(" "); index += 1; output.append(" ") }
                else if character == "/" && peek(1) == "*" { state = .blockComment; output.append(" "); index += 1; output.append(" ") }
                else if character == "\"" && peek(1) == "\"" && peek(2) == "\"" {
                    state = .textBlock; output.append(contentsOf: "   "); index += 2
                }
                else if character == "\"" { state = .string; output.append(" ") }
                else if character == "'" { state = .character; output.append(" ") }
                else { output.append(character) }
            case .lineComment:
                if character == "\n" { state = .code; output.append("\n") } else { output.append(" ") }
            case .blockComment:
                if character == "*" && peek(1) == "/" { state = .code; output.append(contentsOf: "  "); index += 1 }
                else { output.append(character == "\n" ? "\n" : " ") }
            case .string, .character:
                let quote: Character = state == .string ? "\"" : "'"
                if character == "\\" { output.append(contentsOf: "  "); index += 1 }
                else if character == quote || character == "\n" { state = .code; output.append(" ") }
                else { output.append(" ") }
            case .textBlock:
                if character == "\\" { output.append(contentsOf: "  "); index += 1 }
                else if character == "\"" && peek(1) == "\"" && peek(2) == "\"" {
                    state = .code; output.append(contentsOf: "   "); index += 2
                }
                else { output.append(character == "\n" ? "\n" : " ") }
            }
            index += 1
        }
        return String(output)
    }
}
