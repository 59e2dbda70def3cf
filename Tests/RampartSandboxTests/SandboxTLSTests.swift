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
    let serverCA: Certificate
    let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup

    init(clientCA: Certificate) throws {
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
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(Echo())
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
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
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
