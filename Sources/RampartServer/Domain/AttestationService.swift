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
    /// use is enforced when it is spent (``spend(_:deviceID:now:)``).
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

    /// What spending a nonce found.
    enum NonceCheck {
        case fresh, unknown, expired, replayed
    }

    /// Checks a nonce's HMAC and expiry, then marks it used (a write that fails if it was used before).
    func spend(_ nonce: String, deviceID: String, now: Date) async throws -> NonceCheck {
        guard let bytes = Base64URL.decode(nonce).map(Array.init), bytes.count == 40,
            Base64URL.encode(bytes) == nonce  // one spelling per nonce, so single use cannot be sidestepped
        else { return .unknown }
        let expected = Self.tag(Array(bytes[0..<24]), deviceID: deviceID, key: nonceKey)
        guard zip(expected, bytes[24..<40]).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else { return .unknown }
        let seconds = bytes[16..<24].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let expiry = Date(timeIntervalSince1970: Double(seconds))
        guard expiry > now else { return .expired }
        let firstUse = try await context.store.transaction { session in
            try await session.spendNonce(nonce, deviceID: deviceID, expiresAt: expiry, at: now)
        }
        return firstUse ? .fresh : .replayed
    }

    /// Appraises evidence and, if it passes, issues the device certificate.
    ///
    /// - Throws: ``RampartError`` with a refusal code from ``AttestationRefusal``.
    public func attest(_ evidence: String) async throws -> AttestationResult {
        let now = context.clock.now()
        let parsed = try EvidenceToken.parse(evidence)
        let claims = parsed.claims
        let deviceID = claims.ueid

        var refusal: RampartError?
        func refuse(_ code: RampartError.Code, _ message: String) {
            if refusal == nil { refusal = AttestationRefusal.error(code, message) }
        }

        switch try await spend(claims.eat_nonce, deviceID: deviceID, now: now) {
        case .unknown:
            refuse(AttestationRefusal.nonceUnknown, "The nonce was not issued by this server to this device. Request a new challenge.")
        case .replayed:
            refuse(AttestationRefusal.nonceReplayed, "The nonce was already used. Every attestation needs a fresh challenge.")
        case .expired:
            refuse(AttestationRefusal.nonceExpired, "The nonce expired; answer a challenge within a minute.")
        case .fresh:
            break
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
        let device = try await context.store.read { session in try await session.device(id: deviceID) }
        let tenant = device?.tenantID
        if tenant == nil {
            refuse(AttestationRefusal.notClaimed, "The device is not claimed by any tenant. Claim it with 'rampart device claim'.")
        }
        var deviceGroup: RampartID?
        if refusal == nil, let tenant {
            let (references, accepted, group) = try await context.store.read { session in
                (try await session.referenceValues(ofTenant: tenant),
                 try await repository.acceptedTargets(tenant: tenant, deviceID: deviceID, now: now, session: session),
                 try await session.deviceGroupID(ofDevice: deviceID))
            }
            deviceGroup = group
            // Runtime and app measurements must match a target TUF lists for this device (its group's
            // deployment, the previous one during the rollout grace period, or its feed's runtime releases).
            // A runtime may also match the tenant's manual allow list ('tenant runtime-allow'), which admits
            // builds before they are published. Configuration is device-specific: it is recorded for the
            // owner to inspect, not appraised.
            for measurement in claims.measurements where measurement.kind != .config {
                let listed = accepted.contains { target in
                    guard case .string(let digest)? = target.custom?["payloadSha256"], case .string(let version)? = target.custom?["version"],
                        case .string(let kind)? = target.custom?["kind"], case .string(let component)? = target.custom?["componentId"]
                    else { return false }
                    return digest == measurement.sha256 && version == measurement.version
                        && (measurement.kind == .runtime ? kind == "runtime" : kind == "app" && component == measurement.component)
                }
                let revokedDigest = references.contains { $0.sha256 == measurement.sha256 && $0.revokedAt != nil }
                if listed && !revokedDigest { continue }
                if measurement.kind == .app {
                    refuse(AttestationRefusal.measurementUnknown(measurement.component),
                           "App \(measurement.component) \(measurement.version) is not in this device's deployment.")
                    break
                }
                guard let reference = references.first(where: { $0.sha256 == measurement.sha256 }),
                    reference.version == measurement.version
                else {
                    refuse(AttestationRefusal.measurementUnknown(measurement.component),
                           "\(measurement.component) \(measurement.version) (sha256 \(measurement.sha256)) is neither a runtime release of this device's feed nor in the tenant's runtime allow list.")
                    break
                }
                if reference.revokedAt != nil {
                    refuse(AttestationRefusal.measurementRevoked(measurement.component),
                           "\(measurement.component) \(measurement.version) was revoked; update the device.")
                    break
                }
            }
        }

        var result: AttestationResult?
        if refusal == nil, let tenant, let freshKey = claims.cnf.jwk.publicKey {
            let issued = try await certificateAuthority.issueDeviceCertificate(
                tenant: tenant, deviceID: deviceID, publicKey: freshKey)
            result = AttestationResult(
                certificateChain: [try issued.certificate.pemString, try issued.issuer.pemString],
                notAfter: issued.certificate.notValidAfter, tenantId: tenant, productId: nil, deviceGroupId: deviceGroup,
                repositoryURL: "/v1/tuf/\(tenant)/", nextAttestationAfter: now + context.configuration.limits.attestationInterval)
        }

        // A nonce refusal may be an old token replayed by anyone who saw it: it must not change what the
        // server records about the device.
        let nonceRefused = [AttestationRefusal.nonceUnknown, AttestationRefusal.nonceReplayed, AttestationRefusal.nonceExpired]
            .contains { $0 == refusal?.code }
        if authentic && endorsed && !nonceRefused {
            let outcome = AttestationOutcome(
                deviceID: deviceID, time: now, result: refusal?.code.rawValue ?? "success",
                hardwareModel: claims.hwmodel, softwareName: claims.swname, softwareVersion: claims.swversion,
                measurements: String(decoding: try JSONCoding.encoder().encode(claims.measurements), as: UTF8.self),
                certificateNotAfter: result?.notAfter)
            let failure = refusal
            try await context.store.transaction { session in
                try await session.recordAttestation(outcome)
                if let failure, let tenant {
                    try await session.recordErrorEvent(
                        tenant: tenant, deviceID: deviceID, type: "DeviceAttestationFailure", eventClass: "Attestation",
                        description: failure.code.rawValue, at: now)
                }
            }
        }
        if let refusal { throw refusal }
        guard let result else {
            throw RampartError(.internalError, "Attestation produced neither a refusal nor a certificate.", status: 500)
        }
        return result
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
