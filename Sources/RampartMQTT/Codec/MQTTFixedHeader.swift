import NIOCore

/// The fixed header of a packet, read without consuming it.
struct MQTTFixedHeader {
    var type: MQTTPacketType
    var flags: UInt8
    var remainingLength: Int
    /// The size of the fixed header itself: the first byte and the remaining length's bytes.
    var length: Int
    /// Whether the remaining length used the fewest bytes, which MQTT 5 requires [MQTT-1.5.5-1].
    var isMinimal: Bool
}

extension MQTTFixedHeader {
    /// Reads the fixed header at the reader index without consuming it, and checks the packet type and flags.
    ///
    /// - Returns: `nil` when the header is not complete yet.
    static func peek(
        in buffer: ByteBuffer,
        version: MQTTProtocolVersion?
    ) throws(MQTTProtocolError) -> MQTTFixedHeader? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        guard let type = MQTTPacketType(rawValue: first >> 4) else {
            throw .malformed("packet type 0 is reserved")
        }
        if type == .auth, version == .v311 {
            throw .malformed("packet type 15 is reserved in MQTT 3.1.1; AUTH exists only in MQTT 5")
        }
        if version == nil, type != .connect {
            throw .protocolError("the first packet on a connection must be CONNECT, not \(type.name) [MQTT-3.1.0-1]")
        }
        if version != nil, type == .connect {
            throw .protocolError("a second CONNECT on the same connection is a protocol violation [MQTT-3.1.0-2]")
        }
        let flags = first & 0x0F
        if type == .publish {
            let qos = (flags >> 1) & 0b11
            if qos == 3 {
                throw .malformed("PUBLISH has both QoS bits set; QoS 3 does not exist [MQTT-3.3.1-4]")
            }
            if qos == 0, flags & 0b1000 != 0 {
                throw .malformed("PUBLISH at QoS 0 has the DUP flag set [MQTT-3.3.1-2]")
            }
        } else if flags != type.requiredFlags {
            throw .malformed(
                "\(type.name) fixed header flags are \(flags) but must be \(type.requiredFlags) [MQTT-2.1.3-1]"
            )
        }
        var value = 0
        var multiplier = 1
        for index in 0..<4 {
            guard let byte = buffer.getInteger(at: start + 1 + index, as: UInt8.self) else { return nil }
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 {
                return MQTTFixedHeader(
                    type: type,
                    flags: flags,
                    remainingLength: value,
                    length: 2 + index,
                    isMinimal: index == 0 || byte != 0
                )
            }
            multiplier *= 128
        }
        throw .malformed("\(type.name) remaining length is a variable byte integer longer than 4 bytes")
    }

    /// The error for a remaining length that MQTT 5 rejects because it is not minimally encoded.
    var nonMinimalError: MQTTProtocolError {
        .malformed("\(type.name) remaining length is not encoded in the minimum number of bytes [MQTT-1.5.5-1]")
    }
}
