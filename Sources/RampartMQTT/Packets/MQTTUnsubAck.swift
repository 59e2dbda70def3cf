/// An UNSUBACK packet: the server's answer to UNSUBSCRIBE.
public struct MQTTUnsubAck: Sendable, Hashable {
    /// The packet identifier of the UNSUBSCRIBE being acknowledged.
    public var packetID: UInt16
    /// MQTT 5: one code per topic filter, in order. Always empty for MQTT 3.1.1, which has none.
    public var reasonCodes: [MQTTReasonCode]
    /// The MQTT 5 properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates an UNSUBACK packet.
    ///
    /// - Parameters:
    ///   - packetID: The packet identifier being acknowledged.
    ///   - reasonCodes: One code per topic filter for MQTT 5, empty by default.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(packetID: UInt16, reasonCodes: [MQTTReasonCode] = [], properties: MQTTProperties = MQTTProperties()) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }
}
