import Foundation
import RampartCLI
import RampartCore
import RampartTestKit
import Testing

@Suite("Bad input gets a 4xx with {code, message} and changes nothing")
struct BadInputTests {
    @Test("malformed, oversized, unknown-field and mistyped bodies")
    func badBodies() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let cases: [(String, String, Int)] = [
                ("{\"name\": ", "malformedJSON", 400),
                ("[1, 2]", "malformedJSON", 400),
                ("", "malformedJSON", 400),
                ("{\"name\": \"A\", \"owner\": \"me\"}", "unknownField", 400),
                ("{\"name\": 42}", "invalidRequest", 400),
                ("{}", "invalidRequest", 400),
                ("{\"name\": \"" + String(repeating: "x", count: 70_000) + "\"}", "bodyTooLarge", 413),
            ]
            for (body, code, status) in cases {
                await expectAPIError(code, status: status) { _ = try await admin.client.raw(.POST, "/v1/tenants", body) }
            }
            #expect(try await admin.client.json(TenantList.self, .GET, "/v1/tenants").tenants.isEmpty)
        }
    }

    @Test("unknown routes and methods, bad ids and bad thumbprints answer JSON errors")
    func badPaths() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Paths")
            let probes: [(APIClient.Method, String, String, Int)] = [
                (.GET, "/v1/nothing-here", "notFound", 404),
                (.DELETE, "/v1/tenants", "notFound", 404),
                (.GET, "/v1/tenants/not-a-uuid", "notFound", 404),
                (.GET, "/v1/tenants/\(tenant.id)/ca-certificates/zzzz", "notFound", 404),
                (.GET, "/v1/tenants/\(tenant.id)/ca-certificates/\(String(repeating: "0", count: 64))", "notFound", 404),
                (.GET, "/v1/tenants/\(tenant.id)/ca-certificates/active?format=xml", "invalidRequest", 400),
                (.DELETE, "/v1/tenants/\(tenant.id)/roles/a%40b.c/Owner", "invalidRequest", 400),
            ]
            for (method, path, code, status) in probes {
                await expectAPIError(code, status: status) { _ = try await admin.client.send(method, path) }
            }
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await admin.client.send(.POST, "/v1/tenants/\(tenant.id)/ca-certificates/active/proof",
                                                body: ProofRequest(verificationCode: "has space"))
            }
        }
    }
}
