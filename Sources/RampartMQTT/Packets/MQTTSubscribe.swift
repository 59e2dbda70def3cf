/// A SUBSCRIBE packet: one or more subscriptions requested together.
public struct MQTTSubscribe: Sendable, Hashable {
    /// The non-zero packet identifier the SUBACK will echo.
    public var packetID: UInt16
    /// The subscriptions, at least one.
    public var subscriptions: [MQTTSubscription]
    /// The MQTT 5 properties: at most one subscription identifier, and user properties (ignored for 3.1.1).
    public var properties: MQTTProperties

    /// Creates a SUBSCRIBE packet.
    ///
    /// - Parameters:
    ///   - packetID: The non-zero packet identifier.
    ///   - subscriptions: The subscriptions, at least one.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(packetID: UInt16, subscriptions: [MQTTSubscription], properties: MQTTProperties = MQTTProperties()) {
        self.packetID = packetID
        self.subscriptions = subscriptions
        self.properties = properties
    }
}
