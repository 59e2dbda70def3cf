import NIOCore
import RampartMQTT
import Testing

/// A packet the encoder must refuse, so that Rampart never sends what its peer must reject.
struct UnencodableCase: Sendable, CustomTestStringConvertible {
    var name: String
    var version: MQTTProtocolVersion
    var packet: MQTTPacket
    var expected: MQTTReasonCode

    var testDescription: String { name }
}

private func properties(_ build: (inout MQTTProperties) -> Void) -> MQTTProperties {
    var properties = MQTTProperties()
    build(&properties)
    return properties
}

private let unencodableCases: [UnencodableCase] = [
    UnencodableCase(name: "AUTH in 3.1.1", version: .v311, packet: .auth(MQTTAuth()), expected: .protocolError),
    UnencodableCase(
        name: "PUBLISH to a topic with a wildcard",
        version: .v5,
        packet: .publish(MQTTPublish(topic: "a/+")),
        expected: .topicNameInvalid
    ),
    UnencodableCase(
        name: "3.1.1 PUBLISH to an empty topic",
        version: .v311,
        packet: .publish(MQTTPublish(topic: "", properties: properties { $0.topicAlias = 1 })),
        expected: .malformedPacket
    ),
    UnencodableCase(
        name: "PUBLISH QoS 1 without a packet identifier",
        version: .v311,
        packet: .publish(MQTTPublish(topic: "a", qos: .atLeastOnce)),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "PUBLISH QoS 0 with DUP",
        version: .v5,
        packet: .publish(MQTTPublish(topic: "a", dup: true)),
        expected: .malformedPacket
    ),
    UnencodableCase(
        name: "PUBLISH with topic alias 0",
        version: .v5,
        packet: .publish(MQTTPublish(topic: "a", properties: properties { $0.topicAlias = 0 })),
        expected: .topicAliasInvalid
    ),
    UnencodableCase(
        name: "CONNACK with a property only PUBLISH may carry",
        version: .v5,
        packet: .connack(MQTTConnAck(properties: properties { $0.topicAlias = 1 })),
        expected: .malformedPacket
    ),
    UnencodableCase(
        name: "3.1.1 CONNACK with a reason code 3.1.1 cannot express",
        version: .v311,
        packet: .connack(MQTTConnAck(reasonCode: .malformedPacket)),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "CONNACK with session present and a failure",
        version: .v5,
        packet: .connack(MQTTConnAck(sessionPresent: true, reasonCode: .notAuthorized)),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "CONNECT whose version differs from the encoder's",
        version: .v311,
        packet: .connect(MQTTConnect(protocolVersion: .v5, clientID: "c")),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "3.1.1 CONNECT with a password but no user name",
        version: .v311,
        packet: .connect(MQTTConnect(protocolVersion: .v311, clientID: "c", password: [1])),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "SUBSCRIBE without subscriptions",
        version: .v5,
        packet: .subscribe(MQTTSubscribe(packetID: 1, subscriptions: [])),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "SUBSCRIBE with packet identifier 0",
        version: .v5,
        packet: .subscribe(MQTTSubscribe(packetID: 0, subscriptions: [MQTTSubscription(topicFilter: "a")])),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "SUBSCRIBE with an invalid filter",
        version: .v5,
        packet: .subscribe(MQTTSubscribe(packetID: 1, subscriptions: [MQTTSubscription(topicFilter: "a#")])),
        expected: .topicFilterInvalid
    ),
    UnencodableCase(
        name: "SUBSCRIBE with retain handling 3",
        version: .v5,
        packet: .subscribe(
            MQTTSubscribe(packetID: 1, subscriptions: [MQTTSubscription(topicFilter: "a", retainHandling: 3)])
        ),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "SUBSCRIBE with two subscription identifiers",
        version: .v5,
        packet: .subscribe(
            MQTTSubscribe(
                packetID: 1,
                subscriptions: [MQTTSubscription(topicFilter: "a")],
                properties: properties { $0.subscriptionIdentifiers = [1, 2] }
            )
        ),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "PUBLISH with a subscription identifier above 268435455",
        version: .v5,
        packet: .publish(
            MQTTPublish(topic: "a", properties: properties { $0.subscriptionIdentifiers = [268_435_456] })),
        expected: .malformedPacket
    ),
    UnencodableCase(
        name: "UNSUBSCRIBE without topic filters",
        version: .v311,
        packet: .unsubscribe(MQTTUnsubscribe(packetID: 1, topicFilters: [])),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "PUBACK reason code only PUBREL may carry",
        version: .v5,
        packet: .puback(MQTTAck(packetID: 1, reasonCode: .packetIdentifierNotFound)),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "SUBACK with a 3.1.1-inexpressible success code",
        version: .v311,
        packet: .suback(MQTTSubAck(packetID: 1, reasonCodes: [.noSubscriptionExisted])),
        expected: .protocolError
    ),
    UnencodableCase(
        name: "PUBLISH topic containing U+0000",
        version: .v5,
        packet: .publish(MQTTPublish(topic: "a\u{0}b")),
        expected: .topicNameInvalid
    ),
    UnencodableCase(
        name: "CONNECT client identifier longer than 65535 bytes",
        version: .v5,
        packet: .connect(MQTTConnect(clientID: String(repeating: "x", count: 65_536))),
        expected: .malformedPacket
    ),
]

@Suite("Encoder refusals")
struct MQTTEncoderErrorTests {
    @Test("Refuses packets that cannot be sent", arguments: unencodableCases)
    func refuses(_ unencodable: UnencodableCase) {
        var buffer = ByteBuffer(hex: "AA")
        let error = #expect(throws: MQTTProtocolError.self) {
            try MQTTCodec.encode(unencodable.packet, version: unencodable.version, into: &buffer)
        }
        #expect(error?.reasonCode == unencodable.expected, "\(error?.message ?? "no error")")
        #expect(buffer.hexDump == "AA", "a failed encode must append nothing")
    }
}
