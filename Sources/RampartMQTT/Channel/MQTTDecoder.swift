import NIOCore

/// Decodes MQTT packets from bytes in a NIO pipeline: wrap it in `ByteToMessageHandler`.
///
/// In the server role it starts with no version, accepts only a CONNECT, and from then on reads packets in the
/// version that CONNECT asked for. In the client role it is given the version. Errors are ``MQTTProtocolError``s,
/// fired through the pipeline's `errorCaught`.
public struct MQTTDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    /// The decoded packet.
    public typealias InboundOut = MQTTPacket

    /// The connection's protocol version, or `nil` until the CONNECT has been decoded.
    public var version: MQTTProtocolVersion?
    /// The largest packet accepted, fixed header included; a larger one fails with
    /// ``MQTTReasonCode/packetTooLarge`` as soon as its fixed header arrives.
    public var maximumPacketSize: Int

    /// Creates a decoder.
    ///
    /// - Parameters:
    ///   - version: The protocol version for a client, or `nil` (the default) for a server awaiting CONNECT.
    ///   - maximumPacketSize: The largest packet accepted, by default the largest MQTT can express.
    public init(version: MQTTProtocolVersion? = nil, maximumPacketSize: Int = 268_435_460) {
        self.version = version
        self.maximumPacketSize = maximumPacketSize
    }

    /// Decodes one packet if a whole one is buffered.
    ///
    /// - Parameter buffer: The received bytes.
    /// - Returns: The packet, or `nil` when more bytes are needed.
    /// - Throws: ``MQTTProtocolError`` for a packet that must be rejected.
    public mutating func decode(buffer: inout ByteBuffer) throws -> MQTTPacket? {
        let packet = try MQTTCodec.decode(from: &buffer, version: version, maximumPacketSize: maximumPacketSize)
        if version == nil, case .connect(let connect) = packet {
            version = connect.protocolVersion
        }
        return packet
    }

    /// Decodes what is left when the connection closes; an incomplete packet is dropped.
    ///
    /// - Parameters:
    ///   - buffer: The received bytes.
    ///   - seenEOF: Whether the peer closed its side.
    /// - Returns: The packet, or `nil` when no whole packet is left.
    /// - Throws: ``MQTTProtocolError`` for a packet that must be rejected.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MQTTPacket? {
        try decode(buffer: &buffer)
    }
}
