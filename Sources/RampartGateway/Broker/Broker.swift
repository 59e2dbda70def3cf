import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import RampartCore
import RampartMQTT

/// A configured route: the statement and how its messages are queued.
public struct GatewayRoute: Sendable {
    /// The route's name in the configuration.
    public var name: String
    /// The parsed `FROM … WHERE … INTO …`.
    public var statement: RouteStatement
    /// 0 (highest) to 9.
    public var priority: Int
    /// How long a message may wait; `nil` or negative never expires.
    public var timeToLiveSeconds: Int?

    /// Creates a route.
    public init(name: String, statement: RouteStatement, priority: Int = 0, timeToLiveSeconds: Int? = nil) {
        self.name = name
        self.statement = statement
        self.priority = priority
        self.timeToLiveSeconds = timeToLiveSeconds
    }

    /// The queue this route feeds.
    var queueKey: MessageStore.QueueKey { .init(endpoint: statement.sink.endpointName, priority: priority) }
}

extension RouteSink {
    /// The store endpoint name: `$upstream` or `/modules/{m}/inputs/{i}`.
    var endpointName: String {
        switch self {
        case .upstream: "$upstream"
        case .brokeredEndpoint(let module, let input): "/modules/\(module)/inputs/\(input)"
        }
    }

    /// Parses an endpoint name back.
    init?(endpointName: String) {
        if endpointName == "$upstream" {
            self = .upstream
            return
        }
        let parts = endpointName.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "modules", parts[3] == "inputs" else { return nil }
        self = .brokeredEndpoint(module: String(parts[2]), input: String(parts[4]))
    }
}

/// The broker's shared state: who is connected, routing into store and forward, and deliveries to clients.
///
/// Connections live on NIO event loops; the broker is the only state they share, behind one lock held
/// only for dictionary work.
public final class Broker: Sendable {
    /// Broker settings.
    public struct Configuration: Sendable {
        /// The routes, in configuration order.
        public var routes: [GatewayRoute] = []
        /// Admit any device of the tenant (`nil`), or only these children.
        public var registeredChildren: Set<String>? = nil
        /// The largest PUBLISH payload accepted (IoT Hub's limit is 256 KB).
        public var maximumMessageBytes = 256 * 1024
        /// How many outgoing QoS 1 messages may await acknowledgement per client.
        public var maximumInFlight = 256
        /// Cloud-to-device messages held for one offline device.
        public var maximumHeldMessages = 1000
        /// The device whose modules (`{device}/{module}`) receive `BrokeredEndpoint` routes: the gateway's
        /// own device ID. `nil`: no module receives routed messages.
        public var moduleHost: String? = nil
        /// Downstream gateways whose `$.cdid`/`$.cmid` (the device a message came from) are believed.
        public var forwarders: Set<String> = []
        /// Creates default settings.
        public init() {}
    }

    let configuration: NIOLockedValueBox<Configuration>
    let store: MessageStore
    let metrics: GatewayMetrics
    let logger: Logger
    private let sessions = NIOLockedValueBox<[String: Session]>([:])
    private let twins = NIOLockedValueBox<[String: DeviceTwin]>([:])
    private let clientWaiters = NIOLockedValueBox<[String: [CheckedContinuation<Void, Never>]]>([:])
    private let connectObservers = NIOLockedValueBox<[@Sendable (String) -> Void]>([])

    /// Creates a broker that routes into `store`.
    public init(configuration: Configuration, store: MessageStore, metrics: GatewayMetrics, logger: Logger) {
        self.configuration = NIOLockedValueBox(configuration)
        self.store = store
        self.metrics = metrics
        self.logger = logger
    }

    /// Replaces the registered children (after a refresh from the server).
    public func setRegisteredChildren(_ children: Set<String>?) {
        configuration.withLockedValue { $0.registeredChildren = children }
    }

    /// Whether `deviceID` may connect under the child policy. The gateway's own modules always may.
    func admits(_ deviceID: String) -> Bool {
        configuration.withLockedValue { $0.moduleHost == deviceID || ($0.registeredChildren?.contains(deviceID) ?? true) }
    }

    /// Whether `deviceID` is the gateway's own device, whose modules may connect.
    func isModuleHost(_ deviceID: String) -> Bool {
        configuration.withLockedValue { $0.moduleHost == deviceID }
    }

    /// Drops sessions whose expiry passed (offline persistent sessions, and their held messages).
    public func purgeExpiredSessions(now: Date = Date()) {
        sessions.withLockedValue { sessions in
            sessions = sessions.filter { _, session in
                session.connection != nil || (session.expiresAt.map { $0 > now } ?? true)
            }
        }
    }

    /// Whether messages from `deviceID` may name another device as their origin.
    func acceptsOrigin(from deviceID: String) -> Bool {
        configuration.withLockedValue { $0.forwarders.contains(deviceID) }
    }

    // MARK: - Sessions

    /// A client's session: its subscriptions and the messages held for it while it is away.
    final class Session: @unchecked Sendable {
        // Guarded by the broker's `sessions` lock.
        let identity: ClientIdentity
        var connection: ConnectionReference?
        var subscriptions: [String: MQTTQoS] = [:]
        var held: [MQTTPublish] = []
        var persistent: Bool
        var expiresAt: Date?

        init(identity: ClientIdentity, persistent: Bool) {
            self.identity = identity
            self.persistent = persistent
        }
    }

    /// How to reach a live connection from any thread.
    struct ConnectionReference: Sendable {
        let id: ObjectIdentifier
        let eventLoop: any EventLoop
        let handler: NIOLoopBound<MQTTServerConnection>
    }

    /// Registers a connection for `identity`; a connection already there is taken over.
    ///
    /// - Returns: whether a session was present, its held messages, and its subscriptions.
    func attach(
        _ identity: ClientIdentity, connection: ConnectionReference, cleanStart: Bool, persistent: Bool
    ) -> (sessionPresent: Bool, held: [MQTTPublish], subscriptions: [String: MQTTQoS]) {
        let now = Date()
        let (previous, result) = sessions.withLockedValue { sessions in
            let existing = sessions[identity.clientID]
            let previous = existing?.connection
            let usable = existing.flatMap { session -> Session? in
                if cleanStart { return nil }
                if let expiry = session.expiresAt, expiry < now { return nil }
                return session
            }
            let session = usable ?? Session(identity: identity, persistent: persistent)
            session.connection = connection
            session.persistent = persistent
            session.expiresAt = nil
            let held = session.held
            session.held.removeAll()
            sessions[identity.clientID] = session
            return (previous, (usable != nil, held, session.subscriptions))
        }
        if let previous, previous.id != connection.id {
            previous.eventLoop.execute { previous.handler.value.takenOver() }
        }
        metrics.connectedClients.increment()
        let waiters = clientWaiters.withLockedValue { waiters in
            (waiters.removeValue(forKey: identity.clientID) ?? [])
                + (identity.moduleID.flatMap { waiters.removeValue(forKey: "module:\($0)") } ?? [])
        }
        for waiter in waiters { waiter.resume() }
        if identity.moduleID == nil {
            for observer in connectObservers.withLockedValue({ $0 }) { observer(identity.deviceID) }
        }
        return result
    }

    /// Calls `observer` with the device ID whenever a device (not a module) connects.
    func observeDeviceConnections(_ observer: @escaping @Sendable (String) -> Void) {
        connectObservers.withLockedValue { $0.append(observer) }
    }

    /// Unregisters a connection; keeps the session if it is persistent.
    ///
    /// Cloud-to-device messages the client had not acknowledged (`unsent`) are held for its next connection
    /// when the session persists.
    func detach(
        _ identity: ClientIdentity, connection id: ObjectIdentifier, sessionExpiry: TimeInterval?, unsent: [MQTTPublish]
    ) {
        sessions.withLockedValue { sessions in
            guard let session = sessions[identity.clientID], session.connection?.id == id else { return }
            session.connection = nil
            session.held.insert(contentsOf: unsent, at: 0)
            if session.persistent, let sessionExpiry, sessionExpiry > 0 {
                // MQTT 5's "never" (0xFFFFFFFF) and 3.1.1's persistent sessions last a week offline here.
                session.expiresAt = Date() + min(sessionExpiry, Self.maximumOfflineSession)
            } else {
                sessions[identity.clientID] = nil
            }
        }
        metrics.connectedClients.decrement()
    }

    /// How long an offline session (and the cloud-to-device messages it holds) is kept at most.
    static let maximumOfflineSession: TimeInterval = 7 * 86400
    /// The largest reported-properties document a twin keeps.
    static let maximumTwinBytes = 32 * 1024

    /// Records a client's subscriptions in its session.
    func setSubscriptions(_ subscriptions: [String: MQTTQoS], for identity: ClientIdentity) {
        sessions.withLockedValue { $0[identity.clientID]?.subscriptions = subscriptions }
    }

    /// Waits until some connection of module `moduleID` is up (or the task is cancelled).
    func waitForModule(_ moduleID: String) async {
        let key = "module:\(moduleID)"
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Registering under the lock that `attach` also takes means no connection slips between.
                let connected = clientWaiters.withLockedValue { waiters -> Bool in
                    if connectedModule(moduleID) != nil || Task.isCancelled { return true }
                    waiters[key, default: []].append(continuation)
                    return false
                }
                if connected { continuation.resume() }
            }
        } onCancel: {
            let waiters = clientWaiters.withLockedValue { $0.removeValue(forKey: key) } ?? []
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Tells every connected client that the gateway is shutting down, and closes the connections.
    func disconnectAll() {
        let connections = sessions.withLockedValue { $0.values.compactMap(\.connection) }
        for connection in connections {
            connection.eventLoop.execute { connection.handler.value.shutDown() }
        }
    }

    /// The client ID of the connected module `moduleID` of the gateway's own device, if any. Modules of
    /// other devices never receive routed messages.
    func connectedModule(_ moduleID: String) -> ClientIdentity? {
        guard let host = configuration.withLockedValue({ $0.moduleHost }) else { return nil }
        let identity = ClientIdentity(deviceID: host, moduleID: moduleID)
        return sessions.withLockedValue { $0[identity.clientID]?.connection != nil ? identity : nil }
    }

    /// The number of live connections.
    public var connectedCount: Int { sessions.withLockedValue { $0.values.filter { $0.connection != nil }.count } }

    // MARK: - Delivery to clients

    /// Hands `publish` to a connected client's connection; the future succeeds on its PUBACK (QoS 1) or
    /// once written (QoS 0). Calls made one after another reach the client in that order.
    ///
    /// - Returns: `nil` when the client is not connected.
    func submit(_ publish: MQTTPublish, to clientID: String) -> EventLoopFuture<Void>? {
        guard let connection = sessions.withLockedValue({ $0[clientID]?.connection }) else { return nil }
        let promise = connection.eventLoop.makePromise(of: Void.self)
        connection.eventLoop.execute { connection.handler.value.send(publish, completion: promise) }
        return promise.futureResult
    }

    /// Hands a cloud-to-device message to a connected device; it waits in the connection until the device
    /// subscribes to its devicebound topic. The future succeeds on the device's PUBACK and fails if the
    /// connection ends first: the sender, not the session, keeps it then (the hub's server does).
    ///
    /// - Returns: `nil` when the device is not connected.
    func deliverCloudToDevice(deviceID: String, payload: [UInt8], properties: [(String, String)]) -> EventLoopFuture<Void>? {
        let identity = ClientIdentity(deviceID: deviceID)
        return submit(
            MQTTPublish(
                topic: IoTHubTopic.deviceBound(identity, properties: properties), payload: ByteBuffer(bytes: payload),
                qos: .atLeastOnce, retain: false, dup: false, packetID: nil, properties: MQTTProperties()),
            to: identity.clientID)
    }

    /// Hands `publishes` to a connected client's connection in one event-loop task, in order; each future
    /// succeeds on its PUBACK (QoS 1) or once written (QoS 0).
    ///
    /// - Parameter pinned: The connection the caller sent earlier batches on; if the client has another
    ///   one by now, nothing is sent, so that a batch never overtakes an earlier one on a new connection.
    /// - Returns: The connection used and the futures, or `nil` when the client is not connected (there).
    func submit(_ publishes: [MQTTPublish], to clientID: String, pinned: ObjectIdentifier? = nil)
        -> (connection: ObjectIdentifier, futures: [EventLoopFuture<Void>])?
    {
        guard let connection = sessions.withLockedValue({ $0[clientID]?.connection }), pinned == nil || pinned == connection.id
        else { return nil }
        let promises = publishes.map { _ in connection.eventLoop.makePromise(of: Void.self) }
        connection.eventLoop.execute {
            for (publish, promise) in zip(publishes, promises) { connection.handler.value.send(publish, completion: promise) }
        }
        return (connection.id, promises.map(\.futureResult))
    }

    /// Sends a cloud-to-device message: at once if the device is connected and subscribed, otherwise
    /// held in its session until it connects.
    ///
    /// - Returns: whether it was handed to a live connection.
    @discardableResult
    public func sendCloudToDevice(deviceID: String, payload: [UInt8], properties: [(String, String)] = []) -> Bool {
        let identity = ClientIdentity(deviceID: deviceID)
        let publish = MQTTPublish(
            topic: IoTHubTopic.deviceBound(identity, properties: properties), payload: ByteBuffer(bytes: payload),
            qos: .atLeastOnce, retain: false, dup: false, packetID: nil, properties: MQTTProperties())
        let limit = configuration.withLockedValue { $0.maximumHeldMessages }
        let target: ConnectionReference? = sessions.withLockedValue { sessions in
            let session = sessions[identity.clientID] ?? {
                let created = Session(identity: identity, persistent: true)
                sessions[identity.clientID] = created
                return created
            }()
            if let connection = session.connection { return connection }
            if session.held.count >= limit {
                session.held.removeFirst()
                metrics.dropped("heldLimit").increment()
            }
            session.held.append(publish)
            return nil
        }
        guard let target else { return false }
        target.eventLoop.execute {
            target.handler.value.send(publish, completion: nil)
        }
        return true
    }

    // MARK: - Routing

    /// The queues a message goes to, grouped by expiry.
    func route(_ message: GatewayMessage) -> [(keys: [MessageStore.QueueKey], expiresAt: UInt64?)] {
        let routeMessage = message.routeMessage
        let routes = configuration.withLockedValue { $0.routes }
        var byExpiry: [UInt64: [MessageStore.QueueKey]] = [:]
        var seen: Set<MessageStore.QueueKey> = []
        for route in routes where route.statement.matches(routeMessage) {
            let key = route.queueKey
            guard seen.insert(key).inserted else { continue }
            let expiry: UInt64
            if let ttl = route.timeToLiveSeconds, ttl >= 0 {
                expiry = message.enqueuedAtMilliseconds + UInt64(ttl) * 1000
            } else {
                expiry = 0
            }
            byExpiry[expiry, default: []].append(key)
        }
        return byExpiry.map { ($0.value, $0.key == 0 ? nil : $0.key) }
    }

    /// Routes and stores `message`; the future succeeds once every queue holds it durably.
    ///
    /// A message no route takes is counted as `unrouted` and succeeds.
    func accept(_ message: GatewayMessage, on eventLoop: any EventLoop) -> (stored: EventLoopFuture<Void>, routed: Bool) {
        metrics.messagesIn.increment()
        let groups = route(message)
        if groups.isEmpty {
            metrics.dropped("unrouted").increment()
            return (eventLoop.makeSucceededVoidFuture(), false)
        }
        let futures = groups.map { group -> EventLoopFuture<Void> in
            var copy = message
            copy.expiresAtMilliseconds = group.expiresAt
            let promise = eventLoop.makePromise(of: Void.self)
            store.append(copy, to: group.keys, promise: promise)
            return promise.futureResult
        }
        // Most messages go to one queue: its future is the answer, without the cost of combining one.
        let all = futures.count == 1 ? futures[0] : EventLoopFuture.andAllSucceed(futures, on: eventLoop)
        all.whenFailure { [metrics] error in
            let code = (error as? RampartError)?.code
            metrics.dropped(code == .storeFull ? "storeFull" : "writeFailed").increment()
        }
        return (all, true)
    }

    // MARK: - Twins

    /// A device twin kept by the gateway: reported properties from the device, desired from the cloud,
    /// each a JSON object.
    struct DeviceTwin: Sendable {
        var desired = Data("{}".utf8)
        var desiredVersion = 1
        var reported = Data("{}".utf8)
        var reportedVersion = 1
    }

    /// The twin document IoT Hub returns for `GET`.
    func twinDocument(for identity: ClientIdentity) -> [UInt8] {
        let twin = twins.withLockedValue { $0[identity.clientID] } ?? DeviceTwin()
        func section(_ data: Data, version: Int) -> [String: Any] {
            var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            object["$version"] = version
            return object
        }
        let document: [String: Any] = [
            "desired": section(twin.desired, version: twin.desiredVersion),
            "reported": section(twin.reported, version: twin.reportedVersion),
        ]
        return Array((try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data("{}".utf8))
    }

    /// Merges a reported-properties patch (RFC 7396 JSON merge patch); returns the new version, or `nil`
    /// when the body is not a JSON object.
    func patchReported(for identity: ClientIdentity, body: [UInt8]) -> Int? {
        guard let patch = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return nil }
        return twins.withLockedValue { twins -> Int? in
            var twin = twins[identity.clientID] ?? DeviceTwin()
            let current = (try? JSONSerialization.jsonObject(with: twin.reported)) as? [String: Any] ?? [:]
            let merged = Self.mergePatch(current, patch)
            guard let data = try? JSONSerialization.data(withJSONObject: merged, options: [.sortedKeys]),
                data.count <= Self.maximumTwinBytes
            else { return nil }
            twin.reported = data
            twin.reportedVersion += 1
            twins[identity.clientID] = twin
            return twin.reportedVersion
        }
    }

    static func mergePatch(_ target: [String: Any], _ patch: [String: Any]) -> [String: Any] {
        var result = target
        for (key, value) in patch {
            if value is NSNull {
                result[key] = nil
            } else if let object = value as? [String: Any] {
                result[key] = mergePatch(result[key] as? [String: Any] ?? [:], object)
            } else {
                result[key] = value
            }
        }
        return result
    }
}

extension GatewayMessage {
    /// The message as the route language sees it.
    var routeMessage: RouteMessage {
        var system = systemProperties
        system["connectionDeviceId"] = deviceID
        system["connectionModuleId"] = moduleID
        var application: [String: String] = [:]
        for property in applicationProperties where application[property.name] == nil {
            application[property.name] = property.value
        }
        return RouteMessage(
            sourcePath: sourcePath, systemProperties: system, applicationProperties: application, body: payload)
    }
}
