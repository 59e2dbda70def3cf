import NIOCore
import NIOEmbedded
import RampartMQTT

/// Runs packets through the real NIO handlers on an `EmbeddedChannel`.
enum MQTTTestChannel {
    /// Encodes `packet` with `MessageToByteHandler(MQTTEncoder)` and returns the bytes written.
    static func encode(_ packet: MQTTPacket, version: MQTTProtocolVersion) throws -> ByteBuffer {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(MQTTEncoder(version: version)))
        defer { _ = try? channel.finish() }
        try channel.writeOutbound(packet)
        var out = ByteBuffer()
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) {
            out.writeBuffer(&chunk)
        }
        return out
    }

    /// Decodes `bytes` with `ByteToMessageHandler(MQTTDecoder)` and returns every packet read.
    static func decode(
        _ bytes: ByteBuffer,
        version: MQTTProtocolVersion?,
        maximumPacketSize: Int = 268_435_460
    ) throws -> [MQTTPacket] {
        let decoder = MQTTDecoder(version: version, maximumPacketSize: maximumPacketSize)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(decoder))
        defer { _ = try? channel.finish() }
        try channel.writeInbound(bytes)
        var packets: [MQTTPacket] = []
        while let packet = try channel.readInbound(as: MQTTPacket.self) {
            packets.append(packet)
        }
        return packets
    }

    /// The decoding version for a packet: a server reads CONNECT before it knows the version.
    static func decodingVersion(for packet: MQTTPacket, _ version: MQTTProtocolVersion) -> MQTTProtocolVersion? {
        if case .connect = packet { return nil }
        return version
    }
}
