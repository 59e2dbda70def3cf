import NIOCore

extension MQTTCodec {
    /// Writes the variable header (and, except for PUBLISH, the payload) into `body`.
    ///
    /// - Returns: The fixed header's first byte. A PUBLISH hands its payload back in `payload` so that it is
    ///   written once, straight into the output.
    static func encodeBody(
        of packet: MQTTPacket,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer,
        payload: inout ByteBuffer?
    ) throws(MQTTProtocolError) -> UInt8 {
        switch packet {
        case .connect(let connect):
            try encodeConnect(connect, version: version, into: &body)
            return MQTTPacketType.connect.rawValue << 4
        case .connack(let connAck):
            try encodeConnAck(connAck, version: version, into: &body)
            return MQTTPacketType.connack.rawValue << 4
        case .publish(let publish):
            payload = publish.payload
            return try encodePublish(publish, version: version, into: &body)
        case .puback(let ack):
            return try encodeAck(ack, type: .puback, context: .puback, version: version, into: &body)
        case .pubrec(let ack):
            return try encodeAck(ack, type: .pubrec, context: .pubrec, version: version, into: &body)
        case .pubrel(let ack):
            return try encodeAck(ack, type: .pubrel, context: .pubrel, version: version, into: &body)
        case .pubcomp(let ack):
            return try encodeAck(ack, type: .pubcomp, context: .pubcomp, version: version, into: &body)
        case .subscribe(let subscribe):
            try encodeSubscribe(subscribe, version: version, into: &body)
            return MQTTPacketType.subscribe.rawValue << 4 | MQTTPacketType.subscribe.requiredFlags
        case .suback(let subAck):
            try encodeSubAck(subAck, version: version, into: &body)
            return MQTTPacketType.suback.rawValue << 4
        case .unsubscribe(let unsubscribe):
            try encodeUnsubscribe(unsubscribe, version: version, into: &body)
            return MQTTPacketType.unsubscribe.rawValue << 4 | MQTTPacketType.unsubscribe.requiredFlags
        case .unsuback(let unsubAck):
            try encodeUnsubAck(unsubAck, version: version, into: &body)
            return MQTTPacketType.unsuback.rawValue << 4
        case .pingreq:
            return MQTTPacketType.pingreq.rawValue << 4
        case .pingresp:
            return MQTTPacketType.pingresp.rawValue << 4
        case .disconnect(let disconnect):
            if version == .v5 {
                try encodeReasonAndProperties(
                    disconnect.reasonCode,
                    disconnect.properties,
                    type: .disconnect,
                    context: .disconnect,
                    into: &body
                )
            }
            return MQTTPacketType.disconnect.rawValue << 4
        case .auth(let auth):
            guard version == .v5 else {
                throw .protocolError("AUTH exists only in MQTT 5 and cannot be sent on an MQTT 3.1.1 connection")
            }
            try encodeReasonAndProperties(auth.reasonCode, auth.properties, type: .auth, context: .auth, into: &body)
            return MQTTPacketType.auth.rawValue << 4
        }
    }

    private static func encodeConnect(
        _ connect: MQTTConnect,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        guard connect.protocolVersion == version else {
            throw .protocolError(
                "CONNECT asks for protocol level \(connect.protocolVersion.rawValue) but the connection encodes "
                    + "level \(version.rawValue); create the encoder with the CONNECT's version"
            )
        }
        if version == .v311, connect.password != nil, connect.username == nil {
            throw .protocolError("MQTT 3.1.1 CONNECT cannot carry a password without a user name [MQTT-3.1.2-22]")
        }
        var flags: UInt8 = 0
        if connect.cleanStart { flags |= 0b0000_0010 }
        if let will = connect.will {
            flags |= 0b0000_0100 | will.qos.rawValue << 3
            if will.retain { flags |= 0b0010_0000 }
        }
        if connect.password != nil { flags |= 0b0100_0000 }
        if connect.username != nil { flags |= 0b1000_0000 }
        try body.writeMQTTString("MQTT", "CONNECT protocol name")
        body.writeInteger(version.rawValue)
        body.writeInteger(flags)
        body.writeInteger(connect.keepAliveSeconds)
        if version == .v5 { try connect.properties.encode(into: &body, in: .connect) }
        try body.writeMQTTString(connect.clientID, "CONNECT client identifier")
        if let will = connect.will {
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateName(will.topic)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "CONNECT Will Topic: \(error.message)").downgraded(
                    for: version)
            }
            if version == .v5 { try will.properties.encode(into: &body, in: .will) }
            try body.writeMQTTString(will.topic, "CONNECT Will Topic")
            try body.writeMQTTBinary(will.payload, "CONNECT Will Payload")
        }
        if let username = connect.username { try body.writeMQTTString(username, "CONNECT User Name") }
        if let password = connect.password { try body.writeMQTTBinary(password, "CONNECT Password") }
    }

    private static func encodeConnAck(
        _ connAck: MQTTConnAck,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        if connAck.sessionPresent, connAck.reasonCode != .success {
            throw .protocolError("CONNACK cannot set Session Present with a failure reason code [MQTT-3.2.2-6]")
        }
        let code: UInt8
        switch version {
        case .v311:
            guard let mapped = connAck.reasonCode.v311ConnectReturnCode else {
                throw .protocolError(
                    "MQTT 3.1.1 has no CONNACK return code for \(connAck.reasonCode); close the connection instead"
                )
            }
            code = mapped
        case .v5:
            guard connAck.reasonCode.isAllowed(in: .connack) else {
                throw .protocolError("CONNACK may not carry reason code \(connAck.reasonCode) [MQTT-3.2.2-8]")
            }
            code = connAck.reasonCode.rawValue
        }
        body.writeInteger(UInt8(connAck.sessionPresent ? 1 : 0))
        body.writeInteger(code)
        if version == .v5 { try connAck.properties.encode(into: &body, in: .connack) }
    }

    private static func encodePublish(
        _ publish: MQTTPublish,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) -> UInt8 {
        if publish.qos == .atMostOnce, publish.dup {
            throw .malformed("PUBLISH at QoS 0 cannot set the DUP flag [MQTT-3.3.1-2]")
        }
        if !(version == .v5 && publish.topic.isEmpty && publish.properties.topicAlias != nil) {
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateName(publish.topic)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "PUBLISH \(error.message)").downgraded(for: version)
            }
        }
        try body.writeMQTTString(publish.topic, "PUBLISH topic name")
        if publish.qos != .atMostOnce {
            guard let packetID = publish.packetID, packetID != 0 else {
                throw .protocolError("PUBLISH at QoS \(publish.qos.rawValue) needs a non-zero packet identifier")
            }
            body.writeInteger(packetID)
        }
        if version == .v5 { try publish.properties.encode(into: &body, in: .publish) }
        var firstByte = MQTTPacketType.publish.rawValue << 4 | publish.qos.rawValue << 1
        if publish.dup { firstByte |= 0b1000 }
        if publish.retain { firstByte |= 0b0001 }
        return firstByte
    }

    private static func encodeAck(
        _ ack: MQTTAck,
        type: MQTTPacketType,
        context: MQTTPropertyContext,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) -> UInt8 {
        try writePacketID(ack.packetID, type: type, into: &body)
        if version == .v5 {
            try encodeReasonAndProperties(ack.reasonCode, ack.properties, type: type, context: context, into: &body)
        }
        return type.rawValue << 4 | type.requiredFlags
    }

    private static func encodeSubscribe(
        _ subscribe: MQTTSubscribe,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        try writePacketID(subscribe.packetID, type: .subscribe, into: &body)
        guard !subscribe.subscriptions.isEmpty else {
            throw .protocolError("SUBSCRIBE needs at least one topic filter")
        }
        if version == .v5 { try subscribe.properties.encode(into: &body, in: .subscribe) }
        for subscription in subscribe.subscriptions {
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateFilter(subscription.topicFilter)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "SUBSCRIBE \(error.message)").downgraded(for: version)
            }
            try body.writeMQTTString(subscription.topicFilter, "SUBSCRIBE topic filter")
            var options = subscription.qos.rawValue
            if version == .v5 {
                guard subscription.retainHandling <= 2 else {
                    throw .protocolError("Retain Handling must be 0, 1 or 2, not \(subscription.retainHandling)")
                }
                if subscription.noLocal, subscription.topicFilter.utf8.starts(with: "$share/".utf8) {
                    throw .protocolError("No Local cannot be set on shared subscription '\(subscription.topicFilter)'")
                }
                if subscription.noLocal { options |= 0b0100 }
                if subscription.retainAsPublished { options |= 0b1000 }
                options |= subscription.retainHandling << 4
            }
            body.writeInteger(options)
        }
    }

    private static func encodeSubAck(
        _ subAck: MQTTSubAck,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        try writePacketID(subAck.packetID, type: .suback, into: &body)
        if version == .v5 { try subAck.properties.encode(into: &body, in: .suback) }
        for code in subAck.reasonCodes {
            switch version {
            case .v311:
                if code.isFailure {
                    body.writeInteger(UInt8(0x80))
                } else if code == .grantedQoS0 || code == .grantedQoS1 || code == .grantedQoS2 {
                    body.writeInteger(code.rawValue)
                } else {
                    throw .protocolError("MQTT 3.1.1 SUBACK has no return code for \(code)")
                }
            case .v5:
                guard code.isAllowed(in: .suback) else {
                    throw .protocolError("SUBACK may not carry reason code \(code)")
                }
                body.writeInteger(code.rawValue)
            }
        }
    }

    private static func encodeUnsubscribe(
        _ unsubscribe: MQTTUnsubscribe,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        try writePacketID(unsubscribe.packetID, type: .unsubscribe, into: &body)
        guard !unsubscribe.topicFilters.isEmpty else {
            throw .protocolError("UNSUBSCRIBE needs at least one topic filter")
        }
        if version == .v5 { try unsubscribe.properties.encode(into: &body, in: .unsubscribe) }
        for filter in unsubscribe.topicFilters {
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateFilter(filter)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "UNSUBSCRIBE \(error.message)").downgraded(for: version)
            }
            try body.writeMQTTString(filter, "UNSUBSCRIBE topic filter")
        }
    }

    private static func encodeUnsubAck(
        _ unsubAck: MQTTUnsubAck,
        version: MQTTProtocolVersion,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        try writePacketID(unsubAck.packetID, type: .unsuback, into: &body)
        guard version == .v5 else { return }
        try unsubAck.properties.encode(into: &body, in: .unsuback)
        for code in unsubAck.reasonCodes {
            guard code.isAllowed(in: .unsuback) else {
                throw .protocolError("UNSUBACK may not carry reason code \(code)")
            }
            body.writeInteger(code.rawValue)
        }
    }

    /// Writes an MQTT 5 reason code and properties in the shortest form the packet type allows.
    ///
    /// Success without properties is left out entirely; a reason code without properties needs no property
    /// length, except in AUTH, where the two can only be left out together.
    private static func encodeReasonAndProperties(
        _ reasonCode: MQTTReasonCode,
        _ properties: MQTTProperties,
        type: MQTTPacketType,
        context: MQTTPropertyContext,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        guard reasonCode.isAllowed(in: type) else {
            throw .protocolError("\(type.name) may not carry reason code \(reasonCode)")
        }
        try properties.validate(in: context)
        if reasonCode == .success, properties.isEmpty { return }
        body.writeInteger(reasonCode.rawValue)
        if properties.isEmpty, type != .auth { return }
        try properties.encode(into: &body, in: context)
    }

    private static func writePacketID(
        _ packetID: UInt16,
        type: MQTTPacketType,
        into body: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        guard packetID != 0 else {
            throw .protocolError("\(type.name) packet identifier must be non-zero")
        }
        body.writeInteger(packetID)
    }
}
