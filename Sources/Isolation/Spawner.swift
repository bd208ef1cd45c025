import CIsolation
import Glibc
import Synchronization

/// A slot's spawner thread (see `cis_spawner` in CIsolation.h): it stays in the slot's cgroup v1
/// groups and network namespace, so the sandboxes it clones start there.
final class SlotSpawner: @unchecked Sendable {
    // @unchecked: the C object serialises requests with its own mutex; `spawner` itself is
    // immutable after init, and `stopped` guards its destruction.
    private let spawner: OpaquePointer
    private let stopped = Atomic<Bool>(false)

    /// Kernel thread id (what appears in the slot groups' `tasks` files).
    let threadID: pid_t

    /// - Parameters:
    ///   - tasksDescriptors: v1 `tasks` files to join (empty on v2).
    ///   - networkNamespace: fd of the slot's network namespace.
    init(tasksDescriptors: [Int32], networkNamespace: Int32) throws(SandboxError) {
        var created: OpaquePointer?
        let rc = tasksDescriptors.withUnsafeBufferPointer {
            cis_spawner_create($0.baseAddress, $0.count, networkNamespace, &created)
        }
        guard rc == 0, let created else {
            throw SandboxError(.cgroupUnavailable, "start the spawner thread (join its cgroups and network namespace)", errno: rc)
        }
        spawner = created
        threadID = cis_spawner_tid(created)
    }

    /// Spawns on the spawner thread; see `cis_spawn`. Must not be called after ``stop()``.
    func spawn(_ plan: inout cis_spawn_plan, _ result: inout cis_spawn_result) -> Int32 {
        precondition(!stopped.load(ordering: .acquiring), "spawn on a stopped spawner")
        return cis_spawner_spawn(spawner, &plan, &result)
    }

    /// Moves the thread into other v1 groups.
    func join(tasksDescriptors: [Int32]) throws(SandboxError) {
        let rc = tasksDescriptors.withUnsafeBufferPointer { cis_spawner_join(spawner, $0.baseAddress, $0.count) }
        if rc != 0 { throw SandboxError(.cgroupUnavailable, "move the spawner thread between cgroups", errno: rc) }
    }

    /// Ends the thread (it leaves its cgroups and network namespace as it exits). Idempotent.
    func stop() {
        if !stopped.exchange(true, ordering: .acquiringAndReleasing) { cis_spawner_destroy(spawner) }
    }

    deinit { stop() }
}
