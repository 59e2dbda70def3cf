import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import RampartCore
import RampartMQTT
import RampartPKI
import RampartTestKit
import ServiceLifecycle
import X509

@testable import RampartGateway

/// A tenant-like CA and device certificates it issues, made in code.
struct TestTenantCA {
    let certificate: Certificate
    let key: P256.Signing.PrivateKey

    init(name: String = "Test Tenant CA", now: Date = Date()) throws {
        key = P256.Signing.PrivateKey()
        certificate = try CertificateIssuer.makeRootCA(
            subject: try DistinguishedName { CommonName(name) }, key: key, notBefore: now, notAfter: now + 86400 * 30)
    }

    var pem: String { get throws { try certificate.pemString } }

    /// A client certificate with CN = `deviceID`.
    func device(_ deviceID: String, notBefore: Date = Date() - 60, lifetime: TimeInterval = 86400, profile: CertificateIssuer.LeafProfile = .client)
        throws -> TestDeviceCertificate
    {
        let deviceKey = P256.Signing.PrivateKey()
        let leaf = try CertificateIssuer.issueLeaf(
            subject: try DistinguishedName { CommonName(deviceID) }, publicKey: deviceKey.publicKey, issuer: certificate,
            issuerKey: key, notBefore: notBefore, notAfter: notBefore + lifetime, profile: profile, backdate: 0)
        return TestDeviceCertificate(deviceID: deviceID, certificate: leaf, key: deviceKey)
    }
}

struct TestDeviceCertificate {
    let deviceID: String
    let certificate: Certificate
    let key: P256.Signing.PrivateKey

    func tls(trusting gatewayCA: String) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateChain = [.certificate(try NIOSSLCertificate(bytes: Array(try certificate.pemString.utf8), format: .pem))]
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(gatewayCA))
        return tls
    }
}

/// A gateway running in-process on a random port.
struct RunningGateway: Sendable {
    let gateway: Gateway
    let port: Int
    let directory: String
    var caFile: String { directory + "/gateway-ca.pem" }
    var broker: Broker { gateway.broker }
    var store: MessageStore { gateway.store }

    /// Connects an MQTT client as `device` (client ID `clientID`, default the device ID).
    func connect(
        _ device: TestDeviceCertificate, clientID: String? = nil, version: MQTTProtocolVersion = .v311,
        configure: (inout MQTTClient.Configuration) -> Void = { _ in }
    ) async throws -> MQTTClient {
        var settings = MQTTClient.Configuration(
            host: "127.0.0.1", port: port, tls: try device.tls(trusting: caFile), clientID: clientID ?? device.deviceID)
        settings.protocolVersion = version
        configure(&settings)
        return try await MQTTClient.connect(settings)
    }
}

enum GatewayHarness {
    static let logger: Logger = {
        var logger = Logger(label: "test.gateway")
        logger.logLevel = .warning
        return logger
    }()

    /// Writes a gateway directory (CA, server certificate for 127.0.0.1, trust bundle) and returns its
    /// default configuration on port 0.
    static func configuration(directory: TemporaryDirectory, trust: [TestTenantCA]) throws -> GatewayConfiguration {
        let folder = directory.file("gateway").path
        if !FileManager.default.fileExists(atPath: folder + "/gateway.toml") {
            _ = try GatewaySetup.initialize(directory: folder, hostname: "127.0.0.1")
        }
        try trust.map { try $0.pem }.joined().write(toFile: folder + "/trust-bundle.pem", atomically: true, encoding: .utf8)
        var configuration = try GatewayConfiguration.load(file: folder + "/gateway.toml")
        configuration.listener.host = "127.0.0.1"
        configuration.listener.port = 0
        configuration.metrics.port = 0
        return configuration
    }

    /// Runs a gateway for the duration of `body`, then shuts it down gracefully.
    static func run<T: Sendable>(
        _ configuration: GatewayConfiguration, _ body: @escaping @Sendable (RunningGateway) async throws -> T
    ) async throws -> T {
        let gateway = try Gateway(configuration: configuration, logger: logger)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let services = try gateway.services(listenerBound: { continuation.yield($0) })
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask {
                try await group.run()
                throw GatewayStopped()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            let directory = URL(fileURLWithPath: configuration.listener.certificate).deletingLastPathComponent().path
            let running = RunningGateway(gateway: gateway, port: port, directory: directory)
            // Whichever ends first: the body, or the gateway (which must not stop on its own).
            tasks.addTask { try await body(running) }
            do {
                let result = try await tasks.next()!
                await group.triggerGracefulShutdown()
                tasks.cancelAll()
                while (try? await tasks.next()) != nil {}
                return result!
            } catch {
                await group.triggerGracefulShutdown()
                tasks.cancelAll()
                while (try? await tasks.next()) != nil {}
                throw error
            }
        }
    }
}

/// The gateway's services ended while a test was still using it.
struct GatewayStopped: Error {}

extension MQTTPublish {
    /// A QoS 1 telemetry message.
    static func telemetry(_ deviceID: String, _ body: String, properties: String = "", qos: MQTTQoS = .atLeastOnce) -> MQTTPublish {
        MQTTPublish(
            topic: "devices/\(deviceID)/messages/events/\(properties)", payload: ByteBuffer(string: body), qos: qos,
            retain: false, dup: false, packetID: nil, properties: MQTTProperties())
    }

    var text: String { String(buffer: payload) }
}

/// Collects messages from a stream until `count` arrived or `timeout` passed.
func collect(_ stream: AsyncStream<MQTTPublish>, count: Int, timeout: Duration = .seconds(10)) async -> [MQTTPublish] {
    let received = NIOLockedValueBox<[MQTTPublish]>([])
    await withTaskGroup(of: Void.self) { group in
        group.addTask {
            for await message in stream {
                if received.withLockedValue({ $0.append(message); return $0.count }) >= count { break }
            }
        }
        group.addTask { try? await Task.sleep(for: timeout) }
        await group.next()
        group.cancelAll()
    }
    return received.withLockedValue { $0 }
}
