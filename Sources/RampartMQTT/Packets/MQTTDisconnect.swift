/// A DISCONNECT packet: the last packet before a clean close.
///
/// In MQTT 5 the encoder leaves out the reason code and properties when they are a normal disconnection with
/// no properties, and the decoder reads an empty DISCONNECT as exactly that.
public struct MQTTDisconnect: Sendable, Hashable {
    /// Why the connection is closing (ignored for MQTT 3.1.1).
    public var reasonCode: MQTTReasonCode
    /// The MQTT 5 properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates a DISCONNECT packet.
    ///
    /// - Parameters:
    ///   - reasonCode: Why the connection is closing, ``MQTTReasonCode/normalDisconnection`` by default.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(reasonCode: MQTTReasonCode = .normalDisconnection, properties: MQTTProperties = MQTTProperties()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }
}
