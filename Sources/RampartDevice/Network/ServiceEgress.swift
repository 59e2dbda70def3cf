import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import RampartCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The one way servicing traffic (attestation, update checks and downloads, error reports) leaves the device.
///
/// A CONNECT proxy on loopback that only tunnels to the security service. It opens each upstream connection
/// itself: bound to the pinned `service_interface` where the kernel lets it (SO_BINDTODEVICE), then checked after
/// the connect, by the source address the kernel chose, against the managed interfaces. A path outside them is
/// refused and no byte is sent on it. Every tunnelled byte is counted by the ``ServicingDataMeter``.
///
/// ``checkPath()`` runs the same route decision before an operation, so that callers get a clear error.
public final class ServiceEgress: Service, Sendable {
    /// The client for servicing requests: idle reads time out after ``readTimeout`` so a cut link fails fast and
    /// downloads resume.
    public let httpClient: HTTPClient
    /// The client for push long-polls, which are idle by design.
    public let longPollClient: HTTPClient
    /// The meter of this month's servicing bytes.
    public let meter: ServicingDataMeter
    public let policy: DeviceConfiguration.Network
    /// The loopback port the proxy listens on.
    public let proxyPort: Int
    /// How long a servicing read may wait for the next bytes.
    public static let readTimeout: TimeAmount = .seconds(20)

    let target: (host: String, port: Int)
    private let listener: Int32
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let refusals = Atomic<Int>(0)
    private let tunnels = Atomic<Int>(0)
    private let activeTunnels = Atomic<Int>(0)
    private let bindWarned = Atomic<Bool>(false)
    /// The proxy's secret: only this process's clients know it, so no other local process can tunnel through the
    /// egress (and spend the month's data budget).
    package let secret: String
    /// At most this many tunnels at once; servicing needs a handful.
    static let maximumTunnels = 32
    private let lastRefusal = Mutex<String?>(nil)

    /// Starts listening on 127.0.0.1 for tunnels to `server` (an `https://host:port` URL).
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` for a URL without a host, or when no loopback port is free.
    public init(server: String, policy: DeviceConfiguration.Network, meter: ServicingDataMeter, logger: Logger) throws {
        guard let url = URL(string: server), let host = url.host, url.scheme == "https" || url.scheme == "http" else {
            throw RampartError(.configurationInvalid, "The service URL \(server) has no host.")
        }
        target = (host, url.port ?? (url.scheme == "https" ? 443 : 80))
        self.policy = policy
        self.meter = meter
        self.logger = logger
        let listening = try Self.listenOnLoopback()
        listener = listening
        var port = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &port) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listening, $0, &length) }
        }
        proxyPort = Int(UInt16(bigEndian: port.sin_port))
        var random = SystemRandomNumberGenerator()
        secret = (0..<4).map { _ in String(random.next() as UInt64, radix: 16) }.joined(separator: "-")
        var configuration = HTTPClient.Configuration()
        configuration.proxy = .server(host: "127.0.0.1", port: proxyPort, authorization: .basic(credentials: secret))
        configuration.timeout = .init(connect: .seconds(30), read: Self.readTimeout)
        httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        configuration.timeout = .init(connect: .seconds(30))
        longPollClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "rampart-egress"
        thread.start()
    }

    /// Runs until graceful shutdown, then stops accepting and shuts the clients down.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops the listener and the clients (idempotent).
    public func shutdown() async {
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        try? await httpClient.shutdown()
        try? await longPollClient.shutdown()
        meter.flush()
    }

    /// Connections refused because their path left the managed interfaces, and the last reason.
    public var refusalCount: Int { refusals.load(ordering: .relaxed) }
    /// Tunnels opened to the service (each is one TCP connection and one TLS handshake).
    public var tunnelCount: Int { tunnels.load(ordering: .relaxed) }
    public var lastRefusalMessage: String? { lastRefusal.withLock { $0 } }

    /// Decides, without sending a byte, which interface a connection to the service would leave through, and
    /// refuses a path outside the managed set.
    ///
    /// - Throws: ``RampartError`` `networkPathRefused` naming the interface, or `serverUnreachable` when the
    ///   service's name does not resolve or no route exists.
    /// Name resolution and route lookups block, so they run on NIO's thread pool, not the cooperative one.
    public func checkPath() async throws {
        try await NIOThreadPool.singleton.runIfActive { try self.checkPathNow() }
    }

    /// One approved address is enough (a dual-stack service may be reached over IPv4 on a managed interface while
    /// its IPv6 route is not); a refusal is thrown only when no address is approved.
    private func checkPathNow() throws {
        try firstApproved { try checkRoute($0) }
    }

    /// Runs `attempt` on each of the service's addresses until one succeeds. A refusal wins over other errors
    /// only when no address is approved.
    private func firstApproved<T>(_ attempt: (Address) throws -> T) throws -> T {
        var refusal: RampartError?
        var lastError: RampartError?
        for address in try resolve() {
            do {
                return try attempt(address)
            } catch let error as RampartError {
                if error.code == .networkPathRefused { refusal = refusal ?? error } else { lastError = error }
            }
        }
        throw refusal ?? lastError ?? RampartError(.serverUnreachable, "\(target.host) has no address.", status: 503)
    }

    /// The kernel's route to `address`, learned by connecting a UDP socket (which sends nothing), approved.
    private func checkRoute(_ address: Address) throws {
        let fd = try socketForRoute(address, type: Int32(SOCK_DGRAM.rawValue))
        defer { close(fd) }
        guard address.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
            throw RampartError(
                .serverUnreachable,
                "No route to \(target.host)\(policy.serviceInterface.map { " through \($0)" } ?? ""): \(String(cString: strerror(errno))).",
                status: 503)
        }
        try approve(fd)
    }

    // MARK: - The route decision

    /// The socket's source address must sit on a managed interface (the pinned one, when pinned).
    private func approve(_ fd: Int32) throws {
        var local = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let source = named == 0
            ? withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { NetworkInterfaces.numericHost($0) } }
            : nil
        guard let source else {
            throw refuse("Servicing to \(target.host) has no source address the runtime can attribute to an interface.")
        }
        let holders = NetworkInterfaces.list(policy: policy).filter { $0.addresses.contains(source) }
        guard let interface = holders.first(where: { !$0.managed }) ?? holders.first else {
            throw refuse("Servicing to \(target.host) would leave from \(source), which no interface of this device holds.")
        }
        // An address that an unmanaged interface holds too cannot tell the path apart: refused.
        guard interface.managed else {
            let allowed = policy.serviceInterface.map { "the pinned service_interface \($0)" }
                ?? "managed_interfaces \((policy.managedInterfaces ?? []).joined(separator: ", "))"
            throw refuse(
                "Servicing to \(target.host) would leave through \(interface.name), which is not a managed interface "
                    + "(device.toml [network] allows \(allowed)).")
        }
    }

    private func refuse(_ message: String) -> RampartError {
        refusals.add(1, ordering: .relaxed)
        lastRefusal.withLock { $0 = message }
        return RampartError(.networkPathRefused, message, status: 503)
    }

    private struct Address {
        var storage: sockaddr_storage
        var length: socklen_t
        var family: Int32
        func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
            withUnsafePointer(to: storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
        }
    }

    private func resolve() throws -> [Address] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let host = target.host.hasPrefix("[") ? String(target.host.dropFirst().dropLast()) : target.host
        let status = getaddrinfo(host, String(target.port), &hints, &result)
        guard status == 0, let result else {
            throw RampartError(.serverUnreachable, "Cannot resolve \(target.host): \(String(cString: gai_strerror(status))).", status: 503)
        }
        defer { freeaddrinfo(result) }
        var addresses: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = result
        while let entry = cursor {
            defer { cursor = entry.pointee.ai_next }
            guard let address = entry.pointee.ai_addr else { continue }
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(entry.pointee.ai_addrlen))) }
            addresses.append(Address(storage: storage, length: entry.pointee.ai_addrlen, family: entry.pointee.ai_family))
        }
        return addresses
    }

    /// A socket bound to the pinned interface where the kernel allows it (CAP_NET_RAW); the source-address check
    /// after connecting holds either way.
    private func socketForRoute(_ address: Address, type: Int32) throws -> Int32 {
        let fd = socket(address.family, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RampartError(.serverUnreachable, "socket(): \(String(cString: strerror(errno))).", status: 503) }
        if let pinned = policy.serviceInterface {
            let bound = pinned.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
            if bound != 0, !bindWarned.exchange(true, ordering: .relaxed) {
                logger.warning(
                    "Cannot bind servicing sockets to the pinned interface (SO_BINDTODEVICE needs CAP_NET_RAW); every connection's source address is checked instead",
                    metadata: ["interface": "\(pinned)", "error": "\(String(cString: strerror(errno)))"])
            }
        }
        return fd
    }

    // MARK: - The proxy

    private static func listenOnLoopback() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RampartError(.configurationInvalid, "The service egress cannot open a socket.") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw RampartError(.configurationInvalid, "The service egress cannot listen on 127.0.0.1: \(String(cString: strerror(errno))).")
        }
        return fd
    }

    private func acceptLoop() {
        defer { close(listener) }
        while !stopping.load(ordering: .relaxed) {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 250) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            guard activeTunnels.add(1, ordering: .relaxed).newValue <= Self.maximumTunnels else {
                activeTunnels.subtract(1, ordering: .relaxed)
                close(client)
                continue
            }
            let thread = Thread { [self] in
                tunnel(client)
                close(client)
                activeTunnels.subtract(1, ordering: .relaxed)
            }
            thread.name = "rampart-egress-tunnel"
            thread.start()
        }
    }

    /// One CONNECT tunnel: read the request head, open the upstream connection on an approved path, then copy.
    private func tunnel(_ client: Int32) {
        setTimeouts(client, seconds: 10)
        guard let head = readHead(client) else { return }
        let lines = head.split(separator: "\r\n").map(String.init)
        let line = lines.first ?? ""
        let parts = line.split(separator: " ")
        let authorized = lines.dropFirst().contains { header in
            guard let colon = header.firstIndex(of: ":") else { return false }
            return header[..<colon].lowercased() == "proxy-authorization"
                && header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces) == "Basic \(secret)"
        }
        guard authorized else {
            respond(client, "407 Proxy Authentication Required", reason: "The service egress serves the device runtime only.")
            return
        }
        let expected = "\(target.host.contains(":") && !target.host.hasPrefix("[") ? "[\(target.host)]" : target.host):\(target.port)"
        guard parts.count == 3, parts[0] == "CONNECT", parts[1] == expected else {
            respond(client, "403 Forbidden", reason: "The service egress tunnels only to \(expected).")
            return
        }
        let upstream: Int32
        do {
            upstream = try connectUpstream()
        } catch {
            let refusal = error as? RampartError
            respond(client, refusal?.code == .networkPathRefused ? "403 Forbidden" : "502 Bad Gateway", reason: refusal?.message ?? "\(error)")
            if refusal?.code == .networkPathRefused {
                logger.warning("Servicing connection refused", metadata: ["reason": "\(refusal?.message ?? "")"])
            }
            return
        }
        defer { close(upstream) }
        setTimeouts(upstream, seconds: 30)
        setTimeouts(client, seconds: 30)
        guard writeAll(client, Array("HTTP/1.1 200 Connection Established\r\n\r\n".utf8)) else { return }
        tunnels.add(1, ordering: .relaxed)
        copy(client, upstream)
    }

    private func connectUpstream() throws -> Int32 {
        try firstApproved { address in
            // Decided before a packet leaves, then checked again on the connection itself.
            try checkRoute(address)
            let fd = try socketForRoute(address, type: Int32(SOCK_STREAM.rawValue))
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var result = address.withSockaddr { connect(fd, $0, $1) }
            if result != 0 && errno == EINPROGRESS {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&poller, 1, 30_000) == 1 {
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                    result = error == 0 ? 0 : -1
                    errno = error
                } else {
                    errno = ETIMEDOUT
                }
            }
            guard result == 0 else {
                let error = RampartError(.serverUnreachable, "Cannot connect to \(target.host): \(String(cString: strerror(errno))).", status: 503)
                close(fd)
                throw error
            }
            _ = fcntl(fd, F_SETFL, flags)
            do {
                try approve(fd)
            } catch {
                close(fd)
                throw error
            }
            return fd
        }
    }

    private func readHead(_ fd: Int32) -> String? {
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while head.count < 8192 {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { return nil }
            head += buffer[..<count]
            // A CONNECT client sends nothing after the head until it hears 200.
            if head.count >= 4 && Array(head.suffix(4)) == end { return String(decoding: head, as: UTF8.self) }
        }
        respond(fd, "431 Request Header Fields Too Large", reason: "The request head is too long.")
        return nil
    }

    private func respond(_ fd: Int32, _ status: String, reason: String) {
        let safe = reason.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        _ = writeAll(fd, Array("HTTP/1.1 \(status)\r\nX-Rampart-Reason: \(safe)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
    }

    private func copy(_ client: Int32, _ upstream: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var pollers = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
        while !stopping.load(ordering: .relaxed) {
            let ready = poll(&pollers, 2, 500)
            if ready < 0 && errno != EINTR { return }
            if ready <= 0 { continue }
            for index in 0..<2 where pollers[index].revents != 0 {
                let from = pollers[index].fd
                let to = index == 0 ? upstream : client
                let count = read(from, &buffer, buffer.count)
                guard count > 0 else { return }
                meter.add(count)
                guard writeAll(to, Array(buffer[..<count])) else { return }
            }
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    private func setTimeouts(_ fd: Int32, seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
}
