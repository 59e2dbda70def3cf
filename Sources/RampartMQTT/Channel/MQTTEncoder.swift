import NIOCore

/// Encodes MQTT packets into bytes in a NIO pipeline: wrap it in `MessageToByteHandler`.
///
/// The version is fixed when the encoder is created, which suits the client side; a server that learns the version
/// from CONNECT adds its encoder afterwards, or calls ``MQTTCodec/encode(_:version:into:)`` itself.
public struct MQTTEncoder: MessageToByteEncoder, Sendable {
    /// The packet to encode.
    public typealias OutboundIn = MQTTPacket

    /// The protocol version packets are encoded in.
    public var version: MQTTProtocolVersion

    /// Creates an encoder.
    ///
    /// - Parameter version: The protocol version packets are encoded in.
    public init(version: MQTTProtocolVersion) {
        self.version = version
    }

    /// Encodes one packet.
    ///
    /// - Parameters:
    ///   - data: The packet.
    ///   - out: The buffer to write to.
    /// - Throws: ``MQTTProtocolError`` when the packet cannot be encoded for ``version``.
    public func encode(data: MQTTPacket, out: inout ByteBuffer) throws {
        try MQTTCodec.encode(data, version: version, into: &out)
    }
}
