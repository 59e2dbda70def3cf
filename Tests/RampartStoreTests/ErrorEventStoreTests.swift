import Foundation
import Logging
import RampartCore
@testable import RampartStore
import RampartTestKit
import Testing

/// Runs on SQLite, and on PostgreSQL under RAMPART_TEST_DATABASE, like ``StoreTests``.
@Suite("Store: error events (SQLite, or PostgreSQL under RAMPART_TEST_DATABASE)")
struct ErrorEventStoreTests {
    func withStore(upTo version: Int = .max, _ body: @escaping @Sendable (Store) async throws -> Void) async throws {
        try await withMigratedStore(upTo: version, body)
    }

    static func tenant() -> TenantRecord {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        return TenantRecord(id: RampartID(), name: "T", createdAt: now, updatedAt: now)
    }

    static let device = String(repeating: "ab", count: 32)
    static let other = String(repeating: "cd", count: 32)

    static func uploaded(
        _ key: String, tenant: TenantRecord, device: String = device, component: String? = "c1", description: String = "trap",
        count: Int = 1, first: TimeInterval = 100, last: TimeInterval = 100, received: TimeInterval = 1000
    ) -> UploadedErrorEvent {
        UploadedErrorEvent(
            tenantID: tenant.id, deviceID: device, key: key, eventType: "unplanned", eventClass: "appTrap", componentID: component,
            description: description, count: count, firstAt: Date(timeIntervalSince1970: first),
            lastAt: Date(timeIntervalSince1970: last), receivedAt: Date(timeIntervalSince1970: received))
    }

    @Test("v7 keeps the error rows written before it, and they still fold")
    func upgrade() async throws {
        try await withStore(upTo: 6) { store in
            let tenant = Self.tenant()
            try await store.transaction { session in
                try await session.insertTenant(tenant)
                // v2's shape: no component, no upload key, no time received.
                try await session.execute(
                    """
                    INSERT INTO error_events (id, tenant_id, device_id, event_type, event_class, description, event_count,
                                              first_at, last_at)
                    VALUES ('\(RampartID())', '\(tenant.id)', '\(Self.device)', 'DeviceAttestationFailure', 'Attestation',
                            'notClaimed', 4, 1000, 2000)
                    """)
            }
            #expect(try await store.schemaVersion() == 6)
            try await store.migrate()
            #expect(try await store.schemaVersion() == Migrations.latestVersion)
            let before = try await store.read { try await $0.errorEvents(ofTenant: tenant.id, deviceID: nil) }
            #expect(
                before == [
                    ErrorEventRecord(
                        deviceID: Self.device, eventType: "DeviceAttestationFailure", eventClass: "Attestation",
                        description: "notClaimed", count: 4, firstAt: Date(timeIntervalSince1970: 1),
                        lastAt: Date(timeIntervalSince1970: 2))
                ])
            try await store.transaction {
                try await $0.recordErrorEvent(
                    tenant: tenant.id, deviceID: Self.device, type: "DeviceAttestationFailure", eventClass: "Attestation",
                    description: "notClaimed", at: Date(timeIntervalSince1970: 3))
            }
            let after = try await store.read { try await $0.errorEvents(ofTenant: tenant.id, deviceID: nil) }
            #expect(after.map(\.count) == [5])
            #expect(after.first?.firstAt == Date(timeIntervalSince1970: 1) && after.first?.lastAt == Date(timeIntervalSince1970: 3))
            // Retention goes by when the server last heard of the row: here, the occurrence folded in at 3 s.
            try await store.transaction { try await $0.purgeErrorEvents(before: Date(timeIntervalSince1970: 2.5)) }
            #expect(try await store.read { try await $0.errorEvents(ofTenant: tenant.id, deviceID: nil) }.count == 1)
            try await store.transaction { try await $0.purgeErrorEvents(before: Date(timeIntervalSince1970: 3.5)) }
            #expect(try await store.read { try await $0.errorEvents(ofTenant: tenant.id, deviceID: nil) }.isEmpty)
        }
    }

    @Test("an uploaded event is stored once per device and key, only ever widened, and folds with no other row")
    func uploads() async throws {
        try await withStore { store in
            let tenant = Self.tenant()
            try await store.transaction { try await $0.insertTenant(tenant) }
            func put(_ event: UploadedErrorEvent) async throws -> Bool {
                try await store.transaction { try await $0.storeUploadedErrorEvent(event) }
            }
            #expect(try await put(Self.uploaded("k1", tenant: tenant, count: 2, first: 100, last: 110)))
            #expect(try await !put(Self.uploaded("k1", tenant: tenant, count: 2, first: 100, last: 110)))
            // Grown while its answer was lost; then a stale copy, which changes nothing.
            #expect(try await !put(Self.uploaded("k1", tenant: tenant, count: 5, first: 100, last: 130, received: 2000)))
            #expect(try await !put(Self.uploaded("k1", tenant: tenant, count: 1, first: 105, last: 105)))
            // The same error under another key, of another component, from another device (same key): rows of their own.
            #expect(try await put(Self.uploaded("k2", tenant: tenant, first: 140, last: 140)))
            #expect(try await put(Self.uploaded("k3", tenant: tenant, component: nil, first: 150, last: 150)))
            #expect(try await put(Self.uploaded("k1", tenant: tenant, device: Self.other, first: 160, last: 160)))
            // A row the server records with the same type, class and description folds only with its own kind.
            for second in [170.0, 180] {
                try await store.transaction {
                    try await $0.recordErrorEvent(
                        tenant: tenant.id, deviceID: Self.device, type: "unplanned", eventClass: "appTrap", description: "trap",
                        at: Date(timeIntervalSince1970: second))
                }
            }
            let rows = try await store.read { try await $0.errorEvents(ofTenant: tenant.id, deviceID: Self.device) }
            #expect(rows.map(\.count) == [5, 1, 1, 2])
            #expect(rows.map(\.componentID) == ["c1", "c1", nil, nil])
            #expect(rows[0].firstAt == Date(timeIntervalSince1970: 100) && rows[0].lastAt == Date(timeIntervalSince1970: 130))
            #expect(try await store.read { try await $0.errorEvents(ofTenant: tenant.id, deviceID: nil) }.count == 5)
            // Another tenant sees none of it.
            #expect(try await store.read { try await $0.errorEvents(ofTenant: RampartID(), deviceID: nil) }.isEmpty)

            // Retention goes by the time received, which a stale copy does not move back: k1 was last heard of
            // at 2000, the other uploads at 1000, the server-recorded row at its own time, 180.
            try await store.transaction { try await $0.purgeErrorEvents(before: Date(timeIntervalSince1970: 1500)) }
            let kept = try await store.read { try await $0.errorEvents(ofTenant: tenant.id, deviceID: nil) }
            #expect(kept.map(\.count) == [5])
        }
    }

    @Test("filters narrow by device, class and time window; a limit keeps the newest, oldest first")
    func filters() async throws {
        try await withStore { store in
            let tenant = Self.tenant()
            try await store.transaction { session in
                try await session.insertTenant(tenant)
                _ = try await session.storeUploadedErrorEvent(Self.uploaded("a", tenant: tenant, description: "a", first: 0, last: 10))
                _ = try await session.storeUploadedErrorEvent(
                    Self.uploaded("b", tenant: tenant, device: Self.other, description: "b", first: 50, last: 50))
                _ = try await session.storeUploadedErrorEvent(Self.uploaded("c", tenant: tenant, description: "c", first: 100, last: 200))
                try await session.recordErrorEvent(
                    tenant: tenant.id, deviceID: Self.other, type: "DeviceAttestationFailure", eventClass: "Attestation",
                    description: "d", at: Date(timeIntervalSince1970: 300))
            }
            func names(_ filter: ErrorEventFilter) async throws -> [String] {
                try await store.read { try await $0.errorEvents(ofTenant: tenant.id, filter) }.map(\.description)
            }
            func at(_ seconds: TimeInterval) -> Date { Date(timeIntervalSince1970: seconds) }
            #expect(try await names(ErrorEventFilter()) == ["a", "b", "c", "d"])
            #expect(try await names(ErrorEventFilter(deviceID: Self.other)) == ["b", "d"])
            #expect(try await names(ErrorEventFilter(eventClass: "appTrap")) == ["a", "b", "c"])
            #expect(try await names(ErrorEventFilter(eventClass: "Attestation")) == ["d"])
            // An event is in a window when it happened in it at least once: last at or after `from`, first before `to`.
            #expect(try await names(ErrorEventFilter(from: at(10), to: at(100))) == ["a", "b"])
            #expect(try await names(ErrorEventFilter(from: at(11), to: at(101))) == ["b", "c"])
            #expect(try await names(ErrorEventFilter(from: at(150))) == ["c", "d"])
            #expect(try await names(ErrorEventFilter(limit: 2)) == ["c", "d"])
            #expect(try await names(ErrorEventFilter(deviceID: Self.device, eventClass: "appTrap", limit: 1)) == ["c"])
        }
    }
}
