/// An MQTT 5 reason code; MQTT 3.1.1 CONNACK return codes and SUBACK return codes are mapped onto it.
///
/// A struct rather than an enum so that a value read off the wire is always representable: the codec checks which
/// codes a packet type allows. Several names share a value, as in the specification (`success`,
/// `normalDisconnection` and `grantedQoS0` are all 0x00).
public struct MQTTReasonCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The byte sent on the wire.
    public var rawValue: UInt8

    /// Creates a reason code from its byte.
    ///
    /// - Parameter rawValue: The byte sent on the wire.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Whether the code reports a failure: every code from 0x80 up does.
    public var isFailure: Bool { rawValue >= 0x80 }

    /// 0x00: the operation succeeded.
    public static let success = Self(rawValue: 0x00)
    /// 0x00: DISCONNECT without publishing the Will Message.
    public static let normalDisconnection = Self(rawValue: 0x00)
    /// 0x00: SUBACK granting QoS 0.
    public static let grantedQoS0 = Self(rawValue: 0x00)
    /// 0x01: SUBACK granting QoS 1.
    public static let grantedQoS1 = Self(rawValue: 0x01)
    /// 0x02: SUBACK granting QoS 2.
    public static let grantedQoS2 = Self(rawValue: 0x02)
    /// 0x04: DISCONNECT asking the server to publish the Will Message.
    public static let disconnectWithWillMessage = Self(rawValue: 0x04)
    /// 0x10: PUBACK or PUBREC for a message that no subscriber matched.
    public static let noMatchingSubscribers = Self(rawValue: 0x10)
    /// 0x11: UNSUBACK for a subscription that did not exist.
    public static let noSubscriptionExisted = Self(rawValue: 0x11)
    /// 0x18: AUTH continuing an enhanced authentication exchange.
    public static let continueAuthentication = Self(rawValue: 0x18)
    /// 0x19: AUTH starting re-authentication.
    public static let reAuthenticate = Self(rawValue: 0x19)
    /// 0x80: the failure is not described further.
    public static let unspecifiedError = Self(rawValue: 0x80)
    /// 0x81: the packet could not be parsed.
    public static let malformedPacket = Self(rawValue: 0x81)
    /// 0x82: the packet was parsed but breaks a protocol rule.
    public static let protocolError = Self(rawValue: 0x82)
    /// 0x83: the packet is valid but this implementation does not accept it.
    public static let implementationSpecificError = Self(rawValue: 0x83)
    /// 0x84: the server does not support the requested protocol version (3.1.1 return code 0x01).
    public static let unsupportedProtocolVersion = Self(rawValue: 0x84)
    /// 0x85: the client identifier is well formed but not allowed (3.1.1 return code 0x02).
    public static let clientIdentifierNotValid = Self(rawValue: 0x85)
    /// 0x86: the user name or password was not accepted (3.1.1 return code 0x04).
    public static let badUserNameOrPassword = Self(rawValue: 0x86)
    /// 0x87: the client is not authorised to do this (3.1.1 return code 0x05).
    public static let notAuthorized = Self(rawValue: 0x87)
    /// 0x88: the server is not available (3.1.1 return code 0x03).
    public static let serverUnavailable = Self(rawValue: 0x88)
    /// 0x89: the server is busy; try again later.
    public static let serverBusy = Self(rawValue: 0x89)
    /// 0x8A: the client is banned.
    public static let banned = Self(rawValue: 0x8A)
    /// 0x8B: the server is shutting down.
    public static let serverShuttingDown = Self(rawValue: 0x8B)
    /// 0x8C: the authentication method is not supported or does not match the one in use.
    public static let badAuthenticationMethod = Self(rawValue: 0x8C)
    /// 0x8D: nothing was received within 1.5 times the keep-alive interval.
    public static let keepAliveTimeout = Self(rawValue: 0x8D)
    /// 0x8E: another connection with the same client identifier took over the session.
    public static let sessionTakenOver = Self(rawValue: 0x8E)
    /// 0x8F: the topic filter is well formed but not accepted.
    public static let topicFilterInvalid = Self(rawValue: 0x8F)
    /// 0x90: the topic name is well formed but not accepted.
    public static let topicNameInvalid = Self(rawValue: 0x90)
    /// 0x91: the packet identifier is already in use.
    public static let packetIdentifierInUse = Self(rawValue: 0x91)
    /// 0x92: the packet identifier is not known.
    public static let packetIdentifierNotFound = Self(rawValue: 0x92)
    /// 0x93: more QoS 1 and 2 publications are in flight than Receive Maximum allows.
    public static let receiveMaximumExceeded = Self(rawValue: 0x93)
    /// 0x94: the topic alias is 0 or above the Topic Alias Maximum.
    public static let topicAliasInvalid = Self(rawValue: 0x94)
    /// 0x95: the packet is larger than the Maximum Packet Size.
    public static let packetTooLarge = Self(rawValue: 0x95)
    /// 0x96: the message rate is too high.
    public static let messageRateTooHigh = Self(rawValue: 0x96)
    /// 0x97: an implementation or administrative quota was exceeded.
    public static let quotaExceeded = Self(rawValue: 0x97)
    /// 0x98: the connection was closed by an administrative action.
    public static let administrativeAction = Self(rawValue: 0x98)
    /// 0x99: the payload does not match the Payload Format Indicator.
    public static let payloadFormatInvalid = Self(rawValue: 0x99)
    /// 0x9A: the server does not support retained messages.
    public static let retainNotSupported = Self(rawValue: 0x9A)
    /// 0x9B: the QoS is above the Maximum QoS.
    public static let qosNotSupported = Self(rawValue: 0x9B)
    /// 0x9C: the client should temporarily use another server.
    public static let useAnotherServer = Self(rawValue: 0x9C)
    /// 0x9D: the client should permanently use another server.
    public static let serverMoved = Self(rawValue: 0x9D)
    /// 0x9E: the server does not support shared subscriptions.
    public static let sharedSubscriptionsNotSupported = Self(rawValue: 0x9E)
    /// 0x9F: the connection rate limit was exceeded.
    public static let connectionRateExceeded = Self(rawValue: 0x9F)
    /// 0xA0: the maximum connection time for this connection was reached.
    public static let maximumConnectTime = Self(rawValue: 0xA0)
    /// 0xA1: the server does not support subscription identifiers.
    public static let subscriptionIdentifiersNotSupported = Self(rawValue: 0xA1)
    /// 0xA2: the server does not support wildcard subscriptions.
    public static let wildcardSubscriptionsNotSupported = Self(rawValue: 0xA2)

    /// The specification's name for the code, in lower camel case, followed by its hex value.
    ///
    /// Where names share a value the most general one is used (`success` for 0x00).
    public var description: String {
        let name: String
        switch rawValue {
        case 0x00: name = "success"
        case 0x01: name = "grantedQoS1"
        case 0x02: name = "grantedQoS2"
        case 0x04: name = "disconnectWithWillMessage"
        case 0x10: name = "noMatchingSubscribers"
        case 0x11: name = "noSubscriptionExisted"
        case 0x18: name = "continueAuthentication"
        case 0x19: name = "reAuthenticate"
        case 0x80: name = "unspecifiedError"
        case 0x81: name = "malformedPacket"
        case 0x82: name = "protocolError"
        case 0x83: name = "implementationSpecificError"
        case 0x84: name = "unsupportedProtocolVersion"
        case 0x85: name = "clientIdentifierNotValid"
        case 0x86: name = "badUserNameOrPassword"
        case 0x87: name = "notAuthorized"
        case 0x88: name = "serverUnavailable"
        case 0x89: name = "serverBusy"
        case 0x8A: name = "banned"
        case 0x8B: name = "serverShuttingDown"
        case 0x8C: name = "badAuthenticationMethod"
        case 0x8D: name = "keepAliveTimeout"
        case 0x8E: name = "sessionTakenOver"
        case 0x8F: name = "topicFilterInvalid"
        case 0x90: name = "topicNameInvalid"
        case 0x91: name = "packetIdentifierInUse"
        case 0x92: name = "packetIdentifierNotFound"
        case 0x93: name = "receiveMaximumExceeded"
        case 0x94: name = "topicAliasInvalid"
        case 0x95: name = "packetTooLarge"
        case 0x96: name = "messageRateTooHigh"
        case 0x97: name = "quotaExceeded"
        case 0x98: name = "administrativeAction"
        case 0x99: name = "payloadFormatInvalid"
        case 0x9A: name = "retainNotSupported"
        case 0x9B: name = "qosNotSupported"
        case 0x9C: name = "useAnotherServer"
        case 0x9D: name = "serverMoved"
        case 0x9E: name = "sharedSubscriptionsNotSupported"
        case 0x9F: name = "connectionRateExceeded"
        case 0xA0: name = "maximumConnectTime"
        case 0xA1: name = "subscriptionIdentifiersNotSupported"
        case 0xA2: name = "wildcardSubscriptionsNotSupported"
        default: name = "unknown"
        }
        return "\(name) (0x\(Self.hex(rawValue)))"
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}

extension MQTTReasonCode {
    /// The MQTT 3.1.1 CONNACK return code that says the same thing, or `nil` when 3.1.1 has none.
    ///
    /// Where 3.1.1 has no matching return code, a 3.1.1 server closes the connection without a CONNACK.
    /// Overload and redirection codes map to 0x03 (server unavailable), authentication failures to 0x04
    /// (bad user name or password), and bans to 0x05 (not authorised).
    public var v311ConnectReturnCode: UInt8? {
        switch self {
        case .success: 0x00
        case .unsupportedProtocolVersion: 0x01
        case .clientIdentifierNotValid: 0x02
        case .serverUnavailable, .serverBusy, .useAnotherServer, .serverMoved, .connectionRateExceeded, .quotaExceeded:
            0x03
        case .badUserNameOrPassword, .badAuthenticationMethod: 0x04
        case .notAuthorized, .banned: 0x05
        default: nil
        }
    }

    /// Maps an MQTT 3.1.1 CONNACK return code (0 to 5) onto its MQTT 5 reason code.
    ///
    /// - Parameter v311ConnectReturnCode: The return code byte of a 3.1.1 CONNACK.
    /// - Returns: `nil` for the reserved return codes 6 to 255.
    public init?(v311ConnectReturnCode: UInt8) {
        switch v311ConnectReturnCode {
        case 0x00: self = .success
        case 0x01: self = .unsupportedProtocolVersion
        case 0x02: self = .clientIdentifierNotValid
        case 0x03: self = .serverUnavailable
        case 0x04: self = .badUserNameOrPassword
        case 0x05: self = .notAuthorized
        default: return nil
        }
    }
}
