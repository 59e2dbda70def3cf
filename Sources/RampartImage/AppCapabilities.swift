import RampartCore
import RampartTUF

/// What an app's manifest grants, typed and checked (REFERENCE, app manifest capabilities). The sandbox
/// asks this before every host call; anything not here is denied.
public struct AppCapabilities: Sendable, Equatable {
    /// Outbound TCP and TLS destinations: DNS names (lowercase) or IP addresses, matched exactly.
    public var allowedConnections: Set<String> = []
    public var allowedTcpServerPorts: Set<Int> = []
    public var allowedUdpServerPorts: Set<Int> = []
    /// Component IDs (lowercase) this app may exchange messages with; the other app must list this one too.
    public var allowedApplicationConnections: Set<String> = []
    /// Peripherals by number.
    public var gpio: Set<Int> = []
    public var uart: Set<Int> = []
    public var i2cMaster: Set<Int> = []
    public var spiMaster: Set<Int> = []
    public var adc: Set<Int> = []
    public var pwm: Set<Int> = []
    /// The storage quota in KiB, if the app may store anything.
    public var mutableStorageKB: Int?
    /// The tenant whose device certificate the app may use (the nil UUID means the device's own tenant).
    public var deviceAuthentication: String?

    /// The `DeviceAuthentication` value that means the device's own tenant, whichever it is.
    public static let ownTenant = "00000000-0000-0000-0000-000000000000"

    /// Whether a `DeviceAuthentication` value `granted` covers the device's tenant `tenant`.
    public static func deviceAuthentication(_ granted: String, covers tenant: String) -> Bool {
        granted == ownTenant || granted == tenant
    }
    public var systemEventNotifications = false
    public var softwareUpdateDeferral = false
    /// `ForceReboot`, `ForcePowerDown`, `SetPowerProfile`.
    public var powerControls: Set<String> = []
    public var networkConfig = false
    public var timeSyncConfig = false
    public var certStore = false

    /// No capabilities at all.
    public init() {}

    /// The power controls a manifest may name.
    public static let knownPowerControls: Set<String> = ["ForceReboot", "ForcePowerDown", "SetPowerProfile"]

    /// Reads the manifest's `Capabilities` members.
    ///
    /// - Throws: a message naming the capability and the value it needs, for the manifest parser to wrap.
    init(members: [String: JSONValue]) throws(CapabilityProblem) {
        func numbers(_ name: String, _ range: ClosedRange<Int64>) throws(CapabilityProblem) -> Set<Int> {
            guard let value = members[name] else { return [] }
            guard case .array(let items) = value, items.count <= 256 else {
                throw CapabilityProblem("\(name) must be an array of numbers \(range.lowerBound)…\(range.upperBound)")
            }
            var result: Set<Int> = []
            for item in items {
                guard case .integer(let number) = item, range.contains(number) else {
                    throw CapabilityProblem("\(name) must be an array of numbers \(range.lowerBound)…\(range.upperBound)")
                }
                result.insert(Int(number))
            }
            return result
        }
        func flag(_ name: String) throws(CapabilityProblem) -> Bool {
            guard let value = members[name] else { return false }
            guard case .bool(let flag) = value else { throw CapabilityProblem("\(name) must be true or false") }
            return flag
        }
        func strings(_ name: String, what: String, _ check: (String) -> String?) throws(CapabilityProblem) -> Set<String> {
            guard let value = members[name] else { return [] }
            guard case .array(let items) = value, items.count <= 256 else {
                throw CapabilityProblem("\(name) must be an array of \(what)")
            }
            var result: Set<String> = []
            for item in items {
                guard case .string(let text) = item, let normal = check(text) else {
                    throw CapabilityProblem("\(name) must be an array of \(what)")
                }
                result.insert(normal)
            }
            return result
        }
        allowedConnections = try strings("AllowedConnections", what: "host names or IP addresses", Self.host)
        allowedApplicationConnections = try strings("AllowedApplicationConnections", what: "component IDs (UUIDs)") {
            RampartID($0)?.description
        }
        allowedTcpServerPorts = try numbers("AllowedTcpServerPorts", 1...65_535)
        allowedUdpServerPorts = try numbers("AllowedUdpServerPorts", 1...65_535)
        gpio = try numbers("Gpio", 0...1023)
        uart = try numbers("Uart", 0...255)
        i2cMaster = try numbers("I2cMaster", 0...255)
        spiMaster = try numbers("SpiMaster", 0...255)
        adc = try numbers("Adc", 0...255)
        pwm = try numbers("Pwm", 0...255)
        if let storage = members["MutableStorage"] {
            guard case .object(let s) = storage, case .integer(let kb)? = s["SizeKB"], (1...65_536).contains(kb), s.count == 1 else {
                throw CapabilityProblem("MutableStorage must be {\"SizeKB\": 1…65536}")
            }
            mutableStorageKB = Int(kb)
        }
        if let value = members["DeviceAuthentication"] {
            guard case .string(let tenant) = value, let id = RampartID(tenant) else {
                throw CapabilityProblem("DeviceAuthentication must be a tenant ID (a UUID)")
            }
            deviceAuthentication = id.description
        }
        systemEventNotifications = try flag("SystemEventNotifications")
        softwareUpdateDeferral = try flag("SoftwareUpdateDeferral")
        powerControls = try strings("PowerControls", what: Self.knownPowerControls.sorted().joined(separator: ", ")) {
            Self.knownPowerControls.contains($0) ? $0 : nil
        }
        networkConfig = try flag("NetworkConfig")
        timeSyncConfig = try flag("TimeSyncConfig")
        certStore = try flag("CertStore")
    }

    /// A host as a manifest may name it: a DNS name (letters, digits, `-` and `.`, lowercased) or an IP
    /// address. Wildcards are not allowed: a connection is granted to exactly what is named.
    package static func host(_ text: String) -> String? {
        let host = text.lowercased()
        guard !host.isEmpty, host.utf8.count <= 253 else { return nil }
        if host.contains(":") {  // IPv6
            return host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) ? host : nil
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.allSatisfy({ label in
            (1...63).contains(label.count) && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        })
        else { return nil }
        return host
    }
}

/// Why a capability's value is refused.
struct CapabilityProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
