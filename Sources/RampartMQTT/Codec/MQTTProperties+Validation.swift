extension MQTTProperties {
    /// The identifiers of the properties present, one bit each.
    var presentIdentifiers: UInt64 {
        typealias P = MQTTPropertyIdentifier
        var bits: UInt64 = 0
        func mark(_ present: Bool, _ identifier: P) { if present { bits |= identifier.bit } }
        mark(payloadFormatIndicator != nil, .payloadFormatIndicator)
        mark(messageExpiryInterval != nil, .messageExpiryInterval)
        mark(contentType != nil, .contentType)
        mark(responseTopic != nil, .responseTopic)
        mark(correlationData != nil, .correlationData)
        mark(!subscriptionIdentifiers.isEmpty, .subscriptionIdentifier)
        mark(sessionExpiryInterval != nil, .sessionExpiryInterval)
        mark(assignedClientIdentifier != nil, .assignedClientIdentifier)
        mark(serverKeepAlive != nil, .serverKeepAlive)
        mark(authenticationMethod != nil, .authenticationMethod)
        mark(authenticationData != nil, .authenticationData)
        mark(requestProblemInformation != nil, .requestProblemInformation)
        mark(willDelayInterval != nil, .willDelayInterval)
        mark(requestResponseInformation != nil, .requestResponseInformation)
        mark(responseInformation != nil, .responseInformation)
        mark(serverReference != nil, .serverReference)
        mark(reasonString != nil, .reasonString)
        mark(receiveMaximum != nil, .receiveMaximum)
        mark(topicAliasMaximum != nil, .topicAliasMaximum)
        mark(topicAlias != nil, .topicAlias)
        mark(maximumQoS != nil, .maximumQoS)
        mark(retainAvailable != nil, .retainAvailable)
        mark(!userProperties.isEmpty, .userProperty)
        mark(maximumPacketSize != nil, .maximumPacketSize)
        mark(wildcardSubscriptionAvailable != nil, .wildcardSubscriptionAvailable)
        mark(subscriptionIdentifierAvailable != nil, .subscriptionIdentifierAvailable)
        mark(sharedSubscriptionAvailable != nil, .sharedSubscriptionAvailable)
        return bits
    }

    /// Checks that every property is allowed in `context` and has a value the specification allows.
    ///
    /// Used both on decoded properties and before encoding, so that the codec never sends what it would reject.
    ///
    /// - Throws: ``MQTTReasonCode/malformedPacket`` for a property not allowed in `context` or a subscription
    ///   identifier too large to encode; ``MQTTReasonCode/topicAliasInvalid`` for topic alias 0;
    ///   ``MQTTReasonCode/protocolError`` for the other values the specification calls a Protocol Error.
    func validate(in context: MQTTPropertyContext) throws(MQTTProtocolError) {
        let disallowed = presentIdentifiers & ~context.allowed
        if disallowed != 0,
            let identifier = MQTTPropertyIdentifier.allCases.first(where: { disallowed & $0.bit != 0 })
        {
            throw .malformed("\(context.name) may not carry the \(identifier.name) property [MQTT 5 §2.2.2.2]")
        }
        func requireBoolean(_ value: UInt8?, _ identifier: MQTTPropertyIdentifier) throws(MQTTProtocolError) {
            if let value, value > 1 {
                throw .protocolError("\(identifier.name) property must be 0 or 1, not \(value)")
            }
        }
        try requireBoolean(payloadFormatIndicator, .payloadFormatIndicator)
        try requireBoolean(requestProblemInformation, .requestProblemInformation)
        try requireBoolean(requestResponseInformation, .requestResponseInformation)
        try requireBoolean(maximumQoS, .maximumQoS)
        try requireBoolean(retainAvailable, .retainAvailable)
        try requireBoolean(wildcardSubscriptionAvailable, .wildcardSubscriptionAvailable)
        try requireBoolean(subscriptionIdentifierAvailable, .subscriptionIdentifierAvailable)
        try requireBoolean(sharedSubscriptionAvailable, .sharedSubscriptionAvailable)
        if receiveMaximum == 0 {
            throw .protocolError("Receive Maximum property is 0; it must be at least 1 [MQTT 5 §3.1.2.11.3]")
        }
        if maximumPacketSize == 0 {
            throw .protocolError("Maximum Packet Size property is 0; it must be at least 1 [MQTT 5 §3.1.2.11.4]")
        }
        if topicAlias == 0 {
            throw MQTTProtocolError(
                .topicAliasInvalid, "Topic Alias property is 0, which is not permitted [MQTT-3.3.2-8]")
        }
        if context == .subscribe, subscriptionIdentifiers.count > 1 {
            throw .protocolError("SUBSCRIBE carries the Subscription Identifier property more than once")
        }
        for identifier in subscriptionIdentifiers {
            if identifier == 0 {
                throw .protocolError("Subscription Identifier property is 0; it must be 1 to 268435455")
            }
            if identifier > UInt32(MQTTCodec.maximumRemainingLength) {
                throw .malformed("Subscription Identifier property \(identifier) is above 268435455")
            }
        }
        if let responseTopic {
            do throws(MQTTProtocolError) {
                try MQTTTopic.validateName(responseTopic)
            } catch {
                throw .protocolError("Response Topic property is not a valid topic name: \(error.message)")
            }
        }
        if context == .connect, authenticationData != nil, authenticationMethod == nil {
            throw .protocolError("CONNECT carries Authentication Data without an Authentication Method")
        }
    }
}
