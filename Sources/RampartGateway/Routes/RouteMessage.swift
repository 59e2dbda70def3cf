/// The message a route sees.
public struct RouteMessage: Sendable {
    /// Where the message came from.
    ///
    /// `/messages/` for device telemetry, `/messages/modules/{m}/outputs/{o}` for module output and
    /// `/twinChangeNotifications` for twin changes.
    public var sourcePath: String
    /// System properties under their IoT Hub names without `$`: `contentType`, `contentEncoding`,
    /// `connectionDeviceId`, `connectionModuleId`, `messageId`, `correlationId`, `userId`, `to`,
    /// `iothub-creation-time-utc` and so on. Names match case-insensitively.
    public var systemProperties: [String: String]
    /// Application properties, the user's property bag. Names match case-insensitively.
    public var applicationProperties: [String: String]
    /// The payload. `$body` paths read it when `contentType` is `application/json` and `contentEncoding` is
    /// `utf-8`, `utf-16` or `utf-32`.
    public var body: [UInt8]

    /// Creates a message.
    ///
    /// - Parameters:
    ///   - sourcePath: Where the message came from, e.g. `/messages/`.
    ///   - systemProperties: System properties, keys without `$`.
    ///   - applicationProperties: The user's property bag.
    ///   - body: The payload.
    public init(
        sourcePath: String,
        systemProperties: [String: String] = [:],
        applicationProperties: [String: String] = [:],
        body: [UInt8] = []
    ) {
        self.sourcePath = sourcePath
        self.systemProperties = systemProperties
        self.applicationProperties = applicationProperties
        self.body = body
    }
}

extension RouteMessage {
    /// Looks a property up the way edgeHub does: exact name first, then ignoring case.
    ///
    /// When several names differ only in case, the ordinally smallest wins, so the answer never depends on
    /// dictionary order.
    static func lookUp(_ name: String, in properties: [String: String]) -> String? {
        if let value = properties[name] { return value }
        let folded = name.lowercased()
        var best: (key: String, value: String)?
        for (key, value) in properties where key.lowercased() == folded {
            if best == nil || key.unicodeScalars.lexicographicallyPrecedes(best!.key.unicodeScalars) {
                best = (key, value)
            }
        }
        return best?.value
    }
}
