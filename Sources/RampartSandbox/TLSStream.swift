#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS
import Synchronization

/// The device's TLS client identity, lent to an app with `DeviceAuthentication` for `rampart_tls_connect`.
public struct AppTLSIdentity: Sendable {
    /// The device certificate, then the tenant CA, as PEM.
    public var certificateChainPEM: String
    /// The device certificate's key, as PEM. It stays in the runtime: the app sees only the connection.
    public var privateKeyPEM: String
    /// CAs the server may chain to besides the system's trust store (the runtime's `server-ca.pem`).
    public var additionalTrustedCAsPEM: String?

    public init(certificateChainPEM: String, privateKeyPEM: String, additionalTrustedCAsPEM: String? = nil) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.additionalTrustedCAsPEM = additionalTrustedCAsPEM
    }

    /// What the runtime answers when an app asks for the identity of a tenant.
    public enum Lookup: Sendable {
        case identity(AppTLSIdentity)
        /// The app's `DeviceAuthentication` names another tenant than the device's.
        case otherTenant
        /// No valid device certificate yet (before the first attestation).
        case unavailable
    }

    /// A client TLS context: this identity, TLS 1.2 or later, the server verified (chain and name). The last
    /// one made is reused while the identity is the same (a day, until the next certificate): building one
    /// loads the system's trust store.
    func clientContext() throws -> NIOSSLContext {
        let key = certificateChainPEM + privateKeyPEM + (additionalTrustedCAsPEM ?? "")
        if let cached = Self.lastContext.withLock({ $0?.key == key ? $0?.context : nil }) { return cached }
        let context = try makeClientContext()
        Self.lastContext.withLock { $0 = (key, context) }
        return context
    }

    private static let lastContext = Mutex<(key: String, context: NIOSSLContext)?>(nil)

    private func makeClientContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificateChainPEM.utf8)).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem))
        if let additionalTrustedCAsPEM {
            configuration.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMBytes(Array(additionalTrustedCAsPEM.utf8)))]
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// TLS over one of an app's non-blocking sockets, on the app's own thread: BoringSSL (through NIOSSL) runs in
/// an `EmbeddedChannel`, and this class moves its records to and from the socket with `poll`-bounded waits,
/// so that TLS obeys the same timeouts as plain sockets and never touches an event loop.
final class TLSStream {
    private let channel = EmbeddedChannel()
    private let descriptor: Int32
    private let watcher = HandshakeWatcher()
    /// Decrypted bytes the app has not read yet.
    private var plaintext: [UInt8] = []
    /// Records not yet taken by the socket.
    private var pending: [UInt8] = []
    private var peerClosed = false

    /// Why the last operation failed, for the app's log.
    private(set) var failure: String?

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Runs the handshake within `deadline` (monotonic milliseconds).
    ///
    /// - Parameters:
    ///   - serverHostname: The name to send (SNI) and verify; `nil` for an IP address, verified against `peer`.
    /// - Returns: A host result: 0, or `connection`/`timedOut`.
    func handshake(context: NIOSSLContext, serverHostname: String?, peer: SocketAddress, deadline: UInt64) -> Int32 {
        do {
            try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverHostname))
            try channel.pipeline.syncOperations.addHandler(watcher)
            try channel.connect(to: peer).wait()
            while !watcher.completed {
                guard try flush(deadline: deadline) else { return HostResult.timedOut }
                switch try fill(deadline: deadline) {
                case .some(true): continue
                case .some(false): return fail("the server closed the connection during the TLS handshake")
                case .none: return HostResult.timedOut
                }
            }
            guard try flush(deadline: deadline) else { return HostResult.timedOut }
            return 0
        } catch {
            return fail("TLS handshake failed: \(error)")
        }
    }

    /// Encrypts and sends `bytes`; returns how many were taken, or a host result.
    func send(_ bytes: UnsafeRawBufferPointer, deadline: UInt64) -> Int32 {
        guard !peerClosed, channel.isActive else { return HostResult.connection }
        do {
            // What the socket did not take last time goes first, so records stay in order.
            guard try flush(deadline: deadline) else { return HostResult.again }
            try channel.writeOutbound(ByteBuffer(bytes: bytes))
            _ = try flush(deadline: deadline)  // the rest waits in `pending` for the next call
            return Int32(bytes.count)
        } catch {
            return fail("TLS send failed: \(error)")
        }
    }

    /// Receives decrypted bytes into `buffer`; 0 when the server closed the connection.
    func receive(into buffer: UnsafeMutableRawBufferPointer, deadline: UInt64) -> Int32 {
        do {
            while plaintext.isEmpty {
                if peerClosed || !channel.isActive { return 0 }
                guard try flush(deadline: deadline) else { return HostResult.again }
                switch try fill(deadline: deadline) {
                case .some(true): continue
                case .some(false): peerClosed = true
                case .none: return HostResult.again
                }
            }
            let count = min(buffer.count, plaintext.count)
            plaintext.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            plaintext.removeFirst(count)
            return Int32(count)
        } catch {
            return fail("TLS receive failed: \(error)")
        }
    }

    /// Sends what is still queued and close_notify, within `deadline`, then takes the channel apart; the caller
    /// closes the socket. Never waits for the peer's close_notify: NIOSSL's own shutdown timeout is run at
    /// once on the embedded loop, so nothing can hold the app's thread. Safe to call more than once.
    func dispose(deadline: UInt64) {
        guard !disposed else { return }
        disposed = true
        channel.close(promise: nil)
        _ = try? flush(deadline: deadline)
        channel.embeddedEventLoop.advanceTime(by: .hours(1))
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    private var disposed = false

    private func fail(_ reason: String) -> Int32 {
        failure = reason
        return HostResult.connection
    }

    /// Sends what TLS has to send. Returns false when the socket did not take it all before `deadline`.
    private func flush(deadline: UInt64) throws -> Bool {
        while let record = try channel.readOutbound(as: ByteBuffer.self) { pending += record.readableBytesView }
        while !pending.isEmpty {
            let sent = pending.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                pending.removeFirst(sent)
            } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                guard SocketTable.wait(descriptor, for: Int16(POLLOUT), timeout: Self.remaining(deadline)) else { return false }
            } else {
                throw TLSStreamError.socket(errno)
            }
        }
        return true
    }

    /// Reads what the socket has (waiting until `deadline`) into TLS. Returns true when bytes came, false
    /// at the end of the stream, nil when nothing came in time.
    private func fill(deadline: UInt64) throws -> Bool? {
        guard SocketTable.wait(descriptor, for: Int16(POLLIN), timeout: Self.remaining(deadline)) else { return nil }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let received = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if received < 0 {
            if errno == EAGAIN || errno == EINTR { return true }
            throw TLSStreamError.socket(errno)
        }
        if received == 0 {
            // A TLS peer ends with close_notify, which makes the channel inactive before the TCP end arrives. A
            // TCP end while TLS is still open is a cut connection (or a truncation attack), not a clean close.
            if channel.isActive { throw TLSStreamError.truncated }
            return false
        }
        try channel.writeInbound(ByteBuffer(bytes: chunk.prefix(received)))
        while let data = try channel.readInbound(as: ByteBuffer.self) { plaintext += data.readableBytesView }
        return true
    }

    private static func remaining(_ deadline: UInt64) -> Int32 {
        let now = Monotonic.milliseconds
        return Int32(clamping: deadline > now ? deadline - now : 0)
    }
}

enum TLSStreamError: Error, CustomStringConvertible {
    case socket(Int32)
    case truncated
    var description: String {
        switch self {
        case .socket(let code): "socket error \(code)"
        case .truncated: "the connection ended without TLS close_notify (cut or truncated)"
        }
    }
}

/// Notes when the handshake completes; errors surface from the channel's own calls.
private final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var completed = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { completed = true }
        context.fireUserInboundEventTriggered(event)
    }
}
