import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import RampartCore
import RampartPKI
import SwiftASN1
import Testing
import X509

@testable import RampartSandbox

/// A mutual-TLS echo server on loopback: it requires a client certificate from `clientCA` and echoes what it
/// reads. Its own certificate is for 127.0.0.1, from a CA of its own.
final class MutualTLSEchoServer: Sendable {
    /// What the server does after echoing: keep the connection, close it with close_notify, or cut it
    /// without one (as an attacker truncating the stream would).
    enum Ending: Sendable { case keepOpen, closeCleanly, cut }

    let serverCA: Certificate
    let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup

    init(clientCA: Certificate, ending: Ending = .keepOpen) throws {
        let identity = try CertificateIssuer.makeDevelopmentServerIdentity(
            hostnames: ["localhost"], ipAddresses: ["127.0.0.1"], now: Date(), validity: 3600)
        serverCA = identity.ca
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: try identity.server.derBytes, format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(identity.key.pemRepresentation.utf8), format: .pem)))
        tls.certificateVerification = .noHostnameVerification  // a client certificate is required
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try clientCA.derBytes, format: .der)])
        let context = try NIOSSLContext(configuration: tls)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let cutter = Cutter()
                    try channel.pipeline.syncOperations.addHandler(cutter)
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(Echo(ending: ending, cutter: cutter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        port = channel.localAddress?.port ?? 0
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    private final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let ending: Ending
        let cutter: Cutter
        init(ending: Ending, cutter: Cutter) {
            self.ending = ending
            self.cutter = cutter
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let closing = ending != .keepOpen
            let cut = ending == .cut
            let cutter = cutter
            context.writeAndFlush(data).whenComplete { _ in
                guard closing else { return }
                if cut {
                    // Closed from beside the socket, below TLS: no close_notify, just the TCP end.
                    cutter.dropWrites()
                    (try? context.pipeline.syncOperations.context(handlerType: Cutter.self))?.close(promise: nil)
                } else {
                    context.close(promise: nil)
                }
            }
        }
    }

    /// Next to the socket: drops everything written once told to.
    private final class Cutter: ChannelOutboundHandler, @unchecked Sendable {  // used on its channel's loop only
        typealias OutboundIn = ByteBuffer
        private var dropping = false
        func dropWrites() { dropping = true }
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if dropping { promise?.succeed(()) } else { context.write(data, promise: promise) }
        }
    }
}

/// A tenant CA and a device certificate from it, made in code.
struct DeviceIdentityFixture {
    let ca: Certificate
    let chainPEM: String
    let keyPEM: String

    init() throws {
        let caKey = P256.Signing.PrivateKey()
        ca = try CertificateIssuer.makeRootCA(
            subject: try DistinguishedName { CommonName("Test tenant CA") }, key: caKey, notBefore: Date(), notAfter: Date() + 3600)
        let key = P256.Signing.PrivateKey()
        let leaf = try CertificateIssuer.issueLeaf(
            subject: try DistinguishedName { CommonName(String(repeating: "d", count: 64)) }, publicKey: key.publicKey,
            issuer: ca, issuerKey: caKey, notBefore: Date(), notAfter: Date() + 3600, profile: .client)
        chainPEM = try leaf.pemString + "\n" + ca.pemString
        keyPEM = key.pemRepresentation
    }
}

@Suite("Apps' TLS with the device certificate")
struct SandboxTLSTests {
    /// Connects with TLS to 127.0.0.1:`port`, sends "ping", and exits with 100 + what the receive returned
    /// (or 100 + the connect's error).
    static func pingApp(port: Int) -> String {
        SandboxHarness.module(
            """
            (func (export "app_start") (local $h i32)
              (local.set $h (call $tls_connect (i32.const 0) (i32.const 9) (i32.const \(port)) (i32.const 5000)))
              (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.add (i32.const 100) (local.get $h))) (return)))
              (drop (call $socket_send (local.get $h) (i32.const 16) (i32.const 4)))
              (call $exit (i32.add (i32.const 100) (call $socket_recv (local.get $h) (i32.const 64) (i32.const 32) (i32.const 5000)))))
            """, data: "127.0.0.1xxxxxxxping")
    }

    /// Connects, sends "ping", receives twice (the echo, then what follows), closes the socket, and exits
    /// with 100 + the second receive's result.
    static func pingTwiceApp(port: Int) -> String {
        SandboxHarness.module(
            """
            (func (export "app_start") (local $h i32) (local $r i32)
              (local.set $h (call $tls_connect (i32.const 0) (i32.const 9) (i32.const \(port)) (i32.const 5000)))
              (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.add (i32.const 100) (local.get $h))) (return)))
              (drop (call $socket_send (local.get $h) (i32.const 16) (i32.const 4)))
              (if (i32.ne (call $socket_recv (local.get $h) (i32.const 64) (i32.const 32) (i32.const 5000)) (i32.const 4))
                (then (call $exit (i32.const 50)) (return)))
              (local.set $r (call $socket_recv (local.get $h) (i32.const 64) (i32.const 32) (i32.const 5000)))
              (drop (call $socket_close (local.get $h)))
              (call $exit (i32.add (i32.const 100) (local.get $r))))
            """, data: "127.0.0.1xxxxxxxping")
    }

    static let capabilities = #"{"AllowedConnections": ["127.0.0.1"], "DeviceAuthentication": "00000000-0000-0000-0000-000000000000"}"#

    func ping(_ server: MutualTLSEchoServer, lending lookup: AppTLSIdentity.Lookup?, capabilities: String = capabilities) async throws
        -> (result: Int32?, logs: [String])
    {
        var harness = SandboxHarness()
        if let lookup { harness.deviceTLS = { _ in lookup } }
        let outcome = await harness.run(try harness.runner(wat: Self.pingApp(port: server.port), capabilities: capabilities))
        return (SandboxHarness.exitCode(outcome).map { $0 - 100 }, harness.logs.messages)
    }

    @Test("an app with DeviceAuthentication talks mutual TLS with the device certificate to an allowed server")
    func mutualTLS() async throws {
        let device = try DeviceIdentityFixture()
        let server = try MutualTLSEchoServer(clientCA: device.ca)
        defer { server.stop() }
        let identity = AppTLSIdentity(
            certificateChainPEM: device.chainPEM, privateKeyPEM: device.keyPEM, additionalTrustedCAsPEM: try server.serverCA.pemString)
        let (result, logs) = try await ping(server, lending: .identity(identity))
        #expect(result == 4, "\(logs)")  // "ping" came back through TLS
    }

    @Test("the end of a TLS stream: close_notify is a clean 0, a cut without it is a connection error, and close never hangs")
    func endings() async throws {
        let device = try DeviceIdentityFixture()
        for (ending, expected) in [(MutualTLSEchoServer.Ending.closeCleanly, Int32(0)), (.cut, -5), (.keepOpen, -4)] {
            let server = try MutualTLSEchoServer(clientCA: device.ca, ending: ending)
            defer { server.stop() }
            var harness = SandboxHarness()
            harness.limits.maximumBlockingMilliseconds = 1000  // the open connection's receive times out (EAGAIN)
            let identity = AppTLSIdentity(
                certificateChainPEM: device.chainPEM, privateKeyPEM: device.keyPEM, additionalTrustedCAsPEM: try server.serverCA.pemString)
            harness.deviceTLS = { _ in .identity(identity) }
            let outcome = await harness.run(try harness.runner(wat: Self.pingTwiceApp(port: server.port), capabilities: Self.capabilities))
            #expect(SandboxHarness.exitCode(outcome).map { $0 - 100 } == expected, "\(ending): \(harness.logs.messages)")
        }
    }

    @Test("TLS fails closed: an untrusted server, a certificate the server does not trust, no certificate yet, another tenant")
    func refusals() async throws {
        let device = try DeviceIdentityFixture()
        let server = try MutualTLSEchoServer(clientCA: device.ca)
        defer { server.stop() }
        // The server's CA is not trusted: the handshake fails and the call says connection failed.
        let untrusted = AppTLSIdentity(certificateChainPEM: device.chainPEM, privateKeyPEM: device.keyPEM)
        let (first, logs) = try await ping(server, lending: .identity(untrusted))
        #expect(first == -5)
        #expect(logs.contains { $0.contains("TLS connection failed") })
        // A device certificate from another CA: the server refuses it (under TLS 1.3 after the client's handshake,
        // so the refusal arrives at the receive), and no byte is echoed.
        let stranger = try DeviceIdentityFixture()
        let foreign = AppTLSIdentity(
            certificateChainPEM: stranger.chainPEM, privateKeyPEM: stranger.keyPEM, additionalTrustedCAsPEM: try server.serverCA.pemString)
        let (second, _) = try await ping(server, lending: .identity(foreign))
        #expect(second.map { $0 <= 0 } == true, "got \(String(describing: second))")
        // Before attestation there is no certificate: unavailable, never plain TCP.
        #expect(try await ping(server, lending: .unavailable).result == -8)
        #expect(try await ping(server, lending: nil).result == -8)
        // DeviceAuthentication for another tenant: denied.
        #expect(try await ping(server, lending: .otherTenant).result == -1)
        // Without AllowedConnections the firewall denies it first.
        let identity = AppTLSIdentity(
            certificateChainPEM: device.chainPEM, privateKeyPEM: device.keyPEM, additionalTrustedCAsPEM: try server.serverCA.pemString)
        #expect(try await ping(server, lending: .identity(identity), capabilities: #"{"DeviceAuthentication": "00000000-0000-0000-0000-000000000000"}"#).result == -1)
        // A garbled key in the identity: unavailable, with a warning.
        let broken = AppTLSIdentity(certificateChainPEM: device.chainPEM, privateKeyPEM: "not a key")
        #expect(try await ping(server, lending: .identity(broken)).result == -8)
    }
}
