import Foundation
import RampartCore
import RampartPKI
import RampartStore
import X509

/// Everything `rampart server run` needs, with defaults for all of it.
///
/// Reading flags, files and the environment is a separate layer (``DataDirectory`` and the CLI) that builds
/// this struct, as Hummingbird's `ApplicationConfiguration` is built.
public struct ServerConfiguration: Sendable {
    /// Where to listen.
    public var host: String = "127.0.0.1"
    /// The TCP port; 0 picks a free one.
    public var port: Int = 8443
    /// The TLS server certificate chain, PEM.
    public var tlsCertificatePEM: String = ""
    /// The TLS server key, PEM.
    public var tlsKeyPEM: String = ""
    /// Where data lives.
    public var store: StoreLocation = .sqlite(path: "rampart.sqlite")
    /// The master key that seals CA keys and signs session tokens (base64, 32 bytes).
    public var masterKey: String = ""
    /// Manufacturer roots (PEM) whose endorsements the server accepts at attestation.
    public var manufacturerRoots: [String] = []
    /// Limits and lifetimes.
    public var limits = Limits()
    /// Tenant CA lifecycle.
    public var certificateAuthority = CertificateAuthoritySettings()

    /// Creates a configuration with every default.
    public init() {}

    /// The last certificate of the TLS chain, PEM: the anchor that devices and clients trust for a
    /// development certificate.
    public var tlsTrustAnchorPEM: String {
        get throws {
            guard let anchor = try Certificate.parseBundle(pem: tlsCertificatePEM).last else {
                throw RampartError(.configurationInvalid, "The TLS certificate chain is empty.")
            }
            return try anchor.pemString
        }
    }

    /// Limits and lifetimes that protect the server.
    public struct Limits: Sendable {
        /// The largest JSON body accepted.
        public var maximumBodyBytes = 64 * 1024
        /// How long a session token lives (at most an hour).
        public var tokenLifetime: TimeInterval = 3600
        /// How long a login challenge may be answered.
        public var loginChallengeLifetime: TimeInterval = 60
        /// How long an invitation stays valid.
        public var invitationLifetime: TimeInterval = 7 * 24 * 3600
        /// How long an attestation nonce may be answered.
        public var attestationNonceLifetime: TimeInterval = 60
        /// How long a device certificate is valid.
        public var deviceCertificateLifetime: TimeInterval = 24 * 3600
        /// When a device should attest again after a success.
        public var attestationInterval: TimeInterval = 20 * 3600
        /// How long stored telemetry and cloud-to-device messages are kept (IoT Hub keeps up to 7 days).
        public var messageRetention: TimeInterval = 7 * 24 * 3600
        /// How long error-report rows are kept after the server last heard of them (an upload, or another
        /// occurrence folded in).
        public var errorEventRetention: TimeInterval = 30 * 24 * 3600
        public init() {}
    }

    /// The tenant CA lifecycle, as in Azure Sphere.
    public struct CertificateAuthoritySettings: Sendable {
        /// Validity of each tenant CA.
        public var validity: TimeInterval = 2 * 365 * 24 * 3600
        /// How long before expiry a successor is created.
        public var successorLead: TimeInterval = 90 * 24 * 3600
        /// How long after creation a successor becomes Active.
        public var activationDelay: TimeInterval = 45 * 24 * 3600
        /// How often the background job checks every tenant.
        public var checkInterval: Duration = .seconds(3600)
        public init() {}
    }
}
