import Crypto
import Foundation
import Logging
import NIOCore
import RampartCore
import RampartMQTT
import ServiceLifecycle
import Synchronization
import X509

/// The runtime's own MQTT connection to a Rampart gateway, when `device.toml` names one (`[gateway]`): apps'
/// telemetry goes out on it and cloud-to-device messages for apps come in on it, as Azure Sphere apps reach IoT
/// Hub with the device certificate. Without it, both go to the service over HTTPS (``AppTelemetrySender``,
/// ``CloudMessageReceiver``).
///
/// It connects with the device certificate (mutual TLS: the gateway admits a client whose certificate CN is its
/// client ID, the device ID) and speaks IoT Hub's device topics:
/// - telemetry is published at QoS 1 to `devices/{id}/messages/events/componentId={app}`, and the sender keeps
///   each message until its PUBACK (at least once);
/// - cloud-to-device messages arrive on `devices/{id}/messages/devicebound/…`. One whose `componentId` names a
///   running app that takes cloud messages (`DeviceAuthentication`) goes to that app, and is acknowledged only
///   then. One its app cannot take now stays unacknowledged, so the gateway and the server keep it, and is offered
///   to the app again every few seconds (and sent again by the gateway after a reconnect). One without a
///   `componentId` names no app: it is acknowledged and logged, as IoT Hub completes a message its device took.
///
/// It connects again, with backoff up to a minute, when the link drops, and at once when attestation stores a
/// renewed certificate, so the gateway always sees a valid one.
public final class GatewayConnection: Service, Sendable {
    let settings: DeviceConfiguration.Gateway
    let state: DeviceState
    let status: DeviceStatusBoard
    let logger: Logger
    /// Rung whenever a connection is up, so that queued telemetry goes at once.
    let linkUp: Doorbell?
    private let apps = Mutex<AppSupervisor?>(nil)
    private let current = Mutex<MQTTClient?>(nil)
    /// How often messages no app could take are offered again, and the certificate is looked at.
    let tick: Duration
    /// The most messages held for their apps on one connection; beyond it, the oldest are left to the gateway.
    static let heldLimit = 256

    /// Creates the connection; it connects once ``run()`` runs.
    /// - Parameters:
    ///   - linkUp: Rung when a connection is up (the telemetry sender's doorbell).
    ///   - tick: How often messages waiting for their app are offered again, and the certificate is looked at.
    public init(
        settings: DeviceConfiguration.Gateway, state: DeviceState, status: DeviceStatusBoard, linkUp: Doorbell? = nil,
        tick: Duration = .seconds(5), logger: Logger
    ) {
        self.settings = settings
        self.tick = tick
        self.state = state
        self.status = status
        self.linkUp = linkUp
        self.logger = logger
    }

    /// Where cloud-to-device messages for apps go; set once the supervisor exists.
    public func deliverCloudMessages(to supervisor: AppSupervisor) {
        apps.withLock { $0 = supervisor }
    }

    /// Whether a connection is up now.
    public var isConnected: Bool { current.withLock { $0?.isActive ?? false } }

    /// How many connections have been made so far.
    public var connectionsMade: Int { made.load(ordering: .relaxed) }
    private let made = Atomic<Int>(0)

    public func run() async throws {
        var failures = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let snapshot = status.snapshot
            guard let tenant = snapshot.tenantId, snapshot.certificateValid, let certificate = state.validCertificate() else {
                // Not attested yet: look again soon (a local check, no traffic).
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(2)) }
                continue
            }
            do {
                let client = try await connect(certificate: certificate, deviceID: snapshot.deviceId)
                failures = 0
                made.add(1, ordering: .relaxed)
                logger.info("Connected to the gateway", metadata: ["gateway": "\(settings.host):\(settings.port)"])
                current.withLock { $0 = client }
                linkUp?.ring()
                await cancelWhenGracefulShutdown {
                    await self.serve(client, tenant: tenant.description, deviceID: snapshot.deviceId, notAfter: snapshot.certificateNotAfter)
                }
                current.withLock { $0 = nil }
                await client.disconnect()
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                logger.info("The gateway connection ended; connecting again")
            } catch {
                failures += 1
                logger.warning("Cannot connect to the gateway", metadata: [
                    "gateway": "\(settings.host):\(settings.port)", "error": "\(error)", "attempt": "\(failures)",
                ])
            }
            // 1 s, 2 s, 4 s … up to a minute, with jitter; a clean end (a renewed certificate) reconnects at once.
            if failures > 0 {
                let seconds = Double(min(60, 1 << min(failures - 1, 6))) * Double.random(in: 0.75...1.25)
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(seconds)) }
            }
        }
    }

    private func connect(certificate: (chain: [Certificate], key: P256.Signing.PrivateKey), deviceID: String) async throws -> MQTTClient {
        let ca: String?
        if let caFile = settings.caFile {
            guard let pem = try? String(contentsOfFile: caFile, encoding: .utf8) else {
                throw RampartError(.configurationInvalid, "Cannot read gateway.ca \(caFile).")
            }
            ca = pem
        } else {
            ca = nil
        }
        var configuration = MQTTClient.Configuration(
            host: settings.host, port: settings.port, tls: try DeviceTLS.configuration(serverCAPEM: ca, certificate: certificate),
            clientID: deviceID)
        configuration.username = "\(settings.host)/\(deviceID)/?api-version=2021-04-12"
        configuration.keepAliveSeconds = 60
        configuration.acknowledgesOnArrival = false
        configuration.maximumPacketSize = 1 << 20
        let client = try await MQTTClient.connect(configuration)
        do {
            let granted = try await client.subscribe([
                MQTTSubscription(topicFilter: "devices/\(deviceID)/messages/devicebound/#", qos: .atLeastOnce)
            ])
            guard granted.allSatisfy({ !$0.isFailure }) else {
                throw MQTTClientError(.refused, "The gateway refused the cloud-to-device subscription (\(granted)).")
            }
        } catch {
            await client.disconnect()
            throw error
        }
        return client
    }

    /// Serves one connection until it closes or the certificate it used is replaced or expires.
    private func serve(_ client: MQTTClient, tenant: String, deviceID: String, notAfter: Date?) async {
        let held = HeldMessages()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await publish in client.messages {
                    await self.receive(publish, client: client, tenant: tenant, deviceID: deviceID, held: held)
                }
            }
            group.addTask {
                while !Task.isCancelled, client.isActive {
                    try? await Task.sleep(for: self.tick)
                    let snapshot = self.status.snapshot
                    if !snapshot.certificateValid || snapshot.certificateNotAfter != notAfter {
                        self.logger.info("The device certificate changed; connecting to the gateway with the new one")
                        return
                    }
                    let waiting = held.list.withLock { held in
                        defer { held = [] }
                        return held
                    }
                    for publish in waiting {
                        await self.receive(publish, client: client, tenant: tenant, deviceID: deviceID, held: held, again: true)
                    }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Hands one cloud-to-device message to its app, and acknowledges it once taken (or when it names no app).
    private func receive(
        _ publish: MQTTPublish, client: MQTTClient, tenant: String, deviceID: String, held: HeldMessages,
        again: Bool = false
    ) async {
        let prefix = "devices/\(deviceID)/messages/devicebound/"
        guard publish.topic.hasPrefix(prefix) else {
            client.acknowledge(publish)  // not a topic this connection subscribed to: nothing to keep it for
            return
        }
        var bag = publish.topic.dropFirst(prefix.count)
        if bag.hasSuffix("/") { bag = bag.dropLast() }
        let properties = PropertyBag.decode(bag) ?? []
        let id = properties.first(where: { $0.0 == "$.mid" })?.1 ?? "?"
        guard let component = properties.first(where: { $0.0 == "componentId" })?.1 else {
            logger.warning("A cloud message names no app (no componentId property); acknowledged and dropped", metadata: ["id": "\(id)"])
            client.acknowledge(publish)
            return
        }
        let taken = await apps.withLock { $0 }?.deliverCloudMessage(Array(publish.payload.readableBytesView), componentID: component, tenant: tenant) ?? 0
        if taken > 0 {
            client.acknowledge(publish)
            logger.info("Cloud message delivered to apps", metadata: ["id": "\(id)", "apps": "\(taken)"])
            return
        }
        // Its app is not running, does not take cloud messages, or its inbox is full: keep it unacknowledged.
        if !again { logger.info("A cloud message waits for its app", metadata: ["id": "\(id)", "componentId": "\(component)"]) }
        held.list.withLock { held in
            held.append(publish)
            if held.count > Self.heldLimit { held.removeFirst(held.count - Self.heldLimit) }
        }
    }

    /// Publishes apps' telemetry at QoS 1. Returns the keys of the messages the gateway acknowledged.
    package func publish(_ messages: [TelemetryUpload]) async -> Set<String> {
        guard let client = current.withLock({ $0 }), client.isActive else { return [] }
        let deviceID = status.snapshot.deviceId
        var futures: [(String, EventLoopFuture<Void>)] = []
        var sent = Set<String>()
        for message in messages {
            guard let payload = Data(base64Encoded: message.payload) else {
                sent.insert(message.key)  // never happens: the sender encodes it; dropped rather than retried forever
                continue
            }
            let properties = message.properties.map { ($0.name, $0.value) }
            let topic = "devices/\(deviceID)/messages/events/" + PropertyBag.encode(properties)
            futures.append((message.key, client.publish(MQTTPublish(
                topic: topic, payload: ByteBuffer(bytes: payload), qos: .atLeastOnce, retain: false, dup: false, packetID: nil,
                properties: MQTTProperties()))))
        }
        var failure: (any Error)?
        for (key, future) in futures {
            do {
                try await future.get()
                sent.insert(key)
            } catch {
                failure = failure ?? error
            }
        }
        if let failure {
            logger.warning("App telemetry not taken by the gateway; will retry", metadata: [
                "error": "\(failure)", "waiting": "\(messages.count - sent.count)",
            ])
        }
        return sent
    }
}

/// Cloud-to-device messages that wait, unacknowledged, for their app on one connection.
final class HeldMessages: Sendable {
    let list = Mutex<[MQTTPublish]>([])
}
