import Foundation
import RampartCore
import SQLKit

/// A stored device-to-cloud message. Properties are JSON text, the payload base64, as the API carries them.
public struct DeviceMessageRecord: Sendable, Equatable {
    public var tenantID: RampartID
    public var deviceID: String
    public var sequence: Int64
    public var moduleID: String?
    public var gatewayID: String
    public var sourceKey: String
    public var enqueuedAt: Date
    public var receivedAt: Date
    public var properties: String
    public var systemProperties: String
    public var payload: String
    public init(
        tenantID: RampartID, deviceID: String, sequence: Int64, moduleID: String?, gatewayID: String, sourceKey: String,
        enqueuedAt: Date, receivedAt: Date, properties: String, systemProperties: String, payload: String
    ) {
        self.tenantID = tenantID
        self.deviceID = deviceID
        self.sequence = sequence
        self.moduleID = moduleID
        self.gatewayID = gatewayID
        self.sourceKey = sourceKey
        self.enqueuedAt = enqueuedAt
        self.receivedAt = receivedAt
        self.properties = properties
        self.systemProperties = systemProperties
        self.payload = payload
    }
}

/// A cloud-to-device message; delivered once `deliveredAt` is set.
public struct CloudMessageRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var deviceID: String
    public var properties: String
    public var payload: String
    public var createdAt: Date
    public var expiresAt: Date
    public var deliveredAt: Date?
    public var deliveredBy: String?
    public init(
        id: RampartID, tenantID: RampartID, deviceID: String, properties: String, payload: String, createdAt: Date,
        expiresAt: Date, deliveredAt: Date? = nil, deliveredBy: String? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.deviceID = deviceID
        self.properties = properties
        self.payload = payload
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.deliveredAt = deliveredAt
        self.deliveredBy = deliveredBy
    }
}

extension StoreSession {
    // MARK: Telemetry

    /// Whether `gatewayID` already handed over the message with this key.
    public func deviceMessageExists(tenant: RampartID, gatewayID: String, sourceKey: String) async throws -> Bool {
        try await db.raw(
            """
            SELECT 1 AS found FROM device_messages WHERE tenant_id = \(bind: tenant.description)
            AND gateway_id = \(bind: gatewayID) AND source_key = \(bind: sourceKey)
            """
        ).first() != nil
    }

    /// The last sequence given to one of the device's messages, 0 when there was none. It survives
    /// retention, so numbering never starts again.
    public func lastDeviceMessageSequence(tenant: RampartID, deviceID: String) async throws -> Int64 {
        let row = try await db.raw(
            """
            SELECT last_sequence FROM device_message_sequences
            WHERE tenant_id = \(bind: tenant.description) AND device_id = \(bind: deviceID)
            """
        ).first()
        return try row?.decode(column: "last_sequence", as: Int64.self) ?? 0
    }

    /// Records the last sequence given to one of the device's messages.
    public func setLastDeviceMessageSequence(tenant: RampartID, deviceID: String, _ sequence: Int64) async throws {
        try await db.raw(
            """
            INSERT INTO device_message_sequences (tenant_id, device_id, last_sequence)
            VALUES (\(bind: tenant.description), \(bind: deviceID), \(bind: sequence))
            ON CONFLICT (tenant_id, device_id) DO UPDATE SET last_sequence = excluded.last_sequence
            """
        ).run()
    }

    /// Stores one message. Two writers racing for one sequence make the later transaction fail, not
    /// overwrite: the primary key is (tenant, device, sequence).
    public func insertDeviceMessage(_ record: DeviceMessageRecord) async throws {
        try await db.raw(
            """
            INSERT INTO device_messages (tenant_id, device_id, sequence, module_id, gateway_id, source_key, enqueued_at,
                                         received_at, properties, system_properties, payload)
            VALUES (\(bind: record.tenantID.description), \(bind: record.deviceID), \(bind: record.sequence),
                    \(bind: record.moduleID), \(bind: record.gatewayID), \(bind: record.sourceKey),
                    \(bind: record.enqueuedAt.storeMillis), \(bind: record.receivedAt.storeMillis),
                    \(bind: record.properties), \(bind: record.systemProperties), \(bind: record.payload))
            """
        ).run()
    }

    /// A device's messages after `sequence`, oldest first.
    public func deviceMessages(tenant: RampartID, deviceID: String, after sequence: Int64, limit: Int) async throws
        -> [DeviceMessageRecord]
    {
        try await db.raw(
            """
            SELECT * FROM device_messages WHERE tenant_id = \(bind: tenant.description) AND device_id = \(bind: deviceID)
            AND sequence > \(bind: sequence) ORDER BY sequence LIMIT \(bind: Int64(limit))
            """
        ).all().map { row in
            DeviceMessageRecord(
                tenantID: tenant, deviceID: try row.string("device_id"),
                sequence: try row.decode(column: "sequence", as: Int64.self), moduleID: try row.optionalString("module_id"),
                gatewayID: try row.string("gateway_id"), sourceKey: try row.string("source_key"),
                enqueuedAt: try row.date("enqueued_at"), receivedAt: try row.date("received_at"),
                properties: try row.string("properties"), systemProperties: try row.string("system_properties"),
                payload: try row.string("payload"))
        }
    }

    /// Deletes telemetry received before `time` (retention).
    public func purgeDeviceMessages(before time: Date) async throws {
        try await db.raw("DELETE FROM device_messages WHERE received_at < \(bind: time.storeMillis)").run()
    }

    // MARK: Cloud to device

    /// Stores a new cloud-to-device message.
    public func insertCloudMessage(_ record: CloudMessageRecord) async throws {
        try await db.raw(
            """
            INSERT INTO cloud_messages (id, tenant_id, device_id, properties, payload, created_at, expires_at)
            VALUES (\(bind: record.id.description), \(bind: record.tenantID.description), \(bind: record.deviceID),
                    \(bind: record.properties), \(bind: record.payload), \(bind: record.createdAt.storeMillis),
                    \(bind: record.expiresAt.storeMillis))
            """
        ).run()
    }

    /// How many of the device's messages still wait for it at `time`.
    public func pendingCloudMessageCount(tenant: RampartID, deviceID: String, at time: Date) async throws -> Int {
        let row = try await db.raw(
            """
            SELECT COUNT(*) AS pending FROM cloud_messages WHERE tenant_id = \(bind: tenant.description)
            AND device_id = \(bind: deviceID) AND delivered_at IS NULL AND expires_at > \(bind: time.storeMillis)
            """
        ).first()
        return Int(try row?.decode(column: "pending", as: Int64.self) ?? 0)
    }

    /// One message of the tenant.
    public func cloudMessage(id: RampartID, tenant: RampartID) async throws -> CloudMessageRecord? {
        try await db.raw(
            "SELECT * FROM cloud_messages WHERE id = \(bind: id.description) AND tenant_id = \(bind: tenant.description)"
        ).first().map(Self.cloudMessage)
    }

    /// A device's newest messages in every state, oldest of them first.
    public func cloudMessages(tenant: RampartID, deviceID: String, limit: Int) async throws -> [CloudMessageRecord] {
        try await db.raw(
            """
            SELECT * FROM cloud_messages WHERE tenant_id = \(bind: tenant.description) AND device_id = \(bind: deviceID)
            ORDER BY created_at DESC, id DESC LIMIT \(bind: Int64(limit))
            """
        ).all().map(Self.cloudMessage).reversed()
    }

    /// Messages still waiting at `time`, oldest first (by creation time, then ID): for one device or the
    /// whole tenant, created at or after `since`, and after the message at `after` (a paging cursor).
    public func pendingCloudMessages(
        tenant: RampartID, deviceID: String?, since: Date?, after: (Date, RampartID)? = nil, at time: Date, limit: Int
    ) async throws -> [CloudMessageRecord] {
        var query = SQLQueryString(
            """
            SELECT * FROM cloud_messages WHERE tenant_id = \(bind: tenant.description) AND delivered_at IS NULL
            AND expires_at > \(bind: time.storeMillis)
            """)
        if let deviceID { query.appendInterpolation(unsafeRaw: " AND device_id = "); query.appendInterpolation(bind: deviceID) }
        if let since { query.appendInterpolation(unsafeRaw: " AND created_at >= "); query.appendInterpolation(bind: since.storeMillis) }
        if let (createdAt, id) = after {
            query.appendInterpolation(unsafeRaw: " AND (created_at > ")
            query.appendInterpolation(bind: createdAt.storeMillis)
            query.appendInterpolation(unsafeRaw: " OR (created_at = ")
            query.appendInterpolation(bind: createdAt.storeMillis)
            query.appendInterpolation(unsafeRaw: " AND id > ")
            query.appendInterpolation(bind: id.description)
            query.appendInterpolation(unsafeRaw: "))")
        }
        query.appendInterpolation(unsafeRaw: " ORDER BY created_at, id LIMIT ")
        query.appendInterpolation(bind: Int64(limit))
        return try await db.raw(query).all().map(Self.cloudMessage)
    }

    /// Records that the device acknowledged the message.
    ///
    /// - Returns: `false` when it was already recorded as delivered (a repeated acknowledgement).
    public func markCloudMessageDelivered(id: RampartID, tenant: RampartID, by gatewayID: String, at time: Date) async throws
        -> Bool
    {
        try await db.raw(
            """
            UPDATE cloud_messages SET delivered_at = \(bind: time.storeMillis), delivered_by = \(bind: gatewayID)
            WHERE id = \(bind: id.description) AND tenant_id = \(bind: tenant.description) AND delivered_at IS NULL
            RETURNING id
            """
        ).first() != nil
    }

    /// Deletes messages created before `time`, whatever their state (retention).
    public func purgeCloudMessages(before time: Date) async throws {
        try await db.raw("DELETE FROM cloud_messages WHERE created_at < \(bind: time.storeMillis)").run()
    }

    static func cloudMessage(_ row: any SQLRow) throws -> CloudMessageRecord {
        CloudMessageRecord(
            id: try row.id("id"), tenantID: try row.id("tenant_id"),
            deviceID: try row.string("device_id"), properties: try row.string("properties"), payload: try row.string("payload"),
            createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"),
            deliveredAt: try row.optionalDate("delivered_at"), deliveredBy: try row.optionalString("delivered_by"))
    }
}
