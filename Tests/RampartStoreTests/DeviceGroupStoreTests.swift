import Foundation
import Logging
import RampartCore
@testable import RampartStore
import RampartTestKit
import Testing

/// Runs on SQLite, and on PostgreSQL under RAMPART_TEST_DATABASE, like ``StoreTests``.
@Suite("Store: device groups (SQLite, or PostgreSQL under RAMPART_TEST_DATABASE)")
struct DeviceGroupStoreTests {
    func withStore(upTo version: Int = .max, _ body: @escaping @Sendable (Store) async throws -> Void) async throws {
        try await withMigratedStore(upTo: version, body)
    }

    @Test("v8 gives groups written before it no data budget; a budget is stored, changed and cleared")
    func dataBudget() async throws {
        try await withStore(upTo: 7) { store in
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            let tenant = TenantRecord(id: RampartID(), name: "T", createdAt: now, updatedAt: now)
            let product = ProductRecord(
                id: RampartID(), tenantID: tenant.id, name: "P", description: "", createdAt: now, updatedAt: now)
            let old = RampartID()
            try await store.transaction { session in
                try await session.insertTenant(tenant)
                try await session.insertProduct(product)
                // v7's shape: no budget column.
                try await session.execute(
                    """
                    INSERT INTO device_groups (id, tenant_id, product_id, name, description, update_policy, os_feed,
                                               maintenance_window, created_at, updated_at)
                    VALUES ('\(old)', '\(tenant.id)', '\(product.id)', 'Old', '', 'UpdateAll', 'Retail', NULL,
                            1000, 1000)
                    """)
            }
            try await store.migrate()
            #expect(try await store.schemaVersion() == Migrations.latestVersion)
            #expect(try await store.read { try await $0.deviceGroup(id: old, tenant: tenant.id) }?.dataBudgetMB == nil)

            let group = DeviceGroupRecord(
                id: RampartID(), tenantID: tenant.id, productID: product.id, name: "Metered", description: "",
                updatePolicy: "UpdateAll", osFeed: "Retail", maintenanceWindow: nil, createdAt: now, updatedAt: now,
                dataBudgetMB: 1_000_000)
            try await store.transaction { try await $0.insertDeviceGroup(group) }
            #expect(try await store.read { try await $0.deviceGroup(id: group.id, tenant: tenant.id) } == group)
            var changed = group
            changed.dataBudgetMB = 7
            try await store.transaction { [changed] in try await $0.updateDeviceGroup(changed) }
            let budgets = try await store.read { try await $0.deviceGroups(ofTenant: tenant.id) }.map(\.dataBudgetMB)
            #expect(budgets == [7, nil])
            changed.dataBudgetMB = nil
            try await store.transaction { [changed] in try await $0.updateDeviceGroup(changed) }
            let cleared = try await store.read { try await $0.deviceGroup(id: group.id, tenant: tenant.id) }
            #expect(cleared != nil && cleared?.dataBudgetMB == nil)
        }
    }
}
