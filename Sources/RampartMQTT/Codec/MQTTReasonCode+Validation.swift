extension MQTTReasonCode {
    /// Whether an MQTT 5 packet of `type` may carry this reason code (MQTT 5 §2.4 and each packet's table).
    func isAllowed(in type: MQTTPacketType) -> Bool {
        switch type {
        case .connack:
            switch rawValue {
            case 0x00, 0x80...0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99...0x9D, 0x9F: return true
            default: return false
            }
        case .puback, .pubrec:
            switch rawValue {
            case 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99: return true
            default: return false
            }
        case .pubrel, .pubcomp:
            return rawValue == 0x00 || rawValue == 0x92
        case .suback:
            switch rawValue {
            case 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2: return true
            default: return false
            }
        case .unsuback:
            switch rawValue {
            case 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91: return true
            default: return false
            }
        case .disconnect:
            switch rawValue {
            case 0x00, 0x04, 0x80...0x83, 0x87, 0x89, 0x8B, 0x8D...0x90, 0x93...0xA2: return true
            default: return false
            }
        case .auth:
            return rawValue == 0x00 || rawValue == 0x18 || rawValue == 0x19
        case .connect, .publish, .subscribe, .unsubscribe, .pingreq, .pingresp:
            return false
        }
    }
}
