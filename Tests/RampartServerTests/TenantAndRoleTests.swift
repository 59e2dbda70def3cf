import Foundation
import RampartCLI
import RampartCore
import RampartTestKit
import Testing

@Suite("Tenants and roles")
struct TenantAndRoleTests {
    @Test("a server administrator creates, lists, shows and renames a tenant")
    func tenantLifecycle() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Contoso")
            #expect(tenant.role == .administrator)
            let list = try await admin.client.json(TenantList.self, .GET, "/v1/tenants")
            #expect(list.tenants.map(\.id) == [tenant.id])
            let renamed = try await admin.client.json(
                TenantInfo.self, .PATCH, "/v1/tenants/\(tenant.id)", body: TenantNameRequest(name: "Contoso EU"))
            #expect(renamed.name == "Contoso EU")
            #expect(try await admin.client.json(TenantInfo.self, .GET, "/v1/tenants/\(tenant.id)").name == "Contoso EU")
        }
    }

    @Test("names that are too long or use invalid characters give invalidName", arguments: [
        String(repeating: "n", count: 51), "semi;colon", "", "<script>",
    ])
    func invalidNames(_ name: String) async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            await expectAPIError("invalidName", status: 400) { _ = try await admin.createTenant(name) }
            #expect(try await admin.client.json(TenantList.self, .GET, "/v1/tenants").tenants.isEmpty)
        }
    }

    @Test("roles: Reader only reads, Contributor never deletes, outsiders get 404")
    func roleEnforcement() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Fabrikam")
            let other = try await admin.createTenant("Other")
            let reader = try await admin.invite("reader@test.rampart", as: .reader, to: tenant.id, on: server)
            let contributor = try await admin.invite("contrib@test.rampart", as: .contributor, to: tenant.id, on: server)
            let outsider = try await admin.invite("outsider@test.rampart", as: .reader, to: other.id, on: server)

            // Reader reads, but cannot create or change.
            #expect(try await reader.client.json(TenantInfo.self, .GET, "/v1/tenants/\(tenant.id)").role == .reader)
            _ = try await reader.client.json(CACertificateList.self, .GET, "/v1/tenants/\(tenant.id)/ca-certificates")
            await expectAPIError("forbidden", status: 403) {
                _ = try await reader.client.send(.POST, "/v1/tenants/\(tenant.id)/ca-certificates/active/proof",
                                                 body: ProofRequest(verificationCode: "abc"))
            }
            await expectAPIError("forbidden", status: 403) {
                _ = try await reader.client.send(.PATCH, "/v1/tenants/\(tenant.id)", body: TenantNameRequest(name: "Mine"))
            }
            await expectAPIError("forbidden", status: 403) { _ = try await reader.createTenant("Reader Tenant") }

            // Contributor creates and changes, but never deletes.
            _ = try await contributor.client.send(.PATCH, "/v1/tenants/\(tenant.id)", body: TenantNameRequest(name: "Fabrikam 2"))
            _ = try await contributor.client.send(.POST, "/v1/tenants/\(tenant.id)/ca-certificates/active/proof",
                                                  body: ProofRequest(verificationCode: "abc"))
            await expectAPIError("forbidden", status: 403) {
                _ = try await contributor.client.send(.DELETE, "/v1/tenants/\(tenant.id)/roles/reader%40test.rampart/Reader")
            }
            await expectAPIError("forbidden", status: 403) {
                _ = try await contributor.client.send(.POST, "/v1/tenants/\(tenant.id)/ca-certificates/active/revoke")
            }

            // Someone without a role in the tenant cannot tell it exists.
            for path in ["", "/roles", "/ca-certificates", "/ca-bundle", "/audit", "/ca-certificates/active"] {
                await expectAPIError("notFound", status: 404) {
                    _ = try await outsider.client.send(.GET, "/v1/tenants/\(tenant.id)\(path)")
                }
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await outsider.client.send(.PATCH, "/v1/tenants/\(tenant.id)", body: TenantNameRequest(name: "X"))
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await outsider.client.send(.POST, "/v1/tenants/\(tenant.id)/roles", body: RoleAddRequest(email: "x@y.z", role: .reader))
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await outsider.client.send(.DELETE, "/v1/tenants/\(tenant.id)/roles/reader%40test.rampart/Reader")
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await outsider.client.send(.POST, "/v1/tenants/\(tenant.id)/ca-certificates/active/revoke")
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await outsider.client.send(.POST, "/v1/tenants/\(tenant.id)/ca-certificates/active/proof", body: ProofRequest(verificationCode: "x"))
            }
            await expectAPIError("forbidden", status: 403) {
                _ = try await contributor.client.send(.POST, "/v1/tenants/\(tenant.id)/roles", body: RoleAddRequest(email: "x@y.z", role: .reader))
            }
            await expectAPIError("forbidden", status: 403) {
                _ = try await reader.client.send(.POST, "/v1/tenants/\(tenant.id)/ca-certificates/active/revoke")
            }
            // An outsider's refused attempts leave nothing in the tenant's audit log.
            let audit = try await admin.client.json(AuditList.self, .GET, "/v1/tenants/\(tenant.id)/audit").events
            #expect(!audit.contains { $0.actor == "outsider@test.rampart" })
            #expect(audit.contains { $0.actor == "reader@test.rampart" && $0.result == "forbidden" })
            let outsiderList = try await outsider.client.json(TenantList.self, .GET, "/v1/tenants")
            #expect(outsiderList.tenants.map(\.id) == [other.id])
            let unknown = RampartID()
            let unknownError = await Self.error { _ = try await admin.client.send(.GET, "/v1/tenants/\(unknown)") }
            let hiddenError = await Self.error { _ = try await outsider.client.send(.GET, "/v1/tenants/\(tenant.id)") }
            #expect(unknownError?.message.replacingOccurrences(of: unknown.description, with: "")
                    == hiddenError?.message.replacingOccurrences(of: tenant.id.description, with: ""))
        }
    }

    @Test("role add, list and delete; the last Administrator stays")
    func roleManagement() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Roles")
            let grant = try await admin.client.json(
                RoleGrant.self, .POST, "/v1/tenants/\(tenant.id)/roles",
                body: RoleAddRequest(email: "New@Test.Rampart", role: .contributor))
            #expect(grant.status == .invited && grant.email == "new@test.rampart" && grant.invitation != nil)
            var roles = try await admin.client.json(RoleList.self, .GET, "/v1/tenants/\(tenant.id)/roles").roles
            #expect(roles.contains { $0.email == "new@test.rampart" && $0.status == .invited })

            let user = try await server.register(invitation: grant.invitation!)
            roles = try await admin.client.json(RoleList.self, .GET, "/v1/tenants/\(tenant.id)/roles").roles
            #expect(roles.contains { $0.email == "new@test.rampart" && $0.status == .active && $0.userId == user.info.id })

            // A registered user gets the role at once, without an invitation.
            let promoted = try await admin.client.json(
                RoleGrant.self, .POST, "/v1/tenants/\(tenant.id)/roles",
                body: RoleAddRequest(email: "new@test.rampart", role: .administrator))
            #expect(promoted.status == .active && promoted.invitation == nil)

            _ = try await admin.client.send(.DELETE, "/v1/tenants/\(tenant.id)/roles/new%40test.rampart/Administrator")
            await expectAPIError("notFound", status: 404) {
                _ = try await user.client.send(.GET, "/v1/tenants/\(tenant.id)")
            }
            await expectAPIError("lastAdministrator", status: 409) {
                _ = try await admin.client.send(.DELETE, "/v1/tenants/\(tenant.id)/roles/admin%40test.rampart/Administrator")
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await admin.client.send(.DELETE, "/v1/tenants/\(tenant.id)/roles/nobody%40test.rampart/Reader")
            }
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await admin.client.send(.POST, "/v1/tenants/\(tenant.id)/roles", body: RoleAddRequest(email: "not-an-email", role: .reader))
            }
        }
    }

    @Test("an open invitation can be withdrawn and then no longer registers")
    func withdrawInvitation() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Withdraw")
            let grant = try await admin.client.json(
                RoleGrant.self, .POST, "/v1/tenants/\(tenant.id)/roles", body: RoleAddRequest(email: "w@test.rampart", role: .reader))
            _ = try await admin.client.send(.DELETE, "/v1/tenants/\(tenant.id)/roles/w%40test.rampart/Reader")
            await expectAPIError("invitationUsed", status: 409) { _ = try await server.register(invitation: grant.invitation!) }
        }
    }

    @Test("every change is in the audit log with actor, action, target and result, refusals included")
    func auditLog() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Audited")
            let start = Date()
            _ = try await admin.client.send(.PATCH, "/v1/tenants/\(tenant.id)", body: TenantNameRequest(name: "Audited 2"))
            await expectAPIError("invalidName", status: 400) {
                _ = try await admin.client.send(.PATCH, "/v1/tenants/\(tenant.id)", body: TenantNameRequest(name: "bad/name"))
            }
            let events = try await admin.client.json(AuditList.self, .GET, "/v1/tenants/\(tenant.id)/audit").events
            let actions = events.map(\.action)
            #expect(actions.contains("tenant.create") && actions.contains("ca.create"))
            #expect(events.contains { $0.action == "tenant.update" && $0.result == "success" && $0.actor == "admin@test.rampart" })
            #expect(events.contains { $0.action == "tenant.update" && $0.result == "invalidName" })
            let limited = try await admin.client.json(AuditList.self, .GET, "/v1/tenants/\(tenant.id)/audit?limit=2").events
            #expect(limited.count == 2)
            let later = Timestamp.format(Date() + 60).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            #expect(try await admin.client.json(AuditList.self, .GET, "/v1/tenants/\(tenant.id)/audit?since=\(later)").events.isEmpty)
            let earlier = Timestamp.format(start - 60).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            #expect(try await admin.client.json(AuditList.self, .GET, "/v1/tenants/\(tenant.id)/audit?since=\(earlier)").events.count == events.count)
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await admin.client.send(.GET, "/v1/tenants/\(tenant.id)/audit?since=yesterday")
            }
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await admin.client.send(.GET, "/v1/tenants/\(tenant.id)/audit?limit=0")
            }
        }
    }

    static func error(_ body: () async throws -> Void) async -> RampartError? {
        do { try await body() } catch let error as RampartError { return error } catch {}
        return nil
    }
}
