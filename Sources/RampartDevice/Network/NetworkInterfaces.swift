import Foundation
import RampartCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One network interface as the kernel reports it, and whether servicing may use it.
public struct NetworkInterfaceInfo: Codable, Sendable, Equatable {
    public var name: String
    public var up: Bool
    public var loopback: Bool
    /// IPv4 and IPv6 addresses, numeric.
    public var addresses: [String]
    /// Servicing (attestation, updates, error reports) may leave through it.
    public var managed: Bool
    /// It is the pinned `service_interface`.
    public var service: Bool

    public init(name: String, up: Bool, loopback: Bool, addresses: [String], managed: Bool, service: Bool) {
        self.name = name
        self.up = up
        self.loopback = loopback
        self.addresses = addresses
        self.managed = managed
        self.service = service
    }
}

/// The kernel's interfaces (getifaddrs(3)).
public enum NetworkInterfaces {
    /// Every interface, in the kernel's order, marked against `policy`.
    public static func list(policy: DeviceConfiguration.Network) -> [NetworkInterfaceInfo] {
        var first: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&first) == 0, let first else { return [] }
        defer { freeifaddrs(first) }
        var order: [String] = []
        var byName: [String: NetworkInterfaceInfo] = [:]
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            let name = String(cString: entry.pointee.ifa_name)
            let flags = Int32(entry.pointee.ifa_flags)
            if byName[name] == nil {
                order.append(name)
                byName[name] = NetworkInterfaceInfo(
                    name: name, up: flags & Int32(IFF_UP) != 0, loopback: flags & Int32(IFF_LOOPBACK) != 0, addresses: [],
                    managed: policy.manages(name), service: policy.serviceInterface == name)
            }
            if let address = entry.pointee.ifa_addr, let text = numericHost(address) {
                byName[name]?.addresses.append(text)
            }
        }
        return order.compactMap { byName[$0] }
    }

    /// The numeric form of an IPv4 or IPv6 socket address, without a scope.
    static func numericHost(_ address: UnsafePointer<sockaddr>) -> String? {
        let length: socklen_t
        switch Int32(address.pointee.sa_family) {
        case AF_INET: length = socklen_t(MemoryLayout<sockaddr_in>.size)
        case AF_INET6: length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        default: return nil
        }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { return nil }
        let text = String(cString: host)
        return text.split(separator: "%").first.map(String.init) ?? text
    }
}
