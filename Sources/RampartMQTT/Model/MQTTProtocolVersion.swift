/// The MQTT protocol revision spoken on a connection.
///
/// The raw value is the Protocol Level byte a client sends in its CONNECT packet.
public enum MQTTProtocolVersion: UInt8, Sendable, Hashable {
    /// MQTT 3.1.1 (protocol level 4).
    case v311 = 4
    /// MQTT 5.0 (protocol level 5).
    case v5 = 5
}
