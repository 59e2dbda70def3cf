/// Error for a packet that cannot be accepted, or a packet value that cannot be encoded.
///
/// The broker answers MQTT 5 clients with ``reasonCode`` (in a CONNACK before the session exists, in a DISCONNECT
/// after) and closes MQTT 3.1.1 connections, which have no way to say why. Modelled on swift-certificates'
/// `CertificateError`: two errors are equal when their reason codes are equal, whatever their messages say.
public struct MQTTProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The MQTT 5 reason code that describes the failure, such as ``MQTTReasonCode/malformedPacket``,
    /// ``MQTTReasonCode/protocolError`` or ``MQTTReasonCode/packetTooLarge``.
    public var reasonCode: MQTTReasonCode
    /// What was wrong, in words a person reading a log can act on.
    public var message: String
    /// For an error in a CONNECT found after its protocol level was read, the version the client asked for.
    ///
    /// A server uses it to answer in the client's own version: an MQTT 5 CONNACK carrying ``reasonCode`` for an
    /// MQTT 5 client, or closing the connection for an MQTT 3.1.1 client. `nil` for every other error, including
    /// ``MQTTReasonCode/unsupportedProtocolVersion``, which an MQTT 3.1.1 CONNACK (return code 0x01) answers.
    public var connectProtocolVersion: MQTTProtocolVersion?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - reasonCode: The reason code a broker would send for it.
    ///   - message: What was wrong.
    public init(_ reasonCode: MQTTReasonCode, _ message: String) {
        self.reasonCode = reasonCode
        self.message = message
    }

    /// The reason code's name followed by the message.
    public var description: String { "\(reasonCode): \(message)" }

    /// Two errors are equal when their reason codes are equal.
    public static func == (lhs: MQTTProtocolError, rhs: MQTTProtocolError) -> Bool {
        lhs.reasonCode == rhs.reasonCode
    }

    /// Hashes the reason code only, consistent with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(reasonCode) }
}

extension MQTTProtocolError {
    static func malformed(_ message: String) -> Self { Self(.malformedPacket, message) }
    static func protocolError(_ message: String) -> Self { Self(.protocolError, message) }

    /// MQTT 3.1.1 has no topic reason codes: there, a bad topic is simply a packet the receiver must reject.
    func downgraded(for version: MQTTProtocolVersion) -> Self {
        guard version == .v311 else { return self }
        switch reasonCode {
        case .topicNameInvalid, .topicFilterInvalid: return Self(.malformedPacket, message)
        default: return self
        }
    }
}
