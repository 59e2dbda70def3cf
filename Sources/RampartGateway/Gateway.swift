import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import RampartCore
import RampartDevice
import ServiceLifecycle

/// A gateway assembled from its configuration: the MQTT listener, store and forward, deliveries to local
/// modules, the upstream bridge (or, in the hub role without one, telemetry stored on the server),
/// cloud-to-device messages from the server, trust refreshes and `/metrics`.
public struct Gateway: Sendable {
    /// The settings it was built from.
    public let configuration: GatewayConfiguration
    /// Connected clients and routing.
    public let broker: Broker
    /// Store and forward.
    public let store: MessageStore
    /// The listener's TLS and trust bundle.
    public let tls: GatewayTLS
    /// Prometheus metrics.
    public let metrics: GatewayMetrics
    private let logger: Logger

    /// Builds a gateway: reads certificates and the trust bundle, parses every route, opens the store.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` naming what is wrong.
    public init(configuration: GatewayConfiguration, logger: Logger = Logger(label: "rampart.gateway")) throws {
        self.configuration = configuration
        self.logger = logger
        let bundle: String
        do {
            bundle = try String(contentsOfFile: configuration.trust.bundle, encoding: .utf8)
        } catch {
            throw RampartError(
                .configurationInvalid,
                "Cannot read the trust bundle \(configuration.trust.bundle). Save the tenant CAs with "
                    + "`rampart ca-certificate bundle --destination FILE` (PEM), or pass --trust-bundle.")
        }
        tls = try GatewayTLS(
            certificateFile: configuration.listener.certificate, keyFile: configuration.listener.privateKey, bundlePEM: bundle)
        var routes: [GatewayRoute] = []
        for route in configuration.routes {
            let statement: RouteStatement
            do {
                statement = try RouteStatement.parse(route.query)
            } catch {
                throw RampartError(.configurationInvalid, "Route \"\(route.name)\": \(error)")
            }
            routes.append(GatewayRoute(
                name: route.name, statement: statement, priority: route.priority,
                timeToLiveSeconds: route.timeToLiveSeconds ?? configuration.store.defaultTimeToLiveSeconds))
        }
        metrics = GatewayMetrics()
        var storeConfiguration = MessageStore.Configuration(directory: configuration.store.directory)
        storeConfiguration.maximumBytes = configuration.store.maximumBytes
        store = try MessageStore(configuration: storeConfiguration, logger: logger)
        var brokerConfiguration = Broker.Configuration()
        brokerConfiguration.routes = routes
        brokerConfiguration.forwarders = Set(configuration.forwarders)
        brokerConfiguration.moduleHost = configuration.identity.deviceID ?? configuration.identity.deviceState.flatMap {
            try? DeviceState(directory: URL(fileURLWithPath: $0)).identity().deviceID
        }
        if configuration.trust.refreshFromServer || configuration.children == .registered,
            configuration.identity.server != nil,
            configuration.identity.tenant == nil || configuration.identity.deviceState == nil
        {
            throw RampartError(
                .configurationInvalid, "Refreshing from the server needs [identity] tenant and device_state besides server.")
        }
        if configuration.trust.refreshFromServer, configuration.identity.server == nil {
            throw RampartError(.configurationInvalid, "trust.refresh_from_server needs [identity] server, tenant and device_state.")
        }
        if configuration.children == .registered {
            // Until the first refresh: the list cached by the last one; without a server, [children] registered.
            brokerConfiguration.registeredChildren = configuration.identity.server == nil
                ? Set(configuration.registeredChildren) : ServerRefresher.cachedChildren(configuration) ?? []
        }
        broker = Broker(configuration: brokerConfiguration, store: store, metrics: metrics, logger: logger)
    }

    /// The services to run under one `ServiceGroup`, in start order (shutdown runs in reverse, so the
    /// store closes last).
    ///
    /// - Parameters:
    ///   - listenerBound: told the MQTT port once listening.
    ///   - metricsBound: told the metrics port once listening.
    public func services(
        listenerBound: @escaping @Sendable (Int) -> Void = { _ in }, metricsBound: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws -> [any Service] {
        if configuration.hubRole, configuration.identity.server == nil,
            broker.configuration.withLockedValue({ $0.routes.contains { $0.statement.sink == .upstream } })
        {
            logger.warning(
                "Hub role without [identity] server: messages routed to $upstream wait in the store until their TTL, counted as expired")
        }
        var services: [any Service] = [StoreService(store: store, broker: broker, metrics: metrics)]
        let endpoints = Set(broker.configuration.withLockedValue { $0.routes.map(\.statement.sink) })
        for sink in endpoints {
            if case .brokeredEndpoint(let module, let input) = sink {
                services.append(ModuleDelivery(module: module, input: input, store: store, broker: broker, logger: logger))
            }
        }
        if let upstream = configuration.upstream {
            services.append(try UpstreamBridge(configuration: upstream, identity: configuration.identity, store: store, metrics: metrics, logger: logger))
        }
        if configuration.identity.server != nil {
            services.append(try ServerUplink(configuration: configuration, store: store, broker: broker, metrics: metrics, logger: logger))
        }
        if configuration.identity.server != nil, configuration.trust.refreshFromServer || configuration.children == .registered {
            services.append(ServerRefresher(configuration: configuration, tls: tls, broker: broker, logger: logger))
        }
        if configuration.metrics.port > 0 {
            services.append(metricsApplication(onBound: metricsBound))
        }
        services.append(
            MQTTListener(
                host: configuration.listener.host, port: configuration.listener.port, tls: tls, broker: broker,
                logger: logger, onBound: listenerBound))
        return services
    }

    private func metricsApplication(onBound: @escaping @Sendable (Int) -> Void) -> some Service {
        let router = Router()
        let metrics = metrics
        let store = store
        router.get("/metrics") { _, _ -> Response in
            metrics.refreshStoreGauges(store)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        router.get("/health") { _, _ in "ok" }
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.metrics.host, port: configuration.metrics.port)),
            onServerRunning: { channel in onBound(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}

extension GatewayConfiguration {
    /// Without an upstream the gateway is the hub.
    public var hubRole: Bool { upstream == nil }
}

extension GatewayMetrics {
    /// Copies the store's counts into the gauges (and expiries into the drop counter).
    func refreshStoreGauges(_ store: MessageStore) {
        let statistics = store.statistics
        queueDepth.set(Double(statistics.queued))
        storeBytes.set(Double(statistics.bytes))
        let reported = expiredReported.withLockedValue { reported -> Int in
            defer { reported = statistics.expired }
            return reported
        }
        if statistics.expired > reported { dropped("expired").increment(by: Int64(statistics.expired - reported)) }
    }
}

/// Keeps the store open while the gateway runs, and closes it (saving cursors) at shutdown.
struct StoreService: Service {
    let store: MessageStore
    let broker: Broker
    let metrics: GatewayMetrics

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            store.purgeExpired()
            broker.purgeExpiredSessions()
            metrics.refreshStoreGauges(store)
            try? await gracefulShutdownOrSleep(for: .seconds(5))
        }
        store.close()
    }

    private func gracefulShutdownOrSleep(for duration: Duration) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(for: duration)
        }
    }
}
