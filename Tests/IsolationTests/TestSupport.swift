import Glibc
import Synchronization
import Testing

@testable import Isolation

/// Real-sandbox tests need root (namespaces, mounts, cgroups).
let isRoot = getuid() == 0

private let fixtureCounter = Atomic<Int>(0)

/// A sandbox with its own work root, cgroup parent and uids, so suites can run side by side,
/// closed (everything removed) when the fixture goes away.
final class SandboxFixture {
    let sandbox: Sandbox
    let name: String

    init(slots: Int = 2, userNamespace: Bool = false) throws {
        let number = fixtureCounter.add(1, ordering: .relaxed).newValue
        name = "sandbox-server-test-\(getpid())-\(number)"
        // Distinct uid ranges per fixture: a leftover process of one test can never be
        // mistaken for another's.
        let firstUID = UInt32(61_000 + (Int(getpid()) % 50) * 200 + number * 8)
        sandbox = try Sandbox(configuration: SandboxConfiguration(
            slots: slots, workRoot: "/run/\(name)", firstUID: firstUID, cgroup: CgroupOptions(parent: name),
            userNamespace: userNamespace))
    }

    deinit { sandbox.close() }

    /// Runs Python code in the sandbox.
    func python(_ code: String, limits: ResourceLimits = ResourceLimits(), stdin: StandardInput = .empty,
                network: Bool = false, box: BoxMode = .fresh, files: [BoxFile] = []) -> RunResult {
        sandbox.run(RunSpec(executable: "/usr/bin/python3", arguments: ["-c", code], files: files, box: box,
                            stdin: stdin, limits: limits, network: network))
    }

    /// uids of the fixture's slots.
    var uids: ClosedRange<UInt32> {
        sandbox.configuration.firstUID...(sandbox.configuration.firstUID + UInt32(sandbox.configuration.slots) - 1)
    }
}

extension RunResult {
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Host processes whose real uid is in `uids` (leftovers of a run would show up here).
func hostProcesses(withUIDs uids: ClosedRange<UInt32>) -> [Int32] {
    guard let directory = opendir("/proc") else { return [] }
    defer { closedir(directory) }
    var found: [Int32] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        guard let pid = Int32(name) else { continue }
        var info = stat()
        if stat("/proc/\(pid)", &info) == 0, uids.contains(info.st_uid) { found.append(pid) }
    }
    return found
}

/// Mount points below `prefix` in the host's mount table.
func hostMounts(under prefix: String) -> [String] {
    guard let text = try? System.readFile("/proc/self/mountinfo", limit: 1 << 22) else { return [] }
    return text.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count > 4 else { return nil }
        let point = System.unescapeMountPath(fields[4])
        return point == prefix || point.hasPrefix(prefix + "/") ? point : nil
    }
}
