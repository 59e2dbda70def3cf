/// A PUBACK, PUBREC, PUBREL or PUBCOMP packet: one step of acknowledging a QoS 1 or QoS 2 PUBLISH.
///
/// In MQTT 5 the encoder writes the two-byte short form when the reason code is success and there are no
/// properties, as the specification recommends.
public struct MQTTAck: Sendable, Hashable {
    /// The packet identifier of the PUBLISH being acknowledged.
    public var packetID: UInt16
    /// The MQTT 5 reason code (ignored for MQTT 3.1.1).
    public var reasonCode: MQTTReasonCode
    /// The MQTT 5 properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates an acknowledgement.
    ///
    /// - Parameters:
    ///   - packetID: The packet identifier being acknowledged.
    ///   - reasonCode: The outcome, ``MQTTReasonCode/success`` by default.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(packetID: UInt16, reasonCode: MQTTReasonCode = .success, properties: MQTTProperties = MQTTProperties())
    {
        self.packetID = packetID
        self.reasonCode = reasonCode
        self.properties = properties
    }
}
