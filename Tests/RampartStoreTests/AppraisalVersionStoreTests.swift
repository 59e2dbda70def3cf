import Foundation
import Logging
import RampartCore
@testable import RampartStore
import RampartTestKit
import Testing

/// Runs on SQLite, and on PostgreSQL under RAMPART_TEST_DATABASE, like ``StoreTests``.
@Suite("Store: appraisal version and read-only reads (SQLite, or PostgreSQL under RAMPART_TEST_DATABASE)")
struct AppraisalVersionStoreTests {
    @Test("every insert, update and delete of what appraisal reads bumps that tenant's version once; nothing else does")
    func appraisalVersion() async throws {
        try await withMigratedStore { store in
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            let tenant = TenantRecord(id: RampartID(), name: "T", createdAt: now, updatedAt: now)
            let other = TenantRecord(id: RampartID(), name: "Other", createdAt: now, updatedAt: now)
            let product = ProductRecord(id: RampartID(), tenantID: tenant.id, name: "P", description: "", createdAt: now, updatedAt: now)
            try await store.transaction { session in
                try await session.insertTenant(tenant)
                try await session.insertTenant(other)
                try await session.insertProduct(product)
                _ = try await session.claimDevice(id: "d1", tenant: tenant.id, at: now)
                _ = try await session.claimDevice(id: "d2", tenant: other.id, at: now)
            }
            @Sendable func versions() async throws -> [Int64?] {
                try await store.read { session in
                    [try await session.attestationSubject(deviceID: "d1", nonce: "n")?.appraisalVersion,
                     try await session.attestationSubject(deviceID: "d2", nonce: "n")?.appraisalVersion]
                }
            }
            #expect(try await versions() == [0, 0])
            #expect(try await store.read { try await $0.attestationSubject(deviceID: "never-seen", nonce: "n") } == nil)

            let t = tenant.id.description
            let (group, image, signingKey) = (RampartID(), RampartID(), RampartID())
            let statements = [
                "INSERT INTO reference_values (id, tenant_id, sha256, version, description, created_at) VALUES ('\(RampartID())', '\(t)', 'ab', '1', '', 1)",
                "INSERT INTO signing_keys (id, tenant_id, key_id, public_key, description, created_at) VALUES ('\(signingKey)', '\(t)', 'k', 'pem', '', 1)",
                """
                INSERT INTO device_groups (id, tenant_id, product_id, name, description, update_policy, os_feed, created_at, updated_at)
                VALUES ('\(group)', '\(t)', '\(product.id)', 'G', '', 'UpdateAll', 'Retail', 1, 1)
                """,
                """
                INSERT INTO images (id, tenant_id, component_id, name, kind, version, sha256, length, manifest, signing_key_id, created_at)
                VALUES ('\(image)', '\(t)', 'c', 'n', 'runtime', '1', 'cd', 1, '{}', 'k', 1)
                """,
                "INSERT INTO deployments (id, tenant_id, device_group_id, image_ids, created_by, created_at) VALUES ('\(RampartID())', '\(t)', '\(group)', '[]', 'u', 1)",
                "INSERT INTO runtime_releases (id, tenant_id, feed, image_id, created_at) VALUES ('\(RampartID())', '\(t)', 'Retail', '\(image)', 1)",
                "UPDATE reference_values SET revoked_at = 2 WHERE tenant_id = '\(t)'",
                "UPDATE signing_keys SET revoked_at = 2 WHERE tenant_id = '\(t)'",
                "UPDATE device_groups SET os_feed = 'RetailEval' WHERE tenant_id = '\(t)'",
                "UPDATE images SET manifest = '{\"critical\":true}' WHERE tenant_id = '\(t)'",
                "UPDATE deployments SET image_ids = '[\"x\"]' WHERE tenant_id = '\(t)'",
                "UPDATE runtime_releases SET feed = 'RetailEval' WHERE tenant_id = '\(t)'",
                "DELETE FROM runtime_releases WHERE tenant_id = '\(t)'",
                "DELETE FROM deployments WHERE tenant_id = '\(t)'",
                "DELETE FROM images WHERE tenant_id = '\(t)'",
                "DELETE FROM device_groups WHERE tenant_id = '\(t)'",
                "DELETE FROM signing_keys WHERE tenant_id = '\(t)'",
                "DELETE FROM reference_values WHERE tenant_id = '\(t)'",
            ]
            for (index, statement) in statements.enumerated() {
                try await store.transaction { try await $0.execute(statement) }
                let seen = try await versions()
                #expect(seen == [Int64(index + 1), 0], "after: \(statement)")
            }
            // What attestation itself writes (the device row, nonces, error events) leaves the version alone.
            try await store.transaction { session in
                _ = try await session.spendNonce("n", deviceID: "d1", expiresAt: now + 60, at: now)
                try await session.recordAttestation(AttestationOutcome(
                    deviceID: "d1", time: now, result: "success", hardwareModel: "m", softwareName: "s", softwareVersion: "1",
                    measurements: "[]", certificateNotAfter: now + 86_400))
                try await session.recordErrorEvent(
                    tenant: tenant.id, deviceID: "d1", type: "T", eventClass: "C", description: "d", at: now)
            }
            #expect(try await versions() == [Int64(statements.count), 0])
            #expect(try await store.read { try await $0.attestationSubject(deviceID: "d1", nonce: "n") }?.nonceSpent == true)
            #expect(try await store.read { try await $0.attestationSubject(deviceID: "d1", nonce: "other") }?.nonceSpent == false)
        }
    }

    @Test("a read cannot write on SQLite: its connections are read-only, so every write takes the group commit")
    func readsAreReadOnly() async throws {
        try await withMigratedStore { store in
            guard case .sqlite = store.location else { return }  // PostgreSQL reads use the pool's connections
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            await #expect(throws: RampartError.self) {
                try await store.read { session in
                    try await session.insertTenant(TenantRecord(id: RampartID(), name: "T", createdAt: now, updatedAt: now))
                }
            }
            #expect(try await store.read { try await $0.allTenantIDs() }.isEmpty)
            // Reads see what a transaction committed the moment it returns.
            let tenant = TenantRecord(id: RampartID(), name: "T", createdAt: now, updatedAt: now)
            try await store.transaction { try await $0.insertTenant(tenant) }
            #expect(try await store.read { try await $0.tenant(id: tenant.id) } == tenant)
        }
    }
}
