import RampartMQTT

/// IoT Hub's device MQTT topic dialect: what a client may publish and subscribe to, and what it means.
///
/// A device `d` (client ID `d`) or a module `m` of device `d` (client ID `d/m`) may use only its own
/// `devices/d/…` topics and the `$iothub/…` requests.
enum IoTHubTopic: Equatable {
    /// `devices/{d}/messages/events/{bag}` or `devices/{d}/modules/{m}/messages/events/{bag}`.
    case telemetry(properties: [(String, String)])
    /// `$iothub/twin/GET/?$rid={rid}`.
    case twinGet(requestID: String)
    /// `$iothub/twin/PATCH/properties/reported/?$rid={rid}`.
    case twinPatchReported(requestID: String)
    /// `$iothub/methods/res/{status}/?$rid={rid}`.
    case methodResponse(status: Int, requestID: String)

    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.telemetry(let a), .telemetry(let b)): a.elementsEqual(b) { $0 == $1 }
        case (.twinGet(let a), .twinGet(let b)): a == b
        case (.twinPatchReported(let a), .twinPatchReported(let b)): a == b
        case (.methodResponse(let s1, let r1), .methodResponse(let s2, let r2)): s1 == s2 && r1 == r2
        default: false
        }
    }

    /// What a publish to `topic` by `identity` means, or `nil` when the client may not publish there.
    static func parsePublish(_ topic: String, identity: ClientIdentity) -> IoTHubTopic? {
        if topic.hasPrefix("$iothub/") { return parseRequest(topic) }
        let prefix = identity.telemetryPrefix.utf8
        let name = topic.utf8
        // `…/messages/events` without its slash is telemetry too.
        if name.count == prefix.count - 1, prefix.starts(with: name) { return .telemetry(properties: []) }
        guard name.starts(with: prefix) else { return nil }
        let bag = topic.utf8.dropFirst(prefix.count)
        guard let properties = PropertyBag.decode(Substring(bag.last == UInt8(ascii: "/") ? bag.dropLast() : bag)) else { return nil }
        return .telemetry(properties: properties)
    }

    private static func parseRequest(_ topic: String) -> IoTHubTopic? {
        let (path, query) = splitQuery(topic)
        guard let query, let fields = PropertyBag.decode(Substring(query)),
            let requestID = fields.first(where: { $0.0 == "$rid" })?.1, !requestID.isEmpty
        else { return nil }
        switch path {
        case "$iothub/twin/GET/": return .twinGet(requestID: requestID)
        case "$iothub/twin/PATCH/properties/reported/": return .twinPatchReported(requestID: requestID)
        default:
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count == 5, parts[0] == "$iothub", parts[1] == "methods", parts[2] == "res",
                let status = Int(parts[3]), parts[4].isEmpty
            {
                return .methodResponse(status: status, requestID: requestID)
            }
            return nil
        }
    }

    private static func splitQuery(_ topic: String) -> (String, String?) {
        guard let mark = topic.firstIndex(of: "?") else { return (topic, nil) }
        return (String(topic[..<mark]), String(topic[topic.index(after: mark)...]))
    }

    /// Whether `identity` may subscribe to `filter`.
    static func maySubscribe(_ filter: String, identity: ClientIdentity) -> Bool {
        let own = identity.topicPrefix
        let allowedPrefixes = [
            own + "messages/devicebound/",
            "$iothub/twin/res/",
            "$iothub/twin/PATCH/properties/desired/",
            "$iothub/methods/POST/",
        ] + (identity.moduleID == nil ? [] : [own + "inputs/"])
        for prefix in allowedPrefixes {
            if filter.hasPrefix(prefix) || filter == prefix + "#" || filter + "/" == prefix { return true }
        }
        // A filter ending in '#' that stops short of the prefix would match other clients' topics.
        return false
    }

    /// The topic a cloud-to-device message for `identity` is published on.
    static func deviceBound(_ identity: ClientIdentity, properties: [(String, String)]) -> String {
        identity.topicPrefix + "messages/devicebound/" + PropertyBag.encode(properties)
    }

    /// The topic a routed message reaches a module input on.
    static func moduleInput(_ identity: ClientIdentity, input: String, properties: [(String, String)]) -> String {
        identity.topicPrefix + "inputs/" + input + "/" + PropertyBag.encode(properties)
    }
}

/// Who is connected: a device, or one of its modules.
struct ClientIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The device ID, equal to the certificate's CN.
    let deviceID: String
    /// The module, for client IDs of the form `{device}/{module}`.
    let moduleID: String?
    /// `devices/{d}/` or `devices/{d}/modules/{m}/`.
    let topicPrefix: String
    /// `{topicPrefix}messages/events/`, which every telemetry PUBLISH starts with: made once, not per message.
    let telemetryPrefix: String

    /// Parses an MQTT client ID; `nil` when it is not `{device}` or `{device}/{module}`.
    init?(clientID: String) {
        let parts = clientID.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && Self.isValidSegment($0) }) else {
            return nil
        }
        self.init(deviceID: String(parts[0]), moduleID: parts.count == 2 ? String(parts[1]) : nil)
    }

    init(deviceID: String, moduleID: String? = nil) {
        self.deviceID = deviceID
        self.moduleID = moduleID
        topicPrefix = moduleID.map { "devices/\(deviceID)/modules/\($0)/" } ?? "devices/\(deviceID)/"
        telemetryPrefix = topicPrefix + "messages/events/"
    }

    var clientID: String { moduleID.map { "\(deviceID)/\($0)" } ?? deviceID }
    var description: String { clientID }

    /// IoT Hub's identity alphabet: letters, digits and `-.%_*?!(),=@$'+:`, at most 128 characters.
    private static func isValidSegment(_ segment: Substring) -> Bool {
        segment.utf8.count <= 128 && segment.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (Character(scalar).isLetter || Character(scalar).isNumber || "-.%_*?!(),=@$'+:".unicodeScalars.contains(scalar))
        }
    }
}
