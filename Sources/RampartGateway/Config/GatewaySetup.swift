import Crypto
import Foundation
import RampartCore
import RampartPKI
import X509

/// `rampart gateway init`: the gateway CA that devices trust, a server certificate for the gateway's
/// host name, and a commented `gateway.toml`. It replaces IoT Edge's certGen.sh and config.toml steps.
public enum GatewaySetup {
    /// The files written.
    public struct Result: Sendable {
        /// The gateway CA certificate to install on devices.
        public var caCertificate: String
        /// The configuration file.
        public var configuration: String
    }

    /// Writes the gateway's CA, server identity and configuration into `directory`.
    ///
    /// - Parameters:
    ///   - directory: Where to write; created if missing. Existing files are never overwritten.
    ///   - hostname: The name (or IP address) devices connect to; it goes into the server certificate.
    /// - Throws: ``RampartError`` `conflict` if a file exists; `configurationInvalid` if writing fails.
    public static func initialize(directory: String, hostname: String, now: Date = Date()) throws -> Result {
        let url = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let names = ["gateway-ca.pem", "gateway-ca-key.pem", "server.pem", "server-key.pem", "gateway.toml"]
        for name in names where FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path) {
            throw RampartError.conflict(
                .conflict, "\(url.appendingPathComponent(name).path) exists; choose an empty directory (nothing is overwritten).")
        }
        let caKey = P256.Signing.PrivateKey()
        let ca = try CertificateIssuer.makeRootCA(
            subject: try DistinguishedName {
                OrganizationName("Rampart gateway")
                CommonName("Rampart gateway CA \(hostname)")
            }, key: caKey, notBefore: now, notAfter: now + 5 * 365 * 86400)
        let serverKey = P256.Signing.PrivateKey()
        let isIP = IPAddressText.isIPAddress(hostname)
        let server = try CertificateIssuer.issueLeaf(
            subject: try DistinguishedName {
                OrganizationName("Rampart gateway")
                CommonName(hostname)
            }, publicKey: serverKey.publicKey, issuer: ca, issuerKey: caKey, notBefore: now,
            notAfter: now + 397 * 86400,
            profile: .server(dnsNames: isIP ? [] : [hostname], ipAddresses: isIP ? [hostname] : []))
        let serverChain = try server.pemString + ca.pemString
        try SecureFile.write(try ca.pemString, to: url.appendingPathComponent("gateway-ca.pem"), mode: 0o644)
        try SecureFile.write(caKey.pemRepresentation + "\n", to: url.appendingPathComponent("gateway-ca-key.pem"))
        try SecureFile.write(serverChain, to: url.appendingPathComponent("server.pem"), mode: 0o644)
        try SecureFile.write(serverKey.pemRepresentation + "\n", to: url.appendingPathComponent("server-key.pem"))
        try SecureFile.write(template(hostname: hostname), to: url.appendingPathComponent("gateway.toml"), mode: 0o644)
        return Result(
            caCertificate: url.appendingPathComponent("gateway-ca.pem").path,
            configuration: url.appendingPathComponent("gateway.toml").path)
    }

    static func template(hostname: String) -> String {
        """
        # Rampart gateway configuration, made by `rampart gateway init --hostname \(hostname)`.
        # Paths are relative to this file. `rampart gateway run --config gateway.toml` reads it;
        # --listen and --trust-bundle override the values here.

        [listener]
        # Devices connect here with MQTT over mutual TLS. Their certificate must chain to a tenant CA,
        # and its CN must equal the MQTT client ID (the device ID).
        host = "0.0.0.0"
        port = 8883
        # The server certificate for \(hostname), signed by gateway-ca.pem. Install gateway-ca.pem on
        # the devices so that they trust this gateway. Keep gateway-ca-key.pem offline.
        certificate = "server.pem"
        private_key = "server-key.pem"

        [trust]
        # The tenant CAs that device certificates must chain to (PEM). Save them with
        # `rampart ca-certificate bundle --destination trust-bundle.pem`, or let the gateway refresh them from the server
        # (set [identity] and refresh_from_server = true) so that a CA rollover needs no one's hands.
        bundle = "trust-bundle.pem"
        refresh_from_server = false
        refresh_seconds = 3600

        # [identity]
        # The gateway is itself a Rampart device: its state directory holds its 24 h device certificate,
        # used towards the server and the upstream.
        # device_state = "/var/lib/rampart/device"
        # Its modules ({device_id}/{module}) receive BrokeredEndpoint routes; default: the device in device_state.
        # device_id = "<this gateway's device id>"
        # server = "https://rampart.example.com:8443"
        # tenant = "<tenant id>"

        [children]
        # "any": every device of the tenant. "registered": only devices registered with
        # `rampart device set-parent --device-id X --parent-id <this gateway's device id>`.
        policy = "any"
        # Downstream gateways whose messages may name the device they came from ($.cdid).
        # forwarders = ["<downstream gateway device id>"]
        # Without [identity] server, the registered children are listed here:
        # registered = ["<device id>"]

        [store]
        # Store and forward: a publish is acknowledged once it is on disk here. When max_bytes is
        # reached, new messages are refused (and counted), never dropped silently.
        directory = "store"
        max_bytes = 1073741824
        # How long a message may wait for the upstream; a negative TTL never expires.
        ttl_seconds = 7200

        # [upstream]
        # Without [upstream] this gateway is the hub. With it, routed messages go to another Rampart
        # gateway in the hub role, or any MQTT broker, over TLS with this client certificate.
        # url = "mqtts://hub.example.com:8883"
        # certificate = "/var/lib/rampart/device/certs/device.pem"
        # private_key = "/var/lib/rampart/device/certs/device-key.pem"
        # ca = "hub-ca.pem"
        # protocol_version = 4

        # Routes, in IoT Edge's language: FROM <source> [WHERE <condition>] INTO <sink>.
        # Sinks: $upstream, or BrokeredEndpoint("/modules/{module}/inputs/{input}").
        # priority: 0 (highest) to 9. ttl_seconds overrides [store] ttl_seconds.
        [[routes]]
        name = "upstream"
        query = "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream"
        priority = 0

        [metrics]
        # Prometheus metrics at http://host:port/metrics; port = 0 turns it off.
        host = "127.0.0.1"
        port = 9883

        """
    }
}

extension GatewayConfiguration {
    /// Settings for a gateway on this machine's loopback interface (a free port), in a directory `gateway init`
    /// made: its server certificate and key, `trustBundle` (the tenant's CA bundle) written there and refreshed
    /// from `server`, the store there, and the attested device in `deviceState` as its identity. The demo and
    /// the tests run their gateways with it.
    public static func loopback(
        directory: URL, server: String, tenant: String, deviceState: String, trustBundle: [UInt8]
    ) throws -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        configuration.listener.host = "127.0.0.1"
        configuration.listener.port = 0
        configuration.listener.certificate = directory.appendingPathComponent("server.pem").path
        configuration.listener.privateKey = directory.appendingPathComponent("server-key.pem").path
        configuration.trust.bundle = directory.appendingPathComponent("trust-bundle.pem").path
        try SecureFile.write(Data(trustBundle), to: URL(fileURLWithPath: configuration.trust.bundle), mode: 0o644)
        configuration.trust.refreshFromServer = true
        configuration.identity.server = server
        configuration.identity.tenant = tenant
        configuration.identity.deviceState = deviceState
        configuration.store.directory = directory.appendingPathComponent("store").path
        configuration.metrics.port = 0
        return configuration
    }
}
