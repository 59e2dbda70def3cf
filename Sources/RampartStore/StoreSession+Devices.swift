import Foundation
import RampartCore
import SQLKit

/// A device as appraisal first sees it.
public struct AttestationSubject: Sendable, Equatable {
    /// The tenant that claimed the device, if any.
    public var tenantID: RampartID?
    /// The device group it is in, if any.
    public var deviceGroupID: RampartID?
    /// The tenant's appraisal version: it changes with every change to the tenant's runtime allow list,
    /// signing keys, device groups, images, deployments or runtime releases (migration 9's triggers).
    public var appraisalVersion: Int64
    /// Whether the nonce asked about was spent already.
    public var nonceSpent: Bool
    /// Whether the device is in development mode (`device enable-development`).
    public var developmentMode: Bool = false
}

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
    /// When the device was put in development mode; `nil` when it is not in it.
    public var developmentSince: Date?
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
///
/// Rows the server records itself (attestation refusals) fold on device, type, class and description. Rows a
/// device uploads are its own folds, one per upload key, stored once however often they are sent.
public struct ErrorEventRecord: Sendable, Equatable {
    public var deviceID: String
    public var eventType: String
    public var eventClass: String
    public var description: String
    public var count: Int
    public var firstAt: Date
    public var lastAt: Date
    /// The app the event is about; nil for the runtime or the device itself.
    public var componentID: String?
    public init(
        deviceID: String, eventType: String, eventClass: String, description: String, count: Int, firstAt: Date,
        lastAt: Date, componentID: String? = nil
    ) {
        self.deviceID = deviceID
        self.eventType = eventType
        self.eventClass = eventClass
        self.description = description
        self.count = count
        self.firstAt = firstAt
        self.lastAt = lastAt
        self.componentID = componentID
    }
}

/// Which error events to read; every field narrows, nil means any.
public struct ErrorEventFilter: Sendable, Equatable {
    public var deviceID: String?
    /// The event class exactly, e.g. `appTrap` or `Attestation`.
    public var eventClass: String?
    /// Events whose last occurrence is at or after this time.
    public var from: Date?
    /// Events whose first occurrence is before this time.
    public var to: Date?
    /// The newest this many (by last occurrence).
    public var limit: Int?
    public init(deviceID: String? = nil, eventClass: String? = nil, from: Date? = nil, to: Date? = nil, limit: Int? = nil) {
        self.deviceID = deviceID
        self.eventClass = eventClass
        self.from = from
        self.to = to
        self.limit = limit
    }
}

/// A folded event a device uploaded, as it is stored.
public struct UploadedErrorEvent: Sendable, Equatable {
    public var tenantID: RampartID
    public var deviceID: String
    /// The device's key for this fold, unique per device.
    public var key: String
    public var eventType: String
    public var eventClass: String
    public var componentID: String?
    public var description: String
    public var count: Int
    public var firstAt: Date
    public var lastAt: Date
    public var receivedAt: Date
    public init(
        tenantID: RampartID, deviceID: String, key: String, eventType: String, eventClass: String, componentID: String?,
        description: String, count: Int, firstAt: Date, lastAt: Date, receivedAt: Date
    ) {
        self.tenantID = tenantID
        self.deviceID = deviceID
        self.key = key
        self.eventType = eventType
        self.eventClass = eventClass
        self.componentID = componentID
        self.description = description
        self.count = count
        self.firstAt = firstAt
        self.lastAt = lastAt
        self.receivedAt = receivedAt
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

    /// What appraisal reads first about a device, in one query: the tenant that claimed it, its device
    /// group, that tenant's appraisal version, and whether `nonce` was spent already (see
    /// ``AttestationSubject``). `nil` for a device never seen.
    public func attestationSubject(deviceID: String, nonce: String) async throws -> AttestationSubject? {
        try await db.raw(
            """
            SELECT d.tenant_id, d.device_group_id, d.development_since, t.appraisal_version,
                   (SELECT COUNT(*) FROM attestation_nonces n WHERE n.nonce = \(bind: nonce)) AS spent
            FROM devices d LEFT JOIN tenants t ON t.id = d.tenant_id WHERE d.id = \(bind: deviceID)
            """
        ).first().map { row in
            AttestationSubject(
                tenantID: try row.optionalID("tenant_id"), deviceGroupID: try row.optionalID("device_group_id"),
                appraisalVersion: try row.decode(column: "appraisal_version", as: Int64?.self) ?? 0,
                nonceSpent: try row.decode(column: "spent", as: Int64.self) > 0,
                developmentMode: try row.optionalDate("development_since") != nil)
        }
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
            hub: try row.decode(column: "hub", as: Int64.self) != 0,
            developmentSince: try row.optionalDate("development_since"))
    }

    // MARK: Parents

    /// Sets (or, with `nil`, clears) the gateway a device connects through.
    public func setParent(of deviceID: String, to parentID: String?) async throws {
        try await db.raw("UPDATE devices SET parent_id = \(bind: parentID) WHERE id = \(bind: deviceID)").run()
    }

    /// Puts a device in development mode from `since`, or (with `nil`) takes it out.
    public func setDevelopmentMode(_ deviceID: String, since: Date?) async throws {
        try await db.raw("UPDATE devices SET development_since = \(bind: since?.storeMillis) WHERE id = \(bind: deviceID)").run()
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

    /// Adds one occurrence of an event the server itself observed, folding it into an identical earlier one.
    public func recordErrorEvent(
        tenant: RampartID, deviceID: String, type: String, eventClass: String, description: String, at time: Date
    ) async throws {
        try await db.raw(
            """
            INSERT INTO error_events (id, tenant_id, device_id, event_type, event_class, description, event_count,
                                      first_at, last_at, received_at)
            VALUES (\(bind: RampartID().description), \(bind: tenant.description), \(bind: deviceID), \(bind: type),
                    \(bind: eventClass), \(bind: description), 1, \(bind: time.storeMillis), \(bind: time.storeMillis),
                    \(bind: time.storeMillis))
            ON CONFLICT (tenant_id, device_id, event_type, event_class, description) WHERE upload_key IS NULL
            DO UPDATE SET event_count = error_events.event_count + 1, last_at = excluded.last_at,
                received_at = excluded.received_at
            """
        ).run()
    }

    /// Stores a device's folded event once per key.
    ///
    /// A key seen before is the same fold sent again, perhaps grown while its answer was lost: its count and
    /// times only ever widen (largest count, earliest first, latest last), so resending never double-counts.
    /// - Returns: `true` when the key was new.
    public func storeUploadedErrorEvent(_ event: UploadedErrorEvent) async throws -> Bool {
        let inserted = try await db.raw(
            """
            INSERT INTO error_events (id, tenant_id, device_id, event_type, event_class, component_id, description,
                                      event_count, first_at, last_at, upload_key, received_at)
            VALUES (\(bind: RampartID().description), \(bind: event.tenantID.description), \(bind: event.deviceID),
                    \(bind: event.eventType), \(bind: event.eventClass), \(bind: event.componentID), \(bind: event.description),
                    \(bind: Int64(event.count)), \(bind: event.firstAt.storeMillis), \(bind: event.lastAt.storeMillis),
                    \(bind: event.key), \(bind: event.receivedAt.storeMillis))
            ON CONFLICT (device_id, upload_key) DO NOTHING RETURNING id
            """
        ).first() != nil
        if inserted { return true }
        let count = Int64(event.count)
        let first = event.firstAt.storeMillis
        let last = event.lastAt.storeMillis
        let received = event.receivedAt.storeMillis
        try await db.raw(
            """
            UPDATE error_events SET
                event_count = CASE WHEN event_count < \(bind: count) THEN \(bind: count) ELSE event_count END,
                first_at = CASE WHEN first_at > \(bind: first) THEN \(bind: first) ELSE first_at END,
                last_at = CASE WHEN last_at < \(bind: last) THEN \(bind: last) ELSE last_at END,
                received_at = CASE WHEN received_at < \(bind: received) THEN \(bind: received) ELSE received_at END
            WHERE device_id = \(bind: event.deviceID) AND upload_key = \(bind: event.key)
                AND tenant_id = \(bind: event.tenantID.description)
            """
        ).run()
        return false
    }

    /// A tenant's error events, optionally for one device, most recent last.
    public func errorEvents(ofTenant tenant: RampartID, deviceID: String?) async throws -> [ErrorEventRecord] {
        try await errorEvents(ofTenant: tenant, ErrorEventFilter(deviceID: deviceID))
    }

    /// A tenant's error events that pass `filter`, most recent last (by last occurrence).
    public func errorEvents(ofTenant tenant: RampartID, _ filter: ErrorEventFilter) async throws -> [ErrorEventRecord] {
        var query = SQLQueryString("SELECT * FROM error_events WHERE tenant_id = \(bind: tenant.description)")
        if let deviceID = filter.deviceID {
            query.appendInterpolation(unsafeRaw: " AND device_id = ")
            query.appendInterpolation(bind: deviceID)
        }
        if let eventClass = filter.eventClass {
            query.appendInterpolation(unsafeRaw: " AND event_class = ")
            query.appendInterpolation(bind: eventClass)
        }
        if let from = filter.from {
            query.appendInterpolation(unsafeRaw: " AND last_at >= ")
            query.appendInterpolation(bind: from.storeMillis)
        }
        if let to = filter.to {
            query.appendInterpolation(unsafeRaw: " AND first_at < ")
            query.appendInterpolation(bind: to.storeMillis)
        }
        let rows: [any SQLRow]
        if let limit = filter.limit {
            // The newest `limit`, handed back oldest first like the whole report.
            query.appendInterpolation(unsafeRaw: " ORDER BY last_at DESC, id DESC LIMIT ")
            query.appendInterpolation(bind: Int64(limit))
            rows = try await db.raw(query).all().reversed()
        } else {
            query.appendInterpolation(unsafeRaw: " ORDER BY last_at, id")
            rows = try await db.raw(query).all()
        }
        return try rows.map { row in
            ErrorEventRecord(
                deviceID: try row.string("device_id"), eventType: try row.string("event_type"),
                eventClass: try row.string("event_class"), description: try row.string("description"),
                count: Int(try row.decode(column: "event_count", as: Int64.self)), firstAt: try row.date("first_at"),
                lastAt: try row.date("last_at"), componentID: try row.optionalString("component_id"))
        }
    }

    /// Deletes error events the server last heard of before `time` (retention). A row that keeps folding
    /// new occurrences stays.
    public func purgeErrorEvents(before time: Date) async throws {
        try await db.raw("DELETE FROM error_events WHERE received_at < \(bind: time.storeMillis)").run()
    }
}
