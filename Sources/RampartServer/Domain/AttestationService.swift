import Crypto
import Foundation
import RampartAttestation
import RampartCore
import RampartPKI
import RampartStore
import RampartTUF
import Synchronization
import SwiftASN1
import X509

/// Daily attestation: a single-use challenge, then evidence appraised in a fixed order (nonce, signature,
/// endorsement chain, claim, measurements) and, when all pass, a 24 h device certificate from the tenant CA.
///
/// Every refusal carries a stable code. When the device's identity is proven (its signature verifies under
/// an endorsed key) the outcome is recorded on the device and, for a claimed device, in its tenant's error
/// report; refusals whose origin cannot be proven are not attributed to any device.
public struct AttestationService: Sendable {
    let context: DomainContext
    let certificateAuthority: TenantCAService
    let repository: TUFRepositoryService
    let manufacturerRoots: [Certificate]
    private let endorsementCache: EndorsementCache
    private let appraisals = AppraisalCache()
    private let nonceKey: SymmetricKey

    /// Creates the service.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when a manufacturer root does not parse.
    public init(context: DomainContext, certificateAuthority: TenantCAService) throws {
        self.context = context
        self.certificateAuthority = certificateAuthority
        repository = TUFRepositoryService(context: context)
        manufacturerRoots = try context.configuration.manufacturerRoots.flatMap { pem in
            do {
                return try Certificate.parseBundle(pem: pem)
            } catch {
                throw RampartError(.configurationInvalid, "A manufacturer root is not a PEM certificate: \(error)")
            }
        }
        endorsementCache = EndorsementCache()
        nonceKey = context.sealer.derivedKey(purpose: "attestation-nonce")
    }

    /// Issues a single-use nonce to a device, valid for a minute.
    ///
    /// The nonce is stateless: 16 random bytes, the expiry, and an HMAC binding both to the device ID under a
    /// key derived from the master key, so issuing one writes nothing and any replica can check it. Single
    /// use is enforced when it is spent, in the transaction that records the outcome (``attest(_:)``).
    public func challenge(deviceID rawID: String) async throws -> AttestationChallenge {
        let deviceID = try DeviceID.validated(rawID)
        let expiry = context.clock.now() + context.configuration.limits.attestationNonceLifetime
        let random = SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
        let seconds = UInt64(expiry.timeIntervalSince1970.rounded(.up))
        let body = random + (0..<8).map { UInt8(truncatingIfNeeded: seconds >> (56 - 8 * $0)) }
        let nonce = Base64URL.encode(body + Self.tag(body, deviceID: deviceID, key: nonceKey))
        return AttestationChallenge(nonce: nonce, expiresAt: Date(timeIntervalSince1970: Double(seconds)))
    }

    static func tag(_ body: [UInt8], deviceID: String, key: SymmetricKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: body + Array(deviceID.utf8), using: key)).prefix(16).map { $0 }
    }

    /// What a nonce's own bytes say, before it is spent.
    enum NonceCheck: Equatable {
        /// Issued by this server to this device, and not expired.
        case valid(expiry: Date)
        case unknown, expired
    }

    /// Checks a nonce's HMAC and expiry. Single use is enforced when the outcome is recorded.
    func check(_ nonce: String, deviceID: String, now: Date) -> NonceCheck {
        guard let bytes = Base64URL.decode(nonce).map(Array.init), bytes.count == 40,
            Base64URL.encode(bytes) == nonce  // one spelling per nonce, so single use cannot be sidestepped
        else { return .unknown }
        let expected = Self.tag(Array(bytes[0..<24]), deviceID: deviceID, key: nonceKey)
        guard zip(expected, bytes[24..<40]).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else { return .unknown }
        let seconds = bytes[16..<24].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let expiry = Date(timeIntervalSince1970: Double(seconds))
        return expiry > now ? .valid(expiry: expiry) : .expired
    }

    /// Appraises evidence and, if it passes, issues the device certificate.
    ///
    /// The checks run in a fixed order and the first that fails names the refusal. When the tenant's
    /// appraisal basis is cached, the database is met twice: one query for the device (its tenant, group,
    /// the tenant's appraisal version, and whether the nonce was spent already), and one transaction, shared
    /// with concurrent attestations by group commit, that spends the nonce and records the outcome together.
    /// A certificate is handed out only once that transaction has committed with the nonce spent, so a replay
    /// gets nothing even when it raced the first use.
    ///
    /// - Throws: ``RampartError`` with a refusal code from ``AttestationRefusal``.
    public func attest(_ evidence: String) async throws -> AttestationResult {
        let now = context.clock.now()
        let parsed = try EvidenceToken.parse(evidence)
        let claims = parsed.claims
        let deviceID = claims.ueid

        let nonceExpiry: Date
        switch check(claims.eat_nonce, deviceID: deviceID, now: now) {
        case .unknown:
            throw AttestationRefusal.error(
                AttestationRefusal.nonceUnknown, "The nonce was not issued by this server to this device. Request a new challenge.")
        case .expired:
            throw AttestationRefusal.error(AttestationRefusal.nonceExpired, "The nonce expired; answer a challenge within a minute.")
        case .valid(let expiry):
            nonceExpiry = expiry
        }

        var refusal: RampartError?
        func refuse(_ code: RampartError.Code, _ message: String) {
            if refusal == nil { refusal = AttestationRefusal.error(code, message) }
        }
        let authentic = parsed.signatureVerifies()
        if !authentic {
            refuse(AttestationRefusal.signatureInvalid, "The evidence signature does not verify with the endorsed identity key.")
        }
        let endorsed = await endorsementIsTrusted(parsed.chain, deviceID: deviceID)
        if !endorsed {
            refuse(AttestationRefusal.endorsementUntrusted,
                   "The identity key's endorsement does not chain to a trusted manufacturer root, or is not for this device.")
        }
        let subject = try await context.store.read { session in
            try await session.attestationSubject(deviceID: deviceID, nonce: claims.eat_nonce)
        }
        // A replay of a spent nonce is refused before it costs an appraisal and a signature; one racing the
        // first use is caught when the nonce is spent below.
        if subject?.nonceSpent == true { throw Self.replayed }
        let tenant = subject?.tenantID
        if tenant == nil {
            refuse(AttestationRefusal.notClaimed, "The device is not claimed by any tenant. Claim it with 'rampart device claim'.")
        }
        if refusal == nil, let subject, let tenant {
            let basis = try await appraisalBasis(tenant: tenant, subject: subject, now: now)
            // Sideloaded apps are accepted only from a device the tenant put in development mode that also
            // reports its debug state enabled (EAT dbgstat 0): both sides must agree it is a development device.
            let development = subject.developmentMode && claims.dbgstat == 0
            if let (code, message) = basis.appraise(claims.measurements, acceptingUnlistedApps: development) { refuse(code, message) }
        }

        var result: AttestationResult?
        if refusal == nil, let tenant, let freshKey = claims.cnf.jwk.publicKey {
            let issued = try await certificateAuthority.issueDeviceCertificate(
                tenant: tenant, deviceID: deviceID, publicKey: freshKey)
            result = AttestationResult(
                certificateChain: issued.chain,
                notAfter: issued.certificate.notValidAfter, tenantId: tenant, productId: nil,
                deviceGroupId: subject?.deviceGroupID, repositoryURL: "/v1/tuf/\(tenant)/",
                nextAttestationAfter: now + context.configuration.limits.attestationInterval)
        }

        // Only a device whose identity is proven changes what the server records about it. The nonce is spent
        // in the same transaction: a replay (an old token sent by anyone who saw it) records nothing.
        var outcome: AttestationOutcome?
        if authentic && endorsed {
            outcome = AttestationOutcome(
                deviceID: deviceID, time: now, result: refusal?.code.rawValue ?? "success",
                hardwareModel: claims.hwmodel, softwareName: claims.swname, softwareVersion: claims.swversion,
                measurements: String(decoding: try JSONCoding.encoder().encode(claims.measurements), as: UTF8.self),
                certificateNotAfter: result?.notAfter)
        }
        let failure = refusal
        let firstUse = try await context.store.transaction { [outcome] session in
            guard try await session.spendNonce(claims.eat_nonce, deviceID: deviceID, expiresAt: nonceExpiry, at: now) else {
                return false
            }
            if let outcome {
                try await session.recordAttestation(outcome)
                if let failure, let tenant {
                    try await session.recordErrorEvent(
                        tenant: tenant, deviceID: deviceID, type: "DeviceAttestationFailure", eventClass: "Attestation",
                        description: failure.code.rawValue, at: now)
                }
            }
            return true
        }
        guard firstUse else { throw Self.replayed }
        if let refusal { throw refusal }
        guard let result else {
            throw RampartError(.internalError, "Attestation produced neither a refusal nor a certificate.", status: 500)
        }
        return result
    }

    static var replayed: RampartError {
        AttestationRefusal.error(AttestationRefusal.nonceReplayed, "The nonce was already used. Every attestation needs a fresh challenge.")
    }

    /// What `tenant`'s devices in the subject's group are appraised against. It is read from the database
    /// once per appraisal version of the tenant (a trigger bumps it on every change to what it depends on),
    /// so a revocation or a new deployment takes effect with the next attestation, on every replica.
    func appraisalBasis(tenant: RampartID, subject: AttestationSubject, now: Date) async throws -> AppraisalBasis {
        let key = AppraisalCache.Key(tenant: tenant, group: subject.deviceGroupID)
        if let cached = appraisals.lookup(key, version: subject.appraisalVersion, at: now) { return cached }
        let basis = try await context.store.read { session in
            AppraisalBasis(
                references: try await session.referenceValues(ofTenant: tenant),
                accepted: try await repository.acceptedTargets(tenant: tenant, group: subject.deviceGroupID, now: now, session: session))
        }
        // Stored under the version read before it: if the data changed meanwhile, the next device sees a newer
        // version and reads again; a basis is never filed under a version newer than what it reflects.
        appraisals.store(key, version: subject.appraisalVersion, basis)
        return basis
    }

    /// Whether `chain` endorses `deviceID`'s identity key under a trusted manufacturer root. Verified chains are
    /// cached by their bytes, since every device presents the same one daily.
    func endorsementIsTrusted(_ chain: [Certificate], deviceID: String) async -> Bool {
        guard let leaf = chain.first, let key = P256.Signing.PublicKey(leaf.publicKey), DeviceID.of(key) == deviceID,
            leaf.subject.commonName == deviceID, !manufacturerRoots.isEmpty
        else { return false }
        let now = context.clock.now()
        guard let cacheKey = try? Hex.encode(SHA256.hash(data: chain.flatMap { try $0.derBytes })) else { return false }
        if endorsementCache.isValid(cacheKey, at: now) { return true }
        var verifier = Verifier(rootCertificates: CertificateStore(manufacturerRoots)) { RFC5280Policy(validationTime: now) }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(Array(chain.dropFirst())))
        guard case .validCertificate(let validated) = result else { return false }
        endorsementCache.store(cacheKey, until: validated.map(\.notValidAfter).min() ?? now)
        return true
    }
}

/// Verified endorsement chains, by SHA-256 of their bytes, until the earliest expiry in the chain.
final class EndorsementCache: Sendable {
    private let entries = Mutex<[String: Date]>([:])
    private let capacity = 200_000

    func isValid(_ key: String, at time: Date) -> Bool {
        entries.withLock { $0[key].map { $0 > time } ?? false }
    }

    func store(_ key: String, until expiry: Date) {
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = expiry
        }
    }
}

/// What a tenant accepts for the devices of one group: the TUF targets they may run and the tenant's runtime
/// allow list, indexed for appraisal.
struct AppraisalBasis: Sendable {
    /// A measurement as a target lists it (runtimes are matched without a component).
    struct Listed: Hashable, Sendable {
        var kind: SoftwareMeasurement.Kind
        var component: String
        var version: String
        var sha256: String
    }

    let listed: Set<Listed>
    /// The runtime allow list ('tenant runtime-allow'), by digest.
    let references: [String: ReferenceValueRecord]
    let accepted: AcceptedTargets

    init(references: [ReferenceValueRecord], accepted: AcceptedTargets) {
        self.references = Dictionary(references.map { ($0.sha256, $0) }, uniquingKeysWith: { first, _ in first })
        self.accepted = accepted
        listed = Set(accepted.targets.compactMap { target -> Listed? in
            guard case .string(let digest)? = target.custom?["payloadSha256"], case .string(let version)? = target.custom?["version"],
                case .string(let kind)? = target.custom?["kind"], case .string(let component)? = target.custom?["componentId"]
            else { return nil }
            switch kind {
            case "runtime": return Listed(kind: .runtime, component: "", version: version, sha256: digest)
            case "app": return Listed(kind: .app, component: component, version: version, sha256: digest)
            default: return nil
            }
        })
    }

    /// The first measurement this basis does not accept, as a refusal code and message; `nil` when all pass.
    ///
    /// Runtime and app measurements must match a target TUF lists for this device (its group's deployment,
    /// the previous one during the rollout grace period, or its feed's runtime releases). A runtime may also
    /// match the tenant's manual allow list, which admits builds before they are published. A revoked digest
    /// is refused either way. Configuration is device-specific: it is recorded for the owner to inspect, not
    /// appraised. With `acceptingUnlistedApps` (a device in development mode) any app that is not revoked
    /// passes: sideloaded apps are in no deployment.
    func appraise(_ measurements: [SoftwareMeasurement], acceptingUnlistedApps: Bool = false) -> (RampartError.Code, String)? {
        for measurement in measurements where measurement.kind != .config {
            let listed = listed.contains(Listed(
                kind: measurement.kind, component: measurement.kind == .runtime ? "" : measurement.component,
                version: measurement.version, sha256: measurement.sha256))
            let reference = references[measurement.sha256]
            let revoked = reference?.revokedAt != nil
            if listed && !revoked { continue }
            if measurement.kind == .app {
                if acceptingUnlistedApps && !revoked { continue }
                return (AttestationRefusal.measurementUnknown(measurement.component),
                        "App \(measurement.component) \(measurement.version) is not in this device's deployment.")
            }
            guard let reference, reference.version == measurement.version else {
                return (AttestationRefusal.measurementUnknown(measurement.component),
                        "\(measurement.component) \(measurement.version) (sha256 \(measurement.sha256)) is neither a runtime release of this device's feed nor in the tenant's runtime allow list.")
            }
            if revoked {
                return (AttestationRefusal.measurementRevoked(measurement.component),
                        "\(measurement.component) \(measurement.version) was revoked; update the device.")
            }
        }
        return nil
    }
}

/// Appraisal bases by tenant and group, each valid for one appraisal version of its tenant (and, during a
/// rollout, until the previous deployment's grace period ends), and for a minute at most: a version number
/// can come round again if the database goes back in time (a restored backup, a failover to a replica
/// that lagged), and a minute bounds what that could serve.
final class AppraisalCache: Sendable {
    struct Key: Hashable, Sendable {
        var tenant: RampartID
        var group: RampartID?
    }

    static let lifetime: Duration = .seconds(60)
    private let entries = Mutex<[Key: (version: Int64, basis: AppraisalBasis, until: ContinuousClock.Instant)]>([:])
    private let capacity = 10_000

    func lookup(_ key: Key, version: Int64, at time: Date) -> AppraisalBasis? {
        entries.withLock { entries in
            guard let entry = entries[key], entry.version == version, entry.until > .now, entry.basis.accepted.holds(at: time)
            else { return nil }
            return entry.basis
        }
    }

    func store(_ key: Key, version: Int64, _ basis: AppraisalBasis) {
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = (version, basis, .now + Self.lifetime)
        }
    }
}
