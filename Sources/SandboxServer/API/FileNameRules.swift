/// Rules for names of files sent with a job; they become files in the sandbox's `/box` and
/// arguments of compile commands.
enum FileNameRules {
    /// Longest accepted name, in UTF-8 bytes.
    static let maximumLength = 128

    /// Why `name` is not acceptable, or `nil` if it is.
    static func problem(with name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.count > maximumLength { return "must be at most \(maximumLength) bytes" }
        if name.contains("/") { return "must not contain '/' (files are placed directly in the working directory)" }
        if name.contains("..") { return "must not contain '..'" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "must not contain NUL or other control characters"
        }
        // A leading '-' would make the name an option when it is passed to a compiler in {sources}.
        if name.hasPrefix("-") { return "must not start with '-'" }
        // gcc and javac read "@name" arguments as files of further options, which would
        // bypass the compile option allow-list.
        if name.hasPrefix("@") { return "must not start with '@'" }
        // Hidden files are refused because nothing legitimate needs them and '.' is the box itself.
        if name.hasPrefix(".") { return "must not start with '.'" }
        if name.contains("\\") { return "must not contain '\\'" }
        return nil
    }
}
