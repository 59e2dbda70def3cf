import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Prometheus
import RampartCore
import ServiceLifecycle

/// The gateway's message link to the Rampart server; a `Service`.
///
/// In the hub role, telemetry routed to `$upstream` goes to the server in batches, in queue order, and the
/// store lets go of a batch only once the server has stored it. Every message carries a key unique to this
/// store, so a batch sent again after a lost answer is stored once.
///
/// Every gateway with a server (hub or edge) brings cloud-to-device messages to the devices connected to
/// it: it asks for a device's pending messages when it connects, and long-polls for new ones. The server
/// answers only for devices the gateway acts for (its registered children, or any device for a hub). A
/// message counts as delivered on the server once the device acknowledged it (PUBACK); until then the server
/// keeps it, so a gateway that restarts or a device that drops off loses nothing.
struct ServerUplink: Service {
    static let endpoint = RouteSink.upstream.endpointName
    /// Messages per upload.
    static let batchSize = 500
    /// How far back each poll for new cloud-to-device messages reaches, for transactions that commit late.
    static let pollOverlap: TimeInterval = 5

    let link: ServerLink
    let store: MessageStore
    let broker: Broker
    let metrics: GatewayMetrics
    let logger: Logger
    /// Names this store in upload keys: the server refuses a key twice from the same gateway.
    let storeID: String
    /// Whether `$upstream` telemetry goes to the server (the hub role).
    let uploadsTelemetry: Bool

    init(configuration: GatewayConfiguration, store: MessageStore, broker: Broker, metrics: GatewayMetrics, logger: Logger) throws {
        link = try ServerLink(configuration.identity, purpose: "Messages to and from the server")
        storeID = try Self.storeID(directory: configuration.store.directory)
        uploadsTelemetry = configuration.hubRole
        self.store = store
        self.broker = broker
        self.metrics = metrics
        self.logger = logger
    }

    /// A random ID kept in the store directory, made on first use.
    static func storeID(directory: String) throws -> String {
        let url = URL(fileURLWithPath: directory).appendingPathComponent("uplink-id")
        if let text = try? String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
            return text
        }
        let id = UUID().uuidString.lowercased()
        try SecureFile.write(id, to: url, mode: 0o600)
        return id
    }

    func run() async throws {
        let (connects, connected) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(100_000))
        let (acknowledgements, acknowledged) = AsyncStream.makeStream(of: String.self)
        let deliveries = CloudDeliveries()
        broker.observeDeviceConnections { connected.yield($0) }
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                if uploadsTelemetry { group.addTask { await uploadUntilCancelled() } }
                group.addTask { await pollUntilCancelled(deliveries, acknowledged) }
                group.addTask {
                    let client = KeptClient(link)
                    for await deviceID in connects {
                        await retrying("Fetching cloud-to-device messages for a device", attempts: 3) {
                            do {
                                try await client.run { http in
                                    let list = try await pending(http, query: "deviceId=\(deviceID)&wait=0")
                                    deliver(list.messages, deliveries, acknowledged)
                                }
                            } catch let error as RampartError where error.code == .notChild || error.code == .deviceNotClaimed {
                                // Not a device this gateway acts for on the server: nothing to fetch for it.
                                logger.debug("No cloud-to-device messages for this device here", metadata: ["device": "\(deviceID)", "why": "\(error.code)"])
                            }
                        }
                    }
                    await client.discard()
                }
                group.addTask {
                    let client = KeptClient(link)
                    for await id in acknowledgements {
                        let recorded = await retrying("Recording a delivery on the server", attempts: 5) {
                            try await client.run { http in
                                _ = try await link.request(http, .POST, link.url("/cloud-messages/\(id)/delivered"))
                            }
                        }
                        // Not recorded: it stays pending there, and goes again (at least once) when the device reconnects.
                        if recorded { deliveries.finish(id) } else { deliveries.abandon(id) }
                    }
                    await client.discard()
                }
                await group.next()
                group.cancelAll()
            }
        }
        connected.finish()
        acknowledged.finish()
    }

    // MARK: Telemetry

    private func uploadUntilCancelled() async {
        await untilCancelled("The server did not take telemetry; it stays queued", afterFailure: { store.rewind(endpoint: Self.endpoint) }) {
            http, succeeded in
            // nil: cancelled, or the store closed at shutdown.
            guard let (key, records) = await store.read(endpoint: Self.endpoint, maximumCount: Self.batchSize) else {
                throw CancellationError()
            }
            if records.isEmpty { return }
            try await upload(records, key: key, http)
            succeeded()
        }
    }

    /// Calls `step` again and again with a client, until cancelled. A fresh client is made now and then, so
    /// that a renewed device certificate is used. After a failure, `afterFailure` runs and the loop waits,
    /// doubling the wait (with jitter) up to a minute until `step` reports success.
    private func untilCancelled(
        _ failure: String, afterFailure: () -> Void = {}, _ step: (HTTPClient, _ succeeded: () -> Void) async throws -> Void
    ) async {
        var backoff = Duration.seconds(1)
        while !Task.isCancelled {
            do {
                try await link.withClient { http in
                    let started = ContinuousClock.now
                    while !Task.isCancelled, ContinuousClock.now - started < .seconds(600) {
                        try await step(http) { backoff = .seconds(1) }
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("\(failure)", metadata: ["error": "\(error)", "retryIn": "\(backoff)"])
                afterFailure()
                try? await Task.sleep(for: backoff * Double.random(in: 0.8...1.2))
                backoff = min(backoff * 2, .seconds(60))
            }
        }
    }

    /// Payload bytes in one upload at most (the server takes bodies of up to 48 MiB, base64 included).
    static let batchBytes = 8 << 20

    /// Uploads records of one queue in requests of at most ``batchBytes`` of payload, acknowledging each.
    private func upload(_ records: [MessageStore.Record], key: MessageStore.QueueKey, _ http: HTTPClient) async throws {
        var start = 0
        while start < records.count {
            var end = start
            var bytes = 0
            while end < records.count, end == start || bytes + records[end].message.payload.count <= Self.batchBytes {
                bytes += records[end].message.payload.count
                end += 1
            }
            try await uploadChunk(Array(records[start..<end]), key: key, http)
            start = end
        }
    }

    /// Uploads one chunk and acknowledges it. A message the server refuses for itself (in `refused`) would
    /// be refused again: it is dropped and counted (`serverRefused`) with the server's reason, so that it
    /// cannot block its queue. A request refused as a whole is not about one message (a body too large is
    /// sent again one message at a time): it throws, and everything stays queued.
    private func uploadChunk(_ records: [MessageStore.Record], key: MessageStore.QueueKey, _ http: HTTPClient) async throws {
        let body = try JSONCoding.encoder().encode(TelemetryUploadRequest(messages: records.map { upload($0, key: key) }))
        let result: TelemetryUploadResult
        do {
            let answer = try await link.request(http, .POST, link.url("/messages"), body: Array(body), timeout: .seconds(120))
            result = try JSONCoding.decoder().decode(TelemetryUploadResult.self, from: Data(answer))
        } catch let error as RampartError where error.status == 413 && records.count > 1 {
            for record in records { try await uploadChunk([record], key: key, http) }
            return
        }
        for refusal in result.refused {
            metrics.dropped("serverRefused").increment()
            logger.error(
                "The server refused a message; it is dropped and counted",
                metadata: ["code": "\(refusal.code)", "error": "\(refusal.message)",
                           "device": "\(records.indices.contains(refusal.index) ? records[refusal.index].message.deviceID : "?")"])
        }
        guard let last = records.last else { return }
        store.acknowledge(key, through: last.sequence)
        metrics.messagesOut.increment(by: Int64(result.stored + result.duplicates))
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let enqueued = last.message.enqueuedAtMilliseconds
        metrics.sendLatency.record(.milliseconds(Int64(clamping: now > enqueued ? now - enqueued : 0)))
    }

    /// The server's form of a stored message: the device it came from (`$.cdid` when a trusted downstream
    /// gateway forwarded it), and a key unique to this store.
    private func upload(_ record: MessageStore.Record, key: MessageStore.QueueKey) -> TelemetryUpload {
        let message = record.message
        let forwarded = message.systemProperties["cdid"]
        var system = message.systemProperties
        system["cdid"] = nil
        system["cmid"] = nil
        return TelemetryUpload(
            key: "\(storeID)/\(key.endpoint)/\(key.priority)/\(record.sequence)", deviceId: forwarded ?? message.deviceID,
            forwardedBy: forwarded == nil ? nil : message.deviceID, moduleId: forwarded == nil ? message.moduleID : message.systemProperties["cmid"],
            enqueuedAt: Date(timeIntervalSince1970: Double(message.enqueuedAtMilliseconds) / 1000),
            properties: message.applicationProperties,
            systemProperties: system, payload: Data(message.payload).base64EncodedString())
    }

    // MARK: Cloud to device

    /// How often the poll looks again at everything still pending, not only what is new: a message whose
    /// fetch on connect or whose delivery record failed is sent then, while its device stays connected.
    static let sweepInterval: Duration = .seconds(300)

    private func pollUntilCancelled(_ deliveries: CloudDeliveries, _ acknowledged: AsyncStream<String>.Continuation) async {
        var since = Date(timeIntervalSince1970: 0)
        var after: String?
        var lastSweep = ContinuousClock.now
        await untilCancelled("Cannot fetch cloud-to-device messages from the server") { http, succeeded in
            let list = try await pending(
                http, query: after.map { "after=\($0)&wait=0" } ?? "since=\(Timestamp.format(since))&wait=10")
            let handed = deliver(list.messages, deliveries, acknowledged)
            succeeded()
            if let next = list.next {
                after = next  // a full page: read on at once
                return
            }
            after = nil
            since = list.serverTime - Self.pollOverlap
            if ContinuousClock.now - lastSweep >= Self.sweepInterval {
                since = list.serverTime - TimeInterval(CloudMessageRequest.maximumTimeToLive)
                lastSweep = ContinuousClock.now
            }
            // Messages for devices that are away come back until `since` passes them: do not spin.
            if handed == 0, !list.messages.isEmpty { try await Task.sleep(for: .seconds(1)) }
        }
    }

    private func pending(_ http: HTTPClient, query: String) async throws -> CloudMessageList {
        let body = try await link.request(http, .GET, link.url("/cloud-messages?\(query)"), timeout: .seconds(60))
        return try JSONCoding.decoder().decode(CloudMessageList.self, from: Data(body))
    }

    /// Hands messages to connected devices; each acknowledged one is queued for recording on the server.
    ///
    /// - Returns: How many were handed to a connection.
    @discardableResult
    private func deliver(
        _ messages: [CloudMessage], _ deliveries: CloudDeliveries, _ acknowledged: AsyncStream<String>.Continuation
    ) -> Int {
        var handed = 0
        let now = Date()
        for message in messages where message.expiresAt > now && deliveries.begin(message.id) {
            guard let payload = try? message.payloadEncoding.decode(message.payload) else {
                deliveries.abandon(message.id)
                continue
            }
            let properties = [
                ("$.mid", message.id), ("$.to", "/devices/\(message.deviceId)/messages/deviceBound"),
                // Whole seconds on the wire: rounded up, so that a device never drops a message before its TTL ends.
                ("$.exp", Timestamp.format(Date(timeIntervalSince1970: message.expiresAt.timeIntervalSince1970.rounded(.up)))),
            ] + message.properties.map { ($0.name, $0.value) }
            guard let future = broker.deliverCloudToDevice(deviceID: message.deviceId, payload: payload, properties: properties) else {
                deliveries.abandon(message.id)  // not connected here: the server keeps it until the device connects
                continue
            }
            handed += 1
            let metrics = metrics
            future.whenComplete { result in
                switch result {
                case .success:
                    metrics.cloudToDeviceDelivered.increment()
                    acknowledged.yield(message.id)
                case .failure:
                    deliveries.abandon(message.id)
                }
            }
        }
        return handed
    }

    /// Runs `body` until it succeeds, at most `attempts` times; returns whether it succeeded.
    @discardableResult
    private func retrying(_ what: String, attempts: Int, _ body: () async throws -> Void) async -> Bool {
        for attempt in 1...attempts {
            do {
                try await body()
                return true
            } catch {
                if Task.isCancelled { return false }
                logger.warning("\(what) failed", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                // The server's refusal of this request would not change on a retry.
                if let refusal = error as? RampartError, (400..<500).contains(refusal.status), refusal.status != 429 { return false }
                if attempt < attempts { try? await Task.sleep(for: .seconds(1 << min(attempt, 5))) }
            }
        }
        return false
    }
}

/// Which cloud-to-device messages are with a device now, or were recorded as delivered a moment ago, so
/// that overlapping polls do not send one twice.
final class CloudDeliveries: Sendable {
    private enum State { case outstanding, finished(Date) }
    private let states = NIOLockedValueBox<[String: State]>([:])

    /// Claims a message for delivery; `false` when it is already out or just finished.
    func begin(_ id: String) -> Bool {
        states.withLockedValue { states in
            if states.count > 10_000 {
                let cutoff = Date() - 60
                states = states.filter { if case .finished(let at) = $0.value { return at > cutoff } else { return true } }
            }
            guard states[id] == nil else { return false }
            states[id] = .outstanding
            return true
        }
    }

    /// The device did not take it: it may be sent again.
    func abandon(_ id: String) { states.withLockedValue { $0[id] = nil } }

    /// The server knows it was delivered.
    func finish(_ id: String) { states.withLockedValue { $0[id] = .finished(Date()) } }
}
