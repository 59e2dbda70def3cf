import Foundation

/// Everything a gateway runs with. Every field has a default; ``GatewayConfiguration/load(file:)`` builds
/// one from `gateway.toml`, and command-line flags override it.
public struct GatewayConfiguration: Sendable {
    /// Where devices connect.
    public struct Listener: Sendable {
        /// The address to listen on.
        public var host = "0.0.0.0"
        /// The port; 8883 is MQTT over TLS.
        public var port = 8883
        /// The gateway's server certificate chain (PEM), signed by the gateway CA that devices trust.
        public var certificate = "server.pem"
        /// Its private key (PEM).
        public var privateKey = "server-key.pem"
    }

    /// Which client certificates are accepted: the tenant CAs.
    public struct Trust: Sendable {
        /// A PEM bundle of tenant CAs; with a server it is the cache of the last refresh.
        public var bundle = "trust-bundle.pem"
        /// Fetch the bundle from the Rampart server (with the gateway's device certificate) when true.
        public var refreshFromServer = false
        /// How often to refresh the bundle and the child list.
        public var refreshSeconds = 3600
    }

    /// The gateway's own identity as a Rampart device: its state directory holds the 24 h device
    /// certificate used towards the server and the upstream.
    public struct Identity: Sendable {
        /// The device state directory (`rampart device run --state`), if the gateway is a claimed device.
        public var deviceState: String?
        /// The Rampart server URL, for trust and child refreshes.
        public var server: String?
        /// The tenant the gateway and its children belong to.
        public var tenant: String?
        /// The gateway's own device ID; its modules (`{device_id}/{module}`) receive `BrokeredEndpoint`
        /// routes. By default the ID of the device in `deviceState`.
        public var deviceID: String?
    }

    /// Downstream gateways allowed to name the device a message came from (`$.cdid`).
    public var forwarders: [String] = []
    /// With `children = registered` and no server to ask: the devices admitted.
    public var registeredChildren: [String] = []

    /// Which devices may connect.
    public enum ChildPolicy: String, Sendable {
        /// Any device whose certificate chains to the tenant CAs.
        case any
        /// Only devices registered as this gateway's children (`device set-parent`).
        case registered
    }

    /// Store and forward.
    public struct Store: Sendable {
        /// The queue directory.
        public var directory = "store"
        /// The most bytes the queues may hold.
        public var maximumBytes = 1 << 30
        /// The TTL for routes that name none; negative never expires.
        public var defaultTimeToLiveSeconds = 7200
    }

    /// The upstream: another gateway in the hub role, or any MQTT broker.
    public struct Upstream: Sendable {
        /// `mqtts://host:port`.
        public var url: String
        /// The client certificate (PEM); by default the gateway's device certificate.
        public var certificate: String?
        /// Its key (PEM).
        public var privateKey: String?
        /// The CAs that sign the upstream's server certificate (PEM).
        public var ca: String?
        /// The MQTT client ID; by default the certificate's CN.
        public var clientID: String?
        /// The MQTT protocol version: 4 (3.1.1) or 5.
        public var protocolVersion = 4
        /// Messages sent before waiting for acknowledgements.
        public var inFlight = 256

        /// An upstream at `url` with the defaults.
        public init(url: String) { self.url = url }
    }

    /// One configured route.
    public struct Route: Sendable {
        /// The route's name.
        public var name: String
        /// `FROM … [WHERE …] INTO …`.
        public var query: String
        /// 0 (highest) to 9.
        public var priority = 0
        /// Overrides the store's default TTL.
        public var timeToLiveSeconds: Int?
        /// Where in the file it was written, for error messages.
        public var line = 0
    }

    /// The `/metrics` listener.
    public struct Metrics: Sendable {
        /// The address.
        public var host = "127.0.0.1"
        /// The port; 0 turns the listener off.
        public var port = 9883
    }

    public var listener = Listener()
    public var trust = Trust()
    public var identity = Identity()
    public var children = ChildPolicy.any
    public var store = Store()
    public var upstream: Upstream?
    public var routes: [Route] = [
        Route(name: "upstream", query: "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream")
    ]
    public var metrics = Metrics()

    /// Default settings.
    public init() {}
}
