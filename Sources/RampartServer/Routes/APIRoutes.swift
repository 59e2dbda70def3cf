import Foundation
import Hummingbird
import Prometheus
import RampartCore
import RampartPKI
import RampartStore
import X509

/// Every HTTP route, in one table per area. Handlers only translate HTTP to domain calls and back.
struct APIRoutes: Sendable {
    let users: UserService
    let tenants: TenantService
    let certificateAuthority: TenantCAService
    let bodyLimit: Int

    /// Routes that need no token.
    func addPublic(to router: Router<RampartRequestContext>) {
        router.get("/healthz") { _, _ in HealthStatus(status: "ok") }
        router.get("/metrics") { _, _ -> Response in
            var buffer = [UInt8]()
            MetricsRegistry.shared.emit(into: &buffer)
            return FileResponse.make(buffer, contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/openapi.yaml") { _, _ in
            FileResponse.make(Array(OpenAPIDocument.yaml.utf8), contentType: "application/yaml")
        }
        router.post("/v1/users/register") { request, _ in
            let body = try await request.decodeStrict(RegisterUserRequest.self, limit: bodyLimit)
            return EditedResponse(status: .created, response: try await users.register(body))
        }
        router.post("/v1/auth/challenge") { request, _ in
            let body = try await request.decodeStrict(LoginChallengeRequest.self, limit: bodyLimit)
            return try await users.challenge(for: body.userId)
        }
        router.post("/v1/auth/token") { request, _ in
            let body = try await request.decodeStrict(LoginTokenRequest.self, limit: bodyLimit)
            return try await users.token(body)
        }
    }

    /// Routes behind ``AuthenticationMiddleware``.
    func addAuthenticated(to group: RouterGroup<RampartRequestContext>) {
        group.get("/v1/me") { _, context in UserService.info(try context.requireCaller()) }

        // Tenants
        group.get("/v1/tenants") { _, context in try await tenants.list(caller: try context.requireCaller()) }
        group.post("/v1/tenants") { request, context in
            let body = try await request.decodeStrict(TenantNameRequest.self, limit: bodyLimit)
            let tenant = try await tenants.create(name: body.name, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: tenant)
        }
        group.get("/v1/tenants/:tenantId") { _, context in
            try await tenants.show(try Self.tenant(context), caller: try context.requireCaller())
        }
        group.patch("/v1/tenants/:tenantId") { request, context in
            let tenant = try Self.tenant(context)
            let body = try await request.decodeStrict(TenantNameRequest.self, limit: bodyLimit)
            return try await tenants.update(tenant, name: body.name, caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/audit") { request, context in
            let tenant = try Self.tenant(context)
            let query = request.uri.queryParameters
            var since: Date?
            if let text = query.get("since") {
                guard let date = Timestamp.parse(text) else {
                    throw RampartError.invalidRequest("'since' must be an RFC 3339 date-time, e.g. 2026-11-21T08:00:00Z.")
                }
                since = date
            }
            var limit = 100
            if let text = query.get("limit") {
                guard let value = Int(text), (1...1000).contains(value) else {
                    throw RampartError.invalidRequest("'limit' must be a whole number from 1 to 1000.")
                }
                limit = value
            }
            return try await tenants.audit(tenant, since: since, limit: limit, caller: try context.requireCaller())
        }

        // Roles
        group.get("/v1/tenants/:tenantId/roles") { _, context in
            try await users.roles(in: try Self.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/roles") { request, context in
            let tenant = try Self.tenant(context)
            let body = try await request.decodeStrict(RoleAddRequest.self, limit: bodyLimit)
            let grant = try await users.addRole(body, in: tenant, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: grant)
        }
        group.delete("/v1/tenants/:tenantId/roles/:email/:role") { _, context -> Response in
            let tenant = try Self.tenant(context)
            let email = try context.parameters.requireDecoded("email")
            let role = try Role(parsing: try context.parameters.requireDecoded("role"))
            try await users.deleteRole(email: email, role: role, in: tenant, caller: try context.requireCaller())
            return Response(status: .noContent)
        }

        // Tenant CA
        group.get("/v1/tenants/:tenantId/ca-certificates") { _, context in
            CACertificateList(
                certificates: try await certificateAuthority.list(
                    tenant: try Self.tenant(context), caller: try context.requireCaller()))
        }
        group.get("/v1/tenants/:tenantId/ca-certificates/:thumbprint") { request, context in
            let format = try Self.format(request.uri.queryParameters.get("format"))
            let certificate = try await certificateAuthority.certificate(
                tenant: try Self.tenant(context), thumbprint: try Self.thumbprint(context),
                caller: try context.requireCaller())
            return try Self.certificateResponse(certificate, format: format, name: "tenant-ca")
        }
        group.get("/v1/tenants/:tenantId/ca-certificates/:thumbprint/chain") { _, context in
            let certificate = try await certificateAuthority.certificate(
                tenant: try Self.tenant(context), thumbprint: try Self.thumbprint(context),
                caller: try context.requireCaller())
            return FileResponse.make(
                try PKCS7.certificatesOnly([certificate]), contentType: "application/pkcs7-mime",
                filename: "tenant-ca-chain.p7b")
        }
        group.post("/v1/tenants/:tenantId/ca-certificates/:thumbprint/proof") { request, context in
            let tenant = try Self.tenant(context)
            let thumbprint = try Self.thumbprint(context)
            let body = try await request.decodeStrict(ProofRequest.self, limit: bodyLimit)
            let proof = try await certificateAuthority.proof(
                tenant: tenant, thumbprint: thumbprint, code: body.verificationCode, caller: try context.requireCaller())
            return try Self.certificateResponse(proof, format: body.format ?? .pem, name: "proof")
        }
        group.post("/v1/tenants/:tenantId/ca-certificates/:thumbprint/revoke") { _, context in
            try await certificateAuthority.revoke(
                tenant: try Self.tenant(context), thumbprint: try Self.thumbprint(context),
                caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/ca-bundle") { _, context in
            let pem = try await certificateAuthority.bundle(
                tenant: try Self.tenant(context), caller: try context.requireCaller())
            return FileResponse.make(Array(pem.utf8), contentType: "application/x-pem-file", filename: "ca-bundle.pem")
        }
    }

    static func tenant(_ context: RampartRequestContext) throws -> RampartID {
        try context.parameters.requireID("tenantId", what: "Tenant")
    }

    static func thumbprint(_ context: RampartRequestContext) throws -> String {
        let text = try context.parameters.requireDecoded("thumbprint").lowercased()
        guard text == "active" || (text.count == 64 && text.allSatisfy(\.isHexDigit)) else {
            throw RampartError.notFound("CA certificate \(text.prefix(64))")
        }
        return text
    }

    static func format(_ text: String?) throws -> CertificateFormat {
        try text.map(CertificateFormat.init(parsing:)) ?? .pem
    }

    static func certificateResponse(_ certificate: Certificate, format: CertificateFormat, name: String) throws
        -> Response
    {
        switch format {
        case .pem:
            FileResponse.make(Array(try certificate.pemString.utf8), contentType: "application/x-pem-file", filename: "\(name).pem")
        case .der:
            FileResponse.make(try certificate.derBytes, contentType: "application/pkix-cert", filename: "\(name).cer")
        }
    }
}
