import Foundation
import RampartCore
import SQLKit

/// A device row: claim, what it last reported, and how its last attestation went.
public struct DeviceRecord: Sendable, Equatable {
    public var id: String
    public var tenantID: RampartID?
    public var claimedAt: Date?
    public var firstSeenAt: Date?
    public var lastSeenAt: Date?
    public var hardwareModel: String?
    public var softwareName: String?
    public var softwareVersion: String?
    public var lastAttestationAt: Date?
    /// `success`, or the refusal code.
    public var lastResult: String?
    public var certificateNotAfter: Date?
    /// The last measurements, as JSON.
    public var measurements: String?
    /// The gateway this device connects through (`device set-parent`).
    public var parentID: String?
    /// A hub acts for every device of its tenant (`device set-hub`).
    public var hub: Bool = false
}

/// What an attestation attempt by an authentic device leaves on its row.
public struct AttestationOutcome: Sendable {
    public var deviceID: String
    public var time: Date
    public var result: String
    public var hardwareModel: String
    public var softwareName: String
    public var softwareVersion: String
    public var measurements: String
    public var certificateNotAfter: Date?
    public init(
        deviceID: String, time: Date, result: String, hardwareModel: String, softwareName: String,
        softwareVersion: String, measurements: String, certificateNotAfter: Date?
    ) {
        self.deviceID = deviceID
        self.time = time
        self.result = result
        self.hardwareModel = hardwareModel
        self.softwareName = softwareName
        self.softwareVersion = softwareVersion
        self.measurements = measurements
        self.certificateNotAfter = certificateNotAfter
    }
}

/// An accepted (or revoked) runtime digest of a tenant.
public struct ReferenceValueRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var sha256: String
    public var version: String
    public var description: String
    public var createdAt: Date
    public var revokedAt: Date?
    public init(
        id: RampartID, tenantID: RampartID, sha256: String, version: String, description: String, createdAt: Date,
        revokedAt: Date? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.sha256 = sha256
        self.version = version
        self.description = description
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// One row of the error report: identical events folded into a count with first and last times.
public struct ErrorEventRecord: Sendable, Equatable {
    public var deviceID: String
    public var eventType: String
    public var eventClass: String
    public var description: String
    public var count: Int
    public var firstAt: Date
    public var lastAt: Date
    public init(
        deviceID: String, eventType: String, eventClass: String, description: String, count: Int, firstAt: Date,
        lastAt: Date
    ) {
        self.deviceID = deviceID
        self.eventType = eventType
        self.eventClass = eventClass
        self.description = description
        self.count = count
        self.firstAt = firstAt
        self.lastAt = lastAt
    }
}


extension StoreSession {
    // MARK: Devices

    /// A device by ID, whoever holds it.
    public func device(id: String) async throws -> DeviceRecord? {
        try await db.raw("SELECT * FROM devices WHERE id = \(bind: id)").first().map(Self.device)
    }

    /// The devices of a tenant.
    public func devices(ofTenant tenant: RampartID) async throws -> [DeviceRecord] {
        try await db.raw("SELECT * FROM devices WHERE tenant_id = \(bind: tenant.description) ORDER BY id").all()
            .map(Self.device)
    }

    /// Claims a device for `tenant`, whether or not it has been seen.
    ///
    /// - Returns: The tenant that holds the device afterwards: `tenant`, or whoever claimed it first.
    public func claimDevice(id: String, tenant: RampartID, at time: Date) async throws -> RampartID? {
        try await db.raw(
            """
            INSERT INTO devices (id, tenant_id, claimed_at) VALUES (\(bind: id), \(bind: tenant.description), \(bind: time.storeMillis))
            ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, claimed_at = excluded.claimed_at
            WHERE devices.tenant_id IS NULL
            """
        ).run()
        return try await device(id: id)?.tenantID
    }

    /// Records an attestation attempt by a device whose identity was proven.
    public func recordAttestation(_ outcome: AttestationOutcome) async throws {
        let time = outcome.time.storeMillis
        try await db.raw(
            """
            INSERT INTO devices (id, first_seen_at, last_seen_at, hwmodel, swname, swversion, last_attestation_at,
                                 last_result, certificate_not_after, measurements)
            VALUES (\(bind: outcome.deviceID), \(bind: time), \(bind: time), \(bind: outcome.hardwareModel),
                    \(bind: outcome.softwareName), \(bind: outcome.softwareVersion), \(bind: time), \(bind: outcome.result),
                    \(bind: outcome.certificateNotAfter?.storeMillis), \(bind: outcome.measurements))
            ON CONFLICT (id) DO UPDATE SET
                first_seen_at = COALESCE(devices.first_seen_at, excluded.first_seen_at),
                last_seen_at = excluded.last_seen_at, hwmodel = excluded.hwmodel, swname = excluded.swname,
                swversion = excluded.swversion, last_attestation_at = excluded.last_attestation_at,
                last_result = excluded.last_result,
                certificate_not_after = COALESCE(excluded.certificate_not_after, devices.certificate_not_after),
                measurements = excluded.measurements
            """
        ).run()
    }

    static func device(_ row: any SQLRow) throws -> DeviceRecord {
        DeviceRecord(
            id: try row.string("id"), tenantID: try row.optionalID("tenant_id"), claimedAt: try row.optionalDate("claimed_at"),
            firstSeenAt: try row.optionalDate("first_seen_at"), lastSeenAt: try row.optionalDate("last_seen_at"),
            hardwareModel: try row.optionalString("hwmodel"), softwareName: try row.optionalString("swname"),
            softwareVersion: try row.optionalString("swversion"),
            lastAttestationAt: try row.optionalDate("last_attestation_at"), lastResult: try row.optionalString("last_result"),
            certificateNotAfter: try row.optionalDate("certificate_not_after"),
            measurements: try row.optionalString("measurements"), parentID: try row.optionalString("parent_id"),
            hub: try row.decode(column: "hub", as: Int64.self) != 0)
    }

    // MARK: Parents

    /// Sets (or, with `nil`, clears) the gateway a device connects through.
    public func setParent(of deviceID: String, to parentID: String?) async throws {
        try await db.raw("UPDATE devices SET parent_id = \(bind: parentID) WHERE id = \(bind: deviceID)").run()
    }

    /// Makes a device a hub, or an ordinary device again.
    public func setHub(_ deviceID: String, _ hub: Bool) async throws {
        try await db.raw("UPDATE devices SET hub = \(bind: Int64(hub ? 1 : 0)) WHERE id = \(bind: deviceID)").run()
    }

    /// The devices of `tenant` registered as children of `parentID`.
    public func children(of parentID: String, tenant: RampartID) async throws -> [String] {
        try await db.raw(
            "SELECT id FROM devices WHERE parent_id = \(bind: parentID) AND tenant_id = \(bind: tenant.description) ORDER BY id"
        ).all().map { try $0.string("id") }
    }

    // MARK: Nonces

    /// Marks a nonce used.
    ///
    /// - Returns: `false` when it had been used before.
    public func spendNonce(_ nonce: String, deviceID: String, expiresAt: Date, at time: Date) async throws -> Bool {
        try await db.raw(
            """
            INSERT INTO attestation_nonces (nonce, device_id, expires_at, used_at)
            VALUES (\(bind: nonce), \(bind: deviceID), \(bind: expiresAt.storeMillis), \(bind: time.storeMillis))
            ON CONFLICT (nonce) DO NOTHING RETURNING nonce
            """
        ).first() != nil
    }

    /// Deletes nonces that expired before `time`.
    public func purgeNonces(before time: Date) async throws {
        try await db.raw("DELETE FROM attestation_nonces WHERE expires_at < \(bind: time.storeMillis)").run()
    }

    // MARK: Reference values

    /// Inserts an accepted runtime digest, or un-revokes and updates an existing one.
    public func upsertReferenceValue(_ value: ReferenceValueRecord) async throws {
        try await db.raw(
            """
            INSERT INTO reference_values (id, tenant_id, sha256, version, description, created_at)
            VALUES (\(bind: value.id.description), \(bind: value.tenantID.description), \(bind: value.sha256),
                    \(bind: value.version), \(bind: value.description), \(bind: value.createdAt.storeMillis))
            ON CONFLICT (tenant_id, sha256) DO UPDATE SET version = excluded.version,
                description = excluded.description, revoked_at = NULL
            """
        ).run()
    }

    /// Marks a digest revoked; devices still running it are refused with `measurementRevoked`.
    ///
    /// - Returns: Whether the digest was known.
    public func revokeReferenceValue(tenant: RampartID, sha256: String, at time: Date) async throws -> Bool {
        try await db.raw(
            """
            UPDATE reference_values SET revoked_at = \(bind: time.storeMillis)
            WHERE tenant_id = \(bind: tenant.description) AND sha256 = \(bind: sha256) RETURNING id
            """
        ).first() != nil
    }

    /// A tenant's reference values.
    public func referenceValues(ofTenant tenant: RampartID) async throws -> [ReferenceValueRecord] {
        try await db.raw(
            "SELECT * FROM reference_values WHERE tenant_id = \(bind: tenant.description) ORDER BY created_at, sha256"
        ).all().map { row in
            ReferenceValueRecord(
                id: try row.id("id"), tenantID: try row.id("tenant_id"), sha256: try row.string("sha256"),
                version: try row.string("version"), description: try row.string("description"),
                createdAt: try row.date("created_at"), revokedAt: try row.optionalDate("revoked_at"))
        }
    }

    // MARK: Error events

    /// Adds one occurrence of an event, folding it into an identical earlier one.
    public func recordErrorEvent(
        tenant: RampartID, deviceID: String, type: String, eventClass: String, description: String, at time: Date
    ) async throws {
        try await db.raw(
            """
            INSERT INTO error_events (id, tenant_id, device_id, event_type, event_class, description, event_count,
                                      first_at, last_at)
            VALUES (\(bind: RampartID().description), \(bind: tenant.description), \(bind: deviceID), \(bind: type),
                    \(bind: eventClass), \(bind: description), 1, \(bind: time.storeMillis), \(bind: time.storeMillis))
            ON CONFLICT (tenant_id, device_id, event_type, event_class, description) DO UPDATE SET
                event_count = error_events.event_count + 1, last_at = excluded.last_at
            """
        ).run()
    }

    /// A tenant's error events, optionally for one device, most recent last.
    public func errorEvents(ofTenant tenant: RampartID, deviceID: String?) async throws -> [ErrorEventRecord] {
        let rows: [any SQLRow]
        if let deviceID {
            rows = try await db.raw(
                """
                SELECT * FROM error_events WHERE tenant_id = \(bind: tenant.description) AND device_id = \(bind: deviceID)
                ORDER BY last_at, id
                """
            ).all()
        } else {
            rows = try await db.raw(
                "SELECT * FROM error_events WHERE tenant_id = \(bind: tenant.description) ORDER BY last_at, id"
            ).all()
        }
        return try rows.map { row in
            ErrorEventRecord(
                deviceID: try row.string("device_id"), eventType: try row.string("event_type"),
                eventClass: try row.string("event_class"), description: try row.string("description"),
                count: Int(try row.decode(column: "event_count", as: Int64.self)), firstAt: try row.date("first_at"),
                lastAt: try row.date("last_at"))
        }
    }
}
