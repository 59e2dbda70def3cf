/// One MQTT 5 User Property: a name and value pair whose meaning the application defines.
///
/// The same name may appear more than once in a packet, and the order of user properties is kept.
public struct MQTTUserProperty: Sendable, Hashable {
    /// The property name.
    public var name: String
    /// The property value.
    public var value: String

    /// Creates a user property.
    ///
    /// - Parameters:
    ///   - name: The property name.
    ///   - value: The property value.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
