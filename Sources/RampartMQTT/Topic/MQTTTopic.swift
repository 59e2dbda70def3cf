/// The topic name and topic filter rules of MQTT 3.1.1 and 5 (§4.7), shared by the codec and the broker.
public enum MQTTTopic {
    private static let slash = UInt8(ascii: "/")
    private static let plus = UInt8(ascii: "+")
    private static let hash = UInt8(ascii: "#")
    private static let sharePrefix = Array("$share/".utf8)

    /// Checks that `name` can be the topic name of a PUBLISH or a Will Message.
    ///
    /// An empty name is rejected here: MQTT 5 allows one only together with a topic alias, which the caller
    /// handles.
    ///
    /// - Parameter name: The topic name.
    /// - Throws: ``MQTTReasonCode/topicNameInvalid`` when the name is empty, longer than 65535 bytes of UTF-8, or
    ///   contains `+`, `#` or U+0000.
    public static func validateName(_ name: String) throws(MQTTProtocolError) {
        let utf8 = name.utf8
        guard !utf8.isEmpty else {
            throw MQTTProtocolError(.topicNameInvalid, "topic name is empty; it must be at least one character")
        }
        guard utf8.count <= Int(UInt16.max) else {
            throw MQTTProtocolError(.topicNameInvalid, "topic name is \(utf8.count) bytes; the limit is 65535")
        }
        for byte in utf8 {
            switch byte {
            case plus, hash:
                throw MQTTProtocolError(
                    .topicNameInvalid,
                    "topic name '\(name)' contains the wildcard '\(Character(Unicode.Scalar(byte)))'; "
                        + "wildcards belong in topic filters only [MQTT-3.3.2-2]"
                )
            case 0:
                throw MQTTProtocolError(.topicNameInvalid, "topic name contains U+0000")
            default:
                continue
            }
        }
    }

    /// Checks that `filter` can be the topic filter of a SUBSCRIBE or UNSUBSCRIBE.
    ///
    /// `#` may only be a whole last level and `+` only a whole level. A shared subscription
    /// `$share/{group}/{filter}` needs a non-empty group without wildcards and a valid filter after it.
    ///
    /// - Parameter filter: The topic filter.
    /// - Throws: ``MQTTReasonCode/topicFilterInvalid`` when the filter breaks one of these rules, is empty, longer
    ///   than 65535 bytes of UTF-8, or contains U+0000.
    public static func validateFilter(_ filter: String) throws(MQTTProtocolError) {
        let utf8 = Array(filter.utf8)
        guard !utf8.isEmpty else {
            throw MQTTProtocolError(.topicFilterInvalid, "topic filter is empty; it must be at least one character")
        }
        guard utf8.count <= Int(UInt16.max) else {
            throw MQTTProtocolError(.topicFilterInvalid, "topic filter is \(utf8.count) bytes; the limit is 65535")
        }
        guard !utf8.contains(0) else {
            throw MQTTProtocolError(.topicFilterInvalid, "topic filter contains U+0000")
        }
        var filterBytes = utf8[...]
        if utf8.starts(with: sharePrefix) {
            let rest = utf8[sharePrefix.count...]
            guard let separator = rest.firstIndex(of: slash) else {
                throw MQTTProtocolError(
                    .topicFilterInvalid,
                    "shared subscription '\(filter)' has no topic filter; use $share/{group}/{filter}"
                )
            }
            let group = rest[..<separator]
            guard !group.isEmpty, !group.contains(plus), !group.contains(hash) else {
                throw MQTTProtocolError(
                    .topicFilterInvalid,
                    "shared subscription '\(filter)' needs a non-empty share name without wildcards"
                )
            }
            filterBytes = rest[(separator + 1)...]
            guard !filterBytes.isEmpty else {
                throw MQTTProtocolError(
                    .topicFilterInvalid,
                    "shared subscription '\(filter)' has an empty topic filter after the share name"
                )
            }
        }
        let levels = filterBytes.split(separator: slash, omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains(hash), !(level.count == 1 && index == levels.count - 1) {
                throw MQTTProtocolError(
                    .topicFilterInvalid,
                    "topic filter '\(filter)' uses '#' other than as its whole last level [MQTT-4.7.1-2]"
                )
            }
            if level.contains(plus), level.count != 1 {
                throw MQTTProtocolError(
                    .topicFilterInvalid,
                    "topic filter '\(filter)' uses '+' other than as a whole level [MQTT-4.7.1-3]"
                )
            }
        }
    }

    /// Whether a topic name matches a topic filter, by the MQTT rules.
    ///
    /// `+` matches exactly one level (an empty one included), `#` matches the parent level and any number of
    /// levels below it, and a filter starting with a wildcard does not match topic names starting with `$`
    /// [MQTT-4.7.2-1]. For a shared subscription the `$share/{group}/` prefix is skipped. Both arguments are
    /// assumed valid (see ``validateFilter(_:)`` and ``validateName(_:)``).
    ///
    /// - Parameters:
    ///   - filter: The topic filter.
    ///   - topic: The topic name.
    /// - Returns: `true` when the topic name matches.
    public static func matches(filter: String, topic: String) -> Bool {
        // The broker asks this for every message it delivers, so it walks both names in place.
        var filter = filter
        var topic = topic
        return filter.withUTF8 { filter in topic.withUTF8 { topic in matches(filter: filter, topic: topic) } }
    }

    private static func matches(filter: UnsafeBufferPointer<UInt8>, topic: UnsafeBufferPointer<UInt8>) -> Bool {
        var f = 0
        if filter.starts(with: sharePrefix) {
            guard let separator = filter[sharePrefix.count...].firstIndex(of: slash) else { return false }
            f = separator + 1
        }
        // A wildcard is always a whole level in a valid filter, so its first byte tells.
        if topic.first == UInt8(ascii: "$"), f < filter.count, filter[f] == plus || filter[f] == hash { return false }
        var t = 0
        // At the start of a level in both.
        while true {
            if f < filter.count, filter[f] == hash { return true }
            if f < filter.count, filter[f] == plus {
                f += 1
                while t < topic.count, topic[t] != slash { t += 1 }
            } else {
                while f < filter.count, filter[f] != slash {
                    guard t < topic.count, topic[t] == filter[f] else { return false }
                    f += 1
                    t += 1
                }
                if t < topic.count, topic[t] != slash { return false }
            }
            // Both are at a '/' or their end.
            switch (f >= filter.count, t >= topic.count) {
            case (true, true): return true
            case (true, false): return false
            case (false, true):
                // "a/#" matches "a" too: '#' takes in its parent level.
                return f + 1 < filter.count && filter[f + 1] == hash
            case (false, false):
                f += 1
                t += 1
            }
        }
    }
}
