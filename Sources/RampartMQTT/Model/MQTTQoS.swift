/// The delivery guarantee of an application message or a subscription.
///
/// Ordered from the weakest to the strongest guarantee, so `min(_:_:)` gives the QoS a subscriber receives.
public enum MQTTQoS: UInt8, Sendable, Hashable, Comparable {
    /// Delivered at most once, with no acknowledgement.
    case atMostOnce = 0
    /// Delivered at least once, acknowledged with PUBACK.
    case atLeastOnce = 1
    /// Delivered exactly once, through the PUBREC, PUBREL and PUBCOMP exchange.
    case exactlyOnce = 2

    /// Whether `lhs` is a weaker guarantee than `rhs`.
    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }
}
