/// An MQTT 5 AUTH packet: one step of an enhanced authentication exchange. MQTT 3.1.1 has no AUTH.
public struct MQTTAuth: Sendable, Hashable {
    /// ``MQTTReasonCode/success``, ``MQTTReasonCode/continueAuthentication`` or ``MQTTReasonCode/reAuthenticate``.
    public var reasonCode: MQTTReasonCode
    /// The properties: the authentication method and data, a reason string and user properties.
    public var properties: MQTTProperties

    /// Creates an AUTH packet.
    ///
    /// - Parameters:
    ///   - reasonCode: The step of the exchange, ``MQTTReasonCode/success`` by default.
    ///   - properties: The properties, none by default.
    public init(reasonCode: MQTTReasonCode = .success, properties: MQTTProperties = MQTTProperties()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }
}
