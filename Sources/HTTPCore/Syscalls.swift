import CHTTPCoreShims
import Glibc

/// A failed system call: the operation and the errno it left, captured at once.
public struct SocketError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The errno value.
    public let errno: Int32
    /// The call that failed (`"bind"`, `"epoll_wait"`, …).
    public let operation: String

    /// An error for `operation` with the given errno.
    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    /// `"bind: Address already in use (errno 98)"`.
    public var description: String { "\(operation): \(String(validatingCString: strerror(errno)) ?? "?") (errno \(errno))" }
}

/// Thin throwing wrappers: each reads errno immediately after the call.
enum Syscall {
    @inline(__always)
    static func check(_ result: Int32, _ operation: String) throws(SocketError) -> Int32 {
        if result < 0 { throw SocketError(errno: Glibc.errno, operation: operation) }
        return result
    }

    static func socket(family: Int32) throws(SocketError) -> Int32 {
        try check(Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0), "socket")
    }

    static func epollCreate() throws(SocketError) -> Int32 { try check(chttp_epoll_create(), "epoll_create1") }

    static func eventFD() throws(SocketError) -> Int32 { try check(chttp_eventfd(), "eventfd") }

    /// Monotonic clock in nanoseconds (deadlines).
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Writes all of `bytes`, waiting up to `timeoutMilliseconds` each time the socket buffer is full.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, timeoutMilliseconds: Int32) throws(SocketError) {
        guard var base = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = chttp_send(fd, base, remaining)
            if written >= 0 {
                remaining -= written
                base += written
                continue
            }
            let code = Glibc.errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK {
                let ready = chttp_wait_writable(fd, timeoutMilliseconds)
                if ready == 0 { throw SocketError(errno: ETIMEDOUT, operation: "send") }
                if ready < 0, Glibc.errno != EINTR { throw SocketError(errno: Glibc.errno, operation: "poll") }
                continue
            }
            throw SocketError(errno: code, operation: "send")
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], timeoutMilliseconds: Int32) throws {
        try bytes.withUnsafeBytes { raw in try writeAll(fd, raw, timeoutMilliseconds: timeoutMilliseconds) }
    }

    /// A numeric address from a `sockaddr_storage`.
    static func address(_ storage: inout sockaddr_storage) -> SocketAddress {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var raw = address.pointee.sin_addr
                    inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
                    return SocketAddress(host: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port: Int(UInt16(bigEndian: address.pointee.sin_port)))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
                    return SocketAddress(host: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port: Int(UInt16(bigEndian: address.pointee.sin6_port)))
                }
            }
        default:
            return SocketAddress(host: "unknown", port: 0)
        }
    }

    /// Binds and listens on `host:port` (numeric IPv4 or IPv6 host); returns the socket.
    static func listen(host: String, port: Int, backlog: Int32, reusePort: Bool) throws(SocketError) -> Int32 {
        var storage = sockaddr_storage()
        var length: socklen_t
        let family: Int32
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            family = AF_INET
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr = v4
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee = address }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            family = AF_INET6
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            address.sin6_addr = v6
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee = address }
            }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            throw SocketError(errno: EINVAL, operation: "inet_pton(\(host))")
        }
        let fd = try socket(family: family)
        do {
            _ = try check(chttp_set_reuse(fd, reusePort ? 1 : 0), "setsockopt(SO_REUSEADDR)")
            _ = try check(withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
            }, "bind")
            _ = try check(Glibc.listen(fd, backlog), "listen")
        } catch {
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// The address a socket is bound to.
    static func localAddress(_ fd: Int32) throws(SocketError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try check(withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }, "getsockname")
        return address(&storage)
    }
}

/// Starts detached POSIX threads. Server threads never run on Swift's cooperative pool, so a
/// handler may block (long-poll, streaming) without starving async code elsewhere in the process.
enum POSIXThread {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    /// Starts `body` on a new detached thread. The closure is boxed and passed as the context
    /// pointer (a capturing closure given to pthread_create directly crashes swiftc 6.3.1).
    static func spawn(name: String, stackSize: Int, _ body: @escaping @Sendable () -> Void) throws(SocketError) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, stackSize)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let context = Unmanaged.passRetained(Body({
            chttp_set_thread_name(String(name.prefix(15)))
            body()
        })).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(context).release()
            throw SocketError(errno: result, operation: "pthread_create")
        }
    }
}
