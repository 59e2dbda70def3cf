import Foundation
import RampartCore
import RampartStore

/// Tenants: every other object lives inside one, and every query is scoped by it.
public struct TenantService: Sendable {
    let context: DomainContext
    let certificateAuthority: TenantCAService
    let repository: TUFRepositoryService

    public init(context: DomainContext) {
        self.context = context
        certificateAuthority = TenantCAService(context: context)
        repository = TUFRepositoryService(context: context)
    }

    /// Creates a tenant with its CA, making the caller its Administrator. Only server administrators may.
    public func create(name rawName: String, caller: UserRecord) async throws -> TenantInfo {
        let id = RampartID()
        return try await context.audited(Actor(user: caller), tenant: id, action: "tenant.create", target: rawName) {
            session in
            guard caller.serverAdministrator else {
                throw RampartError.forbidden("Only server administrators can create tenants.")
            }
            let name = try Name.validated(rawName, what: "tenant name")
            let now = context.clock.now()
            let tenant = TenantRecord(id: id, name: name, createdAt: now, updatedAt: now)
            try await session.insertTenant(tenant)
            try await session.setRole(.administrator, user: caller.id, tenant: id, at: now)
            _ = try await certificateAuthority.createCA(
                tenant: id, status: .active, now: now, activatesAt: now, session: session)
            try await repository.initialize(tenant: id, now: now, session: session)
            return Self.info(tenant, role: .administrator)
        }
    }

    /// The tenants the caller has a role in.
    public func list(caller: UserRecord) async throws -> TenantList {
        try await context.store.read { session in
            TenantList(tenants: try await session.tenants(ofUser: caller.id).map { Self.info($0.0, role: $0.1) })
        }
    }

    /// One tenant; 404 unless the caller has a role in it.
    public func show(_ id: RampartID, caller: UserRecord) async throws -> TenantInfo {
        try await context.store.read { session in
            let role = try await context.authorize(caller, tenant: id, .read, session: session)
            guard let tenant = try await session.tenant(id: id) else { throw RampartError.notFound("Tenant \(id)") }
            return Self.info(tenant, role: role)
        }
    }

    /// Renames a tenant (Contributor or above).
    public func update(_ id: RampartID, name rawName: String, caller: UserRecord) async throws -> TenantInfo {
        try await context.audited(Actor(user: caller), tenant: id, action: "tenant.update", target: rawName) { session in
            let role = try await context.authorize(caller, tenant: id, .update, session: session)
            let name = try Name.validated(rawName, what: "tenant name")
            let now = context.clock.now()
            try await session.updateTenant(id: id, name: name, at: now)
            guard let tenant = try await session.tenant(id: id) else { throw RampartError.notFound("Tenant \(id)") }
            return Self.info(tenant, role: role)
        }
    }

    /// The tenant's audit log.
    public func audit(_ id: RampartID, since: Date?, limit: Int, caller: UserRecord) async throws -> AuditList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: id, .read, session: session)
            return AuditList(events: try await session.auditEvents(ofTenant: id, since: since, limit: limit))
        }
    }

    static func info(_ tenant: TenantRecord, role: Role) -> TenantInfo {
        TenantInfo(id: tenant.id, name: tenant.name, role: role, createdAt: tenant.createdAt, updatedAt: tenant.updatedAt)
    }
}
