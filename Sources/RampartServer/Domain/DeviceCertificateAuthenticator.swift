import Crypto
import Foundation
import NIOCore
import NIOSSL
import RampartCore
import RampartPKI
import RampartStore
import SwiftASN1
import Synchronization
import X509

/// Authenticates devices by the 24 h certificate they present in the TLS handshake (mutual TLS).
///
/// TLS proves possession of the certificate's key; this checks, per tenant, that the certificate chains to one
/// of the tenant's CAs that is neither revoked nor expired, is valid now, is for client authentication, and
/// names (CN) a device claimed by that tenant.
public struct DeviceCertificateAuthenticator: Sendable {
    let context: DomainContext
    private let cache = AuthenticationCache()

    /// How long a successful check is reused: revoking a CA or moving a device out of the tenant takes
    /// effect within this time.
    static let cacheLifetime: TimeInterval = 60

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
        let der = try presented.toDERBytes()
        let key = CacheKey(tenant: tenant, certificate: Data(SHA256.hash(data: der)))
        let now = context.clock.now()
        if let deviceID = cache.lookup(key, at: now) { return deviceID }
        let leaf = try Certificate(derEncoded: der)
        let deviceID = try await authenticate(leaf, tenant: tenant)
        cache.store(key, deviceID: deviceID, until: min(leaf.notValidAfter, now + Self.cacheLifetime))
        return deviceID
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

struct CacheKey: Hashable {
    let tenant: RampartID
    let certificate: Data
}

/// Device certificates that passed, by tenant and certificate hash, so keep-alive polls do not verify the
/// chain and read the database on every request.
final class AuthenticationCache: Sendable {
    private let entries = Mutex<[CacheKey: (deviceID: String, until: Date)]>([:])
    private let capacity = 100_000

    func lookup(_ key: CacheKey, at time: Date) -> String? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            if entry.until > time { return entry.deviceID }
            entries[key] = nil
            return nil
        }
    }

    func store(_ key: CacheKey, deviceID: String, until: Date) {
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = (deviceID, until)
        }
    }
}
