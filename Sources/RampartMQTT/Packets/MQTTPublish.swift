import NIOCore

/// A PUBLISH packet: one application message.
public struct MQTTPublish: Sendable, Hashable {
    /// The topic name. MQTT 5 allows it to be empty when ``MQTTProperties/topicAlias`` is set.
    public var topic: String
    /// The application message; a decoded payload is a slice of the received bytes, not a copy.
    public var payload: ByteBuffer
    /// The QoS of this delivery.
    public var qos: MQTTQoS
    /// Whether the message is, or is to be, retained.
    public var retain: Bool
    /// Whether this is a re-delivery; always `false` at QoS 0.
    public var dup: Bool
    /// The packet identifier: present and non-zero at QoS 1 and 2, `nil` at QoS 0 (and not encoded there).
    public var packetID: UInt16?
    /// The MQTT 5 PUBLISH properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates a PUBLISH packet.
    ///
    /// - Parameters:
    ///   - topic: The topic name.
    ///   - payload: The application message, empty by default.
    ///   - qos: The QoS, ``MQTTQoS/atMostOnce`` by default.
    ///   - retain: Whether to retain the message, `false` by default.
    ///   - dup: Whether this is a re-delivery, `false` by default.
    ///   - packetID: The packet identifier, required at QoS 1 and 2.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(
        topic: String,
        payload: ByteBuffer = ByteBuffer(),
        qos: MQTTQoS = .atMostOnce,
        retain: Bool = false,
        dup: Bool = false,
        packetID: UInt16? = nil,
        properties: MQTTProperties = MQTTProperties()
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
        self.properties = properties
    }
}
