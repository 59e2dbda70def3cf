/// A SUBACK packet: the server's answer to SUBSCRIBE, one reason code per subscription.
///
/// In MQTT 3.1.1 the granted QoS codes are sent as they are and every failure code is sent as 0x80.
public struct MQTTSubAck: Sendable, Hashable {
    /// The packet identifier of the SUBSCRIBE being acknowledged.
    public var packetID: UInt16
    /// One code per subscription, in order: a granted QoS or a failure.
    public var reasonCodes: [MQTTReasonCode]
    /// The MQTT 5 properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates a SUBACK packet.
    ///
    /// - Parameters:
    ///   - packetID: The packet identifier being acknowledged.
    ///   - reasonCodes: One code per subscription.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(packetID: UInt16, reasonCodes: [MQTTReasonCode], properties: MQTTProperties = MQTTProperties()) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }
}
