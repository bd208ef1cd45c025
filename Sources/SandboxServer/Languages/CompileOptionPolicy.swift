/// Why requested compile options were refused.
enum CompileOptionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The option at `index` of the request's `compile_options` matches no allowed pattern.
    case notAllowed(option: String, index: Int, language: String)
    /// The language has no compile step, so compile options mean nothing.
    case languageNotCompiled(language: String)

    var description: String {
        switch self {
        case let .notAllowed(option, _, language):
            "compile option \"\(option)\" is not allowed for language \(language)"
        case let .languageNotCompiled(language):
            "language \(language) is not compiled and takes no compile options"
        }
    }
}

/// The allow-list of compile options of one language.
///
/// Each option must wholly match one of the language's regular expressions. Options reach the
/// compiler as separate argv elements (never through a shell), so the list only has to keep out
/// options that read or write outside the box or load code: `-o`, `@file`, `-B`, `-fplugin`, `-wrapper`…
/// which is why it is an allow-list, not a deny-list.
struct CompileOptionPolicy: Sendable {
    let languageID: String
    let isCompiled: Bool
    let patterns: [String]

    /// Longest option accepted; long options are never legitimate and make regex matching costly.
    static let maximumOptionLength = 256

    init(language: LanguageDefinition) {
        languageID = language.id
        isCompiled = language.isCompiled
        patterns = language.compileOptionsAllowed
    }

    /// Throws the first option (in request order) that no pattern allows.
    func validate(_ options: [String]) throws(CompileOptionError) {
        guard !options.isEmpty else { return }
        guard isCompiled else { throw .languageNotCompiled(language: languageID) }
        // Patterns were checked when the registry loaded, so a pattern that fails to compile
        // here cannot happen; skipping it would only make the list stricter.
        let regexes = patterns.compactMap { try? Regex($0) }
        for (index, option) in options.enumerated() {
            let allowed = option.utf8.count <= Self.maximumOptionLength
                && !option.contains("\u{0}")
                && regexes.contains { (try? $0.wholeMatch(in: option)) != nil }
            if !allowed { throw .notAllowed(option: option, index: index, language: languageID) }
        }
    }
}
