/// A CONNECT packet: the first packet a client sends.
///
/// The codec checks the packet's form, not the client identifier: whether an identifier is acceptable is the
/// broker's decision.
public struct MQTTConnect: Sendable, Hashable {
    /// The protocol version the client speaks, from the Protocol Level byte.
    public var protocolVersion: MQTTProtocolVersion
    /// The client identifier; it may be empty.
    public var clientID: String
    /// Clean Start in MQTT 5, Clean Session in MQTT 3.1.1.
    public var cleanStart: Bool
    /// The keep-alive interval in seconds; 0 turns keep-alive off.
    public var keepAliveSeconds: UInt16
    /// The user name, if any.
    public var username: String?
    /// The password, if any. MQTT 3.1.1 allows a password only together with a user name.
    public var password: [UInt8]?
    /// The Will Message, if any.
    public var will: MQTTWill?
    /// The MQTT 5 CONNECT properties (ignored for MQTT 3.1.1).
    public var properties: MQTTProperties

    /// Creates a CONNECT packet.
    ///
    /// - Parameters:
    ///   - protocolVersion: The protocol version, ``MQTTProtocolVersion/v5`` by default.
    ///   - clientID: The client identifier.
    ///   - cleanStart: Whether to start a new session, `true` by default.
    ///   - keepAliveSeconds: The keep-alive interval in seconds, 60 by default.
    ///   - username: The user name, none by default.
    ///   - password: The password, none by default.
    ///   - will: The Will Message, none by default.
    ///   - properties: The MQTT 5 properties, none by default.
    public init(
        protocolVersion: MQTTProtocolVersion = .v5,
        clientID: String,
        cleanStart: Bool = true,
        keepAliveSeconds: UInt16 = 60,
        username: String? = nil,
        password: [UInt8]? = nil,
        will: MQTTWill? = nil,
        properties: MQTTProperties = MQTTProperties()
    ) {
        self.protocolVersion = protocolVersion
        self.clientID = clientID
        self.cleanStart = cleanStart
        self.keepAliveSeconds = keepAliveSeconds
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties
    }
}
