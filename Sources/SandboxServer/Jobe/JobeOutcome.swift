import Foundation
import Isolation

/// Jobe's outcome codes.
enum JobeOutcome: Int, Sendable, Equatable {
    case compileError = 11
    case runtimeError = 12
    case timeLimit = 13
    case ok = 15
    case memoryLimit = 17
    case illegalSystemCall = 19
    case internalError = 20
    case overload = 21
}

/// The body of a `POST runs` answer.
/// Encoded by ``JobeRoutes/result(_:)`` in Jobe's key order.
struct JobeRunResult: Sendable, Equatable {
    /// Jobe's run id: null normally, `"0"` for the overload answer.
    var runID: String?
    var outcome: JobeOutcome
    var cmpinfo: String
    var stdout: String
    var stderr: String

    /// What Jobe answers when no worker frees up in time (HTTP 200, not an error status).
    static let overload = JobeRunResult(runID: "0", outcome: .overload, cmpinfo: "", stdout: "", stderr: "")
}

/// Jobe's rules for turning a sandboxed step into text and an outcome.
enum JobeJudging {
    /// Jobe's sanitising of output: valid UTF-8 is kept as is; otherwise every byte below 0x20
    /// (except newline, carriage return and tab) and above 0x7E becomes the four characters
    /// `\xNN`, so the answer is always valid JSON text.
    static func sanitise(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var result = ""
        result.reserveCapacity(bytes.count)
        let hex = Array("0123456789abcdef")
        for byte in bytes {
            if byte == 0x0A || byte == 0x0D || byte == 0x09 || (byte >= 0x20 && byte <= 0x7E) {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                result += "\\x"
                result.append(hex[Int(byte >> 4)])
                result.append(hex[Int(byte & 0x0F)])
            }
        }
        return result
    }

    /// The lines Jobe's supervisor (runguard) adds to a step's stderr when it stops the
    /// program or sees it die by a signal; outcome rules below match on them.
    static func supervisorWarnings(_ result: RunResult) -> String {
        switch result.status {
        case .timeLimit:
            return result.timeLimitKind == .wall ? "timelimit exceeded (wall time)\n" : "timelimit exceeded (cpu time)\n"
        case .internalError:
            return "sandbox: internal error: \(result.message ?? "unknown")\n"
        default:
            if let signal = result.signal { return "sandbox: warning: command terminated with signal \(signal)\n" }
            return ""
        }
    }

    /// Jobe's run-phase decision on the (filtered) stderr: a time-limit message gives 13 with
    /// stderr cleared; any other stderr gives 12 (a segmentation-fault warning is cleared but
    /// stays 12); none gives 15, whatever the exit status.
    static func runOutcome(stderr: String) -> (outcome: JobeOutcome, stderr: String) {
        if stderr.firstMatch(of: /time ?limit exceeded/) != nil { return (.timeLimit, "") }
        if stderr.contains("warning: command terminated with signal 11") { return (.runtimeError, "") }
        if !stderr.isEmpty { return (.runtimeError, stderr) }
        return (.ok, stderr)
    }
}
