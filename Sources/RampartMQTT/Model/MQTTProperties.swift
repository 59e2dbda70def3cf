/// The MQTT 5 properties of a packet or of a Will Message.
///
/// Every field is absent (or empty) by default; MQTT 3.1.1 has no properties, so the codec neither reads nor writes
/// them for that version. The codec checks which properties each packet type allows (MQTT 5 §2.2.2.2).
///
/// Properties are encoded by ascending identifier, except that subscription identifiers keep their order at
/// identifier 0x0B and user properties come last, in their original order.
public struct MQTTProperties: Sendable, Hashable {
    /// 0x01: 1 when the payload is UTF-8 text, 0 when it is unspecified bytes.
    public var payloadFormatIndicator: UInt8?
    /// 0x02: the lifetime of the application message, in seconds.
    public var messageExpiryInterval: UInt32?
    /// 0x03: the application's description of the payload, such as a MIME type.
    public var contentType: String?
    /// 0x08: the topic name a request's response should be published to.
    public var responseTopic: String?
    /// 0x09: data the requester uses to match a response to its request.
    public var correlationData: [UInt8]?
    /// 0x0B: the identifiers of the subscriptions a PUBLISH matched (several allowed), or of a SUBSCRIBE (one).
    public var subscriptionIdentifiers: [UInt32]
    /// 0x11: how long the session lasts after the connection closes, in seconds.
    public var sessionExpiryInterval: UInt32?
    /// 0x12: the client identifier the server assigned to a client that sent an empty one.
    public var assignedClientIdentifier: String?
    /// 0x13: the keep-alive interval the server imposes, in seconds.
    public var serverKeepAlive: UInt16?
    /// 0x15: the name of the enhanced authentication method.
    public var authenticationMethod: String?
    /// 0x16: the data of the enhanced authentication exchange.
    public var authenticationData: [UInt8]?
    /// 0x17: 0 asks the server not to send reason strings or user properties on failures (default 1).
    public var requestProblemInformation: UInt8?
    /// 0x18: how long the server waits before publishing the Will Message, in seconds.
    public var willDelayInterval: UInt32?
    /// 0x19: 1 asks the server to return response information in the CONNACK.
    public var requestResponseInformation: UInt8?
    /// 0x1A: the basis for the client's response topics.
    public var responseInformation: String?
    /// 0x1C: another server the client should use.
    public var serverReference: String?
    /// 0x1F: a human readable reason, for diagnostics only.
    public var reasonString: String?
    /// 0x21: how many QoS 1 and 2 publications the sender accepts at once (never 0).
    public var receiveMaximum: UInt16?
    /// 0x22: the highest topic alias the sender accepts.
    public var topicAliasMaximum: UInt16?
    /// 0x23: the topic alias of a PUBLISH (never 0).
    public var topicAlias: UInt16?
    /// 0x24: the highest QoS the server supports, 0 or 1 (absent means 2).
    public var maximumQoS: UInt8?
    /// 0x25: 0 when the server does not support retained messages.
    public var retainAvailable: UInt8?
    /// 0x26: application-defined name and value pairs, in order.
    public var userProperties: [MQTTUserProperty]
    /// 0x27: the largest packet, in bytes and fixed header included, the sender accepts (never 0).
    public var maximumPacketSize: UInt32?
    /// 0x28: 0 when the server does not support wildcard subscriptions.
    public var wildcardSubscriptionAvailable: UInt8?
    /// 0x29: 0 when the server does not support subscription identifiers.
    public var subscriptionIdentifierAvailable: UInt8?
    /// 0x2A: 0 when the server does not support shared subscriptions.
    public var sharedSubscriptionAvailable: UInt8?

    /// Creates an empty set of properties.
    public init() {
        self.subscriptionIdentifiers = []
        self.userProperties = []
    }

    /// Whether no property is present.
    public var isEmpty: Bool { self == MQTTProperties() }
}
