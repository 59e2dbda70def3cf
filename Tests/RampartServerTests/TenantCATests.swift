import Foundation
import RampartCLI
import RampartCore
import RampartPKI
import RampartServer
import RampartStore
import Crypto
import RampartTestKit
import SwiftASN1
import Testing
import X509

@Suite("Tenant CA")
struct TenantCATests {
    static let day: TimeInterval = 24 * 3600

    @Test("downloads parse with openssl and the proof verifies against the CA")
    func downloads() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Downloads")
            let base = "/v1/tenants/\(tenant.id)/ca-certificates"
            let list = try await admin.client.json(CACertificateList.self, .GET, base).certificates
            #expect(list.count == 1 && list[0].status == .active)
            let validity = list[0].notAfter.timeIntervalSince(list[0].notBefore)
            #expect(abs(validity - 2 * 365 * Self.day) < 600)

            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            func save(_ path: String, _ name: String, body: ProofRequest? = nil) async throws -> String {
                let raw = try await admin.client.send(body == nil ? .GET : .POST, path, body: body)
                try Data(raw.body).write(to: directory.file(name))
                return directory.file(name).path
            }
            let pem = try await save("\(base)/active", "ca.pem")
            let der = try await save("\(base)/\(list[0].thumbprint)?format=der", "ca.der")
            let chain = try await save("\(base)/active/chain", "chain.p7b")
            let proof = try await save("\(base)/active/proof", "proof.pem", body: ProofRequest(verificationCode: "A1B2C3"))

            let text = try OpenSSL.run(["x509", "-in", pem, "-noout", "-subject", "-fingerprint", "-sha256"])
            #expect(text.status == 0, "\(text.output)")
            let fingerprint = text.output.components(separatedBy: "Fingerprint=").last?
                .replacingOccurrences(of: ":", with: "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            #expect(fingerprint == list[0].thumbprint)
            #expect(try OpenSSL.run(["x509", "-inform", "der", "-in", der, "-noout"]).status == 0)
            let p7 = try OpenSSL.run(["pkcs7", "-inform", "der", "-in", chain, "-print_certs"])
            #expect(p7.status == 0 && p7.output.contains("Rampart Tenant CA"), "\(p7.output)")
            let verify = try OpenSSL.run(["verify", "-CAfile", pem, proof])
            #expect(verify.status == 0, "\(verify.output)")
            let subject = try OpenSSL.run(["x509", "-in", proof, "-noout", "-subject"])
            #expect(subject.output.contains("CN = A1B2C3"), "\(subject.output)")
        }
    }

    @Test("rotation: successor 90 days before expiry, Active 45 days later, both in the bundle")
    func rotation() async throws {
        let clock = ManualWallClock()
        try await TestServer.withServer(clock: clock) { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Rotating")
            let base = "/v1/tenants/\(tenant.id)"
            func list() async throws -> [CACertificateInfo] {
                try await admin.client.json(CACertificateList.self, .GET, "\(base)/ca-certificates").certificates
            }
            func bundle() async throws -> [Certificate] {
                let raw = try await admin.client.send(.GET, "\(base)/ca-bundle")
                return try Certificate.parseBundle(pem: String(decoding: raw.body, as: UTF8.self))
            }
            let first = try await list()[0]

            clock.set(first.notAfter - 91 * Self.day)
            #expect(try await server.runtime.certificateAuthority.rotateIfDue(tenant: tenant.id) == false)
            #expect(try await list().count == 1)

            clock.set(first.notAfter - 90 * Self.day)
            let afterSuccessor = try await list()
            #expect(afterSuccessor.count == 2)
            let successor = try #require(afterSuccessor.first { $0.thumbprint != first.thumbprint })
            #expect(successor.status == .inactive)
            #expect(afterSuccessor.first { $0.thumbprint == first.thumbprint }?.status == .active)
            #expect(try await bundle().count == 2)

            clock.advance(by: 44 * Self.day)
            #expect(try await list().first { $0.thumbprint == successor.thumbprint }?.status == .inactive)
            clock.advance(by: 1 * Self.day)
            let rotated = try await list()
            #expect(rotated.first { $0.thumbprint == successor.thumbprint }?.status == .active)
            #expect(rotated.first { $0.thumbprint == first.thumbprint }?.status == .inactive)
            #expect(try await bundle().count == 2)

            // Once the old CA expires it drops out of the bundle.
            clock.set(first.notAfter + 1)
            #expect(try await bundle().count == 1)
            let events = try await admin.client.json(AuditList.self, .GET, "\(base)/audit").events
            #expect(events.contains { $0.action == "ca.activate" && $0.target == successor.thumbprint })
        }
    }

    @Test("a server that was off past the CA's expiry gets a new Active CA at once")
    func expiredWithoutSuccessor() async throws {
        let clock = ManualWallClock()
        try await TestServer.withServer(clock: clock) { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Sleeper")
            let first = try await admin.client.json(CACertificateList.self, .GET, "/v1/tenants/\(tenant.id)/ca-certificates").certificates[0]
            clock.set(first.notAfter + 10 * Self.day)
            let list = try await admin.client.json(CACertificateList.self, .GET, "/v1/tenants/\(tenant.id)/ca-certificates").certificates
            let active = list.filter { $0.status == .active }
            #expect(active.count == 1 && active[0].thumbprint != first.thumbprint && active[0].notAfter > clock.now())
        }
    }

    @Test("revoking the Active CA replaces it and drops it from the bundle")
    func revoke() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Revoker")
            let base = "/v1/tenants/\(tenant.id)"
            let first = try await admin.client.json(CACertificateList.self, .GET, "\(base)/ca-certificates").certificates[0]
            let revoked = try await admin.client.json(CACertificateInfo.self, .POST, "\(base)/ca-certificates/\(first.thumbprint)/revoke")
            #expect(revoked.status == .revoked)
            let list = try await admin.client.json(CACertificateList.self, .GET, "\(base)/ca-certificates").certificates
            #expect(list.count == 2 && list.filter { $0.status == .active }.count == 1)
            let bundle = try await admin.client.send(.GET, "\(base)/ca-bundle")
            let certificates = try Certificate.parseBundle(pem: String(decoding: bundle.body, as: UTF8.self))
            #expect(try certificates.map { try $0.sha256Thumbprint } == list.filter { $0.status == .active }.map(\.thumbprint))
            await expectAPIError("conflict", status: 409) {
                _ = try await admin.client.send(.POST, "\(base)/ca-certificates/\(first.thumbprint)/revoke")
            }
            await expectAPIError("conflict", status: 409) {
                _ = try await admin.client.send(.POST, "\(base)/ca-certificates/\(first.thumbprint)/proof", body: ProofRequest(verificationCode: "x"))
            }
        }
    }

    @Test("revoking the Active CA after a rotation never revives the retired one; proofs from expired CAs are refused")
    func revokeAfterRotation() async throws {
        let clock = ManualWallClock()
        try await TestServer.withServer(clock: clock) { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Rotated")
            let base = "/v1/tenants/\(tenant.id)/ca-certificates"
            let first = try await admin.client.json(CACertificateList.self, .GET, base).certificates[0]
            clock.set(first.notAfter - 90 * Self.day)
            _ = try await admin.client.json(CACertificateList.self, .GET, base)
            clock.advance(by: 45 * Self.day)
            let rotated = try await admin.client.json(CACertificateList.self, .GET, base).certificates
            let second = try #require(rotated.first { $0.status == .active })
            #expect(second.thumbprint != first.thumbprint)

            _ = try await admin.client.send(.POST, "\(base)/\(second.thumbprint)/revoke")
            let after = try await admin.client.json(CACertificateList.self, .GET, base).certificates
            let active = try #require(after.first { $0.status == .active })
            #expect(active.thumbprint != first.thumbprint && active.thumbprint != second.thumbprint)
            #expect(after.first { $0.thumbprint == first.thumbprint }?.status == .inactive)
            let events = try await admin.client.json(AuditList.self, .GET, "/v1/tenants/\(tenant.id)/audit").events
            #expect(events.contains { $0.action == "ca.revoke" && $0.target == second.thumbprint && $0.result == "success" })

            clock.set(first.notAfter + 1)
            await expectAPIError("conflict", status: 409) {
                _ = try await admin.client.send(.POST, "\(base)/\(first.thumbprint)/proof", body: ProofRequest(verificationCode: "late"))
            }
        }
    }

    @Test("revoking the Active CA while a successor waits promotes the successor")
    func revokePromotesSuccessor() async throws {
        let clock = ManualWallClock()
        try await TestServer.withServer(clock: clock) { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Successor")
            let base = "/v1/tenants/\(tenant.id)/ca-certificates"
            let first = try await admin.client.json(CACertificateList.self, .GET, base).certificates[0]
            clock.set(first.notAfter - 80 * Self.day)
            let waiting = try #require(try await admin.client.json(CACertificateList.self, .GET, base).certificates.first { $0.status == .inactive })
            _ = try await admin.client.send(.POST, "\(base)/\(first.thumbprint)/revoke")
            let after = try await admin.client.json(CACertificateList.self, .GET, base).certificates
            #expect(after.count == 2)
            #expect(after.first { $0.thumbprint == waiting.thumbprint }?.status == .active)
        }
    }

    @Test("CA private keys are stored sealed, never in the clear")
    func keysSealedAtRest() async throws {
        try await TestServer.withServer { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Sealed")
            let records = try await server.runtime.store.read { try await $0.cas(ofTenant: tenant.id) }
            #expect(records.count == 1)
            let key = try server.runtime.context.sealer.open(records[0].sealedKey, owner: "ca:\(records[0].id)")
            let sealed = Data(base64Encoded: records[0].sealedKey) ?? Data()
            #expect(sealed.range(of: key.rawRepresentation) == nil)
            let certificate = try Certificate(derEncoded: records[0].certificateDER)
            #expect(certificate.publicKey == Certificate.PublicKey(key.publicKey))
        }
    }
}
