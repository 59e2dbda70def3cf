import Foundation
import RampartCore
import RampartSandbox
import TOMLKit

/// `device.toml` in the state directory: the runtime's own settings. It is measured into attestation (a changed
/// network policy is a changed device), so it holds nothing secret.
///
/// ```toml
/// [network]
/// managed_interfaces = ["eth0", "wwan0"]  # servicing may use only these (default: every interface)
/// service_interface = "eth0"              # pin servicing to one of them
/// minimum_signal_dbm = -105               # large downloads wait for a better signal than this
/// allow_roaming = false                   # large downloads wait while roaming
///
/// [router]
/// control = "tcp://192.168.8.1:7011"      # or a serial device, "/dev/ttyUSB2"
///
/// [gateway]
/// url = "mqtts://gateway.local:8883"      # apps' telemetry and cloud messages go through this Rampart gateway
/// ca = "gateway-ca.pem"                   # the CA of its certificate (default: the system's roots)
/// ```
public struct DeviceConfiguration: Sendable, Equatable {
    public var network = Network()
    /// Where the router control channel comes from, if there is one.
    public var routerControl: RouterControl?
    /// `[peripherals]`: the Linux devices apps' peripherals map to; `nil` for the virtual board.
    public var peripherals: LinuxPeripheralBoard.Configuration?
    /// `[gateway]`: the Rampart gateway apps' telemetry and cloud messages go through; `nil` to send them to
    /// the service over HTTPS.
    public var gateway: Gateway?

    /// `[gateway]`.
    public struct Gateway: Sendable, Equatable {
        /// The gateway's host name or address.
        public var host: String
        /// Its MQTT port (8883 by default).
        public var port: Int
        /// The CA certificate (PEM file) the gateway's certificate must chain to; `nil` for the system's roots.
        public var caFile: String?

        /// Creates the settings.
        public init(host: String, port: Int = 8883, caFile: String? = nil) {
            self.host = host
            self.port = port
            self.caFile = caFile
        }
    }

    /// `[network]`.
    public struct Network: Sendable, Equatable {
        /// The interfaces servicing may use; `nil` means every interface the kernel has.
        public var managedInterfaces: [String]?
        /// The one interface servicing must use, if pinned.
        public var serviceInterface: String?
        /// Large downloads wait while the router reports a weaker signal.
        public var minimumSignalDBm = -105
        /// Large downloads wait while the router reports roaming, unless this is set.
        public var allowRoaming = false
        public init() {}

        /// Whether servicing may leave through `interface`.
        public func manages(_ interface: String) -> Bool {
            if let serviceInterface { return interface == serviceInterface }
            return managedInterfaces?.contains(interface) ?? true
        }
    }

    /// `[router] control`.
    public enum RouterControl: Sendable, Equatable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case serial(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): "tcp://\(host):\(port)"
            case .serial(let path): path
            }
        }
    }

    public init() {}

    /// Reads the state directory's `device.toml`; a missing file is the defaults.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` naming the file and key.
    public static func load(state: DeviceState) throws -> DeviceConfiguration {
        // Missing is the defaults; present but unreadable is an error, never "every interface managed".
        guard FileManager.default.fileExists(atPath: state.configFile.path) else { return DeviceConfiguration() }
        let data: Data
        do {
            data = try Data(contentsOf: state.configFile)
        } catch {
            throw RampartError(.configurationInvalid, "Cannot read \(state.configFile.path): \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw RampartError(.configurationInvalid, "\(state.configFile.path) is not UTF-8.")
        }
        return try parse(text, file: state.configFile.path)
    }

    /// Parses `device.toml` text.
    public static func parse(_ text: String, file: String) throws -> DeviceConfiguration {
        let root = try TOMLReader.parse(text, file: file)
        let reader = TOMLReader(file: file, base: URL(fileURLWithPath: file).deletingLastPathComponent())
        try reader.allow(root, ["network", "router", "peripherals", "gateway"], in: "")
        var config = DeviceConfiguration()
        if let table = try reader.table(root, "network") {
            try reader.allow(
                table, ["managed_interfaces", "service_interface", "minimum_signal_dbm", "allow_roaming"], in: "network")
            if let names = try reader.strings(table, "managed_interfaces", in: "network") {
                guard !names.isEmpty else {
                    throw reader.invalid("network.managed_interfaces", "is empty, which would refuse all servicing; name at least one interface")
                }
                for name in names where !validInterfaceName(name) {
                    throw reader.invalid("network.managed_interfaces", "holds \"\(name)\", which is not an interface name")
                }
                config.network.managedInterfaces = names
            }
            if let name = try reader.string(table, "service_interface", in: "network") {
                guard validInterfaceName(name) else {
                    throw reader.invalid("network.service_interface", "\"\(name)\" is not an interface name")
                }
                if let managed = config.network.managedInterfaces, !managed.contains(name) {
                    throw reader.invalid("network.service_interface", "\"\(name)\" is not one of managed_interfaces")
                }
                config.network.serviceInterface = name
            }
            if let dBm = try reader.int(table, "minimum_signal_dbm", in: "network") {
                guard (-113 ... -51).contains(dBm) else { throw reader.invalid("network.minimum_signal_dbm", "must be -113 to -51") }
                config.network.minimumSignalDBm = dBm
            }
            config.network.allowRoaming = try reader.bool(table, "allow_roaming", in: "network") ?? false
        }
        if let table = try reader.table(root, "router") {
            try reader.allow(table, ["control"], in: "router")
            guard let control = try reader.string(table, "control", in: "router") else {
                throw reader.invalid("router.control", "is required in [router]")
            }
            config.routerControl = try parseRouterControl(control, reader: reader)
        }
        if let table = try reader.table(root, "peripherals") {
            config.peripherals = try parsePeripherals(table, reader: reader)
        }
        if let table = try reader.table(root, "gateway") {
            try reader.allow(table, ["url", "ca"], in: "gateway")
            guard let url = try reader.string(table, "url", in: "gateway") else {
                throw reader.invalid("gateway.url", "is required in [gateway] (mqtts://host:port)")
            }
            guard let parts = URLComponents(string: url), parts.scheme?.lowercased() == "mqtts", let host = parts.host, !host.isEmpty,
                parts.path.isEmpty || parts.path == "/", parts.query == nil, parts.fragment == nil, parts.user == nil,
                parts.password == nil, !url.hasSuffix(":"), !host.contains("%")
            else {
                throw reader.invalid("gateway.url", "must be mqtts://host[:port] (TLS; no user, path, query or IPv6 zone), not \"\(url)\"")
            }
            if let port = parts.port, !(1...65535).contains(port) { throw reader.invalid("gateway.url", "has a port outside 1–65535") }
            let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            config.gateway = Gateway(host: bare, port: parts.port ?? 8883, caFile: try reader.path(table, "ca", in: "gateway"))
        }
        return config
    }

    private static func parsePeripherals(_ table: TOMLTable, reader: TOMLReader) throws -> LinuxPeripheralBoard.Configuration {
        try reader.allow(table, ["gpio", "uart", "uart_baud", "i2c", "spi", "adc", "pwm"], in: "peripherals")
        var board = LinuxPeripheralBoard.Configuration()
        func paths(_ key: String) throws -> [String] {
            let listed = try reader.strings(table, key, in: "peripherals") ?? []
            for path in listed where !path.hasPrefix("/") || path.contains("\0") {
                throw reader.invalid("peripherals.\(key)", "holds \"\(path)\", which is not an absolute path")
            }
            guard listed.count <= 16 else { throw reader.invalid("peripherals.\(key)", "lists more than 16 devices") }
            return listed
        }
        if let gpio = try reader.string(table, "gpio", in: "peripherals") {
            guard gpio.hasPrefix("/") else { throw reader.invalid("peripherals.gpio", "must be an absolute path, such as /sys/class/gpio") }
            board.gpioDirectory = gpio
        }
        board.uarts = try paths("uart")
        if let baud = try reader.int(table, "uart_baud", in: "peripherals") {
            guard LinuxPeripheralBoard.Configuration.baudRates[baud] != nil else {
                throw reader.invalid(
                    "peripherals.uart_baud",
                    "must be one of \(LinuxPeripheralBoard.Configuration.baudRates.keys.sorted().map(String.init).joined(separator: ", "))")
            }
            board.uartBaud = baud
        }
        board.i2cBuses = try paths("i2c")
        board.spiBuses = try paths("spi")
        board.adcDevices = try paths("adc")
        board.pwmChips = try paths("pwm")
        return board
    }

    /// Linux interface names: 1–15 bytes, no `/`, whitespace or `:`.
    static func validInterfaceName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 15 && name != "." && name != ".."
            && name.unicodeScalars.allSatisfy { $0.isASCII && $0.value > 0x20 && $0.value < 0x7F && $0 != "/" && $0 != ":" }
    }

    private static func parseRouterControl(_ text: String, reader: TOMLReader) throws -> RouterControl {
        if text.hasPrefix("/") { return .serial(path: text) }
        guard text.hasPrefix("tcp://"), let colon = text.lastIndex(of: ":"), colon > text.index(text.startIndex, offsetBy: 6),
            let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else {
            throw reader.invalid("router.control", "must be tcp://HOST:PORT or the path of a serial device, not \"\(text)\"")
        }
        var host = String(text[text.index(text.startIndex, offsetBy: 6)..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .tcp(host: host, port: port)
    }
}
