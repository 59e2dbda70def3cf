import NIOCore

/// The MQTT data representations (MQTT 5 §1.5): integers, variable byte integers, strings and binary data.
///
/// Readers throw a malformed-packet error when the field runs past the end of the buffer, which always holds one
/// whole packet body when they run; they never trap.
extension ByteBuffer {
    /// The largest value a variable byte integer can hold.
    static let mqttMaximumVariableByteInteger = 268_435_455

    /// The number of bytes the minimal encoding of `value` takes.
    static func mqttVariableByteIntegerLength(_ value: Int) -> Int {
        switch value {
        case ..<128: 1
        case ..<16_384: 2
        case ..<2_097_152: 3
        default: 4
        }
    }

    /// Writes `value`, which the caller has checked is in `0...mqttMaximumVariableByteInteger`, minimally encoded.
    mutating func writeMQTTVariableByteInteger(_ value: Int) {
        var remaining = value
        repeat {
            var byte = UInt8(truncatingIfNeeded: remaining & 0x7F)
            remaining >>= 7
            if remaining > 0 { byte |= 0x80 }
            self.writeInteger(byte)
        } while remaining > 0
    }

    /// Writes a UTF-8 Encoded String: a two-byte length, then the bytes.
    mutating func writeMQTTString(_ string: String, _ field: String) throws(MQTTProtocolError) {
        let utf8 = string.utf8
        guard utf8.count <= Int(UInt16.max) else {
            throw .malformed("\(field) is \(utf8.count) bytes of UTF-8; an MQTT string holds at most 65535 bytes")
        }
        guard !utf8.contains(0) else {
            throw .malformed("\(field) contains U+0000, which MQTT strings may not contain")
        }
        self.writeInteger(UInt16(utf8.count))
        self.writeString(string)
    }

    /// Writes Binary Data: a two-byte length, then the bytes.
    mutating func writeMQTTBinary(_ bytes: [UInt8], _ field: String) throws(MQTTProtocolError) {
        guard bytes.count <= Int(UInt16.max) else {
            throw .malformed("\(field) is \(bytes.count) bytes; MQTT binary data holds at most 65535 bytes")
        }
        self.writeInteger(UInt16(bytes.count))
        self.writeBytes(bytes)
    }

    mutating func readMQTTByte(_ field: String) throws(MQTTProtocolError) -> UInt8 {
        guard let value = self.readInteger(as: UInt8.self) else { throw Self.truncated(field) }
        return value
    }

    mutating func readMQTTUInt16(_ field: String) throws(MQTTProtocolError) -> UInt16 {
        guard let value = self.readInteger(as: UInt16.self) else { throw Self.truncated(field) }
        return value
    }

    mutating func readMQTTUInt32(_ field: String) throws(MQTTProtocolError) -> UInt32 {
        guard let value = self.readInteger(as: UInt32.self) else { throw Self.truncated(field) }
        return value
    }

    /// Reads a variable byte integer inside a packet body, which MQTT 5 requires to be minimally encoded.
    mutating func readMQTTVariableByteInteger(_ field: String) throws(MQTTProtocolError) -> Int {
        var value = 0
        var multiplier = 1
        for index in 0..<4 {
            guard let byte = self.readInteger(as: UInt8.self) else { throw Self.truncated(field) }
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 {
                guard index == 0 || byte != 0 else {
                    throw .malformed("\(field) is not encoded in the minimum number of bytes [MQTT-1.5.5-1]")
                }
                return value
            }
            multiplier *= 128
        }
        throw .malformed("\(field) is a variable byte integer longer than 4 bytes")
    }

    /// Reads a UTF-8 Encoded String, rejecting ill-formed UTF-8 (overlong forms and surrogates included) and U+0000.
    mutating func readMQTTString(_ field: String) throws(MQTTProtocolError) -> String {
        let length = Int(try self.readMQTTUInt16("\(field) length"))
        guard let bytes = self.readSlice(length: length) else {
            throw .malformed("\(field) says it is \(length) bytes long but only \(self.readableBytes) bytes remain")
        }
        let view = bytes.readableBytesView
        guard Self.isValidUTF8(view) else {
            throw .malformed("\(field) is not well-formed UTF-8 [MQTT-1.5.4-1]")
        }
        guard !view.contains(0) else {
            throw .malformed("\(field) contains U+0000 [MQTT-1.5.4-2]")
        }
        return String(decoding: view, as: UTF8.self)
    }

    /// Reads Binary Data.
    mutating func readMQTTBinary(_ field: String) throws(MQTTProtocolError) -> [UInt8] {
        let length = Int(try self.readMQTTUInt16("\(field) length"))
        guard let bytes = self.readBytes(length: length) else {
            throw .malformed("\(field) says it is \(length) bytes long but only \(self.readableBytes) bytes remain")
        }
        return bytes
    }

    /// Whether `bytes` is well-formed UTF-8 as RFC 3629 defines it.
    static func isValidUTF8(_ bytes: some Sequence<UInt8>) -> Bool {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    private static func truncated(_ field: String) -> MQTTProtocolError {
        .malformed("\(field) is missing: the packet ends before it")
    }
}
