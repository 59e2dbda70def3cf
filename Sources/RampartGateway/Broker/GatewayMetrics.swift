import NIOConcurrencyHelpers
import Prometheus

/// The gateway's Prometheus metrics, served on `/metrics`.
///
/// One registry per gateway (not swift-metrics' process-wide bootstrap), so that tests can run several.
public struct GatewayMetrics: Sendable {
    /// The registry the metrics live in.
    public let registry: PrometheusCollectorRegistry
    let connectedClients: Gauge
    let messagesIn: Counter
    let messagesOut: Counter
    let connectionsRefused: Counter
    let sendLatency: DurationHistogram
    let queueDepth: Gauge
    let storeBytes: Gauge
    let cloudToDeviceDelivered: Counter
    /// Expiries already added to the drop counter.
    let expiredReported = NIOLockedValueBox(0)

    /// Creates the metrics in `registry`.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        connectedClients = registry.makeGauge(
            name: "rampart_gateway_connected_clients", help: "MQTT clients connected now")
        messagesIn = registry.makeCounter(
            name: "rampart_gateway_messages_in_total", help: "PUBLISH packets accepted from clients")
        messagesOut = registry.makeCounter(
            name: "rampart_gateway_messages_out_total", help: "Messages delivered to a client or the upstream")
        connectionsRefused = registry.makeCounter(
            name: "rampart_gateway_connections_refused_total", help: "CONNECTs refused (identity, policy, protocol)")
        sendLatency = registry.makeDurationHistogram(
            name: "rampart_gateway_send_latency_seconds",
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500),
                .seconds(2), .seconds(10), .seconds(60), .seconds(600)],
            help: "From acceptance to acknowledgement by the receiver (upstream or module)")
        queueDepth = registry.makeGauge(
            name: "rampart_gateway_queue_messages", help: "Messages waiting in store and forward")
        storeBytes = registry.makeGauge(name: "rampart_gateway_store_bytes", help: "Bytes held by store and forward")
        cloudToDeviceDelivered = registry.makeCounter(
            name: "rampart_gateway_cloud_to_device_delivered_total",
            help: "Cloud-to-device messages from the server that a device acknowledged")
    }

    /// The counter of messages dropped for `reason` (`expired`, `storeFull`, `writeFailed`, `unrouted`,
    /// `notAuthorized`, `qos2`, `tooLarge`, `malformed`).
    func dropped(_ reason: String) -> Counter {
        registry.makeCounter(
            name: "rampart_gateway_messages_dropped_total", labels: [("reason", reason)],
            help: "Messages not delivered, by reason; nothing is dropped without being counted here")
    }

    /// The Prometheus text exposition.
    public func exposition() -> String {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
