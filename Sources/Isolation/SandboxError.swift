import Glibc

/// Why the sandbox could not start or could not carry out an operation.
public struct SandboxError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Code: String, Sendable {
        /// The server is not running as root (it needs CAP_SYS_ADMIN for mounts and namespaces).
        case notRoot = "not_root"
        /// A cgroup controller, mount or file the sandbox needs is missing.
        case cgroupUnavailable = "cgroup_unavailable"
        /// Namespaces cannot be created here.
        case namespacesUnavailable = "namespaces_unavailable"
        /// seccomp is not available or the filter could not be built.
        case seccompUnavailable = "seccomp_unavailable"
        /// A host filesystem operation failed.
        case filesystem
        /// A spec was invalid (bad file name, relative executable, …).
        case invalidSpec = "invalid_spec"
        /// Any other system call failure.
        case system
    }

    /// The kind of failure.
    public var code: Code
    /// What was being done, and how to fix it when that is known.
    public var message: String
    /// The errno of the failing call, if any.
    public var errno: Int32?

    /// Creates an error.
    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String {
        if let errno { return "\(message): \(String(cString: strerror(errno))) (errno \(errno))" }
        return message
    }
}
