/// A placeholder usable in a language's command templates.
enum CommandPlaceholder: String, CaseIterable, Sendable {
    /// The entry file name (the language's `source_file`, or the first file sent).
    case source
    /// Every sent file whose extension is one of the language's `source_extensions`, in request order.
    case sources
    /// Absolute path of the compiled program inside the box, e.g. `/box/main`.
    case binary
    /// The validated compile options (or the language's defaults when the request has none).
    case compileOptions = "compile_options"
    /// The program arguments from the request.
    case args
    /// Java: the class to run — the entry file name without `.java`.
    case mainClass = "main_class"

    /// List placeholders expand to zero or more argv elements, so they must stand alone as an
    /// element: splicing a list into the middle of one string would need quoting rules, and
    /// argv has none.
    var isList: Bool {
        switch self {
        case .sources, .compileOptions, .args: true
        case .source, .binary, .mainClass: false
        }
    }
}

/// Why a command template in the registry is unusable.
enum CommandTemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case unknownPlaceholder(name: String, element: String)
    case unterminatedPlaceholder(element: String)
    case listPlaceholderInsideElement(name: String, element: String)
    case placeholderNotAllowedHere(name: String)

    var description: String {
        switch self {
        case .empty: "the command is empty"
        case let .unknownPlaceholder(name, element): "unknown placeholder {\(name)} in \"\(element)\""
        case let .unterminatedPlaceholder(element): "unterminated '{' in \"\(element)\""
        case let .listPlaceholderInsideElement(name, element):
            "{\(name)} expands to several arguments and must be a whole argument, not part of \"\(element)\""
        case let .placeholderNotAllowedHere(name): "{\(name)} cannot be used in this command"
        }
    }
}

/// Values substituted into a command template.
struct CommandContext: Sendable, Equatable {
    var source: String
    var sources: [String]
    var binary: String
    var compileOptions: [String]
    var args: [String]
    var mainClass: String

    /// The value of a scalar placeholder. List placeholders never reach here inside a larger
    /// argument (``CommandTemplate`` refuses that); they are joined only as a fallback.
    func scalar(_ placeholder: CommandPlaceholder) -> String {
        switch placeholder {
        case .source: source
        case .binary: binary
        case .mainClass: mainClass
        case .sources: sources.joined(separator: " ")
        case .compileOptions: compileOptions.joined(separator: " ")
        case .args: args.joined(separator: " ")
        }
    }

    func list(_ placeholder: CommandPlaceholder) -> [String] {
        switch placeholder {
        case .sources: sources
        case .compileOptions: compileOptions
        case .args: args
        case .source, .binary, .mainClass: [scalar(placeholder)]
        }
    }
}

/// A parsed argv template such as `["/usr/bin/gcc", "{compile_options}", "-o", "{binary}", "{sources}"]`.
///
/// Expansion produces argv for `execve`; nothing is ever interpreted by a shell, so a value
/// containing spaces or quotes stays one argument.
struct CommandTemplate: Sendable, Equatable {
    private enum Piece: Sendable, Equatable {
        case literal(String)
        case placeholder(CommandPlaceholder)
    }

    private enum Element: Sendable, Equatable {
        /// A whole-element list placeholder such as `{sources}`.
        case list(CommandPlaceholder)
        /// Literal text with scalar placeholders, such as `-o{binary}`.
        case pieces([Piece])
    }

    private let elements: [Element]
    /// Every placeholder the template uses.
    let placeholders: Set<CommandPlaceholder>

    /// Parses `argv`, accepting only the placeholders in `allowed`.
    init(_ argv: [String], allowed: Set<CommandPlaceholder> = Set(CommandPlaceholder.allCases)) throws(CommandTemplateError) {
        guard !argv.isEmpty else { throw .empty }
        var elements: [Element] = []
        var used: Set<CommandPlaceholder> = []
        for element in argv {
            let pieces = try Self.parse(element)
            for case let .placeholder(placeholder) in pieces {
                guard allowed.contains(placeholder) else { throw .placeholderNotAllowedHere(name: placeholder.rawValue) }
                used.insert(placeholder)
                if placeholder.isList && pieces.count != 1 {
                    throw .listPlaceholderInsideElement(name: placeholder.rawValue, element: element)
                }
            }
            if pieces.count == 1, case let .placeholder(placeholder) = pieces[0], placeholder.isList {
                elements.append(.list(placeholder))
            } else {
                elements.append(.pieces(pieces))
            }
        }
        self.elements = elements
        self.placeholders = used
    }

    private static func parse(_ element: String) throws(CommandTemplateError) -> [Piece] {
        var pieces: [Piece] = []
        var rest = element[...]
        while let open = rest.firstIndex(of: "{") {
            if open > rest.startIndex { pieces.append(.literal(String(rest[..<open]))) }
            guard let close = rest[open...].firstIndex(of: "}") else { throw .unterminatedPlaceholder(element: element) }
            let name = String(rest[rest.index(after: open)..<close])
            guard let placeholder = CommandPlaceholder(rawValue: name) else {
                throw .unknownPlaceholder(name: name, element: element)
            }
            pieces.append(.placeholder(placeholder))
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty || pieces.isEmpty { pieces.append(.literal(String(rest))) }
        return pieces
    }

    /// The argv with every placeholder replaced; list placeholders may expand to nothing.
    func expand(_ context: CommandContext) -> [String] {
        var argv: [String] = []
        for element in elements {
            switch element {
            case let .list(placeholder):
                argv.append(contentsOf: context.list(placeholder))
            case let .pieces(pieces):
                argv.append(pieces.map { piece in
                    switch piece {
                    case let .literal(text): text
                    case let .placeholder(placeholder): context.scalar(placeholder)
                    }
                }.joined())
            }
        }
        return argv
    }

    /// The first element of the template (before expansion), which names the executable.
    var executableTemplate: String {
        switch elements[0] {
        case let .list(placeholder): "{\(placeholder.rawValue)}"
        case let .pieces(pieces):
            pieces.map { piece in
                switch piece {
                case let .literal(text): text
                case let .placeholder(placeholder): "{\(placeholder.rawValue)}"
                }
            }.joined()
        }
    }
}
