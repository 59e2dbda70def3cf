/// Where a set of MQTT 5 properties appears, which decides the properties allowed (MQTT 5 §2.2.2.2, Table 2-4).
enum MQTTPropertyContext: Sendable {
    case connect, connack, publish, will, puback, pubrec, pubrel, pubcomp
    case subscribe, suback, unsubscribe, unsuback, disconnect, auth

    /// The name used in error messages.
    var name: String {
        switch self {
        case .connect: "CONNECT"
        case .connack: "CONNACK"
        case .publish: "PUBLISH"
        case .will: "CONNECT Will"
        case .puback: "PUBACK"
        case .pubrec: "PUBREC"
        case .pubrel: "PUBREL"
        case .pubcomp: "PUBCOMP"
        case .subscribe: "SUBSCRIBE"
        case .suback: "SUBACK"
        case .unsubscribe: "UNSUBSCRIBE"
        case .unsuback: "UNSUBACK"
        case .disconnect: "DISCONNECT"
        case .auth: "AUTH"
        }
    }

    /// The identifiers allowed here, one bit each.
    var allowed: UInt64 {
        switch self {
        case .connect: Self.connectMask
        case .connack: Self.connAckMask
        case .publish: Self.publishMask
        case .will: Self.willMask
        case .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback: Self.acknowledgementMask
        case .subscribe: Self.subscribeMask
        case .unsubscribe: Self.unsubscribeMask
        case .disconnect: Self.disconnectMask
        case .auth: Self.authMask
        }
    }

    private static let connectMask = connect.computeAllowed()
    private static let connAckMask = connack.computeAllowed()
    private static let publishMask = publish.computeAllowed()
    private static let willMask = will.computeAllowed()
    private static let acknowledgementMask = puback.computeAllowed()
    private static let subscribeMask = subscribe.computeAllowed()
    private static let unsubscribeMask = unsubscribe.computeAllowed()
    private static let disconnectMask = disconnect.computeAllowed()
    private static let authMask = auth.computeAllowed()

    /// Table 2-4 of MQTT 5 §2.2.2.2, read by packet type.
    private func computeAllowed() -> UInt64 {
        typealias P = MQTTPropertyIdentifier
        let ids: [P]
        switch self {
        case .connect:
            ids = [
                .sessionExpiryInterval, .authenticationMethod, .authenticationData, .requestProblemInformation,
                .requestResponseInformation, .receiveMaximum, .topicAliasMaximum, .userProperty, .maximumPacketSize,
            ]
        case .connack:
            ids = [
                .sessionExpiryInterval, .assignedClientIdentifier, .serverKeepAlive, .authenticationMethod,
                .authenticationData, .responseInformation, .serverReference, .reasonString, .receiveMaximum,
                .topicAliasMaximum, .maximumQoS, .retainAvailable, .userProperty, .maximumPacketSize,
                .wildcardSubscriptionAvailable, .subscriptionIdentifierAvailable, .sharedSubscriptionAvailable,
            ]
        case .publish:
            ids = [
                .payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData,
                .subscriptionIdentifier, .topicAlias, .userProperty,
            ]
        case .will:
            ids = [
                .payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData,
                .willDelayInterval, .userProperty,
            ]
        case .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback:
            ids = [.reasonString, .userProperty]
        case .subscribe:
            ids = [.subscriptionIdentifier, .userProperty]
        case .unsubscribe:
            ids = [.userProperty]
        case .disconnect:
            ids = [.sessionExpiryInterval, .serverReference, .reasonString, .userProperty]
        case .auth:
            ids = [.authenticationMethod, .authenticationData, .reasonString, .userProperty]
        }
        return ids.reduce(0) { $0 | $1.bit }
    }
}
