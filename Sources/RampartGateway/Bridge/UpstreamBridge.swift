import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Prometheus
import RampartCore
import RampartDevice
import RampartMQTT
import RampartPKI
import ServiceLifecycle
import SwiftASN1
import Synchronization
import X509

/// Forwards the `$upstream` queues to the upstream broker over MQTT and TLS, with the gateway's own
/// certificate; a `Service`.
///
/// Messages go out in queue order, many in flight, and the queue is acknowledged only up to the last
/// message whose PUBACK arrived. After any failure the bridge reconnects with exponential backoff and
/// sends everything unacknowledged again, so delivery is at least once and in order per queue. The
/// original device travels as `$.cdid` (and `$.cmid` for a module) in the topic's property bag.
struct UpstreamBridge: Service {
    static let endpoint = RouteSink.upstream.endpointName

    private let configuration: GatewayConfiguration.Upstream
    private let identity: GatewayConfiguration.Identity
    private let store: MessageStore
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let host: String
    private let port: Int

    init(
        configuration: GatewayConfiguration.Upstream, identity: GatewayConfiguration.Identity, store: MessageStore,
        metrics: GatewayMetrics, logger: Logger
    ) throws {
        guard let url = URLComponents(string: configuration.url), url.scheme == "mqtts", let host = url.host, !host.isEmpty else {
            throw RampartError(.configurationInvalid, "upstream.url must be mqtts://host[:port], not \(configuration.url).")
        }
        self.host = host
        self.port = url.port ?? 8883
        self.configuration = configuration
        self.identity = identity
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await forwardUntilCancelled()
        }
    }

    private func forwardUntilCancelled() async {
        var backoff = Duration.seconds(1)
        while !Task.isCancelled {
            do {
                let (settings, clientID) = try clientConfiguration()
                let client = try await MQTTClient.connect(settings)
                logger.info("Connected to the upstream", metadata: ["upstream": "\(host):\(port)", "clientId": "\(clientID)"])
                backoff = .seconds(1)
                store.rewind(endpoint: Self.endpoint)
                try await pump(client, clientID: clientID)
                await client.disconnect()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("Upstream unavailable; messages stay queued", metadata: ["error": "\(error)", "retryIn": "\(backoff)"])
            }
            store.rewind(endpoint: Self.endpoint)
            let jitter = Double.random(in: 0.8...1.2)
            try? await Task.sleep(for: backoff * jitter)
            backoff = min(backoff * 2, .seconds(60))
        }
    }

    /// Sends queued messages until the connection fails. Acknowledges the store in order as PUBACKs come.
    private func pump(_ client: MQTTClient, clientID: String) async throws {
        // Never more in flight than the upstream said it takes (MQTT 5 Receive Maximum).
        let window = min(configuration.inFlight, Int(client.connAck.properties.receiveMaximum ?? UInt16.max))
        var inFlight: [InFlight] = []
        var head = 0
        while !Task.isCancelled {
            if !client.isActive { throw MQTTClientError(.connectionClosed, "The upstream closed the connection.") }
            if inFlight.count - head >= window || (head < inFlight.count && inFlight[head].isFulfilled) {
                try await acknowledgeHead(&inFlight, &head)
                continue
            }
            let available = window - (inFlight.count - head)
            let batch: (MessageStore.QueueKey, [MessageStore.Record])?
            if head < inFlight.count {
                // Something is in flight: take only what is there now, then go back to waiting for acks.
                batch = store.readNow(endpoint: Self.endpoint, maximumCount: available)
            } else {
                batch = await store.read(endpoint: Self.endpoint, maximumCount: available)
                if batch == nil { return }
            }
            guard let (key, records) = batch, !records.isEmpty else {
                if head < inFlight.count { try await acknowledgeHead(&inFlight, &head) }
                continue
            }
            for record in records {
                let future = client.publish(publish(for: record.message, clientID: clientID))
                inFlight.append(InFlight(key: key, sequence: record.sequence, enqueuedAt: record.message.enqueuedAtMilliseconds, future: future))
            }
        }
    }

    /// Waits for one message's outcome. A message the upstream refuses (negative PUBACK) or that cannot be
    /// encoded would be refused again on every retry: it is counted as dropped (`upstreamRefused`) and
    /// passed, instead of blocking its queue forever. A lost connection throws, and everything is resent.
    private func settle(_ entry: InFlight) async throws {
        do {
            try await entry.future.get()
        } catch let error as MQTTClientError where error.code == .refused {
            metrics.dropped("upstreamRefused").increment()
            logger.error("The upstream refused a message; it is dropped and counted", metadata: ["error": "\(error)"])
        } catch let error as MQTTProtocolError {
            metrics.dropped("upstreamRefused").increment()
            logger.error("A message cannot be sent upstream; it is dropped and counted", metadata: ["error": "\(error)"])
        }
    }

    /// A message sent upstream and not yet acknowledged there.
    private struct InFlight {
        let key: MessageStore.QueueKey
        let sequence: UInt64
        let enqueuedAt: UInt64
        let future: EventLoopFuture<Void>
        let done = DoneFlag()

        init(key: MessageStore.QueueKey, sequence: UInt64, enqueuedAt: UInt64, future: EventLoopFuture<Void>) {
            self.key = key
            self.sequence = sequence
            self.enqueuedAt = enqueuedAt
            self.future = future
            let done = done
            future.whenComplete { _ in done.set() }
        }

        var isFulfilled: Bool { done.isSet }
    }

    private func acknowledgeHead(
        _ inFlight: inout [InFlight],
        _ head: inout Int
    ) async throws {
        let entry = inFlight[head]
        try await settle(entry)
        head += 1
        // Acknowledge in runs: the last entry of each queue among those finished.
        var last: [MessageStore.QueueKey: UInt64] = [entry.key: entry.sequence]
        var count = 1
        while head < inFlight.count, inFlight[head].isFulfilled {
            try await settle(inFlight[head])
            last[inFlight[head].key] = inFlight[head].sequence
            head += 1
            count += 1
        }
        for (key, sequence) in last { store.acknowledge(key, through: sequence) }
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        metrics.messagesOut.increment(by: Int64(count))
        // A clock that stepped back must not make the latency negative (or trap).
        metrics.sendLatency.record(.milliseconds(Int64(clamping: now > entry.enqueuedAt ? now - entry.enqueuedAt : 0)))
        if head > 4096 {
            inFlight.removeFirst(head)
            head = 0
        }
    }

    /// The PUBLISH for the upstream: the gateway's telemetry topic with the original identity in the bag.
    private func publish(for message: GatewayMessage, clientID: String) -> MQTTPublish {
        return MQTTPublish(
            topic: "devices/\(clientID)/messages/events/" + PropertyBag.encode(message.propertyBag),
            payload: ByteBuffer(bytes: message.payload), qos: .atLeastOnce, retain: false, dup: false, packetID: nil,
            properties: MQTTProperties())
    }

    /// Client settings, read fresh for every connection so that a renewed device certificate is used.
    private func clientConfiguration() throws -> (MQTTClient.Configuration, String) {
        var certificateFile = configuration.certificate
        var keyFile = configuration.privateKey
        if certificateFile == nil, let state = identity.deviceState {
            let deviceState = DeviceState(directory: URL(fileURLWithPath: state))
            certificateFile = deviceState.certificateFile.path
            keyFile = deviceState.certificateKeyFile.path
        }
        guard let certificateFile, let keyFile else {
            throw RampartError(.configurationInvalid, "The upstream needs a client certificate: set upstream.certificate and private_key, or [identity] device_state.")
        }
        let (tls, chain) = try GatewayTLS.clientConfiguration(certificateFile: certificateFile, keyFile: keyFile, caFile: configuration.ca)
        var clientID = configuration.clientID
        if clientID == nil, let leaf = chain.first, let certificate = try? Certificate(derEncoded: try leaf.toDERBytes()) {
            clientID = certificate.subject.commonName
        }
        guard let clientID else {
            throw RampartError(.configurationInvalid, "Set upstream.client_id: the client certificate has no CN to use.")
        }
        var settings = MQTTClient.Configuration(host: host, port: port, tls: tls, clientID: clientID)
        settings.protocolVersion = configuration.protocolVersion == 5 ? .v5 : .v311
        settings.username = "\(host)/\(clientID)/?api-version=2021-04-12"
        settings.keepAliveSeconds = 30
        return (settings, clientID)
    }
}

/// Set once, from any thread.
final class DoneFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
