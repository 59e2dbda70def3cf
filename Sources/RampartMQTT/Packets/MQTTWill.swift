/// The Will Message a client leaves in its CONNECT, which the server publishes if the connection ends abnormally.
public struct MQTTWill: Sendable, Hashable {
    /// The topic name the Will Message is published to; it may not contain wildcards.
    public var topic: String
    /// The Will Message payload.
    public var payload: [UInt8]
    /// The QoS the Will Message is published with.
    public var qos: MQTTQoS
    /// Whether the Will Message is published as a retained message.
    public var retain: Bool
    /// The MQTT 5 Will Properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates a Will Message.
    ///
    /// - Parameters:
    ///   - topic: The topic name to publish to.
    ///   - payload: The payload, empty by default.
    ///   - qos: The QoS, ``MQTTQoS/atMostOnce`` by default.
    ///   - retain: Whether to retain the message, `false` by default.
    ///   - properties: The MQTT 5 Will Properties, none by default.
    public init(
        topic: String,
        payload: [UInt8] = [],
        qos: MQTTQoS = .atMostOnce,
        retain: Bool = false,
        properties: MQTTProperties = MQTTProperties()
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}
