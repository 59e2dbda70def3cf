import NIOCore

extension MQTTCodec {
    /// Decodes the body of one packet; `body` holds exactly the remaining length's bytes.
    static func decodeBody(
        of header: MQTTFixedHeader,
        from body: inout ByteBuffer,
        version: MQTTProtocolVersion?
    ) throws(MQTTProtocolError) -> MQTTPacket {
        // Only CONNECT may arrive without a version, and MQTTFixedHeader.peek has already checked that.
        guard let version else { return .connect(try decodeConnect(from: &body, header: header)) }
        switch header.type {
        case .connect:
            return .connect(try decodeConnect(from: &body, header: header))
        case .connack:
            return .connack(try decodeConnAck(from: &body, version: version))
        case .publish:
            return .publish(try decodePublish(from: &body, flags: header.flags, version: version))
        case .puback:
            return .puback(try decodeAck(from: &body, type: .puback, context: .puback, version: version))
        case .pubrec:
            return .pubrec(try decodeAck(from: &body, type: .pubrec, context: .pubrec, version: version))
        case .pubrel:
            return .pubrel(try decodeAck(from: &body, type: .pubrel, context: .pubrel, version: version))
        case .pubcomp:
            return .pubcomp(try decodeAck(from: &body, type: .pubcomp, context: .pubcomp, version: version))
        case .subscribe:
            return .subscribe(try decodeSubscribe(from: &body, version: version))
        case .suback:
            return .suback(try decodeSubAck(from: &body, version: version))
        case .unsubscribe:
            return .unsubscribe(try decodeUnsubscribe(from: &body, version: version))
        case .unsuback:
            return .unsuback(try decodeUnsubAck(from: &body, version: version))
        case .pingreq:
            return .pingreq
        case .pingresp:
            return .pingresp
        case .disconnect:
            return .disconnect(try decodeDisconnect(from: &body, version: version))
        case .auth:
            return .auth(try decodeAuth(from: &body))
        }
    }

    private static func decodeConnect(
        from body: inout ByteBuffer,
        header: MQTTFixedHeader
    ) throws(MQTTProtocolError) -> MQTTConnect {
        let protocolName = try body.readMQTTString("CONNECT protocol name")
        let level = try body.readMQTTByte("CONNECT protocol level")
        guard protocolName == "MQTT", let version = MQTTProtocolVersion(rawValue: level) else {
            throw MQTTProtocolError(
                .unsupportedProtocolVersion,
                "CONNECT asks for protocol '\(protocolName)' level \(level); this server speaks MQTT 3.1.1 "
                    + "(level 4) and MQTT 5 (level 5) [MQTT-3.1.2-2]"
            )
        }
        do throws(MQTTProtocolError) {
            return try decodeConnect(from: &body, header: header, version: version)
        } catch {
            var error = error
            error.connectProtocolVersion = version
            throw error
        }
    }

    /// Decodes the rest of a CONNECT once its protocol level is known.
    private static func decodeConnect(
        from body: inout ByteBuffer,
        header: MQTTFixedHeader,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTConnect {
        if version == .v5, !header.isMinimal { throw header.nonMinimalError }
        let flags = try body.readMQTTByte("CONNECT flags")
        guard flags & 0b0000_0001 == 0 else {
            throw .malformed("CONNECT reserved flag (bit 0) is set [MQTT-3.1.2-3]")
        }
        let hasWill = flags & 0b0000_0100 != 0
        let willQoSBits = (flags >> 3) & 0b11
        let willRetain = flags & 0b0010_0000 != 0
        let hasPassword = flags & 0b0100_0000 != 0
        let hasUsername = flags & 0b1000_0000 != 0
        guard let willQoS = MQTTQoS(rawValue: willQoSBits) else {
            throw .malformed("CONNECT Will QoS is 3")
        }
        if !hasWill, willQoS != .atMostOnce || willRetain {
            throw .malformed("CONNECT sets Will QoS or Will Retain without the Will Flag")
        }
        if version == .v311, hasPassword, !hasUsername {
            throw .protocolError("MQTT 3.1.1 CONNECT sets the Password Flag without the User Name Flag [MQTT-3.1.2-22]")
        }
        let keepAlive = try body.readMQTTUInt16("CONNECT keep alive")
        let properties = version == .v5 ? try MQTTProperties.decode(from: &body, in: .connect) : MQTTProperties()
        let clientID = try body.readMQTTString("CONNECT client identifier")
        var will: MQTTWill?
        if hasWill {
            let willProperties = version == .v5 ? try MQTTProperties.decode(from: &body, in: .will) : MQTTProperties()
            let topic = try body.readMQTTString("CONNECT Will Topic")
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateName(topic)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "CONNECT Will Topic: \(error.message)").downgraded(
                    for: version)
            }
            let payload = try body.readMQTTBinary("CONNECT Will Payload")
            if willProperties.payloadFormatIndicator == 1, !ByteBuffer.isValidUTF8(payload) {
                throw MQTTProtocolError(
                    .payloadFormatInvalid,
                    "CONNECT Will Payload is marked as UTF-8 by its Payload Format Indicator "
                        + "but is not well-formed UTF-8"
                )
            }
            will = MQTTWill(
                topic: topic, payload: payload, qos: willQoS, retain: willRetain, properties: willProperties)
        }
        let username = hasUsername ? try body.readMQTTString("CONNECT User Name") : nil
        let password = hasPassword ? try body.readMQTTBinary("CONNECT Password") : nil
        return MQTTConnect(
            protocolVersion: version,
            clientID: clientID,
            cleanStart: flags & 0b0000_0010 != 0,
            keepAliveSeconds: keepAlive,
            username: username,
            password: password,
            will: will,
            properties: properties
        )
    }

    private static func decodeConnAck(
        from body: inout ByteBuffer,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTConnAck {
        let flags = try body.readMQTTByte("CONNACK acknowledge flags")
        guard flags & 0b1111_1110 == 0 else {
            throw .malformed("CONNACK reserved acknowledge flags (bits 7 to 1) are set")
        }
        let code = try body.readMQTTByte("CONNACK reason code")
        let reasonCode: MQTTReasonCode
        switch version {
        case .v311:
            guard let mapped = MQTTReasonCode(v311ConnectReturnCode: code) else {
                throw .protocolError("CONNACK return code \(code) is reserved in MQTT 3.1.1")
            }
            reasonCode = mapped
        case .v5:
            reasonCode = MQTTReasonCode(rawValue: code)
            guard reasonCode.isAllowed(in: .connack) else {
                throw .protocolError("CONNACK may not carry reason code \(reasonCode) [MQTT-3.2.2-8]")
            }
        }
        let sessionPresent = flags & 1 != 0
        if sessionPresent, reasonCode != .success {
            throw .protocolError("CONNACK sets Session Present with a failure reason code [MQTT-3.2.2-6]")
        }
        let properties = version == .v5 ? try MQTTProperties.decode(from: &body, in: .connack) : MQTTProperties()
        return MQTTConnAck(sessionPresent: sessionPresent, reasonCode: reasonCode, properties: properties)
    }

    private static func decodePublish(
        from body: inout ByteBuffer,
        flags: UInt8,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTPublish {
        // MQTTFixedHeader.peek has rejected QoS 3 already.
        let qos = MQTTQoS(rawValue: (flags >> 1) & 0b11) ?? .atMostOnce
        let topic = try body.readMQTTString("PUBLISH topic name")
        var packetID: UInt16?
        if qos != .atMostOnce {
            packetID = try readPacketID(from: &body, type: .publish)
        }
        let properties = version == .v5 ? try MQTTProperties.decode(from: &body, in: .publish) : MQTTProperties()
        if topic.isEmpty, version == .v5 {
            guard properties.topicAlias != nil else {
                throw .protocolError("PUBLISH has an empty topic name and no Topic Alias [MQTT 5 §3.3.2.1]")
            }
        } else {
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateName(topic)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "PUBLISH \(error.message)").downgraded(for: version)
            }
        }
        let payload = body.readSlice(length: body.readableBytes) ?? ByteBuffer()
        if properties.payloadFormatIndicator == 1, !ByteBuffer.isValidUTF8(payload.readableBytesView) {
            throw MQTTProtocolError(
                .payloadFormatInvalid,
                "PUBLISH payload is marked as UTF-8 by its Payload Format Indicator but is not well-formed UTF-8"
            )
        }
        return MQTTPublish(
            topic: topic,
            payload: payload,
            qos: qos,
            retain: flags & 0b0001 != 0,
            dup: flags & 0b1000 != 0,
            packetID: packetID,
            properties: properties
        )
    }

    private static func decodeAck(
        from body: inout ByteBuffer,
        type: MQTTPacketType,
        context: MQTTPropertyContext,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTAck {
        let packetID = try readPacketID(from: &body, type: type)
        guard version == .v5, body.readableBytes > 0 else { return MQTTAck(packetID: packetID) }
        let reasonCode = try readReasonCode(from: &body, type: type)
        let properties = body.readableBytes > 0 ? try MQTTProperties.decode(from: &body, in: context) : MQTTProperties()
        return MQTTAck(packetID: packetID, reasonCode: reasonCode, properties: properties)
    }

    private static func decodeSubscribe(
        from body: inout ByteBuffer,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTSubscribe {
        let packetID = try readPacketID(from: &body, type: .subscribe)
        let properties = version == .v5 ? try MQTTProperties.decode(from: &body, in: .subscribe) : MQTTProperties()
        guard body.readableBytes > 0 else {
            throw .protocolError("SUBSCRIBE has no topic filter; it needs at least one [MQTT-3.8.3-3]")
        }
        var subscriptions: [MQTTSubscription] = []
        while body.readableBytes > 0 {
            let filter = try body.readMQTTString("SUBSCRIBE topic filter")
            let options = try body.readMQTTByte("SUBSCRIBE subscription options")
            let reservedMask: UInt8 = version == .v5 ? 0b1100_0000 : 0b1111_1100
            guard options & reservedMask == 0 else {
                throw .malformed("SUBSCRIBE subscription options for '\(filter)' set reserved bits [MQTT-3.8.3-5]")
            }
            guard let qos = MQTTQoS(rawValue: options & 0b11) else {
                // 3.1.1 calls QoS 3 malformed [MQTT-3-8.3-4]; MQTT 5 calls it a Protocol Error (§3.8.3.1).
                throw MQTTProtocolError(
                    version == .v5 ? .protocolError : .malformedPacket,
                    "SUBSCRIBE requests QoS 3 for '\(filter)'"
                )
            }
            let retainHandling = (options >> 4) & 0b11
            if retainHandling == 3 {
                throw .protocolError("SUBSCRIBE requests Retain Handling 3 for '\(filter)' [MQTT 5 §3.8.3.1]")
            }
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateFilter(filter)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "SUBSCRIBE \(error.message)").downgraded(for: version)
            }
            let noLocal = options & 0b0100 != 0
            if noLocal, filter.utf8.starts(with: "$share/".utf8) {
                throw .protocolError("SUBSCRIBE sets No Local on shared subscription '\(filter)' [MQTT-3.8.3-4]")
            }
            subscriptions.append(
                MQTTSubscription(
                    topicFilter: filter,
                    qos: qos,
                    noLocal: noLocal,
                    retainAsPublished: options & 0b1000 != 0,
                    retainHandling: retainHandling
                )
            )
        }
        return MQTTSubscribe(packetID: packetID, subscriptions: subscriptions, properties: properties)
    }

    private static func decodeSubAck(
        from body: inout ByteBuffer,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTSubAck {
        let packetID = try readPacketID(from: &body, type: .suback)
        let properties = version == .v5 ? try MQTTProperties.decode(from: &body, in: .suback) : MQTTProperties()
        var reasonCodes: [MQTTReasonCode] = []
        reasonCodes.reserveCapacity(body.readableBytes)
        while body.readableBytes > 0 {
            let code = MQTTReasonCode(rawValue: try body.readMQTTByte("SUBACK reason code"))
            switch version {
            case .v311:
                guard code == .grantedQoS0 || code == .grantedQoS1 || code == .grantedQoS2 || code == .unspecifiedError
                else { throw .protocolError("SUBACK return code \(code.rawValue) is not allowed in MQTT 3.1.1") }
            case .v5:
                guard code.isAllowed(in: .suback) else {
                    throw .protocolError("SUBACK may not carry reason code \(code)")
                }
            }
            reasonCodes.append(code)
        }
        return MQTTSubAck(packetID: packetID, reasonCodes: reasonCodes, properties: properties)
    }

    private static func decodeUnsubscribe(
        from body: inout ByteBuffer,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTUnsubscribe {
        let packetID = try readPacketID(from: &body, type: .unsubscribe)
        let properties = version == .v5 ? try MQTTProperties.decode(from: &body, in: .unsubscribe) : MQTTProperties()
        guard body.readableBytes > 0 else {
            throw .protocolError("UNSUBSCRIBE has no topic filter; it needs at least one [MQTT-3.10.3-2]")
        }
        var filters: [String] = []
        while body.readableBytes > 0 {
            let filter = try body.readMQTTString("UNSUBSCRIBE topic filter")
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateFilter(filter)
            } catch {
                throw MQTTProtocolError(error.reasonCode, "UNSUBSCRIBE \(error.message)").downgraded(for: version)
            }
            filters.append(filter)
        }
        return MQTTUnsubscribe(packetID: packetID, topicFilters: filters, properties: properties)
    }

    private static func decodeUnsubAck(
        from body: inout ByteBuffer,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTUnsubAck {
        let packetID = try readPacketID(from: &body, type: .unsuback)
        guard version == .v5 else { return MQTTUnsubAck(packetID: packetID) }
        let properties = try MQTTProperties.decode(from: &body, in: .unsuback)
        var reasonCodes: [MQTTReasonCode] = []
        reasonCodes.reserveCapacity(body.readableBytes)
        while body.readableBytes > 0 {
            reasonCodes.append(try readReasonCode(from: &body, type: .unsuback))
        }
        return MQTTUnsubAck(packetID: packetID, reasonCodes: reasonCodes, properties: properties)
    }

    private static func decodeDisconnect(
        from body: inout ByteBuffer,
        version: MQTTProtocolVersion
    ) throws(MQTTProtocolError) -> MQTTDisconnect {
        guard version == .v5, body.readableBytes > 0 else { return MQTTDisconnect() }
        let reasonCode = try readReasonCode(from: &body, type: .disconnect)
        let properties =
            body.readableBytes > 0 ? try MQTTProperties.decode(from: &body, in: .disconnect) : MQTTProperties()
        return MQTTDisconnect(reasonCode: reasonCode, properties: properties)
    }

    private static func decodeAuth(from body: inout ByteBuffer) throws(MQTTProtocolError) -> MQTTAuth {
        guard body.readableBytes > 0 else { return MQTTAuth() }
        let reasonCode = try readReasonCode(from: &body, type: .auth)
        // Only both the reason code and the property length may be left out, never the property length alone.
        guard body.readableBytes > 0 else {
            throw .malformed("AUTH has a reason code but no property length [MQTT 5 §3.15.2]")
        }
        let properties = try MQTTProperties.decode(from: &body, in: .auth)
        return MQTTAuth(reasonCode: reasonCode, properties: properties)
    }

    private static func readPacketID(
        from body: inout ByteBuffer,
        type: MQTTPacketType
    ) throws(MQTTProtocolError) -> UInt16 {
        let packetID = try body.readMQTTUInt16("\(type.name) packet identifier")
        guard packetID != 0 else {
            throw .protocolError("\(type.name) packet identifier is 0; it must be non-zero [MQTT-2.2.1-3]")
        }
        return packetID
    }

    private static func readReasonCode(
        from body: inout ByteBuffer,
        type: MQTTPacketType
    ) throws(MQTTProtocolError) -> MQTTReasonCode {
        let code = MQTTReasonCode(rawValue: try body.readMQTTByte("\(type.name) reason code"))
        guard code.isAllowed(in: type) else {
            throw .protocolError("\(type.name) may not carry reason code \(code)")
        }
        return code
    }
}
