import Foundation

/// A job shown as a Judge0 submission: the 35 attributes of v1.13.1, from which a request's
/// `fields` picks.
struct Judge0SubmissionView: Sendable {
    /// Every attribute `fields=*` returns, in Judge0's order; no other key is ever written
    /// (the Python SDK refuses unknown ones).
    static let allFields = [
        "source_code", "language_id", "stdin", "expected_output", "stdout", "stderr", "compile_output", "message",
        "status_id", "created_at", "finished_at", "time", "wall_time", "memory", "token", "number_of_runs",
        "cpu_time_limit", "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
        "max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit", "max_file_size", "exit_code", "exit_signal", "compiler_options",
        "command_line_arguments", "redirect_stderr_to_stdout", "callback_url", "additional_files", "enable_network",
        "status", "language",
    ]
    /// What a request without `fields` gets.
    static let defaultFields = ["token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"]
    /// Attributes holding program text, base64-encoded with `base64_encoded=true`.
    static let textFields: Set<String> = ["source_code", "stdin", "expected_output", "stdout", "stderr", "compile_output", "message"]

    /// Why a submission cannot be shown.
    enum RenderError: Error, Equatable {
        /// `fields` named attributes that do not exist.
        case invalidFields([String])
        /// A text attribute is not UTF-8 and base64 was not asked for.
        case notUTF8
    }

    let view: JobView
    let request: JobRequest?
    let settings: Judge0SubmissionSettings?
    /// Judge0 id and display name of the job's language.
    let language: (id: Int, name: String)?

    /// The requested attribute names: `nil` or empty gives the defaults, `*` all of them.
    static func selectedFields(_ parameter: String?) throws(RenderError) -> [String] {
        guard let parameter, !parameter.isEmpty else { return defaultFields }
        if parameter.trimmingCharacters(in: .whitespaces) == "*" { return allFields }
        let names = parameter.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let unknown = names.filter { !allFields.contains($0) }
        guard unknown.isEmpty else { throw .invalidFields(unknown) }
        return names
    }

    /// The submission with `fields`, text attributes base64-encoded when `base64Encoded`.
    func render(fields: [String], base64Encoded: Bool) throws(RenderError) -> Judge0JSON {
        var pairs: [(String, Judge0JSON)] = []
        for field in fields where !pairs.contains(where: { $0.0 == field }) {
            if Self.textFields.contains(field) {
                guard let bytes = text(field) else { pairs.append((field, .null)); continue }
                if base64Encoded {
                    pairs.append((field, .string(Judge0Base64.encode(bytes))))
                } else {
                    guard let string = String(validating: bytes, as: UTF8.self) else { throw .notUTF8 }
                    pairs.append((field, .string(string)))
                }
            } else {
                pairs.append((field, value(field)))
            }
        }
        return .object(pairs)
    }

    private var outcome: Judge0Outcome { Judge0Outcome(view: view) }
    /// The runs that took place (one per `number_of_runs`, stopping at the first failure).
    private var runs: [TestResultView] { view.tests.filter { $0.verdict != .skipped && $0.cpuTimeMs != nil } }
    private var decidingRun: TestResultView? {
        guard view.state == .finished, view.verdict != .compileError else { return nil }
        return Judge0Outcome.decidingTest(of: view)
    }

    private func text(_ field: String) -> [UInt8]? {
        switch field {
        case "source_code":
            if settings?.languageID == Judge0MultiFileProgram.judge0ID { return nil }  // the program is the archive
            guard let file = request?.files?.first else { return request?.source.map { Array($0.utf8) } }
            return file.encoding == .base64 ? Base64Text.decode(file.content).map(Array.init) : Array(file.content.utf8)
        case "stdin": return request?.stdin.map { Array($0.utf8) }
        case "expected_output": return request?.tests?.first?.expectedOutput.map { Array($0.utf8) }
        case "stdout":
            guard let run = decidingRun else { return nil }
            var bytes = Self.bytes(run.stdout, run.stdoutEncoding) ?? []
            if settings?.redirectStderrToStdout == true { bytes += Self.bytes(run.stderr, run.stderrEncoding) ?? [] }
            return bytes.isEmpty ? nil : bytes  // Judge0 stores empty output as null
        case "stderr":
            guard let run = decidingRun, settings?.redirectStderrToStdout != true else { return nil }
            let bytes = Self.bytes(run.stderr, run.stderrEncoding) ?? []
            return bytes.isEmpty ? nil : bytes
        case "compile_output":
            guard let compile = view.compile else { return nil }
            var bytes = Self.bytes(compile.output, compile.outputEncoding) ?? []
            if bytes.isEmpty && view.verdict == .compileError, let message = view.message { bytes = Array(message.utf8) }
            return bytes.isEmpty ? nil : bytes
        case "message": return outcome.message.map { Array($0.utf8) }
        default: return nil
        }
    }

    private static func bytes(_ text: String?, _ encoding: TextEncoding?) -> [UInt8]? {
        guard let text else { return nil }
        return encoding == .base64 ? Base64Text.decode(text).map(Array.init) : Array(text.utf8)
    }

    private func value(_ field: String) -> Judge0JSON {
        let settings = self.settings
        func seconds(_ milliseconds: Int?) -> Judge0JSON { milliseconds.map { .string(Judge0Format.seconds(milliseconds: $0)) } ?? .null }
        func average(_ values: [Int]) -> Int? { values.isEmpty ? nil : values.reduce(0, +) / values.count }
        switch field {
        case "language_id": return .optional(language?.id)
        case "status_id": return .integer(outcome.status.rawValue)
        case "status": return outcome.status.json
        case "language":
            guard let language else { return .null }
            return .object([("id", .integer(language.id)), ("name", .string(language.name))])
        case "created_at": return Judge0Format.datetime(view.createdAt)
        case "finished_at": return Judge0Format.datetime(view.state == .finished || view.state == .cancelled ? view.finishedAt : nil)
        // number_of_runs: Judge0 reports the average time and memory of the runs.
        case "time": return seconds(average(runs.compactMap(\.cpuTimeMs)))
        case "wall_time": return seconds(average(runs.compactMap(\.wallTimeMs)))
        case "memory": return .optional(average(runs.compactMap(\.memoryBytes)).map { $0 / 1024 })
        case "token": return .string(view.id)
        case "number_of_runs": return .optional(settings?.numberOfRuns)
        case "cpu_time_limit": return seconds(settings?.cpuTimeLimitMs)
        case "cpu_extra_time": return seconds(settings?.cpuExtraTimeMs)
        case "wall_time_limit": return seconds(settings?.wallTimeLimitMs)
        case "memory_limit": return .optional(settings?.memoryLimitKB)
        case "stack_limit": return .optional(settings?.stackLimitKB)
        case "max_processes_and_or_threads": return .optional(settings?.maxProcessesAndOrThreads)
        case "enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit":
            return settings == nil ? .null : .bool(false)
        case "max_file_size": return .optional(settings?.maxFileSizeKB)
        case "exit_code":
            // Judge0 reports 0 when the sandbox gives no code (a signal).
            guard let run = decidingRun else { return .null }
            return .integer(run.exitCode ?? 0)
        case "exit_signal": return .optional(decidingRun?.signal)
        case "compiler_options": return .optional(settings?.compilerOptions)
        case "command_line_arguments": return .optional(settings?.commandLineArguments)
        case "redirect_stderr_to_stdout": return settings.map { .bool($0.redirectStderrToStdout) } ?? .null
        case "callback_url": return .optional(settings?.callbackURL)
        case "additional_files":
            // Language 89 carries the archive as a file; any other language as the native archive.
            let encoded = settings?.languageID == Judge0MultiFileProgram.judge0ID
                ? request?.files?.first(where: { $0.name == Judge0MultiFileProgram.archiveName })?.content
                : request?.archive
            guard let encoded, let bytes = Base64Text.decode(encoded) else { return .null }
            return .string(Judge0Base64.encode(Array(bytes)))
        case "enable_network": return settings.map { .bool($0.enableNetwork) } ?? .null
        default: return .null
        }
    }
}
