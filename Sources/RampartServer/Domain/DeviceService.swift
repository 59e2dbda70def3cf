import Foundation
import RampartAttestation
import RampartCore
import RampartPKI
import RampartStore

/// Devices as a tenant manages them: claim, views, reference values for attestation, the error report, and
/// `doctor`'s plain-words diagnosis.
public struct DeviceService: Sendable {
    let context: DomainContext

    public init(context: DomainContext) { self.context = context }

    /// Claims a device for a tenant (Contributor or above). A device may be claimed before it was ever seen.
    ///
    /// - Throws: 409 `alreadyClaimed` when another tenant holds it, saying nothing about which.
    public func claim(_ rawID: String, tenant: RampartID, caller: UserRecord) async throws -> DeviceInfo {
        let deviceID = try DeviceID.validated(rawID)
        return try await context.audited(Actor(user: caller), tenant: tenant, action: "device.claim", target: deviceID) {
            session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            let holder = try await session.claimDevice(id: deviceID, tenant: tenant, at: context.clock.now())
            guard holder == tenant, let device = try await session.device(id: deviceID) else {
                throw RampartError.conflict("alreadyClaimed", "This device is already claimed by another tenant.")
            }
            return try await Self.info(device, tenant: tenant, session: session)
        }
    }

    /// The tenant's devices.
    public func list(tenant: RampartID, caller: UserRecord) async throws -> DeviceList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return DeviceList(devices: try await session.devices(ofTenant: tenant).map { Self.info($0, tenant: tenant) })
        }
    }

    /// One device of the tenant; 404 for a device the tenant does not hold.
    public func show(_ rawID: String, tenant: RampartID, caller: UserRecord) async throws -> DeviceInfo {
        let deviceID = try DeviceID.validated(rawID)
        return try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            guard let device = try await session.device(id: deviceID), device.tenantID == tenant else {
                throw RampartError.notFound("Device \(deviceID)")
            }
            return try await Self.info(device, tenant: tenant, session: session)
        }
    }

    /// A device with the link facts and data use of its last update report, when it sent them.
    static func info(_ device: DeviceRecord, tenant: RampartID, session: StoreSession) async throws -> DeviceInfo {
        var info = Self.info(device, tenant: tenant)
        // Stored reports were checked on the way in; one this build cannot read shows as no report.
        if let text = try await session.updateReport(deviceID: device.id),
            let report = try? JSONCoding.decoder().decode(UpdateReport.self, from: Data(text.utf8))
        {
            info.link = report.link
            info.dataUsage = report.dataUsage
            info.deviceDevelopmentMode = report.developmentMode
        }
        return info
    }

    static func info(_ device: DeviceRecord, tenant: RampartID) -> DeviceInfo {
        var info = DeviceInfo(
            id: device.id, tenantId: tenant, claimedAt: device.claimedAt, firstSeenAt: device.firstSeenAt,
            lastSeenAt: device.lastSeenAt, hardwareModel: device.hardwareModel, softwareVersion: device.softwareVersion,
            lastAttestationAt: device.lastAttestationAt, lastAttestationResult: device.lastResult,
            certificateNotAfter: device.certificateNotAfter, parentId: device.parentID, hub: device.hub)
        info.developmentSince = device.developmentSince
        return info
    }

    // MARK: Gateways

    /// Registers `parentID` as the gateway `rawID` connects through (Contributor or above); `nil` clears it.
    ///
    /// Both devices must be claimed by the tenant, and the chain of parents may not loop.
    /// - Throws: 404 for a device the tenant does not hold; 400 `invalidParent` for a loop.
    public func setParent(_ rawID: String, parent rawParent: String?, tenant: RampartID, caller: UserRecord) async throws
        -> DeviceInfo
    {
        let deviceID = try DeviceID.validated(rawID)
        let parentID = try rawParent.map(DeviceID.validated)
        return try await context.audited(
            Actor(user: caller), tenant: tenant, action: "device.set-parent", target: deviceID
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            guard var device = try await session.device(id: deviceID), device.tenantID == tenant else {
                throw RampartError.notFound("Device \(deviceID)")
            }
            if let parentID {
                var ancestor: String? = parentID
                var depth = 0
                while let current = ancestor {
                    guard current != deviceID, depth < 16 else {
                        throw RampartError(.invalidParent, "A device cannot be its own gateway, directly or through others.", status: 400)
                    }
                    guard let record = try await session.device(id: current), record.tenantID == tenant else {
                        throw RampartError.notFound("Device \(current)")
                    }
                    ancestor = record.parentID
                    depth += 1
                }
            }
            try await session.setParent(of: deviceID, to: parentID)
            device.parentID = parentID
            return try await Self.info(device, tenant: tenant, session: session)
        }
    }

    /// Makes a device a hub, which stores telemetry and fetches cloud-to-device messages for every device of
    /// the tenant, or an ordinary device again (Administrator: a hub speaks for the whole fleet).
    public func setHub(_ rawID: String, hub: Bool, tenant: RampartID, caller: UserRecord) async throws -> DeviceInfo {
        let deviceID = try DeviceID.validated(rawID)
        return try await context.audited(
            Actor(user: caller), tenant: tenant, action: hub ? "device.set-hub" : "device.clear-hub", target: deviceID
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            guard var device = try await session.device(id: deviceID), device.tenantID == tenant else {
                throw RampartError.notFound("Device \(deviceID)")
            }
            try await session.setHub(deviceID, hub)
            device.hub = hub
            return try await Self.info(device, tenant: tenant, session: session)
        }
    }

    /// The children registered to the gateway device `parentID` (the gateway asks with its own certificate).
    public func children(of parentID: String, tenant: RampartID) async throws -> ChildList {
        try await context.store.read { session in ChildList(children: try await session.children(of: parentID, tenant: tenant)) }
    }

    // MARK: Reference values

    /// The tenant's accepted and revoked runtime digests.
    public func referenceValues(tenant: RampartID, caller: UserRecord) async throws -> ReferenceValueList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return ReferenceValueList(referenceValues: try await session.referenceValues(ofTenant: tenant).map(Self.info))
        }
    }

    /// Accepts a runtime digest and version for attestation (Contributor or above).
    public func addReferenceValue(_ request: ReferenceValueRequest, tenant: RampartID, caller: UserRecord) async throws
        -> ReferenceValue
    {
        let digest = request.sha256.lowercased()
        guard digest.count == 64, digest.allSatisfy(\.isHexDigit) else {
            throw RampartError.invalidRequest("sha256 must be 64 hex characters.")
        }
        guard (1...64).contains(request.version.count), !request.version.contains(where: \.isNewline) else {
            throw RampartError.invalidRequest("version must be 1 to 64 characters.")
        }
        let description = request.description ?? ""
        guard description.count <= 200 else { throw RampartError.invalidRequest("description is at most 200 characters.") }
        return try await context.audited(
            Actor(user: caller), tenant: tenant, action: "referenceValue.add", target: "\(digest) \(request.version)"
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            let now = context.clock.now()
            try await session.upsertReferenceValue(
                ReferenceValueRecord(
                    id: RampartID(), tenantID: tenant, sha256: digest, version: request.version,
                    description: description, createdAt: now))
            guard let stored = try await session.referenceValues(ofTenant: tenant).first(where: { $0.sha256 == digest }) else {
                throw RampartError(.internalError, "The reference value was not stored.", status: 500)
            }
            return Self.info(stored)
        }
    }

    /// Revokes a digest: devices still running it are refused with `measurementRevoked` (Administrator).
    public func revokeReferenceValue(_ rawDigest: String, tenant: RampartID, caller: UserRecord) async throws {
        let digest = rawDigest.lowercased()
        try await context.audited(Actor(user: caller), tenant: tenant, action: "referenceValue.revoke", target: digest) {
            session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            guard try await session.revokeReferenceValue(tenant: tenant, sha256: digest, at: context.clock.now()) else {
                throw RampartError.notFound("Reference value \(digest.prefix(64))")
            }
        }
    }

    static func info(_ record: ReferenceValueRecord) -> ReferenceValue {
        ReferenceValue(
            sha256: record.sha256, version: record.version, description: record.description,
            status: record.revokedAt == nil ? "accepted" : "revoked", createdAt: record.createdAt)
    }

    // MARK: Doctor

    /// Explains in plain words why a device can or cannot get a certificate, and what to do about it.
    public func diagnose(_ rawID: String, tenant: RampartID, caller: UserRecord) async throws -> DeviceDiagnosis {
        let deviceID = try DeviceID.validated(rawID)
        let now = context.clock.now()
        let (device, references) = try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return (try await session.device(id: deviceID), try await session.referenceValues(ofTenant: tenant))
        }
        var findings: [DeviceDiagnosis.Finding] = []
        // A device held by another tenant looks exactly like one never seen: nothing about it is revealed.
        let visible = device.flatMap { $0.tenantID == nil || $0.tenantID == tenant ? $0 : nil }
        if visible?.tenantID != tenant {
            findings.append(.init(
                code: "notClaimed",
                explanation: "This device is not claimed by this tenant, so it cannot get a certificate from it.",
                remedy: "Claim it: rampart device claim --device-id \(deviceID). If that answers alreadyClaimed, another tenant holds it."))
        }
        guard let seen = visible, seen.lastAttestationAt != nil else {
            findings.append(.init(
                code: "neverSeen",
                explanation: "The security service has never received authentic attestation evidence from this device.",
                remedy: "Check that 'rampart device run' is running on it with the right --server URL, that it trusts the server's TLS certificate (--server-ca), and that it can reach the server. Its local status shows the last error: rampart device show-status --state-dir DIR."))
            return DeviceDiagnosis(deviceId: deviceID, healthy: false, findings: findings)
        }
        let result = seen.lastResult ?? "unknown"
        let measurements = (seen.measurements.flatMap { try? JSONCoding.decoder().decode([SoftwareMeasurement].self, from: Data($0.utf8)) }) ?? []
        if result == "success" {
            if let notAfter = seen.certificateNotAfter, notAfter <= now {
                findings.append(.init(
                    code: "certificateExpired",
                    explanation: "The device's last certificate expired at \(Timestamp.format(notAfter)); it has not attested since.",
                    remedy: "The device attests every 20 hours and retries with backoff. Check that it is running and online."))
            }
        } else if !(result == AttestationRefusal.notClaimed.rawValue && seen.tenantID == tenant) {
            findings.append(Self.explain(result, measurements: measurements, references: references, deviceID: deviceID))
        } else {
            findings.append(.init(
                code: "claimedSinceLastAttempt",
                explanation: "The last attempt (\(Timestamp.format(seen.lastAttestationAt ?? now))) was refused because the device was not claimed yet; it is claimed now.",
                remedy: "Nothing: the device retries on its own within minutes. Restart 'rampart device run' to attest at once."))
        }
        let healthy = findings.allSatisfy { $0.code == "claimedSinceLastAttempt" } && seen.tenantID == tenant
        if healthy && findings.isEmpty {
            findings.append(.init(
                code: "ok",
                explanation: "The device attested successfully at \(Timestamp.format(seen.lastAttestationAt ?? now)); its certificate is valid until \(Timestamp.format(seen.certificateNotAfter ?? now)).",
                remedy: "Nothing to do."))
        }
        return DeviceDiagnosis(deviceId: deviceID, healthy: healthy, findings: findings)
    }

    static func explain(
        _ code: String, measurements: [SoftwareMeasurement], references: [ReferenceValueRecord], deviceID: String
    ) -> DeviceDiagnosis.Finding {
        if code.hasPrefix("measurementUnknown:") || code.hasPrefix("measurementRevoked:") {
            let component = String(code.split(separator: ":", maxSplits: 1).last ?? "")
            let measured = measurements.first { $0.component == component }
            let digest = measured?.sha256 ?? "<sha256>"
            let version = measured?.version ?? "<version>"
            if code.hasPrefix("measurementRevoked:") {
                return .init(
                    code: code,
                    explanation: "The device runs \(component) \(version) (sha256 \(digest)), which this tenant revoked.",
                    remedy: "Update the device to an accepted version, or accept this one again: rampart tenant runtime-allow add --digest \(digest) --version '\(version)'.")
            }
            return .init(
                code: code,
                explanation: "The device runs \(component) \(version) (sha256 \(digest)), which is not among this tenant's \(references.count) accepted reference values.",
                remedy: "If you trust this build, accept it: rampart tenant runtime-allow add --digest \(digest) --version '\(version)'.")
        }
        switch code {
        case AttestationRefusal.endorsementUntrusted.rawValue:
            return .init(
                code: code,
                explanation: "The device's identity is endorsed by a manufacturer CA this server does not trust.",
                remedy: "Give the server the manufacturer root: rampart server run --manufacturer-root manufacturer-ca.pem, or copy it into DATA_DIR/manufacturer-roots/.")
        case AttestationRefusal.signatureInvalid.rawValue:
            return .init(
                code: code,
                explanation: "Evidence claiming to be this device was signed by a key that is not its endorsed identity key.",
                remedy: "If the device was re-manufactured, claim its new ID. Otherwise someone may be impersonating it: check the audit log and the network.")
        case AttestationRefusal.nonceExpired.rawValue:
            return .init(
                code: code,
                explanation: "The device answered its challenge after the nonce expired (60 s).",
                remedy: "Usually a slow or interrupted link; the device retries with backoff. If it persists, check the link and the device's load.")
        case AttestationRefusal.nonceReplayed.rawValue, AttestationRefusal.nonceUnknown.rawValue:
            return .init(
                code: code,
                explanation: "Evidence from this device arrived with a nonce that was already used or never issued to it: a replay, or a proxy resending requests.",
                remedy: "The device retries with a fresh challenge. Repeated events suggest someone replays its traffic.")
        case AttestationRefusal.notClaimed.rawValue:
            return .init(
                code: code, explanation: "The device attested but was not claimed by any tenant.",
                remedy: "Claim it: rampart device claim --device-id \(deviceID).")
        default:
            return .init(code: code, explanation: "The last attestation was refused with \(code).", remedy: "See the error report: rampart tenant download-error-report.")
        }
    }
}
