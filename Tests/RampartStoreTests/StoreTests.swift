import Foundation
import Logging
import RampartCore
import RampartStore
import RampartTestKit
import Testing

/// The same suite runs on SQLite, and on PostgreSQL when scripts/test sets RAMPART_TEST_DATABASE.
@Suite("Store (SQLite, or PostgreSQL under RAMPART_TEST_DATABASE)")
struct StoreTests {
    func withStore(_ body: @escaping @Sendable (Store) async throws -> Void) async throws {
        let directory = try TemporaryDirectory(prefix: "rampart-store")
        defer { directory.remove() }
        var logger = Logger(label: "rampart.test.store")
        // PostgresNIO warns when a lease races ahead of run() starting; the lease simply waits.
        logger.logLevel = .error
        try await Store.withRunning(try await TestDatabase.make(in: directory), logger: logger, body)
    }

    func tenant(_ name: String = "T") -> TenantRecord {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        return TenantRecord(id: RampartID(), name: name, createdAt: now, updatedAt: now)
    }

    @Test("migrations reach the latest version and are idempotent")
    func migrations() async throws {
        try await withStore { store in
            let version = try await store.schemaVersion()
            #expect(version >= 1)
            try await store.migrate()
            #expect(try await store.schemaVersion() == version)
        }
    }

    @Test("a committed transaction is visible; a throwing one leaves nothing behind")
    func transactions() async throws {
        try await withStore { store in
            let kept = tenant("Kept")
            try await store.transaction { try await $0.insertTenant(kept) }
            let lost = tenant("Lost")
            await #expect(throws: RampartError(.conflict, "")) {
                try await store.transaction { session in
                    try await session.insertTenant(lost)
                    throw RampartError.conflict(.conflict, "abort")
                }
            }
            #expect(try await store.read { try await $0.tenant(id: kept.id) } == kept)
            #expect(try await store.read { try await $0.tenant(id: lost.id) } == nil)
        }
    }

    @Test("concurrent transactions all commit")
    func concurrentWrites() async throws {
        try await withStore { store in
            let tenants = (0..<40).map { tenant("T\($0)") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for record in tenants {
                    group.addTask { try await store.transaction { try await $0.insertTenant(record) } }
                }
                try await group.waitForAll()
            }
            let ids = try await store.read { try await $0.allTenantIDs() }
            #expect(Set(ids) == Set(tenants.map(\.id)))
        }
    }

    @Test("concurrent transactions that fail roll back alone; their neighbours in the same commit survive")
    func concurrentFailuresAreIsolated() async throws {
        try await withStore { store in
            let tenants = (0..<30).map { tenant("T\($0)") }
            await withTaskGroup(of: Void.self) { group in
                for (index, record) in tenants.enumerated() {
                    group.addTask {
                        _ = try? await store.transaction { session in
                            try await session.insertTenant(record)
                            if index % 2 == 1 { throw RampartError.conflict(.conflict, "abort \(index)") }
                        }
                    }
                }
            }
            let ids = Set(try await store.read { try await $0.allTenantIDs() })
            #expect(ids == Set(tenants.enumerated().filter { $0.offset % 2 == 0 }.map(\.element.id)))
        }
    }

    @Test("an invitation can be consumed once, even by racing registrations")
    func invitationSingleUse() async throws {
        try await withStore { store in
            let now = Date()
            let invitation = InvitationRecord(
                id: RampartID(), secretHash: "h", email: "a@b.c", tenantID: nil, role: nil, serverAdministrator: true,
                createdBy: "system", createdAt: now, expiresAt: now + 60)
            try await store.transaction { try await $0.insertInvitation(invitation) }
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await store.transaction { try await $0.consumeInvitation(id: invitation.id, by: RampartID(), at: now) }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.filter { $0 }.count == 1)
        }
    }

    @Test("a login challenge is returned once")
    func challengeSingleUse() async throws {
        try await withStore { store in
            let now = Date()
            let user = UserRecord(id: RampartID(), email: "u@x.y", publicKey: "pem", serverAdministrator: false, createdAt: now)
            let challenge = LoginChallengeRecord(id: RampartID(), userID: user.id, nonce: "n", expiresAt: now + 60)
            try await store.transaction { session in
                try await session.insertUser(user)
                try await session.insertLoginChallenge(challenge)
            }
            #expect(try await store.transaction { try await $0.consumeLoginChallenge(id: challenge.id, at: now) }?.nonce == "n")
            #expect(try await store.transaction { try await $0.consumeLoginChallenge(id: challenge.id, at: now) } == nil)
        }
    }

    @Test("roles are per tenant and replace each other")
    func roles() async throws {
        try await withStore { store in
            let now = Date()
            let (a, b) = (tenant("A"), tenant("B"))
            let user = UserRecord(id: RampartID(), email: "r@x.y", publicKey: "pem", serverAdministrator: false, createdAt: now)
            try await store.transaction { session in
                try await session.insertTenant(a)
                try await session.insertTenant(b)
                try await session.insertUser(user)
                try await session.setRole(.reader, user: user.id, tenant: a.id, at: now)
                try await session.setRole(.contributor, user: user.id, tenant: a.id, at: now)
            }
            #expect(try await store.read { try await $0.role(ofUser: user.id, inTenant: a.id) } == .contributor)
            #expect(try await store.read { try await $0.role(ofUser: user.id, inTenant: b.id) } == nil)
            let visible = try await store.read { try await $0.tenants(ofUser: user.id) }
            #expect(visible.map(\.0.id) == [a.id])
        }
    }

    @Test("audit events are scoped by tenant and filtered by time")
    func audit() async throws {
        try await withStore { store in
            let t = RampartID()
            let base = Date(timeIntervalSince1970: 1_800_000_000)
            for offset in 0..<3 {
                try await store.transaction {
                    try await $0.insertAuditEvent(
                        AuditEvent(id: RampartID(), time: base + Double(offset) * 60, actor: "a", tenantId: t,
                                   action: "x", target: "y", result: "success"))
                }
            }
            try await store.transaction {
                try await $0.insertAuditEvent(
                    AuditEvent(id: RampartID(), time: base, actor: "a", tenantId: RampartID(), action: "x", target: "y", result: "success"))
            }
            #expect(try await store.read { try await $0.auditEvents(ofTenant: t, since: nil, limit: 100) }.count == 3)
            #expect(try await store.read { try await $0.auditEvents(ofTenant: t, since: base + 60, limit: 100) }.count == 2)
            #expect(try await store.read { try await $0.auditEvents(ofTenant: t, since: nil, limit: 1) }.count == 1)
        }
    }
}

@Suite("Store locations")
struct StoreLocationTests {
    @Test("database URLs parse, and bad ones say what is missing")
    func parsing() throws {
        #expect(try StoreLocation(parsing: "/tmp/x.sqlite") == .sqlite(path: "/tmp/x.sqlite"))
        guard case .postgres(let pg) = try StoreLocation(parsing: "postgres://bob:pw@db.local:6543/rampart?sslmode=disable")
        else { Issue.record("not postgres"); return }
        #expect(pg.host == "db.local" && pg.port == 6543 && pg.username == "bob" && pg.database == "rampart")
        #expect(pg.tlsMode == .disable)
        #expect(pg.description == "postgres://bob@db.local:6543/rampart")
        #expect(throws: RampartError(.configurationInvalid, "")) { try StoreLocation(parsing: "postgres://db.local/rampart") }
        #expect(throws: RampartError(.configurationInvalid, "")) { try StoreLocation(parsing: "postgres://u@db.local") }
        #expect(throws: RampartError(.configurationInvalid, "")) { try StoreLocation(parsing: "mysql://u@h/d") }
    }
}
