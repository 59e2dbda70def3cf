import RampartMQTT
import Testing

@Suite("Reason codes and errors")
struct MQTTReasonCodeTests {
    @Test("Codes from 0x80 up are failures")
    func failures() {
        #expect(!MQTTReasonCode.success.isFailure)
        #expect(!MQTTReasonCode.grantedQoS2.isFailure)
        #expect(!MQTTReasonCode.reAuthenticate.isFailure)
        #expect(MQTTReasonCode.unspecifiedError.isFailure)
        #expect(MQTTReasonCode.wildcardSubscriptionsNotSupported.isFailure)
    }

    @Test("Aliased codes share their value")
    func aliases() {
        #expect(MQTTReasonCode.success == .normalDisconnection)
        #expect(MQTTReasonCode.success == .grantedQoS0)
        #expect(MQTTReasonCode.grantedQoS1.rawValue == 0x01)
        #expect(MQTTReasonCode.wildcardSubscriptionsNotSupported.rawValue == 0xA2)
    }

    @Test("Descriptions name the code and its value")
    func descriptions() {
        #expect(MQTTReasonCode.packetTooLarge.description == "packetTooLarge (0x95)")
        #expect(MQTTReasonCode(rawValue: 0x05).description == "unknown (0x05)")
    }

    @Test("MQTT 3.1.1 CONNACK return codes map both ways")
    func v311ReturnCodes() {
        for returnCode in UInt8(0)...5 {
            let reasonCode = MQTTReasonCode(v311ConnectReturnCode: returnCode)
            #expect(reasonCode?.v311ConnectReturnCode == returnCode)
        }
        #expect(MQTTReasonCode(v311ConnectReturnCode: 6) == nil)
        #expect(MQTTReasonCode.protocolError.v311ConnectReturnCode == nil)
    }

    @Test("Errors are equal when their reason codes are, whatever the message")
    func errorEquality() {
        #expect(MQTTProtocolError(.malformedPacket, "one") == MQTTProtocolError(.malformedPacket, "two"))
        #expect(MQTTProtocolError(.malformedPacket, "one") != MQTTProtocolError(.protocolError, "one"))
        #expect(MQTTProtocolError(.protocolError, "bad").description == "protocolError (0x82): bad")
    }

    @Test("QoS levels are ordered")
    func qosOrder() {
        #expect(MQTTQoS.atMostOnce < .atLeastOnce)
        #expect(min(MQTTQoS.exactlyOnce, .atLeastOnce) == .atLeastOnce)
    }

    @Test("Empty properties are empty and any property makes them non-empty")
    func propertiesIsEmpty() {
        var properties = MQTTProperties()
        #expect(properties.isEmpty)
        properties.userProperties.append(MQTTUserProperty(name: "a", value: "b"))
        #expect(!properties.isEmpty)
    }
}
