import Foundation

/// A refusal of a Jobe request: the HTTP status and the exact message Jobe sends, which the
/// response carries as a JSON string (quotes included), as Jobe's clients expect.
struct JobeError: Error, Equatable, Sendable {
    var status: Int
    var message: String

    init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    static func badRequest(_ message: String) -> JobeError { JobeError(400, message) }
}

/// Jobe's `parameters`: each supplied value *replaces* the language default (lists are never
/// merged); a non-numeric value for a numeric key falls back to the default; unknown keys are
/// ignored.
struct JobeParameters: Sendable, Equatable {
    /// Seconds of CPU time; the wall clock allows twice as much.
    var cpuTime = 5
    /// Megabytes (×1000×1024 bytes) of address space; 0 means unlimited.
    var memoryLimit = 400
    /// Processes and threads of the job, besides the shell that runs its command.
    var numProcs = 30
    /// Megabytes kept of stdout and of stderr, each.
    var streamSize = 2
    /// Megabytes of the largest file written; -1 means unlimited.
    var diskLimit = 20
    var compileArgs: [String]?
    var linkArgs: [String]?
    var interpreterArgs: [String]?
    var runArgs: [String]?
    /// Java: the class to run, instead of the file name's stem.
    var mainClass: String?

    /// Jobe's ceiling on `cputime`.
    static let maximumCPUTime = 120

    /// Reads the keys Jobe knows from a decoded `parameters` object.
    init(json: [String: Any] = [:], language: JobeLanguage) {
        memoryLimit = language.defaultMemoryLimit
        if let value = Self.integer(json["cputime"]) { cpuTime = value }
        if let value = Self.integer(json["memorylimit"]) { memoryLimit = value }
        if let value = Self.integer(json["numprocs"]) { numProcs = value }
        if let value = Self.integer(json["streamsize"]) { streamSize = value }
        if let value = Self.integer(json["disklimit"]) { diskLimit = value }
        compileArgs = Self.strings(json["compileargs"])
        linkArgs = Self.strings(json["linkargs"])
        interpreterArgs = Self.strings(json["interpreterargs"])
        runArgs = Self.strings(json["runargs"])
        mainClass = json["main_class"] as? String
        // Jobe forces these whatever the client asks: the JVM reserves a huge address space
        // and starts many threads.
        if language.forcesUnlimitedMemory { memoryLimit = 0 }
        if let minimum = language.minimumNumProcs { numProcs = max(numProcs, minimum) }
    }

    /// Jobe's `intval`-like reading: integers, integral numbers and numeric strings count;
    /// anything else means "use the default".
    static func integer(_ value: Any?) -> Int? {
        switch value {
        case let number as NSNumber:
            let double = number.doubleValue
            guard double.isFinite, abs(double) < 1e12 else { return nil }
            return Int(double.rounded(.towardZero))
        case let text as String:
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if let integer = Int(trimmed) { return integer }
            if let double = Double(trimmed), double.isFinite, abs(double) < 1e12 { return Int(double.rounded(.towardZero)) }
            return nil
        default:
            return nil
        }
    }

    /// A list of strings (numbers are written as Jobe's PHP would print them); nil when absent
    /// or not a list.
    static func strings(_ value: Any?) -> [String]? {
        guard let items = value as? [Any] else { return nil }
        return items.map { item in
            switch item {
            case let text as String: text
            case let number as NSNumber: number.stringValue
            default: String(describing: item)
            }
        }
    }

    /// The compile step's parameters: Jobe raises cputime to 2, memorylimit to 500,
    /// disklimit to 20 and numprocs to 5 (a 0 memorylimit, meaning unlimited, stays 0).
    var forCompile: JobeParameters {
        var compile = self
        compile.cpuTime = max(cpuTime, 2)
        if memoryLimit != 0 { compile.memoryLimit = max(memoryLimit, 500) }
        if diskLimit >= 0 { compile.diskLimit = max(diskLimit, 20) }
        compile.numProcs = max(numProcs, 5)
        return compile
    }
}

/// One `file_list` entry: a cached file's id and the name it gets in the job's directory.
struct JobeFileReference: Sendable, Equatable {
    var id: String
    var name: String
}

/// A validated `run_spec`.
struct JobeRunSpec: Sendable, Equatable {
    var language: JobeLanguage
    var sourceCode: String
    /// The file the source is written to (Jobe's default, the client's, or Java's inferred one).
    var sourceFileName: String
    var input: String
    var files: [JobeFileReference]
    var parameters: JobeParameters
    var debug: Bool

    /// The `sourcecode` that makes Jobe answer as if overloaded (its test program checks it).
    static let overloadTestString = "!** TESTING OVERLOAD EXCEPTION **!"

    /// Parses a `POST runs` body, checking in Jobe's order and with Jobe's messages.
    /// - Parameter languages: the Jobe languages this server offers, by Jobe id.
    static func parse(body: [UInt8], languages: [String: JobeLanguage]) throws(JobeError) -> JobeRunSpec {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]),
              let post = object as? [String: Any]
        else { throw .badRequest("Non-JSON post data received") }
        guard let run = post["run_spec"] as? [String: Any] else { throw .badRequest("No run_spec attribute found in post data") }
        guard let sourceCode = run["sourcecode"] as? String else {
            throw .badRequest("run_spec is missing the required attribute 'sourcecode'")
        }
        guard let languageValue = run["language_id"], !(languageValue is NSNull) else {
            throw .badRequest("run_spec is missing the required attribute 'language_id'")
        }
        let languageID = ((languageValue as? String) ?? "\(languageValue)").lowercased()
        guard let language = languages[languageID] else { throw .badRequest("Language '\(languageID)' is not known") }
        let parametersJSON = run["parameters"] as? [String: Any] ?? [:]
        let parameters = JobeParameters(json: parametersJSON, language: language)
        if parameters.cpuTime > JobeParameters.maximumCPUTime {
            throw .badRequest("cputime exceeds maximum allowed on this Jobe server (\(JobeParameters.maximumCPUTime) secs)")
        }
        var sourceFileName = run["sourcefilename"] as? String ?? ""
        if sourceFileName == "prog.java" { sourceFileName = "" }
        if !sourceFileName.isEmpty, !isLegalFileName(sourceFileName) {
            throw .badRequest("The sourcefilename for the run_spec is illegal")
        }
        if sourceFileName.isEmpty {
            sourceFileName = language.id == "java"
                ? JobeJava.inferredFileName(sourceCode) ?? "prog.java"
                : language.defaultSourceFile
        }
        let files = try parseFileList(run["file_list"])
        let input = run["input"] as? String ?? ""
        let debug = (run["debug"] as? Bool) ?? ((run["debug"] as? NSNumber)?.intValue ?? 0 != 0)
        return JobeRunSpec(
            language: language, sourceCode: sourceCode, sourceFileName: sourceFileName, input: input, files: files,
            parameters: parameters, debug: debug)
    }

    /// Jobe's file name rule: none of `<>:"/\|?*`, control bytes, 0x7F, 0xA0, 0xAD,
    /// `#[]@!$&'()+,;=`, `{}^~` or backquote, and no leading `.` or `-`.
    static func isLegalFileName(_ name: String) -> Bool {
        let illegal = Set("<>:\"/\\|?*#[]@!$&'()+,;={}^~`".unicodeScalars.map(\.value))
        guard let first = name.unicodeScalars.first, first != ".", first != "-" else { return false }
        for scalar in name.unicodeScalars {
            let value = scalar.value
            if value < 0x20 || value == 0x7F || value == 0xA0 || value == 0xAD || illegal.contains(value) { return false }
        }
        return true
    }

    private static func parseFileList(_ value: Any?) throws(JobeError) -> [JobeFileReference] {
        guard let value, !(value is NSNull) else { return [] }
        guard let entries = value as? [Any] else { throw .badRequest("Invalid file specifier: \(describe(value))") }
        var files: [JobeFileReference] = []
        for entry in entries {
            guard let items = entry as? [Any], (2...3).contains(items.count),
                  let id = items[0] as? String, let name = items[1] as? String,
                  items.count == 2 || items[2] is String
            else { throw .badRequest("Invalid file specifier: \(describe(entry))") }
            let idIsValid = id.utf8.count >= 8 && id.utf8.allSatisfy(isASCIIAlphanumeric)
            let nameCore = name.utf8.filter { $0 != UInt8(ascii: "-") && $0 != UInt8(ascii: "_") && $0 != UInt8(ascii: ".") }
            let nameIsValid = !nameCore.isEmpty && nameCore.allSatisfy(isASCIIAlphanumeric)
            guard idIsValid, nameIsValid else { throw .badRequest("Invalid file specifier: \(describe(entry))") }
            files.append(JobeFileReference(id: id, name: name))
        }
        return files
    }

    static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    private static func describe(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject([value]),
              let data = try? JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes])
        else { return String(describing: value) }
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
