import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import SwiftASN1
import RampartCLI
import RampartCore
import RampartDevice
import RampartServer
import RampartTestKit
import Testing
import X509

@Suite("Gateways: parents, children and the trust bundle")
struct GatewayRegistryTests {
    /// GET with a device certificate (mutual TLS); returns the status and body.
    static func deviceGet(_ h: AttestationHarness, _ path: String, certificate: (chain: [Certificate], key: P256.Signing.PrivateKey)?)
        async throws -> (Int, String)
    {
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = try DeviceTLS.configuration(serverCAPEM: h.server.tlsCAPEM, certificate: certificate)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let response = try await http.execute(HTTPClientRequest(url: h.server.url + path), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            try await http.shutdown()
            return (Int(response.status.code), String(buffer: body))
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    @Test("set-parent registers a child; the gateway reads its children and the CA bundle with its own certificate")
    func children() async throws {
        try await AttestationHarness.run { h in
            let gateway = try await h.attestedDevice()
            let child = try await h.device()
            let shown = try await h.admin.client.json(
                DeviceInfo.self, .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/parent",
                body: SetParentRequest(parentId: gateway.device.id))
            #expect(shown.parentId == gateway.device.id)

            let (status, body) = try await Self.deviceGet(h, "/v1/gateway/\(h.tenant.id)/children", certificate: (gateway.chain, gateway.key))
            #expect(status == 200)
            let list = try JSONDecoder().decode(ChildList.self, from: Data(body.utf8))
            #expect(list.children == [child.id])

            let (bundleStatus, pem) = try await Self.deviceGet(h, "/v1/gateway/\(h.tenant.id)/trust-bundle", certificate: (gateway.chain, gateway.key))
            #expect(bundleStatus == 200)
            let cas = try PEMDocument.parseMultiple(pemString: pem).map { try Certificate(pemDocument: $0) }
            #expect(cas.contains(gateway.chain[gateway.chain.count - 1]))

            // Without a device certificate: refused.
            let (anonymous, _) = try await Self.deviceGet(h, "/v1/gateway/\(h.tenant.id)/children", certificate: nil)
            #expect(anonymous == 401)

            // Clearing works, and the key is required so that a forgotten field clears nothing.
            let cleared = try await h.admin.client.json(
                DeviceInfo.self, .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/parent", body: SetParentRequest(parentId: nil))
            #expect(cleared.parentId == nil)
            await #expect {
                _ = try await h.admin.client.raw(.PUT, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/parent", "{}")
            } throws: { error in
                (error as? RampartError)?.status == 400
            }
        }
    }

    @Test("a parent chain that loops, and a parent the tenant does not hold, are refused")
    func loops() async throws {
        try await AttestationHarness.run { h in
            let a = try await h.device()
            let b = try await h.device()
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(a.id)/parent", body: SetParentRequest(parentId: b.id))
            await expectAPIError("invalidParent", status: 400) {
                _ = try await h.admin.client.send(
                    .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(b.id)/parent", body: SetParentRequest(parentId: a.id))
            }
            await expectAPIError("invalidParent", status: 400) {
                _ = try await h.admin.client.send(
                    .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(a.id)/parent", body: SetParentRequest(parentId: a.id))
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await h.admin.client.send(
                    .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(a.id)/parent",
                    body: SetParentRequest(parentId: String(repeating: "0", count: 64)))
            }
        }
    }
}
