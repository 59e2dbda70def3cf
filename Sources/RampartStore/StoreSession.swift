import Foundation
import RampartCore
import SQLKit

/// Typed queries on one connection, inside a transaction or a read. Handed out by ``Store``.
public struct StoreSession: Sendable {
    let db: any SQLDatabase

    init(db: any SQLDatabase) { self.db = db }
}

/// Times are stored as milliseconds since 1970, which both backends hold exactly in a BIGINT.
extension Date {
    var storeMillis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
    init(storeMillis: Int64) { self.init(timeIntervalSince1970: Double(storeMillis) / 1000) }
}

extension SQLRow {
    func string(_ column: String) throws -> String { try decode(column: column, as: String.self) }
    func optionalString(_ column: String) throws -> String? { try decode(column: column, as: String?.self) }
    func date(_ column: String) throws -> Date { Date(storeMillis: try decode(column: column, as: Int64.self)) }
    func optionalDate(_ column: String) throws -> Date? {
        try decode(column: column, as: Int64?.self).map(Date.init(storeMillis:))
    }
    func bool(_ column: String) throws -> Bool { try decode(column: column, as: Int64.self) != 0 }
    func id(_ column: String) throws -> RampartID {
        let text = try string(column)
        guard let id = RampartID(text) else {
            throw RampartError(.internalError, "Stored id '\(text)' in \(column) is not a UUID.", status: 500)
        }
        return id
    }
    func optionalID(_ column: String) throws -> RampartID? { try optionalString(column).flatMap(RampartID.init) }
}

// MARK: - Records

/// A tenant row.
public struct TenantRecord: Sendable, Equatable {
    public var id: RampartID
    public var name: String
    public var createdAt: Date
    public var updatedAt: Date
    public init(id: RampartID, name: String, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A user row. Users hold no secret: only the public half of their key.
public struct UserRecord: Sendable, Equatable {
    public var id: RampartID
    public var email: String
    /// PEM SubjectPublicKeyInfo.
    public var publicKey: String
    public var serverAdministrator: Bool
    public var createdAt: Date
    public init(id: RampartID, email: String, publicKey: String, serverAdministrator: Bool, createdAt: Date) {
        self.id = id
        self.email = email
        self.publicKey = publicKey
        self.serverAdministrator = serverAdministrator
        self.createdAt = createdAt
    }
}

/// An invitation row. Only a hash of the secret is stored.
public struct InvitationRecord: Sendable, Equatable {
    public var id: RampartID
    public var secretHash: String
    public var email: String?
    public var tenantID: RampartID?
    public var role: Role?
    public var serverAdministrator: Bool
    public var createdBy: String?
    public var createdAt: Date
    public var expiresAt: Date
    public var usedAt: Date?
    public init(
        id: RampartID, secretHash: String, email: String?, tenantID: RampartID?, role: Role?,
        serverAdministrator: Bool, createdBy: String?, createdAt: Date, expiresAt: Date, usedAt: Date? = nil
    ) {
        self.id = id
        self.secretHash = secretHash
        self.email = email
        self.tenantID = tenantID
        self.role = role
        self.serverAdministrator = serverAdministrator
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.usedAt = usedAt
    }
}

/// A login challenge row.
public struct LoginChallengeRecord: Sendable, Equatable {
    public var id: RampartID
    public var userID: RampartID
    public var nonce: String
    public var expiresAt: Date
    public init(id: RampartID, userID: RampartID, nonce: String, expiresAt: Date) {
        self.id = id
        self.userID = userID
        self.nonce = nonce
        self.expiresAt = expiresAt
    }
}

/// A tenant CA row. The private key is sealed under the master key.
public struct CARecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var thumbprint: String
    public var subject: String
    public var certificateDER: [UInt8]
    public var sealedKey: String
    public var status: CAStatus
    public var notBefore: Date
    public var notAfter: Date
    public var createdAt: Date
    /// When an Inactive successor is due to become Active.
    public var activatesAt: Date
    public var revokedAt: Date?
    public init(
        id: RampartID, tenantID: RampartID, thumbprint: String, subject: String, certificateDER: [UInt8],
        sealedKey: String, status: CAStatus, notBefore: Date, notAfter: Date, createdAt: Date, activatesAt: Date,
        revokedAt: Date? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.thumbprint = thumbprint
        self.subject = subject
        self.certificateDER = certificateDER
        self.sealedKey = sealedKey
        self.status = status
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.createdAt = createdAt
        self.activatesAt = activatesAt
        self.revokedAt = revokedAt
    }
}

/// A member of a tenant with their role.
public struct MemberRecord: Sendable, Equatable {
    public var user: UserRecord
    public var role: Role
}

// MARK: - Tenants

extension StoreSession {
    /// Inserts a tenant.
    public func insertTenant(_ tenant: TenantRecord) async throws {
        try await db.raw(
            """
            INSERT INTO tenants (id, name, created_at, updated_at)
            VALUES (\(bind: tenant.id.description), \(bind: tenant.name), \(bind: tenant.createdAt.storeMillis),
                    \(bind: tenant.updatedAt.storeMillis))
            """
        ).run()
    }

    /// Renames a tenant.
    public func updateTenant(id: RampartID, name: String, at time: Date) async throws {
        try await db.raw(
            "UPDATE tenants SET name = \(bind: name), updated_at = \(bind: time.storeMillis) WHERE id = \(bind: id.description)"
        ).run()
    }

    /// A tenant by id.
    public func tenant(id: RampartID) async throws -> TenantRecord? {
        try await db.raw("SELECT * FROM tenants WHERE id = \(bind: id.description)").first().map(Self.tenant)
    }

    /// Every tenant with the user's role in it, oldest first.
    public func tenants(ofUser user: RampartID) async throws -> [(TenantRecord, Role)] {
        try await db.raw(
            """
            SELECT t.*, r.role FROM tenants t JOIN tenant_roles r ON r.tenant_id = t.id
            WHERE r.user_id = \(bind: user.description) ORDER BY t.created_at, t.id
            """
        ).all().map { row in (try Self.tenant(row), try Self.role(row)) }
    }

    /// Every tenant id, for background jobs such as CA rotation.
    public func allTenantIDs() async throws -> [RampartID] {
        try await db.raw("SELECT id FROM tenants ORDER BY id").all().map { try $0.id("id") }
    }

    static func tenant(_ row: any SQLRow) throws -> TenantRecord {
        TenantRecord(
            id: try row.id("id"), name: try row.string("name"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }

    static func role(_ row: any SQLRow) throws -> Role {
        let text = try row.string("role")
        guard let role = Role(rawValue: text) else {
            throw RampartError(.internalError, "Stored role '\(text)' is unknown.", status: 500)
        }
        return role
    }
}

// MARK: - Users and roles

extension StoreSession {
    /// Inserts a user.
    public func insertUser(_ user: UserRecord) async throws {
        try await db.raw(
            """
            INSERT INTO users (id, email, public_key, server_admin, created_at)
            VALUES (\(bind: user.id.description), \(bind: user.email), \(bind: user.publicKey),
                    \(bind: Int64(user.serverAdministrator ? 1 : 0)), \(bind: user.createdAt.storeMillis))
            """
        ).run()
    }

    /// A user by id.
    public func user(id: RampartID) async throws -> UserRecord? {
        try await db.raw("SELECT * FROM users WHERE id = \(bind: id.description)").first().map(Self.user)
    }

    /// A user by email (emails are stored lowercased).
    public func user(email: String) async throws -> UserRecord? {
        try await db.raw("SELECT * FROM users WHERE email = \(bind: email)").first().map(Self.user)
    }

    /// The user's role in a tenant, if any.
    public func role(ofUser user: RampartID, inTenant tenant: RampartID) async throws -> Role? {
        try await db.raw(
            "SELECT role FROM tenant_roles WHERE tenant_id = \(bind: tenant.description) AND user_id = \(bind: user.description)"
        ).first().map(Self.role)
    }

    /// Gives a user a role in a tenant, replacing any role they had.
    public func setRole(_ role: Role, user: RampartID, tenant: RampartID, at time: Date) async throws {
        try await db.raw(
            """
            INSERT INTO tenant_roles (tenant_id, user_id, role, created_at)
            VALUES (\(bind: tenant.description), \(bind: user.description), \(bind: role.rawValue), \(bind: time.storeMillis))
            ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role
            """
        ).run()
    }

    /// Removes a user's role from a tenant.
    public func deleteRole(user: RampartID, tenant: RampartID) async throws {
        try await db.raw(
            "DELETE FROM tenant_roles WHERE tenant_id = \(bind: tenant.description) AND user_id = \(bind: user.description)"
        ).run()
    }

    /// The members of a tenant, by email.
    public func members(ofTenant tenant: RampartID) async throws -> [MemberRecord] {
        try await db.raw(
            """
            SELECT u.*, r.role FROM users u JOIN tenant_roles r ON r.user_id = u.id
            WHERE r.tenant_id = \(bind: tenant.description) ORDER BY u.email
            """
        ).all().map { MemberRecord(user: try Self.user($0), role: try Self.role($0)) }
    }

    static func user(_ row: any SQLRow) throws -> UserRecord {
        UserRecord(
            id: try row.id("id"), email: try row.string("email"), publicKey: try row.string("public_key"),
            serverAdministrator: try row.bool("server_admin"), createdAt: try row.date("created_at"))
    }
}

// MARK: - Invitations and login challenges

extension StoreSession {
    /// Inserts an invitation.
    public func insertInvitation(_ invitation: InvitationRecord) async throws {
        try await db.raw(
            """
            INSERT INTO invitations (id, secret_hash, email, tenant_id, role, server_admin, created_by, created_at, expires_at)
            VALUES (\(bind: invitation.id.description), \(bind: invitation.secretHash), \(bind: invitation.email),
                    \(bind: invitation.tenantID?.description), \(bind: invitation.role?.rawValue),
                    \(bind: Int64(invitation.serverAdministrator ? 1 : 0)), \(bind: invitation.createdBy),
                    \(bind: invitation.createdAt.storeMillis), \(bind: invitation.expiresAt.storeMillis))
            """
        ).run()
    }

    /// An invitation by id.
    public func invitation(id: RampartID) async throws -> InvitationRecord? {
        try await db.raw("SELECT * FROM invitations WHERE id = \(bind: id.description)").first().map(Self.invitation)
    }

    /// Marks an invitation used. Returns `false` if it already was, so two racing registrations cannot both win.
    public func consumeInvitation(id: RampartID, by user: RampartID, at time: Date) async throws -> Bool {
        try await db.raw(
            """
            UPDATE invitations SET used_at = \(bind: time.storeMillis), used_by = \(bind: user.description)
            WHERE id = \(bind: id.description) AND used_at IS NULL RETURNING id
            """
        ).first() != nil
    }

    /// Open (unused, unexpired) invitations of a tenant.
    public func openInvitations(ofTenant tenant: RampartID, now: Date) async throws -> [InvitationRecord] {
        try await db.raw(
            """
            SELECT * FROM invitations WHERE tenant_id = \(bind: tenant.description) AND used_at IS NULL
            AND expires_at > \(bind: now.storeMillis) ORDER BY email, created_at
            """
        ).all().map(Self.invitation)
    }

    /// Withdraws open invitations for an email in a tenant.
    public func withdrawInvitations(email: String, tenant: RampartID, at time: Date) async throws {
        try await db.raw(
            """
            UPDATE invitations SET used_at = \(bind: time.storeMillis), used_by = 'withdrawn'
            WHERE tenant_id = \(bind: tenant.description) AND email = \(bind: email) AND used_at IS NULL
            """
        ).run()
    }

    static func invitation(_ row: any SQLRow) throws -> InvitationRecord {
        InvitationRecord(
            id: try row.id("id"), secretHash: try row.string("secret_hash"), email: try row.optionalString("email"),
            tenantID: try row.optionalID("tenant_id"),
            role: try row.optionalString("role").flatMap(Role.init(rawValue:)),
            serverAdministrator: try row.bool("server_admin"), createdBy: try row.optionalString("created_by"),
            createdAt: try row.date("created_at"), expiresAt: try row.date("expires_at"),
            usedAt: try row.optionalDate("used_at"))
    }

    /// Inserts a login challenge.
    public func insertLoginChallenge(_ challenge: LoginChallengeRecord) async throws {
        try await db.raw(
            """
            INSERT INTO login_challenges (id, user_id, nonce, expires_at)
            VALUES (\(bind: challenge.id.description), \(bind: challenge.userID.description), \(bind: challenge.nonce),
                    \(bind: challenge.expiresAt.storeMillis))
            """
        ).run()
    }

    /// Takes a login challenge for single use: returns it only the first time.
    public func consumeLoginChallenge(id: RampartID, at time: Date) async throws -> LoginChallengeRecord? {
        try await db.raw(
            """
            UPDATE login_challenges SET used_at = \(bind: time.storeMillis)
            WHERE id = \(bind: id.description) AND used_at IS NULL RETURNING id, user_id, nonce, expires_at
            """
        ).first().map { row in
            LoginChallengeRecord(
                id: try row.id("id"), userID: try row.id("user_id"), nonce: try row.string("nonce"),
                expiresAt: try row.date("expires_at"))
        }
    }

    /// Deletes challenges that expired before `time`, so the table stays small.
    public func purgeLoginChallenges(before time: Date) async throws {
        try await db.raw("DELETE FROM login_challenges WHERE expires_at < \(bind: time.storeMillis)").run()
    }
}

// MARK: - Tenant CAs

extension StoreSession {
    /// Inserts a CA.
    public func insertCA(_ ca: CARecord) async throws {
        try await db.raw(
            """
            INSERT INTO ca_certificates (id, tenant_id, thumbprint, subject, certificate_der, sealed_key, status,
                not_before, not_after, created_at, activates_at, revoked_at)
            VALUES (\(bind: ca.id.description), \(bind: ca.tenantID.description), \(bind: ca.thumbprint),
                    \(bind: ca.subject), \(bind: Data(ca.certificateDER).base64EncodedString()), \(bind: ca.sealedKey),
                    \(bind: ca.status.rawValue), \(bind: ca.notBefore.storeMillis), \(bind: ca.notAfter.storeMillis),
                    \(bind: ca.createdAt.storeMillis), \(bind: ca.activatesAt.storeMillis),
                    \(bind: ca.revokedAt?.storeMillis))
            """
        ).run()
    }

    /// Sets a CA's status.
    public func setCAStatus(id: RampartID, _ status: CAStatus, revokedAt: Date? = nil) async throws {
        try await db.raw(
            """
            UPDATE ca_certificates SET status = \(bind: status.rawValue), revoked_at = \(bind: revokedAt?.storeMillis)
            WHERE id = \(bind: id.description)
            """
        ).run()
    }

    /// A tenant's CAs, newest first.
    public func cas(ofTenant tenant: RampartID) async throws -> [CARecord] {
        try await db.raw(
            "SELECT * FROM ca_certificates WHERE tenant_id = \(bind: tenant.description) ORDER BY created_at DESC, id"
        ).all().map(Self.ca)
    }

    /// Serialises CA changes of one tenant across replicas (PostgreSQL) by touching the tenant row.
    public func lockTenant(_ tenant: RampartID) async throws {
        try await db.raw("UPDATE tenants SET updated_at = updated_at WHERE id = \(bind: tenant.description)").run()
    }

    static func ca(_ row: any SQLRow) throws -> CARecord {
        let status = try row.string("status")
        guard let caStatus = CAStatus(rawValue: status),
            let der = Data(base64Encoded: try row.string("certificate_der"))
        else {
            throw RampartError(.internalError, "A stored CA row is corrupt.", status: 500)
        }
        return CARecord(
            id: try row.id("id"), tenantID: try row.id("tenant_id"), thumbprint: try row.string("thumbprint"),
            subject: try row.string("subject"), certificateDER: Array(der), sealedKey: try row.string("sealed_key"),
            status: caStatus, notBefore: try row.date("not_before"), notAfter: try row.date("not_after"),
            createdAt: try row.date("created_at"), activatesAt: try row.date("activates_at"),
            revokedAt: try row.optionalDate("revoked_at"))
    }
}

// MARK: - Audit

extension StoreSession {
    /// Appends an audit event.
    public func insertAuditEvent(_ event: AuditEvent) async throws {
        try await db.raw(
            """
            INSERT INTO audit_events (id, time, actor, tenant_id, action, target, result)
            VALUES (\(bind: event.id.description), \(bind: event.time.storeMillis), \(bind: event.actor),
                    \(bind: event.tenantId?.description), \(bind: event.action), \(bind: event.target), \(bind: event.result))
            """
        ).run()
    }

    /// A tenant's audit events at or after `since`, oldest first.
    public func auditEvents(ofTenant tenant: RampartID, since: Date?, limit: Int) async throws -> [AuditEvent] {
        let from = since?.storeMillis ?? 0
        return try await db.raw(
            """
            SELECT * FROM audit_events WHERE tenant_id = \(bind: tenant.description) AND time >= \(bind: from)
            ORDER BY time, id LIMIT \(bind: Int64(limit))
            """
        ).all().map { row in
            AuditEvent(
                id: try row.id("id"), time: try row.date("time"), actor: try row.string("actor"),
                tenantId: try row.optionalID("tenant_id"), action: try row.string("action"),
                target: try row.string("target"), result: try row.string("result"))
        }
    }
}
