import NIOCore
import RampartMQTT
import Testing

/// A small deterministic generator, so that every run feeds the decoder the same bytes.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Robustness: hostile input never traps")
struct MQTTRobustnessTests {
    /// Decodes until the codec wants more bytes or rejects the input; either outcome is fine, a trap is not.
    private static func drain(_ bytes: [UInt8], version: MQTTProtocolVersion?) {
        var buffer = ByteBuffer(bytes: bytes)
        var version = version
        while true {
            guard let packet = try? MQTTCodec.decode(from: &buffer, version: version, maximumPacketSize: 4096) else {
                return
            }
            if case .connect(let connect) = packet { version = connect.protocolVersion }
        }
    }

    @Test("Random bytes", arguments: [nil, MQTTProtocolVersion.v311, .v5])
    func randomBytes(version: MQTTProtocolVersion?) {
        var random = SplitMix64(state: 0x4D51_5454)
        for _ in 0..<3000 {
            let count = Int.random(in: 0...48, using: &random)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            if !bytes.isEmpty, Bool.random(using: &random) {
                // A plausible first byte and length reach far deeper into the packet parsers.
                bytes[0] = UInt8.random(in: 1...15, using: &random) << 4 | (bytes[0] & 0x0F)
                if bytes.count > 1 { bytes[1] = UInt8(bytes.count - 2) }
            }
            Self.drain(bytes, version: version)
        }
    }

    @Test("Every single-byte change to a valid MQTT 5 CONNECT and PUBLISH")
    func mutatedPackets() throws {
        var connect = MQTTConnect(protocolVersion: .v5, clientID: "c", username: "u", password: [1])
        connect.will = MQTTWill(topic: "w", payload: [0x78], qos: .atLeastOnce)
        connect.will?.properties.willDelayInterval = 5
        connect.properties.userProperties = [MQTTUserProperty(name: "k", value: "v")]
        var publish = MQTTPublish(topic: "a/b", payload: ByteBuffer(string: "hi"), qos: .exactlyOnce, packetID: 9)
        publish.properties.subscriptionIdentifiers = [300]
        publish.properties.correlationData = [1, 2, 3]
        let samples: [(MQTTPacket, MQTTProtocolVersion?)] = [(.connect(connect), nil), (.publish(publish), .v5)]
        for (packet, version) in samples {
            var encoded = ByteBuffer()
            try MQTTCodec.encode(packet, version: .v5, into: &encoded)
            let bytes = Array(encoded.readableBytesView)
            for index in bytes.indices {
                for value in [0x00, 0x01, 0x7F, 0x80, 0xFF] as [UInt8] {
                    var mutated = bytes
                    mutated[index] = value
                    Self.drain(mutated, version: version)
                }
            }
        }
    }
}
