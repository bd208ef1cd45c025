import CIsolation
import Glibc
import Synchronization

/// Lets another thread end a run early: ``cancel()`` kills the run's processes (as the wall-time
/// limit does: SIGKILL through the pidfd, then every process of its cgroup) and the run returns
/// with status ``RunStatus/cancelled``.
///
/// One token may cover several runs (a job's compile and all its tests): once cancelled, a run
/// that has not started yet returns `cancelled` at once without starting the program. The token
/// owns a pipe whose read end the supervisor polls next to the program's pipes, so cancelling
/// wakes it immediately instead of at its next timeout.
public final class RunCancellation: Sendable {
    private let cancelled = Atomic<Bool>(false)
    /// Readable once cancelled; -1 if no pipe could be made (then the supervisor falls back to
    /// checking ``isCancelled`` at least every 50 ms).
    let wakeDescriptor: Int32
    private let signalDescriptor: Int32

    /// A token that is not cancelled.
    public init() {
        var fds: [Int32] = [-1, -1]
        if cis_pipe_cloexec(&fds) == 0 {
            wakeDescriptor = fds[0]
            signalDescriptor = fds[1]
            _ = fcntl(signalDescriptor, F_SETFL, O_NONBLOCK)
        } else {
            wakeDescriptor = -1
            signalDescriptor = -1
        }
    }

    deinit {
        if wakeDescriptor >= 0 { Glibc.close(wakeDescriptor) }
        if signalDescriptor >= 0 { Glibc.close(signalDescriptor) }
    }

    /// Whether ``cancel()`` was called.
    public var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    /// Cancels the runs using this token (idempotent, safe from any thread).
    public func cancel() {
        guard !cancelled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // One byte makes the read end readable for good (nobody reads it); the pipe never fills.
        if signalDescriptor >= 0 {
            var byte: UInt8 = 1
            _ = Glibc.write(signalDescriptor, &byte, 1)
        }
    }
}
