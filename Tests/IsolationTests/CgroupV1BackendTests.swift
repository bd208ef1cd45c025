import Foundation
import Glibc
import Synchronization
import Testing

@testable import Isolation

/// The cgroup v1 backend's bookkeeping of descriptors, against a cgroupfs double whose files
/// open as real descriptors (the real-kernel v1 paths run in every sandbox test on this host).
@Suite("cgroup v1 backend (descriptors)")
struct CgroupV1BackendTests {
    /// Groups are paths; each file opens a temporary file of its own (so a descriptor still
    /// open is told apart from its number reused elsewhere), and one chosen `tasks` open fails.
    final class DescriptorTrackingFilesystem: CgroupFilesystem {
        struct State {
            var groups: Set<String> = []
            var tasksOpens = 0
            var opened: [(fd: Int32, path: String)] = []
        }
        let state = Mutex(State())
        let failingTasksOpen: Int
        let directory: String

        init(failingTasksOpen: Int) {
            self.failingTasksOpen = failingTasksOpen
            directory = NSTemporaryDirectory() + "cgroup-v1-fds-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            mkdir(directory, 0o700)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        func makeGroup(_ path: String) throws(SandboxError) { _ = state.withLock { $0.groups.insert(path) } }
        func removeGroup(_ path: String) throws(SandboxError) { _ = state.withLock { $0.groups.remove(path) } }
        func write(_ path: String, _ value: String) throws(SandboxError) {}
        func read(_ path: String) throws(SandboxError) -> String { "" }
        func exists(_ path: String) -> Bool { state.withLock { $0.groups.contains(path) } }

        func openDescriptor(_ path: String, flags: Int32) throws(SandboxError) -> Int32 {
            let (fail, number) = state.withLock { state -> (Bool, Int) in
                if path.hasSuffix("/tasks") { state.tasksOpens += 1 }
                return (path.hasSuffix("/tasks") && state.tasksOpens == failingTasksOpen, state.opened.count)
            }
            if fail { throw SandboxError(.cgroupUnavailable, "open \(path)", errno: EACCES) }
            let file = "\(directory)/\(number)"
            let fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SandboxError(.filesystem, "open \(file)", errno: errno) }
            state.withLock { $0.opened.append((fd, file)) }
            return fd
        }

        /// The files this double opened whose descriptors are still open.
        var stillOpen: [String] {
            state.withLock { $0.opened }.compactMap { fd, file in
                var target = [CChar](repeating: 0, count: 4096)
                let length = readlink("/proc/self/fd/\(fd)", &target, target.count - 1)
                guard length > 0 else { return nil }
                return String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == file ? file : nil
            }
        }
    }

    func backend(_ filesystem: DescriptorTrackingFilesystem) throws -> CgroupV1Backend {
        try CgroupV1Backend(filesystem: filesystem, hierarchies: ["memory": "/m", "pids": "/p", "cpuacct": "/c"], parent: "test")
    }

    /// Every `tasks` open in turn fails (three parents, then three per slot): set-up fails, and
    /// after the tear-down its caller runs nothing it opened is left open.
    @Test(arguments: 1...9)
    func aFailedSetUpLeavesNoDescriptorOpen(failingTasksOpen: Int) throws {
        let filesystem = DescriptorTrackingFilesystem(failingTasksOpen: failingTasksOpen)
        let cgroups = try backend(filesystem)
        #expect(throws: SandboxError.self) { try cgroups.setUp(slots: 2) }
        cgroups.tearDown()
        #expect(filesystem.stillOpen == [])
    }

    @Test func aSuccessfulSetUpKeepsItsDescriptorsUntilTearDown() throws {
        let filesystem = DescriptorTrackingFilesystem(failingTasksOpen: 0)
        let cgroups = try backend(filesystem)
        try cgroups.setUp(slots: 2)
        // Three parents' and six slot groups' tasks files, and the slots' kept interface files.
        #expect(filesystem.stillOpen.count == filesystem.state.withLock { $0.opened.count })
        #expect(cgroups.spawnerJoinDescriptors(slot: 1).count == 3)
        cgroups.tearDown()
        #expect(filesystem.stillOpen == [])
    }
}
