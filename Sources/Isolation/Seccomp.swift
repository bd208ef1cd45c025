import CIsolation
import Glibc

/// The seccomp deny-list as compiled BPF, built once at start-up (libseccomp allocates, so it
/// must never run in a child) and shared read-only by every spawn.
final class SeccompProgram: Sendable {
    /// Immutable after init; only ever read (by the child, from its snapshot).
    nonisolated(unsafe) let instructions: UnsafeMutableRawPointer
    let length: UInt16

    init() throws(SandboxError) {
        var program: UnsafeMutableRawPointer?
        var length: UInt16 = 0
        let rc = cis_build_seccomp_filter(&program, &length)
        guard rc == 0, let program else {
            throw SandboxError(.seccompUnavailable, "building the seccomp filter with libseccomp failed; install libseccomp2", errno: -rc)
        }
        instructions = program
        self.length = length
    }

    deinit { free(instructions) }
}
