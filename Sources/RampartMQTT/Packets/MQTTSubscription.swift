/// One topic filter of a SUBSCRIBE packet with its subscription options.
public struct MQTTSubscription: Sendable, Hashable {
    /// The topic filter, possibly a shared subscription `$share/{group}/{filter}`.
    public var topicFilter: String
    /// The maximum QoS the client wants to receive at.
    public var qos: MQTTQoS
    /// MQTT 5: do not send the client its own publications (not allowed on shared subscriptions).
    public var noLocal: Bool
    /// MQTT 5: keep the RETAIN flag of forwarded messages as published.
    public var retainAsPublished: Bool
    /// MQTT 5: 0 sends retained messages on subscribe, 1 only for a new subscription, 2 never.
    public var retainHandling: UInt8

    /// Creates a subscription.
    ///
    /// - Parameters:
    ///   - topicFilter: The topic filter.
    ///   - qos: The maximum QoS, ``MQTTQoS/atMostOnce`` by default.
    ///   - noLocal: MQTT 5 No Local option, `false` by default.
    ///   - retainAsPublished: MQTT 5 Retain As Published option, `false` by default.
    ///   - retainHandling: MQTT 5 Retain Handling option (0, 1 or 2), 0 by default.
    public init(
        topicFilter: String,
        qos: MQTTQoS = .atMostOnce,
        noLocal: Bool = false,
        retainAsPublished: Bool = false,
        retainHandling: UInt8 = 0
    ) {
        self.topicFilter = topicFilter
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }
}
