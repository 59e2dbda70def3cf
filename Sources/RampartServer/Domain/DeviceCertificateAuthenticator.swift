import Foundation
import NIOCore
import NIOSSL
import RampartCore
import RampartStore
import SwiftASN1
import X509

/// Authenticates devices by the 24 h certificate they present in the TLS handshake (mutual TLS).
///
/// TLS proves possession of the certificate's key; this checks, per tenant, that the certificate chains to one
/// of the tenant's CAs that is neither revoked nor expired, is valid now, is for client authentication, and
/// names (CN) a device claimed by that tenant.
public struct DeviceCertificateAuthenticator: Sendable {
    let context: DomainContext

    public init(context: DomainContext) {
        self.context = context
    }

    /// The device behind the connection.
    ///
    /// - Throws: 401 `deviceCertificateRequired` without a certificate, 403 `deviceCertificateInvalid` with
    ///   the reason otherwise.
    public func authenticate(channel: any Channel, tenant: RampartID) async throws -> String {
        let presented: NIOSSLCertificate?
        do {
            presented = try await channel.nioSSL_peerCertificate().get()
        } catch {
            presented = nil
        }
        guard let presented else {
            throw RampartError(
                .deviceCertificateRequired,
                "This endpoint is for devices: present the device certificate from attestation (mutual TLS).", status: 401)
        }
        let leaf = try Certificate(derEncoded: try presented.toDERBytes())
        return try await authenticate(leaf, tenant: tenant)
    }

    /// Checks a presented device certificate for `tenant`.
    public func authenticate(_ leaf: Certificate, tenant: RampartID) async throws -> String {
        func refuse(_ reason: String) -> RampartError {
            RampartError(.deviceCertificateInvalid, reason, status: 403)
        }
        let now = context.clock.now()
        guard let deviceID = leaf.subject.commonName else { throw refuse("The certificate has no CommonName.") }
        guard let usage = try? leaf.extensions.extendedKeyUsage, usage.contains(.clientAuth) else {
            throw refuse("The certificate is not for client authentication.")
        }
        let (cas, device) = try await context.store.read { session in
            (try await session.cas(ofTenant: tenant), try await session.device(id: deviceID))
        }
        let roots = cas.filter { $0.revokedAt == nil && $0.notAfter > now }.compactMap {
            try? Certificate(derEncoded: $0.certificateDER)
        }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy(validationTime: now) }
        guard case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) else {
            throw refuse("The certificate does not chain to a current CA of this tenant, or it has expired. Attest again.")
        }
        guard device?.tenantID == tenant else { throw refuse("Device \(deviceID) is not claimed by this tenant.") }
        return deviceID
    }
}

extension RampartError.Code {
    /// A device endpoint was called without a client certificate.
    public static let deviceCertificateRequired: Self = "deviceCertificateRequired"
    /// The client certificate is not a current device certificate of the tenant.
    public static let deviceCertificateInvalid: Self = "deviceCertificateInvalid"
}
