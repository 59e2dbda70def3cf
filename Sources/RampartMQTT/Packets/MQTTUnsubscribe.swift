/// An UNSUBSCRIBE packet: one or more topic filters to remove.
public struct MQTTUnsubscribe: Sendable, Hashable {
    /// The non-zero packet identifier the UNSUBACK will echo.
    public var packetID: UInt16
    /// The topic filters, at least one.
    public var topicFilters: [String]
    /// The MQTT 5 properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates an UNSUBSCRIBE packet.
    ///
    /// - Parameters:
    ///   - packetID: The non-zero packet identifier.
    ///   - topicFilters: The topic filters, at least one.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(packetID: UInt16, topicFilters: [String], properties: MQTTProperties = MQTTProperties()) {
        self.packetID = packetID
        self.topicFilters = topicFilters
        self.properties = properties
    }
}
