#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import NIOCore
import NIOSSL
import Synchronization

/// An app's sockets: real, non-blocking POSIX sockets, each waited on with `poll` for at most the
/// runtime's blocking limit. The sandbox has applied the firewall before it asks for one.
struct SocketTable: ~Copyable {
    enum Kind { case stream, listener, datagram }
    struct Entry {
        var descriptor: Int32
        var kind: Kind
        /// For a datagram socket: the sender of the last datagram, where a send replies to.
        var peer: sockaddr_storage?
        var peerLength: socklen_t = 0
        /// TLS over this stream (`rampart_tls_connect`).
        var tls: TLSStream?
    }

    private var entries: [Int32: Entry] = [:]
    private var nextHandle: Int32 = 1
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    deinit {
        for entry in entries.values {
            entry.tls?.dispose(deadline: Monotonic.milliseconds)
            _ = Glibc.close(entry.descriptor)
        }
    }

    var isFull: Bool { entries.count >= capacity }

    private mutating func add(_ entry: Entry) -> Int32 {
        let handle = nextHandle
        nextHandle = nextHandle == Int32.max ? 1 : nextHandle + 1
        entries[handle] = entry
        return handle
    }

    /// Connects to one of `addresses` within `timeout` milliseconds.
    mutating func connect(addresses: [ResolvedAddress], timeout: Int32) -> Int32 {
        guard !isFull else { return HostResult.noSpace }
        var last = HostResult.connection
        // One deadline for the call, however many addresses the name has.
        let deadline = Monotonic.milliseconds + UInt64(max(0, timeout))
        for (index, address) in addresses.enumerated() {
            // The first address is always tried, even with no time to wait (a timeout of 0, as during shutdown).
            let now = Monotonic.milliseconds
            guard index == 0 || now < deadline else { return HostResult.timedOut }
            let remaining = Int32(deadline > now ? deadline - now : 0)
            let fd = socket(Int32(address.storage.ss_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            var storage = address.storage
            let started = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
            }
            if started == 0 || errno == EINPROGRESS {
                if started == 0 || Self.wait(fd, for: Int16(POLLOUT), timeout: remaining) {
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                    if error == 0 { return add(Entry(descriptor: fd, kind: .stream)) }
                    last = HostResult.connection
                } else {
                    last = HostResult.timedOut
                }
            }
            _ = Glibc.close(fd)
        }
        return last
    }

    /// Runs a TLS handshake over the stream `handle` within `timeout` milliseconds. On failure the stream is
    /// closed, and the reason is returned for the app's log.
    mutating func startTLS(_ handle: Int32, context: NIOSSLContext, serverHostname: String?, timeout: Int32) -> (result: Int32, failure: String?) {
        guard var entry = entries[handle], entry.kind == .stream, let peer = Self.peerAddress(entry.descriptor) else {
            _ = close(handle)
            return (HostResult.connection, "the connection ended before TLS started")
        }
        let stream = TLSStream(descriptor: entry.descriptor)
        let result = stream.handshake(
            context: context, serverHostname: serverHostname, peer: peer, deadline: Monotonic.milliseconds + UInt64(max(0, timeout)))
        guard result == 0 else {
            stream.dispose(deadline: Monotonic.milliseconds)
            _ = close(handle)
            return (result, stream.failure ?? "the TLS handshake did not finish in time")
        }
        entry.tls = stream
        entries[handle] = entry
        return (handle, nil)
    }

    /// The address a connected socket talks to.
    private static func peerAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let found = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard found == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { SocketAddress($0.pointee, host: "") } }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { SocketAddress($0.pointee, host: "") } }
        default:
            return nil
        }
    }

    /// Listens on `address`:`port`.
    mutating func listen(address: String, port: Int, datagram: Bool) -> Int32 {
        guard !isFull else { return HostResult.noSpace }
        guard let resolved = Resolver.numeric(address, port: port) else { return HostResult.invalid }
        let type = datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        let fd = socket(Int32(resolved.storage.ss_family), type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return HostResult.unavailable }
        // TCP only: on UDP, SO_REUSEADDR would let an app share a port another program holds and take its datagrams.
        if !datagram {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var storage = resolved.storage
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, resolved.length) }
        }
        guard bound == 0, datagram || Glibc.listen(fd, 16) == 0 else {
            _ = Glibc.close(fd)
            return HostResult.unavailable  // in use, or not ours to bind
        }
        return add(Entry(descriptor: fd, kind: datagram ? .datagram : .listener))
    }

    /// Accepts a waiting connection within `timeout` milliseconds.
    mutating func accept(listener: Int32, timeout: Int32) -> Int32 {
        guard let entry = entries[listener], entry.kind == .listener else { return HostResult.notFound }
        guard !isFull else { return HostResult.noSpace }
        guard Self.wait(entry.descriptor, for: Int16(POLLIN), timeout: timeout) else { return HostResult.again }
        let fd = Glibc.accept(entry.descriptor, nil, nil)
        guard fd >= 0 else { return HostResult.again }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return add(Entry(descriptor: fd, kind: .stream))
    }

    /// Sends what the socket takes within `timeout` milliseconds.
    mutating func send(_ handle: Int32, bytes: UnsafeRawBufferPointer, timeout: Int32) -> Int32 {
        guard let entry = entries[handle], entry.kind != .listener else { return HostResult.notFound }
        if let tls = entry.tls { return tls.send(bytes, deadline: Monotonic.milliseconds + UInt64(max(0, timeout))) }
        guard Self.wait(entry.descriptor, for: Int16(POLLOUT), timeout: timeout) else { return HostResult.again }
        let sent: Int
        if entry.kind == .datagram {
            guard var peer = entry.peer else { return HostResult.invalid }  // a datagram socket replies only
            sent = withUnsafePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(entry.descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, entry.peerLength)
                }
            }
        } else {
            sent = Glibc.send(entry.descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        }
        if sent >= 0 { return Int32(sent) }
        return errno == EAGAIN ? HostResult.again : HostResult.connection
    }

    /// Receives into `buffer` within `timeout` milliseconds; 0 when the peer closed.
    mutating func receive(_ handle: Int32, into buffer: UnsafeMutableRawBufferPointer, timeout: Int32) -> Int32 {
        guard var entry = entries[handle], entry.kind != .listener else { return HostResult.notFound }
        if let tls = entry.tls { return tls.receive(into: buffer, deadline: Monotonic.milliseconds + UInt64(max(0, timeout))) }
        guard Self.wait(entry.descriptor, for: Int16(POLLIN), timeout: timeout) else { return HostResult.again }
        let received: Int
        if entry.kind == .datagram {
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            received = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(entry.descriptor, buffer.baseAddress, buffer.count, 0, $0, &length)
                }
            }
            if received >= 0 {
                entry.peer = peer
                entry.peerLength = length
                entries[handle] = entry
            }
        } else {
            received = recv(entry.descriptor, buffer.baseAddress, buffer.count, 0)
        }
        if received >= 0 { return Int32(received) }
        return errno == EAGAIN ? HostResult.again : HostResult.connection
    }

    /// Closes a handle.
    mutating func close(_ handle: Int32) -> Int32 {
        guard let entry = entries.removeValue(forKey: handle) else { return HostResult.notFound }
        // What the app was told was sent, and close_notify, get a second to leave.
        entry.tls?.dispose(deadline: Monotonic.milliseconds + 1000)
        _ = Glibc.close(entry.descriptor)
        return 0
    }

    /// Whether `fd` is ready for `events` within `timeout` milliseconds.
    static func wait(_ fd: Int32, for events: Int16, timeout: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let ready = poll(&entry, 1, timeout)
            if ready < 0 && errno == EINTR { continue }
            return ready > 0
        }
    }
}

/// An address to connect or bind to.
struct ResolvedAddress: @unchecked Sendable {  // plain bytes
    var storage: sockaddr_storage
    var length: socklen_t

    /// Whether this is the device itself or its link: loopback, unspecified or link-local, in IPv4, IPv6 or
    /// IPv4-mapped IPv6.
    var isDeviceLocal: Bool {
        var copy = storage
        return withUnsafeBytes(of: &copy) { raw -> Bool in
            func ipv4Local(_ a: UInt8, _ b: UInt8) -> Bool { a == 127 || a == 0 || (a == 169 && b == 254) }
            switch Int32(storage.ss_family) {
            case AF_INET:
                let address = raw.load(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: (UInt8, UInt8, UInt8, UInt8).self)
                return ipv4Local(address.0, address.1)
            case AF_INET6:
                let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
                let bytes = (0..<16).map { raw[offset + $0] }
                if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                    return ipv4Local(bytes[12], bytes[13])  // ::ffff:a.b.c.d
                }
                let loopbackOrUnspecified = bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] <= 1
                return loopbackOrUnspecified || (bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80)  // fe80::/10
            default:
                return true
            }
        }
    }
}

/// Name resolution for outbound connections.
enum Resolver {
    /// What a lookup with a deadline found.
    enum Answer: Sendable {
        case addresses([ResolvedAddress])
        /// No answer within the time allowed.
        case timedOut
        /// Too many lookups are still running; try again later.
        case busy
    }

    /// Counts lookups still running, in the background or not (each holds a thread), up to a maximum.
    final class Gate: Sendable {
        let running = Atomic<Int>(0)
        let maximum: Int
        init(maximum: Int) { self.maximum = maximum }
        /// The process's: every app's lookups share it.
        static let shared = Gate(maximum: 8)
        /// The most one app may have running.
        static let perApp = 2
    }

    /// The addresses of `host`:`port`, IPv4 and IPv6, waiting at most `milliseconds`.
    ///
    /// The system resolver can block for tens of seconds (its own timeouts and retries), longer than any call
    /// may block an app, so the lookup runs on a thread of its own; one that outlives its caller finishes in
    /// the background. Each of `gates` bounds how many run at once (the app's own, then the process's), so
    /// an app that keeps asking for a name that never answers can neither pile up threads nor take every
    /// other app's lookups. `lookup` is the system resolver except in tests.
    static func resolve(
        _ host: String, port: Int, waitingAtMost milliseconds: Int, gates: [Gate] = [.shared],
        lookup: @escaping @Sendable (String, Int) -> [ResolvedAddress] = { resolve($0, port: $1) }
    ) -> Answer {
        var entered: [Gate] = []
        for gate in gates {
            guard gate.running.add(1, ordering: .relaxed).newValue <= gate.maximum else {
                gate.running.subtract(1, ordering: .relaxed)
                for done in entered { done.running.subtract(1, ordering: .relaxed) }
                return .busy
            }
            entered.append(gate)
        }
        final class Outcome: Sendable {
            let addresses = Mutex<[ResolvedAddress]>([])
            let done = DispatchSemaphore(value: 0)
        }
        let outcome = Outcome()
        Thread.detachNewThread {
            let found = lookup(host, port)
            outcome.addresses.withLock { $0 = found }
            for gate in gates { gate.running.subtract(1, ordering: .relaxed) }
            outcome.done.signal()
        }
        guard outcome.done.wait(timeout: .now() + .milliseconds(max(0, milliseconds))) == .success else { return .timedOut }
        return .addresses(outcome.addresses.withLock { $0 })
    }

    /// The addresses of `host`:`port`, IPv4 and IPv6, through the system resolver, however long it takes.
    static func resolve(_ host: String, port: Int) -> [ResolvedAddress] {
        lookup(host, port: port, flags: 0)
    }

    /// `address` if it is a numeric IP address.
    static func numeric(_ address: String, port: Int) -> ResolvedAddress? {
        lookup(address, port: port, flags: AI_NUMERICHOST).first
    }

    /// Whether `host` is an IP address rather than a name.
    static func isNumeric(_ host: String) -> Bool { numeric(host, port: 1) != nil }

    private static func lookup(_ host: String, port: Int, flags: Int32) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_flags = flags | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var result: [ResolvedAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let address = info.pointee.ai_addr, Int(info.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { target in
                    target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(info.pointee.ai_addrlen)))
                }
                result.append(ResolvedAddress(storage: storage, length: info.pointee.ai_addrlen))
            }
            cursor = info.pointee.ai_next
        }
        return result
    }
}
