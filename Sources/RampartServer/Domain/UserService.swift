import Crypto
import Foundation
import RampartCore
import RampartPKI
import RampartStore

/// Password-less users: invitations, registration of a public key, challenge–response login, and roles.
public struct UserService: Sendable {
    let context: DomainContext
    let tokens: TokenAuthority

    public init(context: DomainContext, tokens: TokenAuthority) {
        self.context = context
        self.tokens = tokens
    }

    /// Creates an invitation for a server administrator, as `server init` does for the first one.
    public func inviteServerAdministrator(email: String) async throws -> InvitationToken {
        let email = try Self.normalizedEmail(email)
        let token = InvitationToken(tlsPin: context.tlsPin)
        let now = context.clock.now()
        try await context.audited(.system, tenant: nil, action: "invitation.create", target: email) { session in
            try await session.insertInvitation(
                InvitationRecord(
                    id: token.id, secretHash: token.secretHash, email: email, tenantID: nil, role: nil,
                    serverAdministrator: true, createdBy: "system", createdAt: now,
                    expiresAt: now + context.configuration.limits.invitationLifetime))
        }
        return token
    }

    /// Registers the holder of an invitation with their public key.
    ///
    /// - Throws: `invitationInvalid`, `invitationUsed`, `invitationExpired`, `invalidRequest` for a bad key,
    ///   `conflict` when the email is already registered.
    public func register(_ request: RegisterUserRequest) async throws -> UserInfo {
        let token = try InvitationToken(parsing: request.invitation)
        let publicKey: P256.Signing.PublicKey
        do {
            publicKey = try P256.Signing.PublicKey(pemRepresentation: request.publicKey)
        } catch {
            throw RampartError.invalidRequest("publicKey must be a PEM P-256 public key (SubjectPublicKeyInfo).")
        }
        let now = context.clock.now()
        let user = UserRecord(
            id: RampartID(), email: "", publicKey: publicKey.pemRepresentation, serverAdministrator: false,
            createdAt: now)
        return try await context.store.transaction { session in
            guard let invitation = try await session.invitation(id: token.id),
                invitation.secretHash == token.secretHash
            else {
                throw RampartError(.invitationInvalid, "This invitation is not known to this server.", status: 401)
            }
            guard invitation.usedAt == nil else {
                throw RampartError.conflict(.invitationUsed, "This invitation has already been used. Ask an Administrator for a new one.")
            }
            guard invitation.expiresAt > now else {
                throw RampartError(.invitationExpired, "This invitation expired on \(Timestamp.format(invitation.expiresAt)). Ask for a new one.", status: 401)
            }
            // Taking the invitation first makes a racing second registration fail here, with invitationUsed.
            guard try await session.consumeInvitation(id: invitation.id, by: user.id, at: now) else {
                throw RampartError.conflict(.invitationUsed, "This invitation has already been used.")
            }
            let email = invitation.email ?? "user-\(user.id)"
            guard try await session.user(email: email) == nil else {
                throw RampartError.conflict(.conflict, "\(email) is already registered. Sign in with 'rampart login'.")
            }
            var registered = user
            registered.email = email
            registered.serverAdministrator = invitation.serverAdministrator
            try await session.insertUser(registered)
            if let tenant = invitation.tenantID, let role = invitation.role {
                try await session.setRole(role, user: registered.id, tenant: tenant, at: now)
            }
            try await session.insertAuditEvent(
                AuditEvent(
                    id: RampartID(), time: now, actor: email, tenantId: invitation.tenantID, action: "user.register",
                    target: email, result: "success"))
            return Self.info(registered)
        }
    }

    /// Issues a single-use login challenge for a user.
    public func challenge(for userID: RampartID) async throws -> LoginChallenge {
        let now = context.clock.now()
        let nonce = Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        let record = LoginChallengeRecord(
            id: RampartID(), userID: userID, nonce: nonce,
            expiresAt: now + context.configuration.limits.loginChallengeLifetime)
        try await context.store.transaction { session in
            guard try await session.user(id: userID) != nil else {
                throw RampartError.notFound("User \(userID)")
            }
            try await session.purgeLoginChallenges(before: now - 3600)
            try await session.insertLoginChallenge(record)
        }
        return LoginChallenge(challengeId: record.id, nonce: nonce, expiresAt: record.expiresAt)
    }

    /// Exchanges a signed challenge for a session token.
    ///
    /// - Throws: 401 `challengeInvalid` (unknown, used or expired) or `signatureInvalid`.
    public func token(_ request: LoginTokenRequest) async throws -> LoginToken {
        let now = context.clock.now()
        let (challenge, user) = try await context.store.transaction { session in
            guard let challenge = try await session.consumeLoginChallenge(id: request.challengeId, at: now) else {
                throw RampartError(.challengeInvalid, "Unknown or already used challenge. Request a new one.", status: 401)
            }
            guard let user = try await session.user(id: challenge.userID) else {
                throw RampartError(.challengeInvalid, "The challenge's user no longer exists.", status: 401)
            }
            return (challenge, user)
        }
        guard challenge.expiresAt > now else {
            throw RampartError(.challengeInvalid, "The challenge expired. Request a new one and sign it within a minute.", status: 401)
        }
        guard let signatureBytes = Base64URL.decode(request.signature),
            let signature = try? P256.Signing.ECDSASignature(derRepresentation: signatureBytes),
            let key = try? P256.Signing.PublicKey(pemRepresentation: user.publicKey),
            key.isValidSignature(
                signature, for: LoginChallenge.signedMessage(challengeId: challenge.id, nonce: challenge.nonce))
        else {
            throw RampartError(.signatureInvalid, "The signature does not verify with your registered key.", status: 401)
        }
        return try await tokens.issue(for: user.id)
    }

    /// The members of a tenant and its open invitations.
    public func roles(in tenant: RampartID, caller: UserRecord) async throws -> RoleList {
        let now = context.clock.now()
        return try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            let members = try await session.members(ofTenant: tenant).map {
                RoleAssignment(email: $0.user.email, role: $0.role, status: .active, userId: $0.user.id)
            }
            let invited = try await session.openInvitations(ofTenant: tenant, now: now).compactMap { invitation in
                invitation.role.map {
                    RoleAssignment(email: invitation.email ?? "", role: $0, status: .invited, userId: nil)
                }
            }
            return RoleList(roles: members + invited)
        }
    }

    /// Grants a role: at once for a registered user, otherwise through a new invitation.
    public func addRole(_ request: RoleAddRequest, in tenant: RampartID, caller: UserRecord) async throws -> RoleGrant {
        let email = try Self.normalizedEmail(request.email)
        let now = context.clock.now()
        return try await context.audited(
            Actor(user: caller), tenant: tenant, action: "role.add", target: "\(email) \(request.role.rawValue)"
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .manageUsers, session: session)
            // Serialises role changes per tenant, so concurrent demotions cannot leave it without an Administrator.
            try await session.lockTenant(tenant)
            if let user = try await session.user(email: email) {
                if let current = try await session.role(ofUser: user.id, inTenant: tenant), current == .administrator,
                    request.role != .administrator
                {
                    try await Self.requireAnotherAdministrator(besides: user.id, tenant: tenant, session: session)
                }
                try await session.setRole(request.role, user: user.id, tenant: tenant, at: now)
                return RoleGrant(email: email, role: request.role, status: .active, invitation: nil, expiresAt: nil)
            }
            try await session.withdrawInvitations(email: email, tenant: tenant, at: now)
            let token = InvitationToken(tlsPin: context.tlsPin)
            let expiry = now + context.configuration.limits.invitationLifetime
            try await session.insertInvitation(
                InvitationRecord(
                    id: token.id, secretHash: token.secretHash, email: email, tenantID: tenant, role: request.role,
                    serverAdministrator: false, createdBy: caller.email, createdAt: now, expiresAt: expiry))
            return RoleGrant(email: email, role: request.role, status: .invited, invitation: token.text, expiresAt: expiry)
        }
    }

    /// Removes a user's role, or withdraws an open invitation.
    public func deleteRole(email rawEmail: String, role: Role, in tenant: RampartID, caller: UserRecord) async throws {
        let email = try Self.normalizedEmail(rawEmail)
        let now = context.clock.now()
        try await context.audited(
            Actor(user: caller), tenant: tenant, action: "role.delete", target: "\(email) \(role.rawValue)"
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .manageUsers, session: session)
            try await session.lockTenant(tenant)
            if let user = try await session.user(email: email),
                try await session.role(ofUser: user.id, inTenant: tenant) == role
            {
                if role == .administrator {
                    try await Self.requireAnotherAdministrator(besides: user.id, tenant: tenant, session: session)
                }
                try await session.deleteRole(user: user.id, tenant: tenant)
                return
            }
            let open = try await session.openInvitations(ofTenant: tenant, now: now)
            guard open.contains(where: { $0.email == email && $0.role == role }) else {
                throw RampartError.notFound("The role \(role.rawValue) for \(email)")
            }
            try await session.withdrawInvitations(email: email, tenant: tenant, at: now)
        }
    }

    private static func requireAnotherAdministrator(besides user: RampartID, tenant: RampartID, session: StoreSession)
        async throws
    {
        let admins = try await session.members(ofTenant: tenant).filter { $0.role == .administrator && $0.user.id != user }
        guard !admins.isEmpty else {
            throw RampartError.conflict(
                .lastAdministrator, "This is the tenant's last Administrator. Make someone else Administrator first.")
        }
    }

    /// Lowercases and checks an email address.
    static func normalizedEmail(_ text: String) throws -> String {
        let email = text.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
            email.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f && $0 != "/" })
        else {
            throw RampartError.invalidRequest("'\(text.prefix(80))' is not an email address.")
        }
        return email
    }

    static func info(_ user: UserRecord) -> UserInfo {
        UserInfo(id: user.id, email: user.email, serverAdministrator: user.serverAdministrator, createdAt: user.createdAt)
    }
}
