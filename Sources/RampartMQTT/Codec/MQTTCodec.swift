import NIOCore

/// Encodes and decodes MQTT 3.1.1 and MQTT 5 control packets.
///
/// The decoder faces the network: it checks every rule of the specifications that can be checked on one packet
/// and throws an ``MQTTProtocolError`` whose reason code the broker can send back. It never traps on input.
/// The encoder checks the same rules, so that it never writes a packet its peer must reject.
public enum MQTTCodec {
    /// The largest Remaining Length a fixed header can announce (four bytes of variable byte integer).
    public static let maximumRemainingLength = 268_435_455

    /// Appends one encoded packet to `buffer`.
    ///
    /// For MQTT 3.1.1, properties, MQTT 5 subscription options and reason codes that 3.1.1 cannot carry are simply
    /// not written; CONNACK and SUBACK codes are mapped to their 3.1.1 return codes. The MQTT 5 acknowledgement,
    /// DISCONNECT and AUTH packets are written in their short forms when the reason is success and there are no
    /// properties. On error nothing is appended.
    ///
    /// - Parameters:
    ///   - packet: The packet to encode.
    ///   - version: The protocol version of the connection; a CONNECT must say the same version.
    ///   - buffer: The buffer to append to.
    /// - Throws: ``MQTTProtocolError`` when the packet cannot be encoded for `version`: AUTH in 3.1.1, a CONNACK
    ///   failure with no 3.1.1 return code, a property not allowed in the packet, an invalid topic, a missing packet
    ///   identifier, a string over 65535 bytes, or a packet over ``maximumRemainingLength``.
    public static func encode(
        _ packet: MQTTPacket,
        version: MQTTProtocolVersion,
        into buffer: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        var body = ByteBuffer()
        var payload: ByteBuffer?
        let firstByte = try encodeBody(of: packet, version: version, into: &body, payload: &payload)
        let remainingLength = body.readableBytes + (payload?.readableBytes ?? 0)
        guard remainingLength <= maximumRemainingLength else {
            throw MQTTProtocolError(
                .packetTooLarge,
                "packet needs a remaining length of \(remainingLength) bytes; "
                    + "MQTT allows at most \(maximumRemainingLength)"
            )
        }
        buffer.writeInteger(firstByte)
        buffer.writeMQTTVariableByteInteger(remainingLength)
        buffer.writeBuffer(&body)
        if var payload { buffer.writeBuffer(&payload) }
    }

    /// Decodes one packet if a whole one is buffered.
    ///
    /// The fixed header is checked as soon as it arrives: an invalid packet type or flags, a remaining length longer
    /// than four bytes, or a packet larger than `maximumPacketSize` fail before the body has arrived.
    ///
    /// - Parameters:
    ///   - buffer: The received bytes. A decoded packet's bytes are consumed; nothing is consumed when more bytes
    ///     are needed or an error is thrown.
    ///   - version: The connection's protocol version, or `nil` on a server before CONNECT: then only a CONNECT is
    ///     valid and its own protocol level decides how it is read. A CONNECT when `version` is set is a second
    ///     CONNECT and a protocol error.
    ///   - maximumPacketSize: The largest packet accepted, fixed header included, as MQTT 5 counts packet size.
    /// - Returns: The packet, or `nil` when more bytes are needed.
    /// - Throws: ``MQTTProtocolError`` with ``MQTTReasonCode/malformedPacket``, ``MQTTReasonCode/protocolError``,
    ///   ``MQTTReasonCode/packetTooLarge``, ``MQTTReasonCode/unsupportedProtocolVersion``,
    ///   ``MQTTReasonCode/topicNameInvalid``, ``MQTTReasonCode/topicFilterInvalid``,
    ///   ``MQTTReasonCode/topicAliasInvalid`` or ``MQTTReasonCode/payloadFormatInvalid``. MQTT 3.1.1 has no topic
    ///   reason codes, so bad topics are reported there as malformed packets.
    public static func decode(
        from buffer: inout ByteBuffer,
        version: MQTTProtocolVersion?,
        maximumPacketSize: Int
    ) throws(MQTTProtocolError) -> MQTTPacket? {
        guard let header = try MQTTFixedHeader.peek(in: buffer, version: version) else { return nil }
        let packetSize = header.length + header.remainingLength
        guard packetSize <= maximumPacketSize else {
            throw MQTTProtocolError(
                .packetTooLarge,
                "\(header.type.name) of \(packetSize) bytes exceeds the maximum packet size of \(maximumPacketSize)"
            )
        }
        if version == .v5, !header.isMinimal { throw header.nonMinimalError }
        guard var body = buffer.getSlice(at: buffer.readerIndex + header.length, length: header.remainingLength)
        else { return nil }
        let packet = try decodeBody(of: header, from: &body, version: version)
        guard body.readableBytes == 0 else {
            var error = MQTTProtocolError.malformed(
                "\(header.type.name) has \(body.readableBytes) bytes left over after its last field; "
                    + "the remaining length does not match the content"
            )
            if case .connect(let connect) = packet { error.connectProtocolVersion = connect.protocolVersion }
            throw error
        }
        buffer.moveReaderIndex(forwardBy: packetSize)
        return packet
    }
}
