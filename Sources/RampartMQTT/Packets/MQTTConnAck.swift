/// A CONNACK packet: the server's answer to CONNECT.
///
/// For MQTT 3.1.1 the reason code is carried as a CONNACK return code; see
/// ``MQTTReasonCode/v311ConnectReturnCode`` for the mapping.
public struct MQTTConnAck: Sendable, Hashable {
    /// Whether the server resumed an existing session; must be `false` when the reason code is a failure.
    public var sessionPresent: Bool
    /// The outcome of the connection attempt.
    public var reasonCode: MQTTReasonCode
    /// The MQTT 5 CONNACK properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates a CONNACK packet.
    ///
    /// - Parameters:
    ///   - sessionPresent: Whether a session was resumed, `false` by default.
    ///   - reasonCode: The outcome, ``MQTTReasonCode/success`` by default.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(
        sessionPresent: Bool = false,
        reasonCode: MQTTReasonCode = .success,
        properties: MQTTProperties = MQTTProperties()
    ) {
        self.sessionPresent = sessionPresent
        self.reasonCode = reasonCode
        self.properties = properties
    }
}
