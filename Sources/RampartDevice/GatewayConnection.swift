import Crypto
import Foundation
import Logging
import NIOCore
import RampartCore
import RampartMQTT
import RampartPKI
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
/// - cloud-to-device messages arrive on `devices/{id}/messages/devicebound/…` and go to the app their
///   `componentId` names, if it takes cloud messages (`DeviceAuthentication`); each is acknowledged once the
///   app took it. One whose app is installed but cannot take it now (stopped, inbox full) is held
///   unacknowledged, so the server keeps it, and offered again every ``tick``, in the app's order, until a
///   minute after it expires (`$.exp`). Beyond ``heldPerApp`` (or ``heldLimit`` in all), an app's messages
///   stay unacknowledged at the gateway and come again on a new connection, made once its held ones are gone.
///   One that no app on the device would ever take (no `componentId`, no such app, an app without
///   `DeviceAuthentication` for this tenant, an undecodable topic) is acknowledged and logged, as IoT Hub
///   completes a message its device took, so that it does not take a place in the gateway's window for ever.
///
/// Acknowledgements may leave in another order than the messages came (MQTT 3.1.1 §4.6 asks for arrival
/// order): a held message must not hold up the others. Rampart's gateway matches them by packet ID.
///
/// It connects again when the link drops, with backoff (1 s doubling to a minute) unless the connection had
/// lasted 30 s, and at once when attestation stores a renewed certificate, so the gateway always sees a valid
/// one.
public final class GatewayConnection: Service, Sendable {
    let settings: DeviceConfiguration.Gateway
    let state: DeviceState
    let status: DeviceStatusBoard
    let logger: Logger
    /// Rung whenever a connection is up, so that queued telemetry goes at once.
    let linkUp: Doorbell?
    private let apps = Mutex<AppSupervisor?>(nil)
    private let current = Mutex<MQTTClient?>(nil)
    private let held = Mutex<HeldMessages>(HeldMessages())
    /// How often held messages are offered again, and the certificate is looked at.
    let tick: Duration
    /// How long after its `$.exp` a held message is dropped: the device's clock may differ from the server's.
    let clockTolerance: TimeInterval
    /// The most messages held in memory for their apps (at most 64 KiB each), and for one app; more stay
    /// unacknowledged at the gateway, with the app's later ones, and come again on a new connection, made once
    /// the app's held ones are gone.
    static let heldLimit = 32
    package static let heldPerApp = 16
    /// A connection that lasted this long ends its failure streak.
    static let stableConnection: Duration = .seconds(30)
    /// The longest wait for CONNACK, and then for SUBACK.
    static let handshakeTimeout: Duration = .seconds(10)

    /// Creates the connection; it connects once ``run()`` runs.
    /// - Parameters:
    ///   - linkUp: Rung when a connection is up (the telemetry sender's doorbell).
    ///   - tick: How often messages waiting for their app are offered again, and the certificate is looked at.
    ///   - clockTolerance: How long after its `$.exp` a held message is dropped.
    public init(
        settings: DeviceConfiguration.Gateway, state: DeviceState, status: DeviceStatusBoard, linkUp: Doorbell? = nil,
        tick: Duration = .seconds(5), clockTolerance: TimeInterval = 60, logger: Logger
    ) {
        self.settings = settings
        self.tick = tick
        self.clockTolerance = clockTolerance
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
    package var isConnected: Bool { current.withLock { $0?.isActive ?? false } }

    /// How many connections have been made so far.
    package var connectionsMade: Int { made.load(ordering: .relaxed) }
    private let made = Atomic<Int>(0)

    /// How many cloud messages wait, unacknowledged, for their apps on the current connection.
    package var heldCount: Int { held.withLock { $0.messages.count } }

    /// How many cloud messages this connection left unacknowledged at the gateway, beyond what it holds.
    package var leftAtGatewayCount: Int { held.withLock { $0.leftCount } }

    /// Why a connection ended.
    enum Ending {
        /// The gateway or the network closed it.
        case closed
        /// The certificate it was made with was renewed or expired.
        case certificateChanged
        /// Messages beyond ``heldLimit`` were left at the gateway and their app's held ones are gone: a new
        /// connection brings them again.
        case resync
        case cancelled
    }

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
                // Shutdown does not wait for a handshake.
                let client = try await cancelWhenGracefulShutdown {
                    try await self.connect(certificate: certificate, deviceID: snapshot.deviceId)
                }
                made.add(1, ordering: .relaxed)
                logger.info("Connected to the gateway", metadata: ["gateway": "\(settings.host):\(settings.port)"])
                current.withLock { $0 = client }
                linkUp?.ring()
                let started = ContinuousClock.now
                let ending = await cancelWhenGracefulShutdown {
                    await self.serve(client, tenant: tenant.description, deviceID: snapshot.deviceId, notAfter: snapshot.certificateNotAfter)
                }
                current.withLock { $0 = nil }
                held.withLock { $0 = HeldMessages() }  // unacknowledged: the server sends them again on the next connection
                await client.disconnect()
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                switch ending {
                case .certificateChanged, .resync:
                    failures = 0
                case .closed, .cancelled:
                    failures = ContinuousClock.now - started >= Self.stableConnection ? 1 : failures + 1
                    logger.info("The gateway connection ended; connecting again", metadata: ["after": "\(ContinuousClock.now - started)"])
                }
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                failures += 1
                logger.warning("Cannot connect to the gateway", metadata: [
                    "gateway": "\(settings.host):\(settings.port)", "error": "\(error)", "attempt": "\(failures)",
                ])
            }
            // 1 s, 2 s, 4 s … up to a minute, with jitter.
            if failures > 0 {
                let seconds = Double(min(60, 1 << min(failures - 1, 6))) * Double.random(in: 0.75...1.25)
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(seconds)) }
            }
        }
    }

    /// Connects and subscribes to the device-bound topic, each step within ``handshakeTimeout``.
    private func connect(certificate: (chain: [Certificate], key: P256.Signing.PrivateKey), deviceID: String) async throws -> MQTTClient {
        var ca: String?
        if let caFile = settings.caFile {
            // Read on every attempt, so that a corrected file is used without a restart.
            ca = try Self.readCA(caFile)
        }
        var configuration = MQTTClient.Configuration(
            host: settings.host, port: settings.port, tls: try DeviceTLS.configuration(serverCAPEM: ca, certificate: certificate),
            clientID: deviceID)
        configuration.username = "\(settings.host)/\(deviceID)/?api-version=2021-04-12"
        configuration.keepAliveSeconds = 60
        configuration.acknowledgesOnArrival = false
        configuration.maximumPacketSize = 1 << 20
        configuration.connectTimeout = .seconds(Int64(Self.handshakeTimeout.components.seconds))
        let client = try await MQTTClient.connect(configuration)
        // A SUBACK that never comes: closing the connection fails the subscription.
        let watchdog = Task {
            try await Task.sleep(for: Self.handshakeTimeout)
            client.close()
        }
        defer { watchdog.cancel() }
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

    /// Reads `[gateway] ca`: PEM certificates, or a `configurationInvalid` error that names the file.
    public static func readCA(_ file: String) throws -> String {
        guard let pem = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw RampartError(.configurationInvalid, "Cannot read the gateway CA, gateway.ca \(file).")
        }
        guard (try? Certificate.parseBundle(pem: pem))?.isEmpty == false else {
            throw RampartError(.configurationInvalid, "The gateway CA, gateway.ca \(file), holds no PEM certificate.")
        }
        return pem
    }

    /// Serves one connection until it closes, the certificate it used is replaced or expires, or messages left
    /// at the gateway should come again.
    private func serve(_ client: MQTTClient, tenant: String, deviceID: String, notAfter: Date?) async -> Ending {
        await withTaskGroup(of: Ending.self) { group in
            group.addTask {
                for await publish in client.messages {
                    await self.receive(publish, client: client, tenant: tenant, deviceID: deviceID)
                }
                return Task.isCancelled ? .cancelled : .closed
            }
            group.addTask {
                while client.isActive {
                    do { try await Task.sleep(for: self.tick) } catch { return .cancelled }
                    let snapshot = self.status.snapshot
                    if !snapshot.certificateValid || snapshot.certificateNotAfter != notAfter {
                        self.logger.info("The device certificate changed; connecting to the gateway with the new one")
                        return .certificateChanged
                    }
                    if await self.retryHeld(client: client, tenant: tenant) { return .resync }
                }
                return .closed
            }
            let ending = await group.next() ?? .cancelled
            group.cancelAll()
            return ending
        }
    }

    /// Hands one arriving cloud-to-device message to its app, or holds it.
    private func receive(_ publish: MQTTPublish, client: MQTTClient, tenant: String, deviceID: String) async {
        let prefix = "devices/\(deviceID)/messages/devicebound/"
        var bag = publish.topic.hasPrefix(prefix) ? publish.topic.dropFirst(prefix.count) : nil
        if bag?.hasSuffix("/") == true { bag = bag?.dropLast() }
        guard let bag, let properties = PropertyBag.decode(bag) else {
            logger.warning("A cloud message came on a topic this connection cannot read; acknowledged and dropped", metadata: [
                "topic": "\(publish.topic.prefix(200))"
            ])
            return client.acknowledge(publish)
        }
        let message = held.withLock { held in
            defer { held.nextSequence += 1 }
            return HeldMessage(publish: publish, properties: properties, sequence: held.nextSequence)
        }
        guard let component = message.component else {
            logger.warning("A cloud message names no app (no componentId property); acknowledged and dropped", metadata: ["id": "\(message.id)"])
            return client.acknowledge(publish)
        }
        // Behind any of the app's messages held here or left at the gateway, so that its messages reach it in order.
        if held.withLock({ $0.waits(component) }) {
            return hold(message)
        }
        if await offer(message, client: client, tenant: tenant) == .notNow {
            logger.info("A cloud message waits for its app", metadata: ["id": "\(message.id)", "componentId": "\(component)"])
            hold(message)
        }
    }

    /// Offers a message to its app; acknowledges it unless the app cannot take it now.
    private func offer(_ message: HeldMessage, client: MQTTClient, tenant: String) async -> AppSupervisor.CloudDelivery {
        let component = message.component ?? ""
        guard client.isActive else { return .notNow }
        let supervisor = apps.withLock { $0 }
        let outcome = await supervisor?.deliverCloudMessage(
            Array(message.publish.payload.readableBytesView), componentID: component, tenant: tenant) ?? .notNow
        switch outcome {
        case .taken:
            client.acknowledge(message.publish)
            logger.info("Cloud message delivered to its app", metadata: ["id": "\(message.id)", "componentId": "\(component)"])
        case .noRecipient:
            logger.warning("A cloud message names an app that is not installed or does not take cloud messages; acknowledged and dropped", metadata: [
                "id": "\(message.id)", "componentId": "\(component)",
            ])
            client.acknowledge(message.publish)
        case .notNow:
            break
        }
        return outcome
    }

    /// Acknowledges and drops a held message whose `$.exp` passed ``clockTolerance`` ago: the server no longer
    /// offers it, and keeps it expired.
    private func dropIfExpired(_ message: HeldMessage, client: MQTTClient) -> Bool {
        guard let expiry = message.expiresAt, expiry + clockTolerance <= Date() else { return false }
        logger.warning("A cloud message expired before its app took it; acknowledged and dropped", metadata: [
            "id": "\(message.id)", "componentId": "\(message.component ?? "")",
        ])
        client.acknowledge(message.publish)
        return true
    }

    /// Holds a message for its app, or, beyond ``heldLimit`` (``heldPerApp`` for one app), leaves it
    /// unacknowledged at the gateway together with the app's later ones.
    private func hold(_ message: HeldMessage) {
        guard let component = message.component else { return }
        held.withLock { held in
            let mine = held.messages.count { $0.component == component }
            if !held.leftAtGateway.contains(component), mine < Self.heldPerApp, held.messages.count < Self.heldLimit {
                held.messages.append(message)
            } else {
                held.leftAtGateway.insert(component)  // it comes again on a new connection
                held.leftCount += 1
            }
        }
    }

    /// Offers the held messages again, in order; an app that still cannot take one keeps its later ones too.
    /// Returns true when a new connection should bring messages left at the gateway: an app they are for has
    /// no held messages left.
    private func retryHeld(client: MQTTClient, tenant: String) async -> Bool {
        let waiting = held.withLock { $0.messages }
        var blocked = Set<String>()
        var done = Set<Int>()
        for message in waiting where client.isActive {
            guard let component = message.component else { continue }
            if dropIfExpired(message, client: client) {
                done.insert(message.sequence)
                continue
            }
            if blocked.contains(component) { continue }
            if await offer(message, client: client, tenant: tenant) == .notNow {
                blocked.insert(component)
            } else {
                done.insert(message.sequence)
            }
        }
        return held.withLock { held in
            held.messages.removeAll { done.contains($0.sequence) }
            return held.leftAtGateway.contains { app in !held.messages.contains { $0.component == app } }
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
struct HeldMessages {
    var messages: [HeldMessage] = []
    /// Apps with messages left unacknowledged at the gateway, which come again on a new connection.
    var leftAtGateway: Set<String> = []
    /// How many messages were left so.
    var leftCount = 0
    var nextSequence = 0

    /// Whether the app has earlier messages waiting, here or at the gateway.
    func waits(_ component: String) -> Bool {
        leftAtGateway.contains(component) || messages.contains { $0.component == component }
    }
}

/// A cloud-to-device message as it arrived, with its topic's properties.
struct HeldMessage {
    let publish: MQTTPublish
    let properties: [(String, String)]
    /// Its place in arrival order on this connection.
    let sequence: Int

    func property(_ name: String) -> String? { properties.first { $0.0 == name }?.1 }
    /// The app it is for (component IDs compare lowercased).
    var component: String? { property("componentId")?.lowercased() }
    var id: String { property("$.mid") ?? "?" }
    /// `$.exp`, when the gateway gave one.
    var expiresAt: Date? { property("$.exp").flatMap(Timestamp.parse) }
}
