import NIOCore

extension MQTTProperties {
    /// Reads a property length and the properties it covers, then checks them for `context`.
    ///
    /// - Throws: ``MQTTReasonCode/malformedPacket`` for a property length past the end, an unknown identifier, an
    ///   identifier not allowed in `context` (MQTT 5 §2.2.2.2) or a truncated value; ``MQTTReasonCode/protocolError``
    ///   for a property given twice when it may appear once, and the value errors of ``validate(in:)``.
    static func decode(from body: inout ByteBuffer, in context: MQTTPropertyContext) throws(MQTTProtocolError) -> Self {
        let length = try body.readMQTTVariableByteInteger("\(context.name) property length")
        guard var slice = body.readSlice(length: length) else {
            throw .malformed(
                "\(context.name) property length is \(length) but only \(body.readableBytes) bytes remain"
            )
        }
        var properties = MQTTProperties()
        var seen: UInt64 = 0
        while slice.readableBytes > 0 {
            let rawIdentifier = try slice.readMQTTVariableByteInteger("\(context.name) property identifier")
            guard rawIdentifier <= Int(UInt8.max),
                let identifier = MQTTPropertyIdentifier(rawValue: UInt8(rawIdentifier))
            else {
                throw .malformed("\(context.name) carries unknown property identifier \(rawIdentifier)")
            }
            guard context.allowed & identifier.bit != 0 else {
                throw .malformed(
                    "\(context.name) may not carry the \(identifier.name) property (\(rawIdentifier)) "
                        + "[MQTT 5 §2.2.2.2]"
                )
            }
            let repeatable =
                identifier == .userProperty || (identifier == .subscriptionIdentifier && context == .publish)
            guard repeatable || seen & identifier.bit == 0 else {
                throw .protocolError("\(context.name) carries the \(identifier.name) property more than once")
            }
            seen |= identifier.bit
            try properties.readValue(of: identifier, from: &slice)
        }
        try properties.validate(in: context)
        return properties
    }

    private mutating func readValue(
        of identifier: MQTTPropertyIdentifier,
        from slice: inout ByteBuffer
    ) throws(MQTTProtocolError) {
        let field = "\(identifier.name) property"
        switch identifier {
        case .payloadFormatIndicator: payloadFormatIndicator = try slice.readMQTTByte(field)
        case .messageExpiryInterval: messageExpiryInterval = try slice.readMQTTUInt32(field)
        case .contentType: contentType = try slice.readMQTTString(field)
        case .responseTopic: responseTopic = try slice.readMQTTString(field)
        case .correlationData: correlationData = try slice.readMQTTBinary(field)
        case .subscriptionIdentifier:
            subscriptionIdentifiers.append(UInt32(try slice.readMQTTVariableByteInteger(field)))
        case .sessionExpiryInterval: sessionExpiryInterval = try slice.readMQTTUInt32(field)
        case .assignedClientIdentifier: assignedClientIdentifier = try slice.readMQTTString(field)
        case .serverKeepAlive: serverKeepAlive = try slice.readMQTTUInt16(field)
        case .authenticationMethod: authenticationMethod = try slice.readMQTTString(field)
        case .authenticationData: authenticationData = try slice.readMQTTBinary(field)
        case .requestProblemInformation: requestProblemInformation = try slice.readMQTTByte(field)
        case .willDelayInterval: willDelayInterval = try slice.readMQTTUInt32(field)
        case .requestResponseInformation: requestResponseInformation = try slice.readMQTTByte(field)
        case .responseInformation: responseInformation = try slice.readMQTTString(field)
        case .serverReference: serverReference = try slice.readMQTTString(field)
        case .reasonString: reasonString = try slice.readMQTTString(field)
        case .receiveMaximum: receiveMaximum = try slice.readMQTTUInt16(field)
        case .topicAliasMaximum: topicAliasMaximum = try slice.readMQTTUInt16(field)
        case .topicAlias: topicAlias = try slice.readMQTTUInt16(field)
        case .maximumQoS: maximumQoS = try slice.readMQTTByte(field)
        case .retainAvailable: retainAvailable = try slice.readMQTTByte(field)
        case .userProperty:
            let name = try slice.readMQTTString("\(field) name")
            let value = try slice.readMQTTString("\(field) value")
            userProperties.append(MQTTUserProperty(name: name, value: value))
        case .maximumPacketSize: maximumPacketSize = try slice.readMQTTUInt32(field)
        case .wildcardSubscriptionAvailable: wildcardSubscriptionAvailable = try slice.readMQTTByte(field)
        case .subscriptionIdentifierAvailable: subscriptionIdentifierAvailable = try slice.readMQTTByte(field)
        case .sharedSubscriptionAvailable: sharedSubscriptionAvailable = try slice.readMQTTByte(field)
        }
    }

    /// Checks the properties for `context`, then writes the property length and the properties.
    ///
    /// Order: ascending identifier, subscription identifiers in their order at 0x0B, user properties last.
    func encode(into buffer: inout ByteBuffer, in context: MQTTPropertyContext) throws(MQTTProtocolError) {
        try validate(in: context)
        if isEmpty {
            buffer.writeInteger(UInt8(0))
            return
        }
        var out = ByteBuffer()
        func put<Value: FixedWidthInteger>(_ identifier: MQTTPropertyIdentifier, _ value: Value?) {
            guard let value else { return }
            out.writeInteger(identifier.rawValue)
            out.writeInteger(value)
        }
        func put(_ identifier: MQTTPropertyIdentifier, _ value: String?) throws(MQTTProtocolError) {
            guard let value else { return }
            out.writeInteger(identifier.rawValue)
            try out.writeMQTTString(value, "\(identifier.name) property")
        }
        func put(_ identifier: MQTTPropertyIdentifier, _ value: [UInt8]?) throws(MQTTProtocolError) {
            guard let value else { return }
            out.writeInteger(identifier.rawValue)
            try out.writeMQTTBinary(value, "\(identifier.name) property")
        }
        put(.payloadFormatIndicator, payloadFormatIndicator)
        put(.messageExpiryInterval, messageExpiryInterval)
        try put(.contentType, contentType)
        try put(.responseTopic, responseTopic)
        try put(.correlationData, correlationData)
        for value in subscriptionIdentifiers {
            out.writeInteger(MQTTPropertyIdentifier.subscriptionIdentifier.rawValue)
            out.writeMQTTVariableByteInteger(Int(value))
        }
        put(.sessionExpiryInterval, sessionExpiryInterval)
        try put(.assignedClientIdentifier, assignedClientIdentifier)
        put(.serverKeepAlive, serverKeepAlive)
        try put(.authenticationMethod, authenticationMethod)
        try put(.authenticationData, authenticationData)
        put(.requestProblemInformation, requestProblemInformation)
        put(.willDelayInterval, willDelayInterval)
        put(.requestResponseInformation, requestResponseInformation)
        try put(.responseInformation, responseInformation)
        try put(.serverReference, serverReference)
        try put(.reasonString, reasonString)
        put(.receiveMaximum, receiveMaximum)
        put(.topicAliasMaximum, topicAliasMaximum)
        put(.topicAlias, topicAlias)
        put(.maximumQoS, maximumQoS)
        put(.retainAvailable, retainAvailable)
        put(.maximumPacketSize, maximumPacketSize)
        put(.wildcardSubscriptionAvailable, wildcardSubscriptionAvailable)
        put(.subscriptionIdentifierAvailable, subscriptionIdentifierAvailable)
        put(.sharedSubscriptionAvailable, sharedSubscriptionAvailable)
        for property in userProperties {
            out.writeInteger(MQTTPropertyIdentifier.userProperty.rawValue)
            try out.writeMQTTString(property.name, "User Property name")
            try out.writeMQTTString(property.value, "User Property value")
        }
        guard out.readableBytes <= ByteBuffer.mqttMaximumVariableByteInteger else {
            throw MQTTProtocolError(.packetTooLarge, "\(context.name) properties take \(out.readableBytes) bytes")
        }
        buffer.writeMQTTVariableByteInteger(out.readableBytes)
        buffer.writeBuffer(&out)
    }
}
