import Crypto
import Foundation
import RampartCore
import RampartPKI
import RampartStore
import SwiftASN1
import Synchronization
import X509

/// The tenant certificate authority: creation, rotation, revocation, downloads and proofs of possession.
///
/// Rotation follows Azure Sphere: each CA is valid two years; 90 days before the Active CA expires a
/// successor is created as Inactive, and 45 days later it becomes Active. Both are in the bundle meanwhile,
/// so relying parties that refresh the bundle never see a gap. The clock is injected, so tests move time.
public struct TenantCAService: Sendable {
    let context: DomainContext

    public init(context: DomainContext) { self.context = context }

    private var settings: ServerConfiguration.CertificateAuthoritySettings {
        context.configuration.certificateAuthority
    }

    /// Creates a CA for a tenant inside the caller's transaction.
    func createCA(tenant: RampartID, status: CAStatus, now: Date, activatesAt: Date, session: StoreSession)
        async throws -> CARecord
    {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Rampart")
            OrganizationalUnitName(tenant.description)
            CommonName("Rampart Tenant CA \(Self.compactTimestamp(now))")
        }
        let certificate = try CertificateIssuer.makeRootCA(
            subject: subject, key: key, notBefore: now, notAfter: now + settings.validity)
        let id = RampartID()
        let record = CARecord(
            id: id, tenantID: tenant, thumbprint: try certificate.sha256Thumbprint, subject: subject.description,
            certificateDER: try certificate.derBytes, sealedKey: try context.sealer.seal(key, owner: "ca:\(id)"),
            status: status, notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter,
            createdAt: now, activatesAt: activatesAt)
        try await session.insertCA(record)
        try await session.insertAuditEvent(
            AuditEvent(
                id: RampartID(), time: now, actor: "system", tenantId: tenant, action: "ca.create",
                target: "\(record.thumbprint) \(status.rawValue)", result: "success"))
        return record
    }

    /// Applies every rotation step that is due at the clock's time. Idempotent.
    ///
    /// - Returns: Whether anything changed.
    @discardableResult
    public func rotateIfDue(tenant: RampartID) async throws -> Bool {
        let now = context.clock.now()
        // A read first, so the common case (nothing due) takes no write lock.
        let cas = try await context.store.read { session in try await session.cas(ofTenant: tenant) }
        guard !cas.isEmpty, Self.nextStep(cas, now: now, settings: settings) != nil else { return false }
        return try await context.store.transaction { session in
            try await session.lockTenant(tenant)
            var changed = false
            // A clock that jumped far may make several steps due at once; each step strictly advances.
            for _ in 0..<4 {
                let current = try await session.cas(ofTenant: tenant)
                guard let step = Self.nextStep(current, now: now, settings: settings) else { break }
                try await apply(step, tenant: tenant, now: now, session: session)
                changed = true
            }
            return changed
        }
    }

    enum Step {
        case createActive(retiring: CARecord?)
        case createSuccessor
        case promote(CARecord, retiring: CARecord?)
    }

    static func nextStep(
        _ cas: [CARecord], now: Date, settings: ServerConfiguration.CertificateAuthoritySettings
    ) -> Step? {
        let usable = cas.filter { $0.status != .revoked && $0.notAfter > now }
        let active = cas.first { $0.status == .active }
        // A successor is newer than the Active CA. With no Active CA (revoked or lost), only the newest CA of
        // all may step up, so a retired predecessor never comes back.
        let newest = cas.max { $0.createdAt < $1.createdAt }
        let successor = usable.filter { candidate in
            guard candidate.status == .inactive else { return false }
            if let active { return candidate.createdAt > active.createdAt }
            return candidate.id == newest?.id
        }.max { $0.createdAt < $1.createdAt }
        guard let active, active.notAfter > now else {
            if let successor { return .promote(successor, retiring: active) }
            return .createActive(retiring: active)
        }
        if let successor {
            return now >= successor.activatesAt ? .promote(successor, retiring: active) : nil
        }
        return active.notAfter.timeIntervalSince(now) <= settings.successorLead ? .createSuccessor : nil
    }

    private func apply(_ step: Step, tenant: RampartID, now: Date, session: StoreSession) async throws {
        Self.issuers.remove(tenant)
        switch step {
        case .createActive(let retiring):
            if let retiring { try await session.setCAStatus(id: retiring.id, .inactive) }
            _ = try await createCA(tenant: tenant, status: .active, now: now, activatesAt: now, session: session)
        case .createSuccessor:
            _ = try await createCA(
                tenant: tenant, status: .inactive, now: now, activatesAt: now + settings.activationDelay,
                session: session)
        case .promote(let successor, let retiring):
            if let retiring { try await session.setCAStatus(id: retiring.id, .inactive) }
            try await session.setCAStatus(id: successor.id, .active)
            try await session.insertAuditEvent(
                AuditEvent(
                    id: RampartID(), time: now, actor: "system", tenantId: tenant, action: "ca.activate",
                    target: successor.thumbprint, result: "success"))
        }
    }

    /// Applies due rotation steps before answering a member, so that `active` always means the CA in force.
    /// Non-members get their 404 without causing any write.
    private func rotateIfDueForMember(tenant: RampartID, caller: UserRecord) async throws {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
        }
        try await rotateIfDue(tenant: tenant)
    }

    /// The tenant's CAs, newest first.
    public func list(tenant: RampartID, caller: UserRecord) async throws -> [CACertificateInfo] {
        try await rotateIfDueForMember(tenant: tenant, caller: caller)
        return try await context.store.read { session in try await session.cas(ofTenant: tenant) }.map(Self.info)
    }

    /// One CA by thumbprint, or the Active one for `active`.
    public func certificate(tenant: RampartID, thumbprint: String, caller: UserRecord) async throws -> Certificate {
        try await Certificate(derEncoded: record(tenant: tenant, thumbprint: thumbprint, caller: caller, .read).certificateDER)
    }

    /// Every CA that relying parties should trust: not revoked and not expired, as PEM.
    public func bundle(tenant: RampartID, caller: UserRecord) async throws -> String {
        try await rotateIfDueForMember(tenant: tenant, caller: caller)
        return try await relyingPartyBundle(tenant: tenant)
    }

    /// The same bundle for a relying party that is a device of the tenant (a gateway): every CA that is
    /// not revoked and not expired, successor included, so that a rollover needs no one's hands.
    public func relyingPartyBundle(tenant: RampartID) async throws -> String {
        let now = context.clock.now()
        let cas = try await context.store.read { session in try await session.cas(ofTenant: tenant) }
        return try cas.filter { $0.status != .revoked && $0.notAfter > now }
            .map { try Certificate(derEncoded: $0.certificateDER).pemString }.joined()
    }

    /// A certificate with CN = `code`, signed by the CA's key, proving possession to DPS or IoT Hub.
    public func proof(tenant: RampartID, thumbprint: String, code: String, caller: UserRecord) async throws
        -> Certificate
    {
        guard (1...64).contains(code.count),
            code.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw RampartError.invalidRequest("The verification code must be 1 to 64 letters, digits, '.', '-' or '_'.")
        }
        try await rotateIfDueForMember(tenant: tenant, caller: caller)
        return try await context.audited(
            Actor(user: caller), tenant: tenant, action: "ca.proof", target: "\(thumbprint) \(code)"
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            let record = try await Self.find(thumbprint, in: session.cas(ofTenant: tenant))
            let now = context.clock.now()
            guard record.status != .revoked, record.notAfter > now else {
                throw RampartError.conflict(
                    .conflict, "CA \(record.thumbprint) is \(record.status == .revoked ? "revoked" : "expired"); it signs nothing more.")
            }
            let ca = try Certificate(derEncoded: record.certificateDER)
            return try CertificateIssuer.issueLeaf(
                subject: try DistinguishedName { CommonName(code) }, publicKey: P256.Signing.PrivateKey().publicKey,
                issuer: ca, issuerKey: try context.sealer.open(record.sealedKey, owner: "ca:\(record.id)"),
                notBefore: now, notAfter: min(now + 24 * 3600, record.notAfter), profile: .plain)
        }
    }

    /// Issues a device certificate from the tenant's Active CA: CN = device ID, EKU clientAuth, exactly the
    /// configured lifetime, starting five minutes ago to absorb clock skew.
    ///
    /// - Returns: The certificate and the PEM chain to hand out: the certificate, then the CA that issued it.
    func issueDeviceCertificate(tenant: RampartID, deviceID: String, publicKey: P256.Signing.PublicKey) async throws
        -> (certificate: Certificate, chain: [String])
    {
        let now = context.clock.now()
        let issuer = try await activeIssuer(tenant: tenant, now: now)
        let start = now - CertificateIssuer.backdate
        let end = min(start + context.configuration.limits.deviceCertificateLifetime, issuer.notAfter)
        let certificate = try CertificateIssuer.issueLeaf(
            subject: try DistinguishedName { CommonName(deviceID) }, publicKey: publicKey, issuer: issuer.certificate,
            issuerKey: issuer.key, notBefore: start, notAfter: end, profile: .client, backdate: 0)
        return (certificate, [try certificate.pemString, issuer.pem])
    }

    /// Signs the `appDevelopment` capability of a device in development mode since `since`, with the Active CA:
    /// the one that issues the device's certificates, and so the one the device checks it against.
    func signDevelopmentCapability(tenant: RampartID, deviceID: String, since: Date) async throws -> String {
        let issuer = try await activeIssuer(tenant: tenant, now: context.clock.now())
        return try DevelopmentCapability(deviceId: deviceID, tenantId: tenant, issuedAt: since)
            .sign(issuer: issuer.certificate, key: issuer.key)
    }

    /// The tenant's Active CA, unsealed: from the cache, or read (rotating first if due) and cached.
    private func activeIssuer(tenant: RampartID, now: Date) async throws -> IssuerCache.Issuer {
        if let cached = Self.issuers.lookup(tenant, at: now) { return cached }
        try await rotateIfDue(tenant: tenant)
        let cas = try await context.store.read { session in try await session.cas(ofTenant: tenant) }
        let record = try Self.find("active", in: cas)
        let certificate = try Certificate(derEncoded: record.certificateDER)
        let issuer = IssuerCache.Issuer(
            certificate: certificate, pem: try certificate.pemString,
            key: try context.sealer.open(record.sealedKey, owner: "ca:\(record.id)"), notAfter: record.notAfter)
        Self.issuers.store(tenant, issuer, until: now + Self.issuerCacheLifetime)
        return issuer
    }

    /// How long the Active CA, unsealed, is reused for issuing device certificates. A revocation or rotation
    /// in this process takes effect at once; on other replicas within this time.
    static let issuerCacheLifetime: TimeInterval = 30
    /// Shared by every instance in the process, so that a revocation anywhere clears it.
    static let issuers = IssuerCache()

    /// Revokes a CA. Revoking the Active CA promotes a valid successor or creates a new Active CA at once.
    public func revoke(tenant: RampartID, thumbprint: String, caller: UserRecord) async throws -> CACertificateInfo {
        defer { Self.issuers.remove(tenant) }  // again after the commit, in case an issuance cached it meanwhile
        return try await context.audited(Actor(user: caller), tenant: tenant, action: "ca.revoke", target: thumbprint) {
            session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            try await session.lockTenant(tenant)
            Self.issuers.remove(tenant)
            let record = try await Self.find(thumbprint, in: session.cas(ofTenant: tenant))
            guard record.status != .revoked else {
                throw RampartError.conflict(.conflict, "CA \(record.thumbprint) is already revoked.")
            }
            let now = context.clock.now()
            try await session.setCAStatus(id: record.id, .revoked, revokedAt: now)
            if record.status == .active {
                // A valid successor steps up at once; otherwise a new Active CA is created.
                let remaining = try await session.cas(ofTenant: tenant)
                let step = Self.nextStep(remaining, now: now, settings: settings) ?? .createActive(retiring: nil)
                try await apply(step, tenant: tenant, now: now, session: session)
            }
            var revoked = record
            revoked.status = .revoked
            revoked.revokedAt = now
            return Self.info(revoked)
        }
    }

    private func record(tenant: RampartID, thumbprint: String, caller: UserRecord, _ permission: Permission)
        async throws -> CARecord
    {
        try await rotateIfDueForMember(tenant: tenant, caller: caller)
        return try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, permission, session: session)
            return try await Self.find(thumbprint, in: session.cas(ofTenant: tenant))
        }
    }

    static func find(_ thumbprint: String, in cas: [CARecord]) throws -> CARecord {
        let wanted = thumbprint.lowercased()
        let match = wanted == "active" ? cas.first { $0.status == .active } : cas.first { $0.thumbprint == wanted }
        guard let match else { throw RampartError.notFound("CA certificate \(thumbprint.prefix(64))") }
        return match
    }

    static func info(_ record: CARecord) -> CACertificateInfo {
        CACertificateInfo(
            thumbprint: record.thumbprint, status: record.status, subject: record.subject,
            notBefore: record.notBefore, notAfter: record.notAfter, createdAt: record.createdAt)
    }

    static func compactTimestamp(_ date: Date) -> String {
        Timestamp.format(date).replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
    }
}

/// The Active CA of each tenant, unsealed, for a short time: attestation issues a certificate per device per
/// day, and reading and unsealing the CA each time showed in the profile.
final class IssuerCache: Sendable {
    struct Issuer: Sendable {
        let certificate: Certificate
        /// The certificate as PEM, as every device certificate's chain carries it.
        let pem: String
        let key: P256.Signing.PrivateKey
        let notAfter: Date
    }

    private let entries = Mutex<[RampartID: (issuer: Issuer, until: Date)]>([:])

    func lookup(_ tenant: RampartID, at time: Date) -> Issuer? {
        entries.withLock { entries in
            guard let entry = entries[tenant], entry.until > time, entry.issuer.notAfter > time else { return nil }
            return entry.issuer
        }
    }

    func store(_ tenant: RampartID, _ issuer: Issuer, until: Date) {
        entries.withLock { entries in
            if entries.count > 100_000 { entries.removeAll(keepingCapacity: true) }
            entries[tenant] = (issuer, until)
        }
    }

    func remove(_ tenant: RampartID) {
        _ = entries.withLock { $0.removeValue(forKey: tenant) }
    }
}
