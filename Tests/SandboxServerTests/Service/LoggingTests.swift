import Foundation
import JobStore
import Logging
import Testing

@testable import SandboxServer

/// A log file in a directory of its own, removed with the value.
final class TemporaryLog {
    let directory: String
    var path: String { directory + "/server.log" }

    init() throws {
        directory = NSTemporaryDirectory() + "ss-log-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func lines(at path: String? = nil) -> [String] {
        let text = (try? String(contentsOfFile: path ?? self.path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// Each line parsed as a JSON object (a line that is not one fails the test).
    func objects(at path: String? = nil) throws -> [[String: Any]] {
        try lines(at: path).map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestFailure("not a JSON object: \(line)")
            }
            return object
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

@Suite struct LogFormatTests {
    private let date = Date(timeIntervalSince1970: 1_795_000_000.123)

    @Test func jsonLineParsesWithTheExpectedKeysAndEscapes() throws {
        let entry = LogEntry(
            date: date, level: .warning, label: "sandbox-server",
            message: "quote \" backslash \\ newline \n tab \t bell \u{07} del \u{7F} ünïcödé ☃",
            metadata: ["job": "abc", "nested": ["id": "7", "deeper": ["x": "1"]], "list": ["a", "b\"c"],
                       "message": "collides", "count": .stringConvertible(42)])
        let line = entry.jsonLine
        #expect(!line.contains("\n"), "one line per entry")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["ts"] as? String == "2026-11-18T11:06:40.123Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["label"] as? String == "sandbox-server")
        #expect(object["message"] as? String == entry.message, "every character survives the round trip")
        #expect(object["job"] as? String == "abc")
        #expect(object["nested.id"] as? String == "7")
        #expect(object["nested.deeper.x"] as? String == "1")
        #expect(object["list"] as? [String] == ["a", "b\"c"])
        #expect(object["metadata.message"] as? String == "collides", "metadata never overwrites the message")
        #expect(object["count"] as? String == "42")
        #expect(Set(object.keys) == ["ts", "level", "label", "message", "job", "nested.id", "nested.deeper.x", "list",
                                      "metadata.message", "count"])
    }

    @Test func textLineIsOneLineWithQuotedValues() {
        let entry = LogEntry(date: date, level: .info, label: "sandbox-server", message: "two\nlines",
                             metadata: ["b": "plain", "a": "has space", "c": "", "d": "x=y"])
        #expect(entry.textLine == #"2026-11-18T11:06:40.123Z info sandbox-server: two\nlines a="has space" b=plain c="" d="x=y""#)
    }

    @Test func timestampsAreRFC3339WithMilliseconds() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_000_000_000.5)) == "2001-09-09T01:46:40.500Z")
    }

    @Test func handlerFollowsTheOutputsLevelAndFormatAndReopensAfterRename() throws {
        let log = try TemporaryLog()
        let output = try LogOutput(LogOutput.Options(format: .text, level: .notice, path: log.path))
        let logger = Logger(label: "test") { ServerLogHandler(label: $0, output: output) }
        logger.info("dropped: below notice")
        logger.notice("kept as text")
        #expect(log.lines().count == 1)
        #expect(log.lines().first?.hasSuffix("notice test: kept as text") == true)

        // logrotate: rename, then reopen (what SIGHUP does); lines go to a new file.
        try FileManager.default.moveItem(atPath: log.path, toPath: log.path + ".1")
        logger.notice("still to the renamed file")
        try output.apply(LogOutput.Options(format: .json, level: .debug, path: log.path))
        logger.debug("now json", metadata: ["k": "v"])
        #expect(log.lines(at: log.path + ".1").count == 2)
        let objects = try log.objects()
        #expect(objects.count == 1)
        #expect(objects.first?["message"] as? String == "now json")
        #expect(objects.first?["k"] as? String == "v")

        #expect(throws: LogOutput.OpenError.self) {
            try output.apply(LogOutput.Options(path: log.directory + "/missing-directory/server.log"))
        }
        logger.debug("a failed reopen changes nothing")
        #expect(try log.objects().count == 2)
    }
}

@Suite struct OperationsSettingsTests {
    @Test func durationsAcceptUnitsAndZero() throws {
        let resolved = try ServerSettings.resolve(
            arguments: ["--job-retention", "7d", "--file-retention", "0", "--shutdown-grace-period", "90"], environment: [:]).settings
        #expect(resolved.jobRetentionSeconds == 7 * 86_400)
        #expect(resolved.fileRetentionSeconds == 0)
        #expect(resolved.shutdownGracePeriodSeconds == 90)
        #expect(try ServerSettings.duration("15m", "x", in: 0...10_000) == 900)
        #expect(try ServerSettings.duration("2h", "x", in: 0...10_000) == 7_200)
        #expect(throws: ServerSettings.SettingError.self) { try ServerSettings.duration("7 days", "x", in: 0...1_000_000) }
        #expect(throws: ServerSettings.SettingError.self) { try ServerSettings.duration("-1s", "x", in: 0...1_000_000) }
    }

    @Test func invalidLogSettingsGiveOneClearError() {
        do {
            _ = try ServerSettings.resolve(arguments: [], environment: ["SANDBOX_SERVER_LOG_LEVEL": "loud"])
            Issue.record("an unknown level must be refused")
        } catch {
            #expect(error.description == "SANDBOX_SERVER_LOG_LEVEL: log-level must be one of trace, debug, info, notice, warning, error, critical, not \"loud\"")
        }
        do {
            _ = try ServerSettings.resolve(arguments: ["--config", "c.json"], environment: [:]) { _ in Data(#"{"log-format": "xml"}"#.utf8) }
            Issue.record("an unknown format must be refused")
        } catch {
            #expect(error.description == #""log-format" in the config file: log-format must be text or json, not "xml""#)
        }
    }

    @Test func givenValuesShowWhatAReloadChanges() throws {
        let first = try ServerSettings.resolve(arguments: ["--port", "1"], environment: ["SANDBOX_SERVER_LOG_LEVEL": "debug"]).given
        #expect(first == ["port": "1", "log-level": "debug"])
        // The file is read once per resolution, for the settings and the given values alike.
        var reads = 0
        let fromFile = try ServerSettings.resolve(arguments: ["--config", "c.json"], environment: ["SANDBOX_SERVER_PORT": "2"]) { _ in
            reads += 1
            return Data(#"{"port": 3, "workers": 5}"#.utf8)
        }
        #expect(reads == 1)
        #expect(fromFile.given == ["config": "c.json", "port": "2", "workers": "5"])
        #expect(fromFile.settings.port == 2 && fromFile.settings.workers == 5)
    }
}

@Suite struct RetentionSweeperTests {
    private func store(_ directory: TemporaryLog) throws -> SQLiteJobStore {
        try SQLiteJobStore(path: directory.directory + "/jobs.sqlite3")
    }

    @Test func oldFinishedJobsAndFilesGoQueuedAndRunningStay() throws {
        let directory = try TemporaryLog()
        let store = try store(directory)
        let finished = try store.insert(NewJob(language: "bash", request: Data("old".utf8))).id
        _ = try store.claimNext(worker: "w", leaseMilliseconds: 60_000)
        try store.complete(id: finished, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        let cancelled = try store.insert(NewJob(language: "bash", request: Data("cancelled".utf8))).id
        _ = try store.cancel(id: cancelled, webhook: nil)
        let running = try store.insert(NewJob(language: "bash", request: Data("running".utf8))).id
        _ = try store.claimNext(worker: "w", leaseMilliseconds: 600_000)
        let queued = try store.insert(NewJob(language: "bash", request: Data("queued".utf8))).id
        try store.putFile(id: "file", contents: Data("contents".utf8))

        let service = JobService(store: store, validator: JobRequestValidator(registry: try LanguageRegistry.embedded(), limits: .standard))
        let cache = service.finishedJobs
        let sweeper = RetentionSweeper(store: store, policy: .init(jobRetentionSeconds: 60, fileRetentionSeconds: 3_600),
                                       finishedJobs: cache, logger: Logger(label: "test"))
        #expect(try sweeper.sweep() == RetentionSweeper.Report(), "nothing is old yet")
        _ = try service.renderedJob(id: finished.rawValue)
        #expect(cache[finished.rawValue] != nil, "finished jobs are cached once rendered")

        let later = JobStore::Timestamp.now.adding(milliseconds: 61_000)
        let report = try sweeper.sweep(now: later)
        #expect(report.jobsDeleted == 2)
        #expect(report.filesDeleted == 0, "the file's retention is an hour")
        #expect(try store.job(id: finished) == nil)
        #expect(try store.job(id: cancelled) == nil)
        #expect(cache[finished.rawValue] == nil, "a purged job is not served from the rendered cache")
        #expect(try store.job(id: running)?.state == .running)
        #expect(try store.job(id: queued)?.state == .queued)

        #expect(try sweeper.sweep(now: JobStore::Timestamp.now.adding(milliseconds: 3_601_000)).filesDeleted == 1)
        #expect(try store.fileInfo(id: "file") == nil)
        #expect(try store.job(id: running)?.state == .running, "running jobs are never purged, however old")

        sweeper.policy = .init(jobRetentionSeconds: 0, fileRetentionSeconds: 0)
        let keptForever = try store.insert(NewJob(language: "bash", request: Data())).id
        _ = try store.cancel(id: keptForever, webhook: nil)
        #expect(try sweeper.sweep(now: JobStore::Timestamp.now.adding(milliseconds: 100 * 86_400_000)).jobsDeleted == 0)
        #expect(try store.job(id: keptForever) != nil, "0 keeps jobs forever")
    }

    @Test func databaseFileStaysBoundedAcrossInsertAndPurgeCycles() throws {
        let directory = try TemporaryLog()
        let store = try store(directory)
        let sweeper = RetentionSweeper(store: store, policy: .init(jobRetentionSeconds: 1, fileRetentionSeconds: 1),
                                       finishedJobs: nil, logger: Logger(label: "test"))
        let payload = Data(repeating: 0x61, count: 16 * 1024)
        var sizes: [Int64] = []
        for cycle in 0..<6 {
            for index in 0..<150 {
                let id = try store.insert(NewJob(language: "bash", request: payload)).id
                _ = try store.claimNext(worker: "w", leaseMilliseconds: 60_000)
                try store.complete(id: id, worker: "w", result: JobResult(verdict: "accepted", tests: [
                    TestResult(verdict: "accepted", stdout: payload)]), webhook: nil)
                try store.putFile(id: "file-\(cycle)-\(index)", contents: payload)
            }
            let report = try sweeper.sweep(now: JobStore::Timestamp.now.adding(milliseconds: 2_000))
            #expect(report.jobsDeleted == 150)
            #expect(report.filesDeleted == 150)
            #expect(report.pagesFreed > 0, "purged pages go back to the file system")
            let stats = try store.storageStats()
            #expect(stats.freePages == 0)
            sizes.append(stats.fileBytes)
        }
        // About 7 MB is written per cycle; after a purge and vacuum the file is back to its schema.
        #expect(sizes.allSatisfy { $0 < 1 << 20 }, "sizes after each purge: \(sizes)")
        #expect(sizes.last! <= sizes.first! + 64 * 1024, "no growth from cycle to cycle: \(sizes)")
    }
}
