import Foundation
import JobStore
import Synchronization

/// A directory under /tmp (real disk) removed when the value is released.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("jobstore-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A clock the test moves by hand, so lease expiry and backoff do not depend on sleeping.
final class ManualClock: Sendable {
    private let milliseconds = Atomic<Int64>(1_800_000_000_000)

    var now: Timestamp { Timestamp(millisecondsSince1970: milliseconds.load(ordering: .relaxed)) }

    func advance(by delta: Int64) { milliseconds.add(delta, ordering: .relaxed) }
}

/// A fresh store in its own directory, with a manual clock.
struct Fixture {
    let directory: TemporaryDirectory
    let clock = ManualClock()
    let store: SQLiteJobStore

    init(_ adjust: (inout SQLiteJobStore.Configuration) -> Void = { _ in }) throws {
        directory = try TemporaryDirectory()
        var configuration = SQLiteJobStore.Configuration(path: directory.file("jobs.sqlite"))
        let clock = clock
        configuration.clock = { clock.now }
        adjust(&configuration)
        store = try SQLiteJobStore(configuration: configuration)
    }

    var path: String { store.configuration.path }
}

func job(_ text: String = "print(1)", language: String = "python", priority: Int = 0) -> NewJob {
    NewJob(language: language, priority: priority, request: Data(text.utf8))
}

/// Output bytes that are not valid UTF-8, to prove nothing is converted to text.
let binaryOutput = Data([0x00, 0xFF, 0xFE, 0x80, 0x0A, 0xC3, 0x28, 0x00])
