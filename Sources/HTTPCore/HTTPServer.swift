import CHTTPCoreShims
import Glibc
import Synchronization

/// Settings of an `HTTPServer`. Durations are enforced by a reaper thread with a resolution of
/// `timerResolution`.
public struct HTTPServerConfiguration: Sendable {
    /// Numeric IPv4 or IPv6 address to listen on.
    public var host: String = "127.0.0.1"
    /// Port to listen on; 0 picks a free one (see `HTTPServer.localAddress`).
    public var port: Int = 0
    /// Listen backlog.
    public var backlog: Int32 = 1024
    /// Set SO_REUSEPORT on the listening socket.
    public var reusePort: Bool = false
    /// Request size limits (request line, header section, body).
    public var limits = HTTPParserLimits()
    /// Most connections open at once; a connection beyond it gets 503 and is closed.
    public var maxConnections: Int = 4096
    /// Time allowed from the first byte of a request (or the accept) to the end of its header
    /// section: the slowloris bound. Expiry: 408 and close.
    public var headerTimeout: Duration = .seconds(10)
    /// Time a keep-alive connection may sit between requests. Expiry: silent close.
    public var idleTimeout: Duration = .seconds(60)
    /// Longest gap between two reads of a request body. Expiry: 408 and close.
    public var bodyReadTimeout: Duration = .seconds(30)
    /// Longest wait for the client to accept response bytes. Expiry: close.
    public var writeTimeout: Duration = .seconds(30)
    /// Worker threads kept even when idle.
    public var minWorkerThreads: Int = max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    /// Upper bound on worker threads; each runs one handler at a time, so this is also the number
    /// of requests (long-polls, streams) that can be in a handler at once. Workers above the
    /// minimum are started only when workers stay inside one connection longer than a timer tick.
    public var maxWorkerThreads: Int = 256
    /// A worker above the minimum exits after this long without work.
    public var workerIdleTimeout: Duration = .seconds(10)
    /// Stack size of each worker thread (touched pages only count toward RSS).
    public var workerStackSize: Int = 512 * 1024
    /// How often deadlines are checked.
    public var timerResolution: Duration = .milliseconds(50)

    /// The defaults: 127.0.0.1, a free port, limits per `HTTPParserLimits()`.
    public init() {}
}

/// An HTTP/1.1 server on POSIX sockets and epoll.
///
/// ## Concurrency model
/// One *acceptor* thread accepts connections; a small, elastic pool of *worker* threads share one
/// epoll instance in which every connection is registered once, edge-triggered. A worker takes up
/// to 32 ready connections per `epoll_wait`, serves the first and puts the rest in a shared ready
/// queue that every worker drains before waiting again. Serving means owning the connection (an
/// atomic state change): read, parse, run the handler inline, write the response, answer any
/// pipelined requests, let go. An event for a connection that is owned only flags it, and the
/// owner reads again before letting go. There is no hand-off between an I/O loop and a handler
/// pool and no `epoll_ctl` per request: a keep-alive request costs one `read` and one `send`, plus
/// a share of an `epoll_wait`.
///
/// Why not the alternatives (measured on the 2-core VM, wrk -t2 -c32): thread-per-connection
/// (≈ 84k req/s) needs a thread per idle connection, so 1,000 idle clients mean 1,000 stacks;
/// dedicated epoll loops with SO_REUSEPORT (≈ 122k req/s for a bare loop) stall every connection
/// of a loop while one handler blocks, and a long-poll (`?wait=` up to 60 s) or an SSE stream does
/// block; epoll loops plus a separate handler pool pay a thread hand-off per request. Shared-epoll
/// workers that run handlers inline keep the loop's syscall profile, and blocking only costs the
/// one worker that blocks. Measured with `sandbox-server bench http` on the shared, loaded VM:
/// 68–73k req/s median for a trivial route (peaks of 105k) against nginx's 96–97k (0.71–0.75×);
/// the gap is user-space request building, not system calls (docs/httpcore.md).
///
/// Handlers may block: the reaper counts workers that have been inside one connection for more
/// than a timer tick and starts a new worker for each, up to `maxWorkerThreads`, so blocked
/// handlers do not starve other connections; workers above `minWorkerThreads` retire when idle.
/// Short requests grow the pool only when a worker is descheduled for a whole tick. If queued
/// events see no progress for a tick (their worker blocked right after queuing them) the reaper
/// wakes an idle worker for them. Idle connections
/// hold no thread, only a descriptor and a small object (their read buffer is released): about
/// 400 bytes of RSS each. The reaper also enforces header, idle and body deadlines by expiring
/// connections; only workers close sockets, so a descriptor is never reused under a worker.
/// Nothing here runs on Swift's cooperative thread pool.
public final class HTTPServer: Sendable {
    /// The configuration the server was started with.
    public let configuration: HTTPServerConfiguration
    /// The address the server listens on (with the real port when 0 was asked for).
    public let localAddress: SocketAddress

    let router: Router
    private let listenFD: Int32
    private let epollFD: Int32
    private let wakeFD: Int32
    private let connections = Mutex<[UInt64: Connection]>([:])
    private let nextConnectionID = Atomic<UInt64>(16)  // tokens below are reserved
    private let phase = Atomic<UInt8>(Phase.created)
    private let totalWorkers = Atomic<Int>(0)
    private let liveThreads = Atomic<Int>(0)
    private let workerSlots = Mutex<[ObjectIdentifier: WorkerSlot]>([:])

    private enum Phase {
        static let created: UInt8 = 0
        static let running: UInt8 = 1
        static let draining: UInt8 = 2
        static let stopped: UInt8 = 3
    }

    private static let wakeToken: UInt64 = 0
    private static let kickToken: UInt64 = 1
    private static let eventBatch = 32
    private let kickFD: Int32
    private let readyQueue = Mutex(ReadyQueue())
    private let queuedCount = Atomic<Int>(0)
    private let servedEvents = Atomic<Int>(0)

    /// Binds and listens; call `start()` to serve. Throws `SocketError` when the address is taken.
    public init(configuration: HTTPServerConfiguration = HTTPServerConfiguration(), router: Router) throws {
        self.configuration = configuration
        self.router = router
        let listenFD = try Syscall.listen(host: configuration.host, port: configuration.port,
                                          backlog: configuration.backlog, reusePort: configuration.reusePort)
        do {
            self.localAddress = try Syscall.localAddress(listenFD)
            self.epollFD = try Syscall.epollCreate()
            self.wakeFD = try Syscall.eventFD()
            _ = try Syscall.check(chttp_epoll_watch_level(epollFD, wakeFD, HTTPServer.wakeToken), "epoll_ctl(wake)")
            self.kickFD = try Syscall.eventFD()
            _ = try Syscall.check(chttp_epoll_watch_edge(epollFD, kickFD, HTTPServer.kickToken), "epoll_ctl(kick)")
        } catch {
            Glibc.close(listenFD)
            throw error
        }
        self.listenFD = listenFD
    }

    deinit {
        Glibc.close(epollFD)
        Glibc.close(wakeFD)
        Glibc.close(kickFD)
    }

    /// Starts the acceptor, the reaper and the minimum number of workers; returns at once.
    public func start() throws {
        guard phase.compareExchange(expected: Phase.created, desired: Phase.running, ordering: .acquiringAndReleasing).exchanged
        else { return }
        for _ in 0..<max(1, configuration.minWorkerThreads) {
            totalWorkers.add(1, ordering: .relaxed)
            try spawnThread("http-worker") { [self] in workerLoop(permanent: true) }
        }
        try spawnThread("http-reaper") { [self] in reaperLoop() }
        try spawnThread("http-accept") { [self] in acceptLoop() }
    }

    /// Connections currently open.
    public var openConnectionCount: Int { connections.withLock { $0.count } }

    /// Worker threads currently running.
    public var workerThreadCount: Int { totalWorkers.load(ordering: .relaxed) }

    /// Whether `shutdown` has been called.
    public var isShuttingDown: Bool { phase.load(ordering: .relaxed) >= Phase.draining }

    /// Stops accepting, lets requests in flight finish (their responses carry `Connection: close`),
    /// closes idle connections at once, and after `gracePeriod` closes whatever is left. Blocks the
    /// calling thread until the server's threads have stopped (or a handler still blocked after
    /// the grace period is abandoned); call it off Swift's cooperative pool, or use the async form.
    public func shutdown(gracePeriod: Duration = .seconds(10)) {
        let previous = phase.exchange(Phase.draining, ordering: .acquiringAndReleasing)
        guard previous == Phase.running || previous == Phase.created else { return }
        // Wakes the acceptor's accept(). The descriptor is closed only after every thread has
        // stopped: closing it earlier could let this shutdown() hit a reused descriptor number.
        Glibc.shutdown(listenFD, Int32(SHUT_RDWR))
        let graceEnd = Syscall.now() + HTTPServer.nanoseconds(gracePeriod)
        while openConnectionCount > 0, Syscall.now() < graceEnd { usleep(5_000) }
        // Past the grace period: wake every connection so its worker closes it.
        connections.withLock { table in
            for connection in table.values {
                _ = connection.state.compareExchange(expected: ConnectionState.waiting, desired: ConnectionState.expired,
                                                     ordering: .acquiringAndReleasing)
                Glibc.shutdown(connection.fd, Int32(SHUT_RDWR))
            }
        }
        let hardEnd = Syscall.now() + 2_000_000_000
        while openConnectionCount > 0, Syscall.now() < hardEnd { usleep(5_000) }
        phase.store(Phase.stopped, ordering: .releasing)
        _ = chttp_eventfd_signal(wakeFD)
        while liveThreads.load(ordering: .acquiring) > 0, Syscall.now() < hardEnd + 1_000_000_000 { usleep(2_000) }
        Glibc.close(listenFD)
    }

    /// `shutdown(gracePeriod:)` run on a thread of its own, so the caller's task does not block a
    /// cooperative thread.
    public func shutdownGracefully(gracePeriod: Duration = .seconds(10)) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            do {
                try spawnThread("http-shutdown") { [self] in
                    shutdown(gracePeriod: gracePeriod)
                    continuation.resume()
                }
            } catch {
                shutdown(gracePeriod: gracePeriod)
                continuation.resume()
            }
        }
    }

    // MARK: Threads

    private func spawnThread(_ name: String, _ body: @escaping @Sendable () -> Void) throws(SocketError) {
        liveThreads.add(1, ordering: .relaxed)
        do {
            try POSIXThread.spawn(name: name, stackSize: configuration.workerStackSize) { [self] in
                body()
                liveThreads.subtract(1, ordering: .releasing)
            }
        } catch {
            liveThreads.subtract(1, ordering: .relaxed)
            throw error
        }
    }

    /// Keeps at least `minWorkerThreads` workers available: a worker counts as blocked when it
    /// has been inside one connection for longer than a timer tick (a long-poll, a stream, a slow
    /// handler), and a new worker is started for each blocked one, up to `maxWorkerThreads`.
    /// Short requests never trigger a spawn, so under plain load the pool stays at its minimum.
    private func compensateForBlockedWorkers(now: UInt64, threshold: UInt64) {
        let (total, blocked) = workerSlots.withLock { slots in
            (slots.count, slots.values.reduce(0) { count, slot in
                let since = slot.busySince.load(ordering: .relaxed)
                return count + (since != 0 && now &- since > threshold ? 1 : 0)
            })
        }
        let available = total - blocked
        if available < configuration.minWorkerThreads {
            for _ in available..<configuration.minWorkerThreads { spawnWorker() }
        }
    }

    private func spawnWorker() {
        var current = totalWorkers.load(ordering: .relaxed)
        while current < configuration.maxWorkerThreads {
            let (exchanged, original) = totalWorkers.compareExchange(expected: current, desired: current + 1,
                                                                     ordering: .relaxed)
            if exchanged {
                do {
                    try spawnThread("http-worker") { [self] in workerLoop(permanent: false) }
                } catch {
                    totalWorkers.subtract(1, ordering: .relaxed)
                }
                return
            }
            current = original
        }
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    static func milliseconds(_ duration: Duration) -> Int32 {
        Int32(clamping: nanoseconds(duration) / 1_000_000)
    }

    // MARK: Accepting

    private func acceptLoop() {
        let headerTimeout = HTTPServer.nanoseconds(configuration.headerTimeout)
        while phase.load(ordering: .relaxed) == Phase.running {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { chttp_accept(listenFD, $0, &length) }
            }
            if fd < 0 {
                let code = errno
                if phase.load(ordering: .relaxed) != Phase.running { return }
                if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM { usleep(10_000) }
                continue
            }
            _ = chttp_set_nodelay(fd)
            let now = Syscall.now()
            let connection = Connection(id: nextConnectionID.add(1, ordering: .relaxed).newValue, fd: fd,
                                        peer: Syscall.address(&storage), limits: configuration.limits, acceptedAt: now)
            connection.deadline.store(now + headerTimeout, ordering: .relaxed)
            let admitted = connections.withLock { table in
                if table.count >= configuration.maxConnections { return false }
                table[connection.id] = connection
                return true
            }
            guard admitted else {
                rejectOverCapacity(fd)
                continue
            }
            if chttp_epoll_watch_edge(epollFD, fd, connection.id) != 0 {
                connections.withLock { _ = $0.removeValue(forKey: connection.id) }
                Glibc.close(fd)
            }
        }
    }

    /// Over `maxConnections`: a best-effort 503 without waiting on the client, then close.
    private func rejectOverCapacity(_ fd: Int32) {
        router.requestObserver?(HTTPRequestObservation(method: nil, routeIndex: nil, statusCode: 503, durationNanoseconds: 0))
        var response = router.renderError(.serviceUnavailable, "too many open connections", nil)
        response.closesConnection = true
        var dates = DateCache()
        var out: [UInt8] = []
        let body = response.bodyBytes
        ResponseHead.serialize(response, requestID: "", date: dates.current(), contentLength: body.count,
                               chunked: false, keepAlive: false, requestVersion: .http1_1, into: &out)
        out.append(contentsOf: body)
        _ = out.withUnsafeBytes { chttp_send(fd, $0.baseAddress!, $0.count) }
        Glibc.shutdown(fd, Int32(SHUT_WR))
        var scratch = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<16 {  // drain what already arrived (at most 64 KiB) so close() sends FIN, not RST
            if scratch.withUnsafeMutableBytes({ Glibc.read(fd, $0.baseAddress, $0.count) }) <= 0 { break }
        }
        Glibc.close(fd)
    }

    // MARK: Deadlines

    private func reaperLoop() {
        let tick = max(1_000, Int(HTTPServer.nanoseconds(configuration.timerResolution) / 1_000))
        var servedAtLastTick = -1
        while phase.load(ordering: .relaxed) != Phase.stopped {
            usleep(UInt32(tick))
            let now = Syscall.now()
            let draining = phase.load(ordering: .relaxed) == Phase.draining
            if !draining { compensateForBlockedWorkers(now: now, threshold: UInt64(tick) * 1_000) }
            // Events queued by a worker that then blocked in a handler: wake one idle worker
            // (an edge-triggered eventfd wakes one epoll_wait) if nothing was served for a tick.
            let served = servedEvents.load(ordering: .relaxed)
            if queuedCount.load(ordering: .relaxed) > 0, served == servedAtLastTick { _ = chttp_eventfd_signal(kickFD) }
            servedAtLastTick = served
            connections.withLock { table in
                for connection in table.values where connection.state.load(ordering: .acquiring) == ConnectionState.waiting {
                    let expired = connection.deadline.load(ordering: .relaxed) <= now
                        || (draining && connection.idleBetweenRequests.load(ordering: .relaxed))
                    guard expired else { continue }
                    if connection.state.compareExchange(expected: ConnectionState.waiting, desired: ConnectionState.expired,
                                                        ordering: .acquiringAndReleasing).exchanged {
                        // Wakes the connection's epoll registration; its worker then closes it.
                        Glibc.shutdown(connection.fd, Int32(SHUT_RD))
                    }
                }
            }
        }
    }

    // MARK: Workers

    private func workerLoop(permanent: Bool) {
        let idleTimeout = permanent ? -1 : HTTPServer.milliseconds(configuration.workerIdleTimeout)
        var worker = Worker(server: self)
        let slot = WorkerSlot()
        workerSlots.withLock { $0[ObjectIdentifier(slot)] = slot }
        let events = UnsafeMutableBufferPointer<chttp_event>.allocate(capacity: HTTPServer.eventBatch)
        defer {
            workerSlots.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(slot)) }
            worker.scratch.deallocate()
            events.deallocate()
        }
        while phase.load(ordering: .acquiring) != Phase.stopped {
            var token: UInt64
            if queuedCount.load(ordering: .relaxed) > 0, let queued = readyQueue.withLock({ $0.pop() }) {
                queuedCount.subtract(1, ordering: .relaxed)
                token = queued
            } else {
                let count = chttp_epoll_wait(epollFD, events.baseAddress!, Int32(events.count), idleTimeout)
                let code = errno
                if phase.load(ordering: .acquiring) == Phase.stopped { break }
                if count < 0 {
                    if code == EINTR { continue }
                    break
                }
                if count == 0 {
                    if permanent { continue }
                    break
                }
                // Serve the first; queue the rest for whichever worker is free first (this one
                // included), so one epoll_wait serves a batch but no event waits on a handler.
                token = HTTPServer.wakeToken
                var deferred: [UInt64] = []
                for index in 0..<Int(count) {
                    let eventToken = events[index].token
                    if eventToken == HTTPServer.wakeToken || eventToken == HTTPServer.kickToken { continue }
                    if token == HTTPServer.wakeToken { token = eventToken } else { deferred.append(eventToken) }
                }
                if !deferred.isEmpty {
                    readyQueue.withLock { $0.push(deferred) }
                    queuedCount.add(deferred.count, ordering: .relaxed)
                }
                if token == HTTPServer.wakeToken { continue }
            }
            guard let connection = connections.withLock({ $0[token] }) else { continue }
            guard let expired = takeOwnership(of: connection) else { continue }
            slot.busySince.store(Syscall.now(), ordering: .relaxed)
            worker.serve(connection, expired: expired)
            slot.busySince.store(0, ordering: .relaxed)
            servedEvents.add(1, ordering: .relaxed)
        }
        totalWorkers.subtract(1, ordering: .relaxed)
    }

    /// Called for each readiness event. Returns whether the connection expired when this worker
    /// became its owner, or nil when another worker owns it; that owner is then told (busyPending)
    /// to read again before it lets go, so an edge that arrives mid-request is never lost.
    private func takeOwnership(of connection: Connection) -> Bool? {
        var state = connection.state.load(ordering: .acquiring)
        while true {
            let desired: UInt8
            switch state {
            case ConnectionState.waiting, ConnectionState.expired: desired = ConnectionState.busy
            case ConnectionState.busy: desired = ConnectionState.busyPending
            default: return nil  // already flagged
            }
            let (exchanged, original) = connection.state.compareExchange(expected: state, desired: desired,
                                                                          ordering: .acquiringAndReleasing)
            if exchanged {
                if desired == ConnectionState.busyPending { return nil }
                return state == ConnectionState.expired
            }
            state = original
        }
    }

    /// The owner lets go of a connection whose socket it has drained. False when an event came in
    /// meanwhile: the caller still owns the connection and must read again.
    fileprivate func release(_ connection: Connection) -> Bool {
        if connection.state.compareExchange(expected: ConnectionState.busy, desired: ConnectionState.waiting,
                                            ordering: .acquiringAndReleasing).exchanged { return true }
        connection.state.store(ConnectionState.busy, ordering: .relaxed)  // was busyPending
        return false
    }

    fileprivate func close(_ connection: Connection) {
        connections.withLock { _ = $0.removeValue(forKey: connection.id) }
        Glibc.close(connection.fd)
    }

    fileprivate var isDraining: Bool { phase.load(ordering: .relaxed) >= Phase.draining }
}

/// Tokens of ready connections taken from epoll in a batch and not yet served (FIFO).
struct ReadyQueue: ~Copyable {
    private var items: [UInt64] = []
    private var head = 0

    mutating func push(_ tokens: [UInt64]) { items.append(contentsOf: tokens) }

    mutating func pop() -> UInt64? {
        guard head < items.count else { return nil }
        let token = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return token
    }
}

/// What the reaper sees of a worker: when it took its current connection (0 while waiting).
final class WorkerSlot: Sendable {
    let busySince = Atomic<UInt64>(0)
}

/// Ownership of a connection. Sockets are registered edge-triggered (no re-arm per request):
/// an event moves `waiting`/`expired` to `busy` (this worker owns it) or `busy` to `busyPending`
/// (the owner must read again before releasing).
enum ConnectionState {
    static let waiting: UInt8 = 0
    static let busy: UInt8 = 1
    static let expired: UInt8 = 2
    static let busyPending: UInt8 = 3
}

/// One client connection. The atomics are shared with the reaper and other workers; everything
/// else is touched only by the worker that moved `state` to busy (the compare-exchange orders the
/// hand-over between owners), hence `@unchecked Sendable`.
final class Connection: @unchecked Sendable {
    let id: UInt64
    let fd: Int32
    let peer: SocketAddress
    let state = Atomic<UInt8>(ConnectionState.waiting)
    let deadline = Atomic<UInt64>(0)
    let idleBetweenRequests = Atomic<Bool>(false)

    var parser: HTTPRequestParser
    var requestStartedAt: UInt64
    var lastBodyProgress: UInt64 = 0
    var lingering = false

    init(id: UInt64, fd: Int32, peer: SocketAddress, limits: HTTPParserLimits, acceptedAt: UInt64) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.parser = HTTPRequestParser(limits: limits)
        self.requestStartedAt = acceptedAt
    }
}

/// Per-thread state of a worker: a read buffer and the Date header cache.
private struct Worker {
    let server: HTTPServer
    let scratch: UnsafeMutableRawBufferPointer
    var dates = DateCache()
    let headerTimeout: UInt64
    let idleTimeout: UInt64
    let bodyTimeout: UInt64
    let writeTimeoutMS: Int32

    static let scratchSize = 64 * 1024
    static let lingerTime: UInt64 = 2_000_000_000
    static let continueBytes: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    init(server: HTTPServer) {
        self.server = server
        self.scratch = .allocate(byteCount: Worker.scratchSize, alignment: 16)
        let configuration = server.configuration
        headerTimeout = HTTPServer.nanoseconds(configuration.headerTimeout)
        idleTimeout = HTTPServer.nanoseconds(configuration.idleTimeout)
        bodyTimeout = HTTPServer.nanoseconds(configuration.bodyReadTimeout)
        writeTimeoutMS = HTTPServer.milliseconds(configuration.writeTimeout)
    }

    mutating func serve(_ connection: Connection, expired: Bool) {
        if connection.lingering {
            linger(connection, expired: expired)
            return
        }
        if expired {
            if !connection.parser.isIdle {
                fail(connection, HTTPParseError(.requestTimeout, "request not received in time"), request: nil)
            } else {
                server.close(connection)
            }
            return
        }
        var socketDrained = false  // the last read() returned less than asked: nothing left then
        while true {
            // Answer everything already buffered (pipelining), in order.
            var needMore = false
            while !needMore {
                switch connection.parser.next() {
                case .needMoreData:
                    needMore = true
                case .expectsContinue:
                    do {
                        try Syscall.writeAll(connection.fd, Worker.continueBytes, timeoutMilliseconds: writeTimeoutMS)
                    } catch {
                        server.close(connection)
                        return
                    }
                case .failure(let error):
                    fail(connection, error, request: nil)
                    return
                case .request(var request):
                    request.peerAddress = connection.peer
                    request.requestID = RequestID.resolve(request.headers)
                    let observer = server.router.requestObserver
                    // A pipelined request already buffered when its predecessor was answered has
                    // no first-byte time of its own: it is timed from its routing.
                    let started = observer == nil ? 0 : (connection.requestStartedAt != 0 ? connection.requestStartedAt : Syscall.now())
                    let (response, routeIndex) = server.router.route(request)
                    let keepAlive = request.keepAlive && !response.closesConnection && !server.isDraining
                    let sent = send(response, for: request, keepAlive: keepAlive, on: connection)
                    if let observer {
                        observer(HTTPRequestObservation(request, response, routeIndex: routeIndex,
                                                        durationNanoseconds: Syscall.now() &- started, completed: sent))
                    }
                    guard sent, keepAlive else {
                        server.close(connection)
                        return
                    }
                    connection.requestStartedAt = 0
                    if socketDrained, connection.parser.bufferedByteCount == 0 {
                        // Nothing pipelined and the socket was empty at the last read: let go
                        // without a read() that would only say EAGAIN. Data that arrived since
                        // raised an edge, which either finds the connection waiting or flags it.
                        if wait(connection) { return }
                        socketDrained = false
                    }
                }
            }
            // Read what the client sent next.
            let wasIdle = connection.parser.isIdle
            let count = Glibc.read(connection.fd, scratch.baseAddress, scratch.count)
            if count > 0 {
                socketDrained = count < scratch.count
                let now = Syscall.now()
                if wasIdle, connection.requestStartedAt == 0 { connection.requestStartedAt = now }
                connection.parser.append(UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
                connection.lastBodyProgress = now
                continue
            }
            if count == 0 {  // the client closed
                server.close(connection)
                return
            }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else {
                server.close(connection)
                return
            }
            if wait(connection) { return }
        }
    }

    /// Sets the deadline for what the connection waits for and lets go of it; false when an event
    /// arrived meanwhile and the caller must keep serving.
    private func wait(_ connection: Connection) -> Bool {
        let parser = connection.parser
        let deadline: UInt64
        let idle = parser.isIdle
        if idle && connection.requestStartedAt == 0 {
            deadline = Syscall.now() + idleTimeout
            connection.parser.releaseIdleMemory()
        } else if parser.isReadingBody {
            deadline = connection.lastBodyProgress + bodyTimeout
        } else {
            deadline = connection.requestStartedAt + headerTimeout
        }
        connection.deadline.store(deadline, ordering: .relaxed)
        connection.idleBetweenRequests.store(idle && connection.requestStartedAt == 0, ordering: .relaxed)
        return server.release(connection)
    }

    /// Writes a response; false when the client is gone or too slow.
    private mutating func send(_ response: HTTPResponse, for request: HTTPRequest, keepAlive: Bool,
                               on connection: Connection) -> Bool {
        let isHead = request.method == .HEAD
        let fd = connection.fd
        let timeout = writeTimeoutMS
        var head: [UInt8] = []
        switch response.body {
        case .bytes(let body):
            let allowsBody = response.status.allowsBody
            head.reserveCapacity(192 + (isHead || body.count > 16 * 1024 ? 0 : body.count))
            ResponseHead.serialize(response, requestID: request.requestID, date: dates.current(),
                                   contentLength: allowsBody || response.status.code == 304 ? body.count : nil,
                                   chunked: false, keepAlive: keepAlive, requestVersion: request.version, into: &head)
            let sendsBody = allowsBody && !isHead && !body.isEmpty
            do {
                if sendsBody && body.count <= 16 * 1024 {
                    head.append(contentsOf: body)
                    try Syscall.writeAll(fd, head, timeoutMilliseconds: timeout)
                } else {
                    try Syscall.writeAll(fd, head, timeoutMilliseconds: timeout)
                    if sendsBody { try Syscall.writeAll(fd, body, timeoutMilliseconds: timeout) }
                }
                return true
            } catch {
                return false
            }
        case .stream(let producer):
            // HTTP/1.0 has no chunked coding: the body ends when the connection closes.
            let hasBody = response.status.allowsBody
            let chunked = request.version == .http1_1 && hasBody
            let keepAlive = keepAlive && (chunked || !hasBody)
            ResponseHead.serialize(response, requestID: request.requestID, date: dates.current(), contentLength: nil,
                                   chunked: chunked, keepAlive: keepAlive, requestVersion: request.version, into: &head)
            do {
                try Syscall.writeAll(fd, head, timeoutMilliseconds: timeout)
            } catch {
                return false
            }
            if isHead || !hasBody { return keepAlive }
            let writer = ResponseBodyWriter(chunked: chunked, discardsBody: false) { bytes in
                try Syscall.writeAll(fd, bytes, timeoutMilliseconds: timeout)
            }
            do {
                try producer(writer)
                try writer.finish()
            } catch {
                writer.abandon()  // the body is cut short: the client sees an incomplete message
                return false
            }
            return keepAlive
        }
    }

    /// Answers a malformed or timed-out request and closes gracefully: the write side is shut and
    /// remaining input is drained for a moment, so the client reads the response instead of a reset.
    private mutating func fail(_ connection: Connection, _ error: HTTPParseError, request: HTTPRequest?) {
        let requestID = RequestID.generate()
        var response = server.router.renderError(error.status, error.message, request)
        response.headers.replaceOrAdd(name: "X-Request-Id", value: requestID)
        let body = response.bodyBytes
        if let observer = server.router.requestObserver {
            let started = connection.requestStartedAt
            observer(HTTPRequestObservation(
                method: nil, routeIndex: nil, statusCode: error.status.code,
                durationNanoseconds: started == 0 ? 0 : Syscall.now() &- started, requestID: requestID,
                peerAddress: connection.peer, responseBodyBytes: body.count))
        }
        var out: [UInt8] = []
        ResponseHead.serialize(response, requestID: requestID, date: dates.current(), contentLength: body.count,
                               chunked: false, keepAlive: false, requestVersion: .http1_1, into: &out)
        out.append(contentsOf: body)
        do {
            try Syscall.writeAll(connection.fd, out, timeoutMilliseconds: writeTimeoutMS)
        } catch {
            server.close(connection)
            return
        }
        Glibc.shutdown(connection.fd, Int32(SHUT_WR))
        connection.lingering = true
        connection.parser = HTTPRequestParser(limits: HTTPParserLimits())  // drop buffered input
        connection.deadline.store(Syscall.now() + Worker.lingerTime, ordering: .relaxed)
        connection.idleBetweenRequests.store(true, ordering: .relaxed)
        linger(connection, expired: false)
    }

    /// Discards input of a connection being closed until the client closes or the linger time ends.
    private func linger(_ connection: Connection, expired: Bool) {
        if expired {
            server.close(connection)
            return
        }
        while true {
            let count = Glibc.read(connection.fd, scratch.baseAddress, scratch.count)
            if count > 0 { continue }
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                if server.release(connection) { return }
                continue
            }
            server.close(connection)
            return
        }
    }
}
