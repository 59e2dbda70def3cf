import NIOCore
import NIOEmbedded
import RampartMQTT
import Testing

@Suite("Channel handlers: framing, version learning and errors through the pipeline")
struct MQTTChannelHandlerTests {
    private static let publishHex = "32 0B 00 01 74 00 01 03 23 00 05 68 69"

    @Test("A packet split into one-byte writes decodes once, after its last byte")
    func splitAcrossWrites() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MQTTDecoder(version: .v5)))
        let bytes = ByteBuffer(hex: Self.publishHex)
        for (index, byte) in bytes.readableBytesView.enumerated() {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            let packet = try channel.readInbound(as: MQTTPacket.self)
            if index < bytes.readableBytes - 1 {
                #expect(packet == nil, "decoded after only \(index + 1) bytes")
            } else {
                var properties = MQTTProperties()
                properties.topicAlias = 5
                let expected = MQTTPublish(
                    topic: "t",
                    payload: ByteBuffer(string: "hi"),
                    qos: .atLeastOnce,
                    packetID: 1,
                    properties: properties
                )
                #expect(packet == .publish(expected))
            }
        }
        #expect(try channel.readInbound(as: MQTTPacket.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("Two packets in one buffer decode as two")
    func twoPacketsInOneBuffer() throws {
        let packets = try MQTTTestChannel.decode(ByteBuffer(hex: "40 02 00 07  C0 00"), version: .v311)
        #expect(packets == [.puback(MQTTAck(packetID: 7)), .pingreq])
    }

    @Test("A packet and the start of the next decode as one, the rest waits")
    func packetAndPartialPacket() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MQTTDecoder(version: .v311)))
        try channel.writeInbound(ByteBuffer(hex: "C0 00  40 02 00"))
        #expect(try channel.readInbound(as: MQTTPacket.self) == .pingreq)
        #expect(try channel.readInbound(as: MQTTPacket.self) == nil)
        try channel.writeInbound(ByteBuffer(hex: "07"))
        #expect(try channel.readInbound(as: MQTTPacket.self) == .puback(MQTTAck(packetID: 7)))
        #expect(try channel.finish().isClean)
    }

    @Test("A server decoder learns MQTT 3.1.1 from CONNECT and reads the next packets as 3.1.1")
    func serverLearnsV311() throws {
        let bytes = ByteBuffer(hex: "10 0F 00 04 4D 51 54 54 04 02 00 3C 00 03 61 62 63  E0 00")
        let packets = try MQTTTestChannel.decode(bytes, version: nil)
        #expect(packets.count == 2)
        #expect(packets.last == .disconnect(MQTTDisconnect()))
    }

    @Test("A server decoder learns MQTT 5 from CONNECT and reads the next packets as MQTT 5")
    func serverLearnsV5() throws {
        let bytes = ByteBuffer(hex: "10 10 00 04 4D 51 54 54 05 02 00 3C 00 00 03 61 62 63  E0 01 04")
        let packets = try MQTTTestChannel.decode(bytes, version: nil)
        #expect(packets.last == .disconnect(MQTTDisconnect(reasonCode: .disconnectWithWillMessage)))
    }

    @Test("A server decoder that learned MQTT 3.1.1 rejects an AUTH packet")
    func serverLearnedV311RejectsAuth() throws {
        let bytes = ByteBuffer(hex: "10 0F 00 04 4D 51 54 54 04 02 00 3C 00 03 61 62 63  F0 00")
        let error = #expect(throws: MQTTProtocolError.self) { try MQTTTestChannel.decode(bytes, version: nil) }
        #expect(error?.reasonCode == .malformedPacket)
    }

    @Test("An oversized packet is refused from its first two bytes")
    func oversizedRefusedEarly() throws {
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(MQTTDecoder(version: .v5, maximumPacketSize: 1024))
        )
        let error = #expect(throws: MQTTProtocolError.self) {
            try channel.writeInbound(ByteBuffer(hex: "30 80 08"))
        }
        #expect(error?.reasonCode == .packetTooLarge)
        _ = try? channel.finish()
    }

    @Test("A packet exactly at the maximum packet size is accepted")
    func packetAtMaximumSize() throws {
        let packets = try MQTTTestChannel.decode(ByteBuffer(hex: "40 02 00 07"), version: .v5, maximumPacketSize: 4)
        #expect(packets == [.puback(MQTTAck(packetID: 7))])
    }

    @Test("The codec consumes nothing while a packet is incomplete")
    func codecConsumesNothingWhenIncomplete() throws {
        var buffer = ByteBuffer(hex: "30 05 00 01 74 68")
        let packet = try MQTTCodec.decode(from: &buffer, version: .v311, maximumPacketSize: 1000)
        #expect(packet == nil)
        #expect(buffer.readableBytes == 6)
    }

    @Test("A decoded PUBLISH payload is exactly the payload bytes")
    func payloadSlice() throws {
        var buffer = ByteBuffer(hex: "30 07 00 03 61 2F 62 68 69  C0 00")
        let packet = try MQTTCodec.decode(from: &buffer, version: .v311, maximumPacketSize: 1000)
        guard case .publish(let publish) = packet else {
            Issue.record("expected a PUBLISH, got \(String(describing: packet))")
            return
        }
        #expect(publish.payload == ByteBuffer(string: "hi"))
        #expect(buffer.readableBytes == 2)
    }

    @Test("An encoding error fails the write and reaches the pipeline")
    func encoderErrorReachesPipeline() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(MQTTEncoder(version: .v311)))
        let error = #expect(throws: MQTTProtocolError.self) {
            try channel.writeOutbound(MQTTPacket.auth(MQTTAuth()))
        }
        #expect(error?.reasonCode == .protocolError)
        _ = try? channel.finish()
    }

    @Test("An error in an MQTT 5 CONNECT carries the version the client asked for")
    func connectErrorCarriesVersion() throws {
        let receiveMaximumZero = ByteBuffer(hex: "10 11 00 04 4D 51 54 54 05 02 00 3C 03 21 00 00 00 01 63")
        let error = #expect(throws: MQTTProtocolError.self) {
            try MQTTTestChannel.decode(receiveMaximumZero, version: nil)
        }
        #expect(error?.reasonCode == .protocolError)
        #expect(error?.connectProtocolVersion == .v5)
    }

    @Test("Trailing bytes after an MQTT 3.1.1 CONNECT carry the version the client asked for")
    func connectTrailingBytesCarryVersion() throws {
        let trailing = ByteBuffer(hex: "10 0E 00 04 4D 51 54 54 04 02 00 3C 00 01 63 00")
        let error = #expect(throws: MQTTProtocolError.self) { try MQTTTestChannel.decode(trailing, version: nil) }
        #expect(error?.reasonCode == .malformedPacket)
        #expect(error?.connectProtocolVersion == .v311)
    }

    @Test("An unsupported protocol version carries no version")
    func unsupportedVersionCarriesNone() throws {
        let mqtt31 = ByteBuffer(hex: "10 0F 00 06 4D 51 49 73 64 70 03 02 00 3C 00 01 63")
        let error = #expect(throws: MQTTProtocolError.self) { try MQTTTestChannel.decode(mqtt31, version: nil) }
        #expect(error?.reasonCode == .unsupportedProtocolVersion)
        #expect(error?.connectProtocolVersion == nil)
    }
}
