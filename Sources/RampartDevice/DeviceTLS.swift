import Crypto
import NIOSSL
import RampartCore
import RampartPKI
import X509

/// TLS settings of the device runtime's connections to the service.
public enum DeviceTLS {
    /// A client configuration that trusts `serverCAPEM` (or the system roots when `nil`) and, when given,
    /// presents the device certificate for mutual TLS.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` for an unreadable CA or certificate.
    public static func configuration(
        serverCAPEM: String?, certificate: (chain: [Certificate], key: P256.Signing.PrivateKey)? = nil
    ) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let serverCAPEM {
            guard let roots = try? NIOSSLCertificate.fromPEMBytes(Array(serverCAPEM.utf8)), !roots.isEmpty else {
                throw RampartError(.configurationInvalid, "The server CA is not a PEM certificate.")
            }
            tls.trustRoots = .certificates(roots)
        }
        if let certificate {
            do {
                tls.certificateChain = try certificate.chain.map { .certificate(try NIOSSLCertificate(bytes: try $0.derBytes, format: .der)) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(certificate.key.pemRepresentation.utf8), format: .pem))
            } catch {
                throw RampartError(.configurationInvalid, "The device certificate cannot be used for TLS: \(error).")
            }
        }
        return tls
    }
}
