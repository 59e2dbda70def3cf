import Foundation
import Logging
import RampartCore
import RampartPKI
import RampartStore

/// What every domain service depends on, passed as a value so services run in tests without HTTP.
public struct DomainContext: Sendable {
    public let store: Store
    public let clock: any WallClock
    public let sealer: KeySealer
    public let configuration: ServerConfiguration
    public let logger: Logger
    /// SHA-256 of the server's TLS certificate, put into invitations so that the CLI can pin it.
    public let tlsPin: String?

    public init(
        store: Store, clock: any WallClock, sealer: KeySealer, configuration: ServerConfiguration, logger: Logger,
        tlsPin: String?
    ) {
        self.store = store
        self.clock = clock
        self.sealer = sealer
        self.configuration = configuration
        self.logger = logger
        self.tlsPin = tlsPin
    }
}

/// Who did something, for authorisation and the audit log.
public struct Actor: Sendable {
    public let user: UserRecord?
    /// The email, or `system` for background jobs.
    public var name: String { user?.email ?? "system" }
    public static let system = Actor(user: nil)
    public init(user: UserRecord?) { self.user = user }
}

extension DomainContext {
    /// Checks that `user` may do `permission` in `tenant`.
    ///
    /// - Returns: The user's role there.
    /// - Throws: 404 when the user has no role in the tenant (so its existence is not revealed), 403 when the
    ///   role is too low.
    func authorize(_ user: UserRecord, tenant: RampartID, _ permission: Permission, session: StoreSession)
        async throws -> Role
    {
        guard let role = try await session.role(ofUser: user.id, inTenant: tenant) else {
            throw RampartError.notFound("Tenant \(tenant)")
        }
        guard role >= permission.minimumRole else {
            throw RampartError.forbidden(
                "Your role in this tenant is \(role.rawValue); this needs \(permission.minimumRole.rawValue) or above.")
        }
        return role
    }

    /// Runs a state-changing operation in one transaction together with its audit record. If it fails, the
    /// refusal is recorded on its own, so the log shows attempts as well as changes. A refusal lands in a
    /// tenant's log only when the actor has a role there; others cannot write into a tenant they cannot see.
    func audited<T: Sendable>(
        _ actor: Actor, tenant: RampartID?, action: String, target rawTarget: String,
        _ body: @escaping @Sendable (StoreSession) async throws -> T
    ) async throws -> T {
        let target = rawTarget.count > 200 ? String(rawTarget.prefix(200)) + "…" : rawTarget
        do {
            return try await store.transaction { session in
                let result = try await body(session)
                try await session.insertAuditEvent(
                    AuditEvent(
                        id: RampartID(), time: clock.now(), actor: actor.name, tenantId: tenant, action: action,
                        target: target, result: "success"))
                return result
            }
        } catch let error as RampartError {
            do {
                try await store.transaction { session in
                    var visibleTenant: RampartID?
                    if let tenant, let user = actor.user, try await session.role(ofUser: user.id, inTenant: tenant) != nil {
                        visibleTenant = tenant
                    }
                    try await session.insertAuditEvent(
                        AuditEvent(
                            id: RampartID(), time: clock.now(), actor: actor.name, tenantId: visibleTenant,
                            action: action, target: target, result: error.code.rawValue))
                }
            } catch {
                logger.warning("Could not record a refused action", metadata: ["action": "\(action)", "error": "\(error)"])
            }
            throw error
        }
    }
}
