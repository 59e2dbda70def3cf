import Foundation
import RampartCore
import RampartTUF

/// `app_manifest.json`, as in Azure Sphere (DESIGN §5): parsed strictly, unknown fields and capabilities
/// refused. The sandbox enforces the capabilities at run time.
public struct AppManifest: Sendable, Equatable {
    public var schemaVersion: Int
    public var name: String
    /// A UUID, lowercase.
    public var componentID: String
    /// The Wasm module inside the package, e.g. `app.wasm`.
    public var entryPoint: String
    public var commandArguments: [String]
    /// `Default` (a high-level app).
    public var applicationType: String
    /// Capabilities as given, by name.
    public var capabilities: [String: JSONValue]
    /// The capabilities, typed and checked.
    public var granted: AppCapabilities

    /// Every capability the runtime knows (REFERENCE, app manifest capabilities).
    public static let knownCapabilities: Set<String> = [
        "AllowedConnections", "AllowedTcpServerPorts", "AllowedUdpServerPorts", "AllowedApplicationConnections", "Gpio",
        "Uart", "I2cMaster", "SpiMaster", "Pwm", "Adc", "MutableStorage", "DeviceAuthentication",
        "SystemEventNotifications", "SoftwareUpdateDeferral", "PowerControls", "NetworkConfig", "TimeSyncConfig",
        "CertStore",
    ]

    /// Parses `app_manifest.json`.
    ///
    /// - Throws: ``RampartError`` `packageMalformed` naming the field.
    public init(bytes: some Collection<UInt8>) throws {
        try self.init(json: try JSONValue.parse(bytes))
    }

    init(json: JSONValue) throws {
        func fail(_ what: String) -> RampartError { RampartError(.packageMalformed, "app_manifest.json: \(what).") }
        guard case .object(let m) = json else { throw fail("it must be a JSON object") }
        let allowed: Set<String> = ["SchemaVersion", "Name", "ComponentId", "EntryPoint", "CmdArgs", "ApplicationType", "Capabilities"]
        if let unknown = m.keys.sorted().first(where: { !allowed.contains($0) }) { throw fail("unknown field '\(unknown)'") }
        guard case .integer(1)? = m["SchemaVersion"] else { throw fail("SchemaVersion must be 1") }
        guard case .string(let name)? = m["Name"], !name.isEmpty, name.count <= 100 else {
            throw fail("Name must be a string of 1 to 100 characters")
        }
        guard case .string(let component)? = m["ComponentId"], let uuid = RampartID(component) else {
            throw fail("ComponentId must be a UUID")
        }
        guard case .string(let entry)? = m["EntryPoint"], !entry.isEmpty, entry.count <= 100, !entry.contains("/"),
            !entry.hasPrefix(".")
        else { throw fail("EntryPoint must be a file name inside the package, such as app.wasm") }
        var arguments: [String] = []
        if let value = m["CmdArgs"] {
            guard case .array(let list) = value, list.count <= 64 else { throw fail("CmdArgs must be an array of strings") }
            arguments = try list.map {
                guard case .string(let argument) = $0, argument.utf8.count <= 1024 else { throw fail("CmdArgs must be an array of strings") }
                return argument
            }
        }
        var type = "Default"
        if let value = m["ApplicationType"] {
            guard case .string(let text) = value, text == "Default" else { throw fail("ApplicationType must be \"Default\"") }
            type = text
        }
        var capabilities: [String: JSONValue] = [:]
        var granted = AppCapabilities()
        if let value = m["Capabilities"] {
            guard case .object(let members) = value else { throw fail("Capabilities must be an object") }
            for name in members.keys.sorted() where !Self.knownCapabilities.contains(name) {
                throw fail("unknown capability '\(name)'")
            }
            capabilities = members
            do {
                granted = try AppCapabilities(members: members)
            } catch {
                throw fail(error.message)
            }
        }
        self.schemaVersion = 1
        self.name = name
        self.componentID = uuid.description
        self.entryPoint = entry
        self.commandArguments = arguments
        self.applicationType = type
        self.capabilities = capabilities
        self.granted = granted
    }

    /// The manifest as canonical JSON text.
    public var jsonText: String { String(decoding: json.canonicalBytes, as: UTF8.self) }

    var json: JSONValue {
        .object([
            "SchemaVersion": .integer(Int64(schemaVersion)), "Name": .string(name), "ComponentId": .string(componentID),
            "EntryPoint": .string(entryPoint), "CmdArgs": .array(commandArguments.map { .string($0) }),
            "ApplicationType": .string(applicationType), "Capabilities": .object(capabilities),
        ])
    }
}
