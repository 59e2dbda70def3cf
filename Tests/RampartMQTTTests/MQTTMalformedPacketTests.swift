import NIOCore
import RampartMQTT
import Testing

/// Bytes a peer might send that the decoder must reject, and the reason code it must reject them with.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// The decoder's version; `nil` is a server awaiting CONNECT.
    var version: MQTTProtocolVersion?
    var hex: String
    var expected: MQTTReasonCode
    var maximumPacketSize = 268_435_460

    var testDescription: String { name }
}

/// The CONNECT variable header up to the flags: protocol name "MQTT", then the level.
private let mqtt = "00 04 4D 51 54 54"

private let fixedHeaderCases: [MalformedCase] = [
    MalformedCase(name: "packet type 0 is reserved", version: .v311, hex: "00 00", expected: .malformedPacket),
    MalformedCase(
        name: "packet type 15 is reserved in 3.1.1", version: .v311, hex: "F0 00", expected: .malformedPacket),
    MalformedCase(name: "CONNACK flags must be 0", version: .v311, hex: "21 02 00 00", expected: .malformedPacket),
    MalformedCase(name: "PUBREL flags must be 0010", version: .v311, hex: "60 02 00 01", expected: .malformedPacket),
    MalformedCase(name: "SUBSCRIBE flags must be 0010", version: .v5, hex: "80 00", expected: .malformedPacket),
    MalformedCase(name: "UNSUBSCRIBE flags must be 0010", version: .v311, hex: "A0 00", expected: .malformedPacket),
    MalformedCase(name: "PUBACK flags must be 0", version: .v5, hex: "42 02 00 01", expected: .malformedPacket),
    MalformedCase(name: "PINGREQ flags must be 0", version: .v5, hex: "C1 00", expected: .malformedPacket),
    MalformedCase(name: "CONNECT flags must be 0", version: nil, hex: "11 00", expected: .malformedPacket),
    MalformedCase(
        name: "remaining length longer than 4 bytes",
        version: .v311,
        hex: "30 FF FF FF FF 01",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "remaining length above the maximum packet size, before the body arrives",
        version: .v5,
        hex: "30 FF 7F",
        expected: .packetTooLarge,
        maximumPacketSize: 64
    ),
    MalformedCase(
        name: "packet one byte over the maximum packet size, fixed header included",
        version: .v311,
        hex: "30 04 00 01 74 41",
        expected: .packetTooLarge,
        maximumPacketSize: 5
    ),
    MalformedCase(
        name: "MQTT 5 remaining length not minimally encoded",
        version: .v5,
        hex: "D0 80 00",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "MQTT 5 CONNECT remaining length not minimally encoded",
        version: nil,
        hex: "10 90 00 \(mqtt) 05 02 00 3C 00 00 03 61 62 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "remaining length longer than the content (trailing bytes)",
        version: .v311,
        hex: "40 03 00 01 00",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "remaining length shorter than the content (truncated field)",
        version: .v311,
        hex: "40 01 00",
        expected: .malformedPacket
    ),
    MalformedCase(name: "PINGREQ with a body", version: .v311, hex: "C0 01 00", expected: .malformedPacket),
    MalformedCase(name: "PINGRESP with a body", version: .v5, hex: "D0 01 00", expected: .malformedPacket),
    MalformedCase(name: "3.1.1 DISCONNECT with a body", version: .v311, hex: "E0 01 00", expected: .malformedPacket),
    MalformedCase(name: "3.1.1 CONNACK too short", version: .v311, hex: "20 01 00", expected: .malformedPacket),
    MalformedCase(
        name: "first packet on a server connection is not CONNECT",
        version: nil,
        hex: "C0 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "second CONNECT on a connection",
        version: .v311,
        hex: "10 0F \(mqtt) 04 02 00 3C 00 03 61 62 63",
        expected: .protocolError
    ),
]

private let stringCases: [MalformedCase] = [
    MalformedCase(
        name: "string with byte 0xFF", version: .v311, hex: "30 05 00 03 61 FF 62", expected: .malformedPacket),
    MalformedCase(
        name: "string with an overlong encoding of '/'",
        version: .v311,
        hex: "30 04 00 02 C0 AF",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "string with a UTF-16 surrogate (U+D800)",
        version: .v5,
        hex: "30 06 00 03 ED A0 80 00",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "string with a truncated multi-byte sequence",
        version: .v311,
        hex: "30 04 00 02 61 E2",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "string containing U+0000", version: .v311, hex: "30 05 00 03 61 00 62", expected: .malformedPacket),
    MalformedCase(
        name: "string length prefix past the end of the packet",
        version: .v311,
        hex: "30 04 00 05 61 62",
        expected: .malformedPacket
    ),
]

private let connectCases: [MalformedCase] = [
    MalformedCase(
        name: "CONNECT protocol name MQIsdp level 3 (MQTT 3.1)",
        version: nil,
        hex: "10 0F 00 06 4D 51 49 73 64 70 03 02 00 3C 00 01 63",
        expected: .unsupportedProtocolVersion
    ),
    MalformedCase(
        name: "CONNECT protocol level 6",
        version: nil,
        hex: "10 0D \(mqtt) 06 02 00 3C 00 01 63",
        expected: .unsupportedProtocolVersion
    ),
    MalformedCase(
        name: "CONNECT protocol name other than MQTT",
        version: nil,
        hex: "10 0D 00 04 4D 51 54 58 04 02 00 3C 00 01 63",
        expected: .unsupportedProtocolVersion
    ),
    MalformedCase(
        name: "CONNECT reserved flag set",
        version: nil,
        hex: "10 0D \(mqtt) 04 03 00 3C 00 01 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "CONNECT will QoS 3",
        version: nil,
        hex: "10 0D \(mqtt) 04 1E 00 3C 00 01 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "CONNECT will QoS without will flag",
        version: nil,
        hex: "10 0D \(mqtt) 04 0A 00 3C 00 01 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "CONNECT will retain without will flag",
        version: nil,
        hex: "10 0E \(mqtt) 05 22 00 3C 00 00 01 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "3.1.1 CONNECT password flag without user name flag",
        version: nil,
        hex: "10 10 \(mqtt) 04 42 00 3C 00 01 63 00 01 70",
        expected: .protocolError
    ),
    MalformedCase(
        name: "3.1.1 CONNECT will topic with a wildcard",
        version: nil,
        hex: "10 14 \(mqtt) 04 06 00 3C 00 01 63 00 03 61 2F 23 00 00",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 CONNECT will topic with a wildcard",
        version: nil,
        hex: "10 16 \(mqtt) 05 06 00 3C 00 00 01 63 00 00 03 61 2F 23 00 00",
        expected: .topicNameInvalid
    ),
    MalformedCase(
        name: "5 CONNECT will payload marked UTF-8 but not UTF-8",
        version: nil,
        hex: "10 17 \(mqtt) 05 06 00 3C 00 00 01 63 02 01 01 00 01 77 00 01 FF",
        expected: .payloadFormatInvalid
    ),
    MalformedCase(
        name: "5 CONNECT will properties with a property only CONNECT may carry",
        version: nil,
        hex: "10 19 \(mqtt) 05 06 00 3C 00 00 01 63 05 11 00 00 00 01 00 01 77 00 00",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 CONNECT with a property only CONNACK may carry (Maximum QoS)",
        version: nil,
        hex: "10 10 \(mqtt) 05 02 00 3C 02 24 01 00 01 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 CONNECT with authentication data but no authentication method",
        version: nil,
        hex: "10 12 \(mqtt) 05 02 00 3C 04 16 00 01 AA 00 01 63",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 CONNECT with receive maximum 0",
        version: nil,
        hex: "10 11 \(mqtt) 05 02 00 3C 03 21 00 00 00 01 63",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 CONNECT with maximum packet size 0",
        version: nil,
        hex: "10 13 \(mqtt) 05 02 00 3C 05 27 00 00 00 00 00 01 63",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 CONNECT with request problem information 2",
        version: nil,
        hex: "10 10 \(mqtt) 05 02 00 3C 02 17 02 00 01 63",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 CONNECT with receive maximum given twice",
        version: nil,
        hex: "10 14 \(mqtt) 05 02 00 3C 06 21 00 01 21 00 02 00 01 63",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 CONNECT with unknown property identifier 0x05",
        version: nil,
        hex: "10 10 \(mqtt) 05 02 00 3C 02 05 00 00 01 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 CONNECT property length past the end of the packet",
        version: nil,
        hex: "10 0E \(mqtt) 05 02 00 3C 10 00 01 63",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 CONNECT property value cut short by the property length",
        version: nil,
        hex: "10 10 \(mqtt) 05 02 00 3C 02 11 00 00 01 63",
        expected: .malformedPacket
    ),
]

private let connAckCases: [MalformedCase] = [
    MalformedCase(
        name: "CONNACK reserved flag bits set", version: .v311, hex: "20 02 02 00", expected: .malformedPacket),
    MalformedCase(name: "3.1.1 CONNACK return code 6", version: .v311, hex: "20 02 00 06", expected: .protocolError),
    MalformedCase(
        name: "5 CONNACK reason code 0x04, which CONNACK may not carry",
        version: .v5,
        hex: "20 03 00 04 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 CONNACK session present with a failure reason code",
        version: .v5,
        hex: "20 03 01 87 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 CONNACK maximum QoS 2",
        version: .v5,
        hex: "20 05 00 00 02 24 02",
        expected: .protocolError
    ),
]

private let publishCases: [MalformedCase] = [
    MalformedCase(name: "PUBLISH QoS 3", version: .v311, hex: "36 05 00 01 74 00 01", expected: .malformedPacket),
    MalformedCase(
        name: "3.1.1 PUBLISH QoS 0 with DUP", version: .v311, hex: "38 03 00 01 74", expected: .malformedPacket),
    MalformedCase(name: "5 PUBLISH QoS 0 with DUP", version: .v5, hex: "38 04 00 01 74 00", expected: .malformedPacket),
    MalformedCase(
        name: "PUBLISH QoS 1 with packet identifier 0",
        version: .v311,
        hex: "32 05 00 01 74 00 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "PUBLISH QoS 1 without room for a packet identifier",
        version: .v311,
        hex: "32 03 00 01 74",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 PUBLISH topic with '+'",
        version: .v5,
        hex: "30 06 00 03 61 2F 2B 00",
        expected: .topicNameInvalid
    ),
    MalformedCase(
        name: "3.1.1 PUBLISH topic with '#'",
        version: .v311,
        hex: "30 05 00 03 61 2F 23",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 PUBLISH empty topic without topic alias",
        version: .v5,
        hex: "30 03 00 00 00",
        expected: .protocolError
    ),
    MalformedCase(name: "3.1.1 PUBLISH empty topic", version: .v311, hex: "30 02 00 00", expected: .malformedPacket),
    MalformedCase(
        name: "5 PUBLISH payload marked UTF-8 but not UTF-8",
        version: .v5,
        hex: "30 08 00 01 74 02 01 01 C3 28",
        expected: .payloadFormatInvalid
    ),
    MalformedCase(
        name: "5 PUBLISH payload format indicator 2",
        version: .v5,
        hex: "30 06 00 01 74 02 01 02",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 PUBLISH topic alias 0",
        version: .v5,
        hex: "30 07 00 01 74 03 23 00 00",
        expected: .topicAliasInvalid
    ),
    MalformedCase(
        name: "5 PUBLISH subscription identifier 0",
        version: .v5,
        hex: "30 06 00 01 74 02 0B 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 PUBLISH topic alias given twice",
        version: .v5,
        hex: "30 0A 00 01 74 06 23 00 01 23 00 02",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 PUBLISH with a property only CONNECT may carry (Receive Maximum)",
        version: .v5,
        hex: "30 07 00 01 74 03 21 00 01",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 PUBLISH response topic with a wildcard",
        version: .v5,
        hex: "30 09 00 01 74 05 08 00 02 61 23",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 PUBLISH property identifier not minimally encoded",
        version: .v5,
        hex: "30 07 00 01 74 03 81 00 00",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 PUBLISH property length longer than 4 bytes",
        version: .v5,
        hex: "30 07 00 01 74 FF FF FF FF",
        expected: .malformedPacket
    ),
]

private let acknowledgementCases: [MalformedCase] = [
    MalformedCase(name: "PUBACK packet identifier 0", version: .v311, hex: "40 02 00 00", expected: .protocolError),
    MalformedCase(
        name: "5 PUBACK reason code 0x92, which only PUBREL and PUBCOMP may carry",
        version: .v5,
        hex: "40 03 00 01 92",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 PUBREL reason code 0x10, which only PUBACK and PUBREC may carry",
        version: .v5,
        hex: "62 03 00 01 10",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 PUBCOMP unknown reason code 0x05", version: .v5, hex: "70 03 00 01 05", expected: .protocolError),
    MalformedCase(
        name: "5 PUBACK with a property only PUBLISH may carry (Topic Alias)",
        version: .v5,
        hex: "40 07 00 01 00 03 23 00 01",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 PUBREC reason string given twice",
        version: .v5,
        hex: "50 0C 00 01 00 08 1F 00 01 61 1F 00 01 62",
        expected: .protocolError
    ),
    MalformedCase(
        name: "3.1.1 PUBACK with a reason code",
        version: .v311,
        hex: "40 03 00 01 00",
        expected: .malformedPacket
    ),
]

private let subscribeCases: [MalformedCase] = [
    MalformedCase(
        name: "3.1.1 SUBSCRIBE without topic filters", version: .v311, hex: "82 02 00 01", expected: .protocolError),
    MalformedCase(
        name: "5 SUBSCRIBE without topic filters", version: .v5, hex: "82 03 00 01 00", expected: .protocolError),
    MalformedCase(
        name: "SUBSCRIBE packet identifier 0",
        version: .v311,
        hex: "82 06 00 00 00 01 74 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "3.1.1 SUBSCRIBE options with reserved bits set",
        version: .v311,
        hex: "82 06 00 01 00 01 74 04",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "3.1.1 SUBSCRIBE QoS 3", version: .v311, hex: "82 06 00 01 00 01 74 03", expected: .malformedPacket),
    MalformedCase(
        name: "5 SUBSCRIBE options with reserved bits set",
        version: .v5,
        hex: "82 07 00 01 00 00 01 74 40",
        expected: .malformedPacket
    ),
    MalformedCase(name: "5 SUBSCRIBE QoS 3", version: .v5, hex: "82 07 00 01 00 00 01 74 03", expected: .protocolError),
    MalformedCase(
        name: "5 SUBSCRIBE retain handling 3",
        version: .v5,
        hex: "82 07 00 01 00 00 01 74 30",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 SUBSCRIBE '#' not the last level",
        version: .v5,
        hex: "82 0B 00 01 00 00 05 61 2F 23 2F 62 00",
        expected: .topicFilterInvalid
    ),
    MalformedCase(
        name: "3.1.1 SUBSCRIBE '+' not a whole level",
        version: .v311,
        hex: "82 07 00 01 00 02 61 2B 00",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 SUBSCRIBE empty topic filter",
        version: .v5,
        hex: "82 06 00 01 00 00 00 00",
        expected: .topicFilterInvalid
    ),
    MalformedCase(
        name: "5 SUBSCRIBE shared subscription with an empty share name",
        version: .v5,
        hex: "82 0F 00 01 00 00 09 24 73 68 61 72 65 2F 2F 61 00",
        expected: .topicFilterInvalid
    ),
    MalformedCase(
        name: "5 SUBSCRIBE No Local on a shared subscription",
        version: .v5,
        hex: "82 10 00 01 00 00 0A 24 73 68 61 72 65 2F 67 2F 61 04",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 SUBSCRIBE subscription identifier given twice",
        version: .v5,
        hex: "82 0B 00 01 04 0B 01 0B 02 00 01 74 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 SUBSCRIBE subscription identifier 0",
        version: .v5,
        hex: "82 09 00 01 02 0B 00 00 01 74 00",
        expected: .protocolError
    ),
    MalformedCase(
        name: "SUBSCRIBE topic filter without its options byte",
        version: .v311,
        hex: "82 05 00 01 00 01 74",
        expected: .malformedPacket
    ),
]

private let subAckCases: [MalformedCase] = [
    MalformedCase(name: "3.1.1 SUBACK return code 3", version: .v311, hex: "90 03 00 01 03", expected: .protocolError),
    MalformedCase(
        name: "5 SUBACK reason code 0x11, which only UNSUBACK may carry",
        version: .v5,
        hex: "90 04 00 01 00 11",
        expected: .protocolError
    ),
]

private let unsubscribeCases: [MalformedCase] = [
    MalformedCase(
        name: "3.1.1 UNSUBSCRIBE without topic filters",
        version: .v311,
        hex: "A2 02 00 01",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 UNSUBSCRIBE without topic filters", version: .v5, hex: "A2 03 00 01 00", expected: .protocolError),
    MalformedCase(
        name: "UNSUBSCRIBE packet identifier 0",
        version: .v311,
        hex: "A2 05 00 00 00 01 74",
        expected: .protocolError
    ),
    MalformedCase(
        name: "5 UNSUBSCRIBE '#' not the last level",
        version: .v5,
        hex: "A2 08 00 01 00 00 03 23 2F 61",
        expected: .topicFilterInvalid
    ),
    MalformedCase(
        name: "3.1.1 UNSUBSCRIBE '#' not the last level",
        version: .v311,
        hex: "A2 07 00 01 00 03 23 2F 61",
        expected: .malformedPacket
    ),
]

private let unsubAckCases: [MalformedCase] = [
    MalformedCase(
        name: "3.1.1 UNSUBACK with a payload", version: .v311, hex: "B0 03 00 01 00", expected: .malformedPacket),
    MalformedCase(
        name: "5 UNSUBACK reason code 0x10, which only PUBACK and PUBREC may carry",
        version: .v5,
        hex: "B0 04 00 01 00 10",
        expected: .protocolError
    ),
]

private let disconnectAndAuthCases: [MalformedCase] = [
    MalformedCase(name: "5 DISCONNECT reason code 0x01", version: .v5, hex: "E0 01 01", expected: .protocolError),
    MalformedCase(
        name: "5 DISCONNECT with a property only PUBLISH may carry (Topic Alias)",
        version: .v5,
        hex: "E0 05 00 03 23 00 01",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 DISCONNECT property length past the end of the packet",
        version: .v5,
        hex: "E0 02 00 05",
        expected: .malformedPacket
    ),
    MalformedCase(name: "5 AUTH reason code 0x87", version: .v5, hex: "F0 02 87 00", expected: .protocolError),
    MalformedCase(
        name: "5 AUTH reason code without property length",
        version: .v5,
        hex: "F0 01 18",
        expected: .malformedPacket
    ),
    MalformedCase(
        name: "5 AUTH with a property only CONNECT may carry (Session Expiry Interval)",
        version: .v5,
        hex: "F0 07 18 05 11 00 00 00 0A",
        expected: .malformedPacket
    ),
]

@Suite("Malformed packets: each is rejected with the right reason code")
struct MQTTMalformedPacketTests {
    @Test("Fixed header", arguments: fixedHeaderCases)
    func fixedHeader(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("UTF-8 strings", arguments: stringCases)
    func strings(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("CONNECT and properties", arguments: connectCases)
    func connect(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("CONNACK", arguments: connAckCases)
    func connAck(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("PUBLISH", arguments: publishCases)
    func publish(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("PUBACK, PUBREC, PUBREL and PUBCOMP", arguments: acknowledgementCases)
    func acknowledgements(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("SUBSCRIBE", arguments: subscribeCases)
    func subscribe(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("SUBACK", arguments: subAckCases)
    func subAck(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("UNSUBSCRIBE", arguments: unsubscribeCases)
    func unsubscribe(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("UNSUBACK", arguments: unsubAckCases)
    func unsubAck(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    @Test("DISCONNECT and AUTH", arguments: disconnectAndAuthCases)
    func disconnectAndAuth(_ malformed: MalformedCase) { Self.expectRejected(malformed) }

    /// Feeds the bytes through `ByteToMessageHandler(MQTTDecoder)` and checks the error the pipeline reports.
    private static func expectRejected(_ malformed: MalformedCase, sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: MQTTProtocolError.self, sourceLocation: sourceLocation) {
            _ = try MQTTTestChannel.decode(
                ByteBuffer(hex: malformed.hex),
                version: malformed.version,
                maximumPacketSize: malformed.maximumPacketSize
            )
        }
        #expect(
            error?.reasonCode == malformed.expected, "\(error?.message ?? "no error")", sourceLocation: sourceLocation)
        #expect(error?.message.isEmpty == false, sourceLocation: sourceLocation)
    }
}
