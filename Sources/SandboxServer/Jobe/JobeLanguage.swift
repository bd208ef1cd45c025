import Foundation

/// One of Jobe's languages: its default file name, argument lists and limits, and how Jobe
/// builds its compile and run command lines and reads their output.
///
/// Command lines are lists of words that Jobe joins with spaces and runs with `sh -c`, so an
/// argument such as `"-x c"` is split by the shell and quotes in it are removed. The adapter
/// does the same, with the shell running inside the sandbox.
struct JobeLanguage: Sendable, Equatable {
    /// Jobe's id (`c`, `cpp`, `python3`, `java`, `nodejs`, `php`, `pascal`, `octave`).
    var id: String
    var defaultSourceFile: String
    var defaultCompileArgs: [String] = []
    var defaultInterpreterArgs: [String] = []
    /// Megabytes of address space when the request does not say.
    var defaultMemoryLimit = 400
    /// Jobe's Java ignores `memorylimit`: the JVM reserves far more address space than it uses.
    var forcesUnlimitedMemory = false
    /// Jobe's Java needs at least this many processes (JVM threads).
    var minimumNumProcs: Int?

    /// Every language Jobe 2.2 has, by id.
    static let all: [String: JobeLanguage] = Dictionary(uniqueKeysWithValues: [
        JobeLanguage(id: "c", defaultSourceFile: "prog.c", defaultCompileArgs: ["-Wall", "-Werror", "-std=c99", "-x c"]),
        JobeLanguage(id: "cpp", defaultSourceFile: "prog.cpp", defaultCompileArgs: ["-Wall", "-Werror"]),
        JobeLanguage(id: "python3", defaultSourceFile: "prog.py", defaultInterpreterArgs: ["-BE"], defaultMemoryLimit: 1000),
        JobeLanguage(id: "java", defaultSourceFile: "prog.java", defaultInterpreterArgs: ["-Xrs", "-Xss8m", "-Xmx200m"],
                     forcesUnlimitedMemory: true, minimumNumProcs: 256),
        JobeLanguage(id: "nodejs", defaultSourceFile: "prog.js", defaultInterpreterArgs: ["--use_strict"]),
        JobeLanguage(id: "php", defaultSourceFile: "prog.php", defaultInterpreterArgs: ["--no-php-ini"]),
        JobeLanguage(id: "pascal", defaultSourceFile: "prog.pas", defaultCompileArgs: ["-vew", "-Se"]),
        JobeLanguage(id: "octave", defaultSourceFile: "prog.m",
                     defaultInterpreterArgs: ["--norc", "--no-window-system", "--silent", "-H"], defaultMemoryLimit: 500),
    ].map { ($0.id, $0) })

    /// Where Jobe finds each interpreter and compiler (it calls them by absolute path, except
    /// gcc, g++ and fpc, which the shell finds on `PATH`).
    enum Program {
        static let python3 = "/usr/bin/python3"
        static let javac = "/usr/bin/javac"
        static let java = "/usr/bin/java"
        static let nodejs = "/usr/bin/nodejs"
        static let php = "/usr/bin/php"
        static let octave = "/usr/bin/octave"
    }

    /// Whether the language has a compile (or syntax-check) step.
    var compiles: Bool { id != "nodejs" && id != "octave" }

    /// The compile command's words, or nil for languages without one.
    func compileCommand(source: String, parameters: JobeParameters) -> [String]? {
        let compileArgs = parameters.compileArgs ?? defaultCompileArgs
        let linkArgs = parameters.linkArgs ?? []
        switch id {
        case "c": return ["gcc"] + compileArgs + ["-o", source + ".exe", source] + linkArgs
        case "cpp": return ["g++"] + compileArgs + ["-o", source + ".exe", source] + linkArgs
        case "python3": return [Program.python3, "-m", "py_compile", source]
        case "java": return [Program.javac] + compileArgs + [source]
        case "php": return [Program.php, "-l", source]
        case "pascal": return ["fpc"] + compileArgs + ["-Fe" + source + ".err", "-o" + source + ".exe", source]
        default: return nil
        }
    }

    /// The run command's words: executable, interpreter args, target (interpreted languages),
    /// run args.
    func runCommand(source: String, parameters: JobeParameters) -> [String] {
        let interpreterArgs = parameters.interpreterArgs ?? defaultInterpreterArgs
        let runArgs = parameters.runArgs ?? []
        switch id {
        case "c", "cpp", "pascal": return ["./" + source + ".exe"] + interpreterArgs + runArgs
        case "python3": return [Program.python3] + interpreterArgs + [source] + runArgs
        case "java": return [Program.java] + interpreterArgs + [JobeJava.mainClass(fileName: source, parameters: parameters)] + runArgs
        case "nodejs": return [Program.nodejs] + interpreterArgs + [source] + runArgs
        case "php": return [Program.php] + interpreterArgs + [source] + runArgs
        default: return [Program.octave] + interpreterArgs + [source] + runArgs
        }
    }

    /// Jobe's compile verdict text (`cmpinfo`) from the compile step's output; empty means
    /// compiled. Pascal is judged by its executable and error file instead (see ``JobeRunner``).
    func compileInfo(stdout: String, stderr: String) -> String {
        switch id {
        case "python3":
            // Jobe joins them with a backslash and an n, not a newline (a PHP single-quoted '\n').
            return stderr.isEmpty ? "" : (stdout.isEmpty ? stderr : stdout + "\\n" + stderr)
        case "php":
            return stderr.isEmpty ? "" : stdout + "\n" + stderr
        default:
            return stderr
        }
    }

    /// The run's stderr as Jobe shows it, after the language's filter.
    func filteredRunStderr(_ stderr: String) -> String {
        switch id {
        case "java":
            // Stack traces indent with a tab; Jobe turns it into 8 spaces.
            return stderr.replacingOccurrences(of: "\n\t", with: "\n        ")
        case "octave":
            var lines = stderr.replacingOccurrences(of: "\r", with: "").components(separatedBy: "\n")
            while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
            if let last = lines.last, last.hasPrefix("error: ignoring octave_execution_exception") { lines.removeLast() }
            if let last = lines.last, last == "error: No such file or directory" { lines.removeLast() }
            return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
        default:
            return stderr
        }
    }
}

/// Jobe's Java conventions: the file is named after the class holding `main`.
enum JobeJava {
    /// `NAME.java` for the single `public class NAME` followed (across lines) by
    /// `public static` or `static public` and `void main(String`; nil when there is not
    /// exactly one such match (Jobe then uses `prog.java`, which javac refuses).
    static func inferredFileName(_ source: String) -> String? {
        let pattern = #"(^|\W)public\s+class\s+(\w+)[^{]*\{.*?(public\s+static|static\s+public)\s+(final\s+)?void\s+main\s*\(\s*String"#
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators, .anchorsMatchLines]) else {
            return nil
        }
        let range = NSRange(source.startIndex..., in: source)
        let matches = regex.matches(in: source, range: range)
        guard matches.count == 1, let name = Range(matches[0].range(at: 2), in: source) else { return nil }
        return String(source[name]) + ".java"
    }

    /// The class `java` runs: `main_class` if given, else the file name up to its first dot.
    static func mainClass(fileName: String, parameters: JobeParameters) -> String {
        if let mainClass = parameters.mainClass, !mainClass.isEmpty { return mainClass }
        return String(fileName.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(fileName))
    }
}
