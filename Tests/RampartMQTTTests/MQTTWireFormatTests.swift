import NIOCore
import RampartMQTT
import Testing

/// One well-formed packet and the exact bytes the specification says it is on the wire.
struct WireCase: Sendable, CustomTestStringConvertible {
    var name: String
    var version: MQTTProtocolVersion
    var packet: MQTTPacket
    var hex: String

    var testDescription: String { name }
}

private func properties(_ build: (inout MQTTProperties) -> Void) -> MQTTProperties {
    var properties = MQTTProperties()
    build(&properties)
    return properties
}

private let v311Cases: [WireCase] = [
    WireCase(
        name: "3.1.1 CONNECT, clean session, keep alive 60",
        version: .v311,
        packet: .connect(MQTTConnect(protocolVersion: .v311, clientID: "abc", cleanStart: true, keepAliveSeconds: 60)),
        hex: "10 0F  00 04 4D 51 54 54  04  02  00 3C  00 03 61 62 63"
    ),
    WireCase(
        name: "3.1.1 CONNECT with will, user name and password",
        version: .v311,
        packet: .connect(
            MQTTConnect(
                protocolVersion: .v311,
                clientID: "c",
                cleanStart: false,
                keepAliveSeconds: 10,
                username: "u",
                password: Array("p".utf8),
                will: MQTTWill(topic: "w/t", payload: Array("bye".utf8), qos: .atLeastOnce, retain: true)
            )
        ),
        hex: "10 1D  00 04 4D 51 54 54  04  EC  00 0A  00 01 63  00 03 77 2F 74  00 03 62 79 65  00 01 75  00 01 70"
    ),
    WireCase(
        name: "3.1.1 CONNACK accepted, session present",
        version: .v311,
        packet: .connack(MQTTConnAck(sessionPresent: true, reasonCode: .success)),
        hex: "20 02 01 00"
    ),
    WireCase(
        name: "3.1.1 CONNACK refused, not authorised (return code 5)",
        version: .v311,
        packet: .connack(MQTTConnAck(reasonCode: .notAuthorized)),
        hex: "20 02 00 05"
    ),
    WireCase(
        name: "3.1.1 CONNACK refused, unacceptable protocol version (return code 1)",
        version: .v311,
        packet: .connack(MQTTConnAck(reasonCode: .unsupportedProtocolVersion)),
        hex: "20 02 00 01"
    ),
    WireCase(
        name: "3.1.1 PUBLISH QoS 0",
        version: .v311,
        packet: .publish(MQTTPublish(topic: "a/b", payload: ByteBuffer(string: "hi"))),
        hex: "30 07  00 03 61 2F 62  68 69"
    ),
    WireCase(
        name: "3.1.1 PUBLISH QoS 1, DUP and RETAIN",
        version: .v311,
        packet: .publish(
            MQTTPublish(
                topic: "a/b",
                payload: ByteBuffer(string: "hi"),
                qos: .atLeastOnce,
                retain: true,
                dup: true,
                packetID: 10
            )
        ),
        hex: "3B 09  00 03 61 2F 62  00 0A  68 69"
    ),
    WireCase(
        name: "3.1.1 PUBLISH QoS 2, empty payload",
        version: .v311,
        packet: .publish(MQTTPublish(topic: "a/b", qos: .exactlyOnce, packetID: 0x1234)),
        hex: "34 07  00 03 61 2F 62  12 34"
    ),
    WireCase(name: "3.1.1 PUBACK", version: .v311, packet: .puback(MQTTAck(packetID: 10)), hex: "40 02 00 0A"),
    WireCase(name: "3.1.1 PUBREC", version: .v311, packet: .pubrec(MQTTAck(packetID: 10)), hex: "50 02 00 0A"),
    WireCase(name: "3.1.1 PUBREL", version: .v311, packet: .pubrel(MQTTAck(packetID: 10)), hex: "62 02 00 0A"),
    WireCase(name: "3.1.1 PUBCOMP", version: .v311, packet: .pubcomp(MQTTAck(packetID: 10)), hex: "70 02 00 0A"),
    WireCase(
        name: "3.1.1 SUBSCRIBE with two filters",
        version: .v311,
        packet: .subscribe(
            MQTTSubscribe(
                packetID: 1,
                subscriptions: [
                    MQTTSubscription(topicFilter: "a/+", qos: .atLeastOnce),
                    MQTTSubscription(topicFilter: "b/#", qos: .exactlyOnce),
                ]
            )
        ),
        hex: "82 0E  00 01  00 03 61 2F 2B 01  00 03 62 2F 23 02"
    ),
    WireCase(
        name: "3.1.1 SUBACK granting QoS 1 and refusing one",
        version: .v311,
        packet: .suback(MQTTSubAck(packetID: 1, reasonCodes: [.grantedQoS1, .unspecifiedError])),
        hex: "90 04  00 01  01 80"
    ),
    WireCase(
        name: "3.1.1 UNSUBSCRIBE",
        version: .v311,
        packet: .unsubscribe(MQTTUnsubscribe(packetID: 2, topicFilters: ["a/+"])),
        hex: "A2 07  00 02  00 03 61 2F 2B"
    ),
    WireCase(name: "3.1.1 UNSUBACK", version: .v311, packet: .unsuback(MQTTUnsubAck(packetID: 2)), hex: "B0 02 00 02"),
    WireCase(name: "3.1.1 PINGREQ", version: .v311, packet: .pingreq, hex: "C0 00"),
    WireCase(name: "3.1.1 PINGRESP", version: .v311, packet: .pingresp, hex: "D0 00"),
    WireCase(name: "3.1.1 DISCONNECT", version: .v311, packet: .disconnect(MQTTDisconnect()), hex: "E0 00"),
]

private let v5Cases: [WireCase] = [
    WireCase(
        name: "5 CONNECT without properties",
        version: .v5,
        packet: .connect(MQTTConnect(protocolVersion: .v5, clientID: "abc", cleanStart: true, keepAliveSeconds: 60)),
        hex: "10 10  00 04 4D 51 54 54  05  02  00 3C  00  00 03 61 62 63"
    ),
    WireCase(
        name: "5 CONNECT with properties, will properties and user name",
        version: .v5,
        packet: .connect(
            MQTTConnect(
                protocolVersion: .v5,
                clientID: "c",
                cleanStart: true,
                keepAliveSeconds: 60,
                username: "u",
                will: MQTTWill(
                    topic: "w",
                    payload: Array("x".utf8),
                    properties: properties {
                        $0.willDelayInterval = 5
                        $0.payloadFormatIndicator = 1
                    }
                ),
                properties: properties {
                    $0.userProperties = [MQTTUserProperty(name: "k", value: "v")]
                    $0.receiveMaximum = 20
                    $0.sessionExpiryInterval = 120
                }
            )
        ),
        hex: """
            10 2E  00 04 4D 51 54 54  05  86  00 3C
            0F  11 00 00 00 78  21 00 14  26 00 01 6B 00 01 76
            00 01 63
            07  01 01  18 00 00 00 05
            00 01 77  00 01 78  00 01 75
            """
    ),
    WireCase(
        name: "5 CONNACK with assigned client identifier and topic alias maximum",
        version: .v5,
        packet: .connack(
            MQTTConnAck(
                reasonCode: .success,
                properties: properties {
                    $0.topicAliasMaximum = 10
                    $0.assignedClientIdentifier = "id"
                }
            )
        ),
        hex: "20 0B  00 00  08  12 00 02 69 64  22 00 0A"
    ),
    WireCase(
        name: "5 CONNACK refused, not authorised",
        version: .v5,
        packet: .connack(MQTTConnAck(reasonCode: .notAuthorized)),
        hex: "20 03  00 87  00"
    ),
    WireCase(
        name: "5 PUBLISH QoS 1 setting a topic alias",
        version: .v5,
        packet: .publish(
            MQTTPublish(
                topic: "t",
                payload: ByteBuffer(string: "hi"),
                qos: .atLeastOnce,
                packetID: 1,
                properties: properties { $0.topicAlias = 5 }
            )
        ),
        hex: "32 0B  00 01 74  00 01  03 23 00 05  68 69"
    ),
    WireCase(
        name: "5 PUBLISH with an empty topic name and a topic alias",
        version: .v5,
        packet: .publish(
            MQTTPublish(topic: "", payload: ByteBuffer(string: "hi"), properties: properties { $0.topicAlias = 5 })
        ),
        hex: "30 08  00 00  03 23 00 05  68 69"
    ),
    WireCase(
        name: "5 PUBACK short form (success, no properties)",
        version: .v5,
        packet: .puback(MQTTAck(packetID: 1)),
        hex: "40 02 00 01"
    ),
    WireCase(
        name: "5 PUBACK with a reason code and no properties",
        version: .v5,
        packet: .puback(MQTTAck(packetID: 1, reasonCode: .noMatchingSubscribers)),
        hex: "40 03  00 01  10"
    ),
    WireCase(
        name: "5 PUBACK with a reason string",
        version: .v5,
        packet: .puback(
            MQTTAck(packetID: 1, reasonCode: .noMatchingSubscribers, properties: properties { $0.reasonString = "no" })
        ),
        hex: "40 09  00 01  10  05 1F 00 02 6E 6F"
    ),
    WireCase(name: "5 PUBREC short form", version: .v5, packet: .pubrec(MQTTAck(packetID: 1)), hex: "50 02 00 01"),
    WireCase(
        name: "5 PUBREL packet identifier not found",
        version: .v5,
        packet: .pubrel(MQTTAck(packetID: 1, reasonCode: .packetIdentifierNotFound)),
        hex: "62 03  00 01  92"
    ),
    WireCase(name: "5 PUBCOMP short form", version: .v5, packet: .pubcomp(MQTTAck(packetID: 1)), hex: "70 02 00 01"),
    WireCase(
        name: "5 SUBSCRIBE with subscription identifier and all options",
        version: .v5,
        packet: .subscribe(
            MQTTSubscribe(
                packetID: 1,
                subscriptions: [
                    MQTTSubscription(
                        topicFilter: "a/#",
                        qos: .atLeastOnce,
                        noLocal: true,
                        retainAsPublished: true,
                        retainHandling: 2
                    )
                ],
                properties: properties { $0.subscriptionIdentifiers = [7] }
            )
        ),
        hex: "82 0B  00 01  02 0B 07  00 03 61 2F 23  2D"
    ),
    WireCase(
        name: "5 SUBACK granting QoS 1 and refusing one",
        version: .v5,
        packet: .suback(MQTTSubAck(packetID: 1, reasonCodes: [.grantedQoS1, .notAuthorized])),
        hex: "90 05  00 01  00  01 87"
    ),
    WireCase(
        name: "5 UNSUBSCRIBE",
        version: .v5,
        packet: .unsubscribe(MQTTUnsubscribe(packetID: 2, topicFilters: ["a/#"])),
        hex: "A2 08  00 02  00  00 03 61 2F 23"
    ),
    WireCase(
        name: "5 UNSUBACK",
        version: .v5,
        packet: .unsuback(MQTTUnsubAck(packetID: 2, reasonCodes: [.success, .noSubscriptionExisted])),
        hex: "B0 05  00 02  00  00 11"
    ),
    WireCase(name: "5 PINGREQ", version: .v5, packet: .pingreq, hex: "C0 00"),
    WireCase(name: "5 PINGRESP", version: .v5, packet: .pingresp, hex: "D0 00"),
    WireCase(
        name: "5 DISCONNECT short form (normal disconnection)",
        version: .v5,
        packet: .disconnect(MQTTDisconnect()),
        hex: "E0 00"
    ),
    WireCase(
        name: "5 DISCONNECT with will message, no properties",
        version: .v5,
        packet: .disconnect(MQTTDisconnect(reasonCode: .disconnectWithWillMessage)),
        hex: "E0 01  04"
    ),
    WireCase(
        name: "5 DISCONNECT server shutting down, with reason string",
        version: .v5,
        packet: .disconnect(
            MQTTDisconnect(reasonCode: .serverShuttingDown, properties: properties { $0.reasonString = "bye" })
        ),
        hex: "E0 08  8B  06 1F 00 03 62 79 65"
    ),
    WireCase(name: "5 AUTH short form (success)", version: .v5, packet: .auth(MQTTAuth()), hex: "F0 00"),
    WireCase(
        name: "5 AUTH continue authentication with method and data",
        version: .v5,
        packet: .auth(
            MQTTAuth(
                reasonCode: .continueAuthentication,
                properties: properties {
                    $0.authenticationMethod = "SCRAM"
                    $0.authenticationData = [1, 2]
                }
            )
        ),
        hex: "F0 0F  18  0D 15 00 05 53 43 52 41 4D 16 00 02 01 02"
    ),
]

/// A PUBLISH carrying every property a PUBLISH may carry, in the order the encoder must write them.
private let everyPublishProperty = WireCase(
    name: "5 PUBLISH with every PUBLISH property",
    version: .v5,
    packet: .publish(
        MQTTPublish(
            topic: "t",
            payload: ByteBuffer(string: "ok"),
            properties: properties {
                $0.userProperties = [
                    MQTTUserProperty(name: "a", value: "1"),
                    MQTTUserProperty(name: "b", value: "2"),
                ]
                $0.topicAlias = 2
                $0.subscriptionIdentifiers = [1, 268_435_455]
                $0.correlationData = [0xAA, 0xBB]
                $0.responseTopic = "r"
                $0.contentType = "text"
                $0.messageExpiryInterval = 60
                $0.payloadFormatIndicator = 1
            }
        )
    ),
    hex: """
        30 35  00 01 74
        2F  01 01  02 00 00 00 3C  03 00 04 74 65 78 74  08 00 01 72  09 00 02 AA BB
            0B 01  0B FF FF FF 7F  23 00 02  26 00 01 61 00 01 31  26 00 01 62 00 01 32
        6F 6B
        """
)

@Suite("Wire format: each packet type, byte for byte, both ways")
struct MQTTWireFormatTests {
    @Test("Encodes to the specified bytes", arguments: v311Cases + v5Cases + [everyPublishProperty])
    func encodes(_ wire: WireCase) throws {
        let bytes = try MQTTTestChannel.encode(wire.packet, version: wire.version)
        #expect(bytes.hexDump == ByteBuffer(hex: wire.hex).hexDump)
    }

    @Test("Decodes the specified bytes", arguments: v311Cases + v5Cases + [everyPublishProperty])
    func decodes(_ wire: WireCase) throws {
        let version = MQTTTestChannel.decodingVersion(for: wire.packet, wire.version)
        let packets = try MQTTTestChannel.decode(ByteBuffer(hex: wire.hex), version: version)
        #expect(packets == [wire.packet])
    }

    @Test("A PUBLISH with every property survives encode then decode")
    func everyPropertyRoundTrips() throws {
        let bytes = try MQTTTestChannel.encode(everyPublishProperty.packet, version: .v5)
        #expect(try MQTTTestChannel.decode(bytes, version: .v5) == [everyPublishProperty.packet])
    }

    @Test("An MQTT 5 DISCONNECT with a reason code and an empty property length decodes")
    func disconnectWithEmptyPropertyLength() throws {
        let packets = try MQTTTestChannel.decode(ByteBuffer(hex: "E0 02 00 00"), version: .v5)
        #expect(packets == [.disconnect(MQTTDisconnect())])
    }

    @Test("An MQTT 5 PUBACK with success and an empty property length decodes")
    func pubackWithEmptyPropertyLength() throws {
        let packets = try MQTTTestChannel.decode(ByteBuffer(hex: "40 04 00 01 00 00"), version: .v5)
        #expect(packets == [.puback(MQTTAck(packetID: 1))])
    }

    @Test("MQTT 3.1.1 drops properties and MQTT 5 subscription options when encoding")
    func v311DropsV5Fields() throws {
        var publishProperties = MQTTProperties()
        publishProperties.contentType = "text"
        let publish = MQTTPacket.publish(
            MQTTPublish(topic: "a/b", payload: ByteBuffer(string: "hi"), properties: publishProperties)
        )
        #expect(try MQTTTestChannel.encode(publish, version: .v311).hexDump == "30 07 00 03 61 2F 62 68 69")
        let subscribe = MQTTPacket.subscribe(
            MQTTSubscribe(
                packetID: 1,
                subscriptions: [MQTTSubscription(topicFilter: "a", qos: .atLeastOnce, noLocal: true, retainHandling: 2)]
            )
        )
        #expect(try MQTTTestChannel.encode(subscribe, version: .v311).hexDump == "82 06 00 01 00 01 61 01")
    }

    @Test("MQTT 3.1.1 SUBACK sends every failure reason code as 0x80")
    func v311SubAckFailures() throws {
        let suback = MQTTPacket.suback(MQTTSubAck(packetID: 1, reasonCodes: [.notAuthorized, .grantedQoS2]))
        #expect(try MQTTTestChannel.encode(suback, version: .v311).hexDump == "90 04 00 01 80 02")
    }

    @Test("MQTT 3.1.1 CONNACK maps MQTT 5 reason codes onto return codes")
    func v311ConnAckMapping() throws {
        let cases: [(MQTTReasonCode, String)] = [
            (.clientIdentifierNotValid, "20 02 00 02"),
            (.serverBusy, "20 02 00 03"),
            (.badUserNameOrPassword, "20 02 00 04"),
            (.banned, "20 02 00 05"),
        ]
        for (code, hex) in cases {
            #expect(try MQTTTestChannel.encode(.connack(MQTTConnAck(reasonCode: code)), version: .v311).hexDump == hex)
        }
    }

    @Test("A remaining length of 128 takes two bytes and one of 16384 takes three")
    func variableByteIntegerBoundaries() throws {
        for (payloadSize, header) in [(121, "30 7F"), (122, "30 80 01"), (16_377, "30 FF 7F"), (16_378, "30 80 80 01")]
        {
            let publish = MQTTPacket.publish(
                MQTTPublish(topic: "a/b", payload: ByteBuffer(repeating: 0x41, count: payloadSize))
            )
            let bytes = try MQTTTestChannel.encode(publish, version: .v5)
            #expect(bytes.hexDump.hasPrefix(header + " 00 03"))
            #expect(try MQTTTestChannel.decode(bytes, version: .v5) == [publish])
        }
    }
}
