import Crypto
import Foundation
import RampartAttestation
import RampartCLI
import RampartCore
import RampartDevice
import RampartPKI
import RampartServer
import RampartTestKit
import SwiftASN1
import Testing
import X509

/// A server that trusts a test manufacturer, an Administrator with a tenant, and helpers to attest.
struct AttestationHarness: Sendable {
    let server: TestServer
    let fleet: TestFleet
    let admin: TestUser
    let tenant: TenantInfo

    static func run(clock: any WallClock = SystemWallClock(), _ body: @Sendable (AttestationHarness) async throws -> Void)
        async throws
    {
        let fleet = try TestFleet()
        defer { fleet.remove() }
        let root = try fleet.rootPEM
        try await TestServer.withServer(clock: clock, configure: { $0.manufacturerRoots = [root] }) { server in
            let admin = try await server.registerAdministrator()
            let tenant = try await admin.createTenant("Fleet")
            _ = try await admin.client.send(
                .POST, "/v1/tenants/\(tenant.id)/reference-values",
                body: ReferenceValueRequest(sha256: TestDevice.runtime().sha256, version: "1.0.0"))
            try await body(AttestationHarness(server: server, fleet: fleet, admin: admin, tenant: tenant))
        }
    }

    /// A manufactured device, claimed by the tenant unless `claimed` is false.
    func device(claimed: Bool = true) async throws -> TestDevice {
        let device = try fleet.device()
        if claimed {
            _ = try await admin.client.send(
                .POST, "/v1/tenants/\(tenant.id)/devices", body: DeviceClaimRequest(deviceId: device.id))
        }
        return device
    }

    func challenge(_ device: TestDevice) async throws -> String {
        try await admin.client.json(
            AttestationChallenge.self, .POST, "/v1/attestation/challenge",
            body: AttestationChallengeRequest(deviceId: device.id), authenticated: false
        ).nonce
    }

    func attest(_ evidence: String) async throws -> AttestationResult {
        try await admin.client.json(
            AttestationResult.self, .POST, "/v1/attestation", body: AttestationRequest(evidence: evidence),
            authenticated: false)
    }

    /// Expects a refusal with `code`.
    func expectRefusal(_ code: String, status: Int = 403, sourceLocation: SourceLocation = #_sourceLocation, _ evidence: String) async {
        await expectAPIError(code, status: status, sourceLocation: sourceLocation) { _ = try await attest(evidence) }
    }
}

@Suite("Attestation")
struct AttestationTests {
    @Test("a claimed device with accepted measurements gets a 24 h clientAuth certificate that openssl verifies")
    func success() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let freshKey = P256.Signing.PrivateKey()
            let result = try await h.attest(try device.evidence(nonce: try await h.challenge(device), freshKey: freshKey.publicKey))
            #expect(result.tenantId == h.tenant.id)
            #expect(result.nextAttestationAfter > Date() + 19 * 3600)
            let chain = try result.certificateChain.map { try Certificate(pemEncoded: $0) }
            let leaf = chain[0]
            #expect(leaf.subject.description == "CN=\(device.id)")
            #expect(leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore) == 24 * 3600)
            #expect(leaf.publicKey == Certificate.PublicKey(freshKey.publicKey))
            #expect(try leaf.extensions.extendedKeyUsage?.contains(.clientAuth) == true)

            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try result.certificateChain[1].write(to: directory.file("ca.pem"), atomically: true, encoding: .utf8)
            try result.certificateChain[0].write(to: directory.file("device.pem"), atomically: true, encoding: .utf8)
            let verify = try OpenSSL.run([
                "verify", "-CAfile", directory.file("ca.pem").path, "-purpose", "sslclient", directory.file("device.pem").path,
            ])
            #expect(verify.status == 0, "\(verify.output)")

            let shown = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)")
            #expect(shown.lastAttestationResult == "success" && shown.hardwareModel == "test-board")
            #expect(shown.certificateNotAfter == leaf.notValidAfter)
        }
    }

    @Test("nonces: replayed, expired, unknown and issued to another device are refused")
    func nonces() async throws {
        let clock = ManualWallClock()
        try await AttestationHarness.run(clock: clock) { h in
            let device = try await h.device()
            let other = try await h.device()
            let nonce = try await h.challenge(device)
            let evidence = try device.evidence(nonce: nonce)
            _ = try await h.attest(evidence)
            await h.expectRefusal("nonceReplayed", evidence)
            await h.expectRefusal("nonceReplayed", try device.evidence(nonce: nonce))
            await h.expectRefusal("nonceUnknown", try device.evidence(nonce: Base64URL.encode([UInt8](repeating: 1, count: 32))))
            await h.expectRefusal("nonceUnknown", try device.evidence(nonce: try await h.challenge(other)))
            let late = try await h.challenge(device)

            // Replays racing the first use: the nonce is spent in the transaction that records the outcome,
            // so exactly one of them gets a certificate.
            let raced = try device.evidence(nonce: try await h.challenge(device))
            let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        do {
                            _ = try await h.attest(raced)
                            return "certificate"
                        } catch let error as RampartError {
                            return error.code.rawValue
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(outcomes.sorted() == ["certificate"] + Array(repeating: "nonceReplayed", count: 7))

            clock.advance(by: 61)
            await h.expectRefusal("nonceExpired", try device.evidence(nonce: late))
        }
    }

    @Test("a signature by another key, or a cnf key changed after signing, is signatureInvalid")
    func signatures() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let impostor = try FileKeyStore.create(at: h.fleet.directory.file("impostor-\(RampartID()).pem"))
            await h.expectRefusal("signatureInvalid", try device.evidence(nonce: try await h.challenge(device), signer: impostor))

            let genuine = try device.evidence(nonce: try await h.challenge(device))
            let parts = genuine.split(separator: ".").map(String.init)
            var claims = try JSONSerialization.jsonObject(with: Base64URL.decode(parts[1])!) as! [String: Any]
            claims["cnf"] = ["jwk": try JSONSerialization.jsonObject(
                with: JSONEncoder().encode(JSONWebKey(P256.Signing.PrivateKey().publicKey)))]
            let swapped = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))
            await h.expectRefusal("signatureInvalid", [parts[0], swapped, parts[2]].joined(separator: "."))
        }
    }

    @Test("an endorsement from an untrusted manufacturer, or for another device, is endorsementUntrusted")
    func endorsements() async throws {
        try await AttestationHarness.run { h in
            let rogueFleet = try TestFleet(name: "Rogue Factory")
            defer { rogueFleet.remove() }
            let rogue = try rogueFleet.device()
            _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/devices", body: DeviceClaimRequest(deviceId: rogue.id))
            await h.expectRefusal("endorsementUntrusted", try rogue.evidence(nonce: try await h.challenge(rogue)))

            // A genuine endorsement of one device presented by another key.
            let device = try await h.device()
            let other = try h.fleet.device()
            await h.expectRefusal(
                "signatureInvalid",
                try device.evidence(nonce: try await h.challenge(device), signer: other.identity.keyStore))
            let borrowed = try other.evidence(
                nonce: try await h.challenge(device), endorsement: device.identity.endorsement, deviceID: device.id)
            await h.expectRefusal("signatureInvalid", borrowed)
        }
    }

    @Test("an unclaimed device is notClaimed; a device claimed elsewhere cannot be claimed and reveals nothing")
    func claims() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device(claimed: false)
            await h.expectRefusal("notClaimed", try device.evidence(nonce: try await h.challenge(device)))

            let otherTenant = try await h.admin.createTenant("Elsewhere")
            _ = try await h.admin.client.send(.POST, "/v1/tenants/\(otherTenant.id)/devices", body: DeviceClaimRequest(deviceId: device.id))
            await expectAPIError("alreadyClaimed", status: 409) {
                _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/devices", body: DeviceClaimRequest(deviceId: device.id))
            }
            do {
                _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/devices", body: DeviceClaimRequest(deviceId: device.id))
                Issue.record("claiming a device held by another tenant succeeded")
            } catch let error as RampartError {
                #expect(!error.message.contains(otherTenant.id.description) && !error.message.contains("Elsewhere"))
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await h.admin.client.send(.GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)")
            }
            // Claiming again into the same tenant is harmless.
            _ = try await h.admin.client.send(.POST, "/v1/tenants/\(otherTenant.id)/devices", body: DeviceClaimRequest(deviceId: device.id))
            let events = try await h.admin.client.json(AuditList.self, .GET, "/v1/tenants/\(otherTenant.id)/audit").events
            #expect(events.contains { $0.action == "device.claim" && $0.target == device.id && $0.result == "success" })
        }
    }

    @Test("unknown and revoked measurements name the component")
    func measurements() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let unknown = TestDevice.runtime(String(repeating: "cd", count: 32))
            await h.expectRefusal("measurementUnknown:rampart-runtime", try device.evidence(nonce: try await h.challenge(device), measurements: [unknown]))
            let wrongVersion = TestDevice.runtime(version: "9.9.9")
            await h.expectRefusal("measurementUnknown:rampart-runtime", try device.evidence(nonce: try await h.challenge(device), measurements: [wrongVersion]))
            // Configuration is measured and recorded but not appraised; evidence of configuration alone, or with
            // an app the tenant has no reference for, gets no certificate.
            let config = SoftwareMeasurement(component: "device-config", kind: .config, version: "1", sha256: String(repeating: "ef", count: 32))
            _ = try await h.attest(try device.evidence(nonce: try await h.challenge(device), measurements: [TestDevice.runtime(), config]))
            await h.expectRefusal("evidenceMalformed", status: 400, try device.evidence(nonce: try await h.challenge(device), measurements: [config]))
            let app = SoftwareMeasurement(component: "blink", kind: .app, version: "1", sha256: TestDevice.runtime().sha256)
            await h.expectRefusal("measurementUnknown:blink", try device.evidence(nonce: try await h.challenge(device), measurements: [TestDevice.runtime(), app]))

            _ = try await h.admin.client.send(.DELETE, "/v1/tenants/\(h.tenant.id)/reference-values/\(TestDevice.runtime().sha256)")
            await h.expectRefusal("measurementRevoked:rampart-runtime", try device.evidence(nonce: try await h.challenge(device)))
            let values = try await h.admin.client.json(ReferenceValueList.self, .GET, "/v1/tenants/\(h.tenant.id)/reference-values")
            #expect(values.referenceValues.map(\.status) == ["revoked"])
        }
    }

    @Test("bench attest runs end to end with its in-process server, and refuses options it cannot use")
    func bench() async throws {
        // A handful of attestations, to show the command works; the load runs belong to `rampart bench`.
        #expect(await RampartCommand.main(arguments: [
            "bench", "attest", "--devices", "3", "--concurrency", "2", "--rounds", "2", "--openssl-seconds", "0",
        ]) == 0)
        // Without nginx the reference is reported as not measured and the result stands; an nginx that does not
        // start fails the command, after the result has been printed.
        #expect(await RampartCommand.main(arguments: [
            "bench", "attest", "--devices", "2", "--rounds", "1", "--openssl-seconds", "0", "--nginx", "/nonexistent/nginx",
        ]) == 0)
        #expect(await RampartCommand.main(arguments: [
            "bench", "attest", "--devices", "2", "--rounds", "1", "--openssl-seconds", "0", "--nginx", "/bin/false",
        ]) != 0)
        #expect(await RampartCommand.main(arguments: ["bench", "attest", "--devices", "0"]) != 0)
        #expect(await RampartCommand.main(arguments: ["bench", "attest", "--server", "https://127.0.0.1:1"]) != 0)
    }

    @Test("malformed evidence: truncated, oversized, alg none or HS256, missing claims")
    func malformed() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let good = try device.evidence(nonce: try await h.challenge(device))
            let parts = good.split(separator: ".").map(String.init)
            await h.expectRefusal("evidenceMalformed", status: 400, String(good.prefix(good.count / 2)))
            await h.expectRefusal("evidenceMalformed", status: 400, parts[0] + "." + parts[1])
            await h.expectRefusal("evidenceMalformed", status: 400, good + String(repeating: "A", count: 33_000))
            await h.expectRefusal("evidenceMalformed", status: 400, "")
            for alg in ["none", "HS256", "RS256"] {
                let header = Base64URL.encode(Array(#"{"alg":"\#(alg)","typ":"JWT"}"#.utf8))
                await h.expectRefusal("signatureInvalid", header + "." + parts[1] + "." + (alg == "none" ? "" : parts[2]))
            }
            let claims = try JSONSerialization.jsonObject(with: Base64URL.decode(parts[1])!) as! [String: Any]
            for key in ["eat_nonce", "ueid", "measurements", "cnf"] {
                var missing = claims
                missing.removeValue(forKey: key)
                let payload = Base64URL.encode(try JSONSerialization.data(withJSONObject: missing))
                await h.expectRefusal("evidenceMalformed", status: 400, parts[0] + "." + payload + "." + parts[2])
            }
            for (key, value) in [("dbgstat", 9 as Any), ("hwmodel", "board; rm -rf /" as Any), ("swversion", "" as Any)] {
                var bad = claims
                bad[key] = value
                let payload = Base64URL.encode(try JSONSerialization.data(withJSONObject: bad))
                await h.expectRefusal("evidenceMalformed", status: 400, parts[0] + "." + payload + "." + parts[2])
            }
            // The identity key itself may not be the key to certify, and no critical extensions are understood.
            let identityAsFresh = try device.evidence(
                nonce: try await h.challenge(device), freshKey: device.identity.keyStore.publicKey)
            await h.expectRefusal("evidenceMalformed", status: 400, identityAsFresh)
            let critical = Base64URL.encode(Array(#"{"alg":"ES256","crit":["exp"]}"#.utf8))
            await h.expectRefusal("evidenceMalformed", status: 400, critical + "." + parts[1] + "." + parts[2])
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await h.admin.client.send(.POST, "/v1/attestation/challenge", body: AttestationChallengeRequest(deviceId: "xyz"), authenticated: false)
            }
            // The server keeps serving throughout.
            let health = try await h.admin.client.json(HealthStatus.self, .GET, "/healthz", authenticated: false)
            #expect(health.status == "ok")
            _ = try await h.attest(try device.evidence(nonce: try await h.challenge(device)))
        }
    }

    @Test("refusals of a proven device fold into the error report, as CSV and JSON")
    func errorReport() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let unknown = [TestDevice.runtime(String(repeating: "cd", count: 32))]
            for _ in 0..<3 {
                await h.expectRefusal("measurementUnknown:rampart-runtime", try device.evidence(nonce: try await h.challenge(device), measurements: unknown))
            }
            // A replayed token is refused and changes nothing recorded about the device.
            let replayed = try device.evidence(nonce: try await h.challenge(device))
            _ = try await h.attest(replayed)
            let before = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)")
            await h.expectRefusal("nonceReplayed", replayed)
            let after = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)")
            #expect(before == after)
            // A forgery is not attributed to the device it names.
            let impostor = try FileKeyStore.create(at: h.fleet.directory.file("impostor-\(RampartID()).pem"))
            await h.expectRefusal("signatureInvalid", try device.evidence(nonce: try await h.challenge(device), signer: impostor))

            let report = try await h.admin.client.json(ErrorReport.self, .GET, "/v1/tenants/\(h.tenant.id)/error-report?format=json")
            #expect(report.events.count == 1)
            let row = try #require(report.events.first)
            #expect(row.deviceId == device.id && row.eventType == "DeviceAttestationFailure" && row.eventCount == 3)
            #expect(row.description == "measurementUnknown:rampart-runtime" && row.startTimestamp <= row.endTimestamp)
            let csv = String(decoding: try await h.admin.client.send(.GET, "/v1/tenants/\(h.tenant.id)/error-report").body, as: UTF8.self)
            let lines = csv.split(separator: "\r\n")
            // Azure Sphere's columns in their order, then the component: none for a refusal.
            #expect(lines.first == "Device ID,Event Type,Event Class,Event Count,Description,Start Timestamp,End Timestamp,Component ID")
            #expect(lines.count == 2 && lines[1].hasPrefix("\(device.id),DeviceAttestationFailure,Attestation,3,"))
            #expect(lines.count == 2 && lines[1].hasSuffix(","))
            #expect(row.componentId == nil)
        }
    }

    @Test("doctor explains an unclaimed device, an unknown runtime, and a healthy one")
    func doctor() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device(claimed: false)
            func diagnose() async throws -> DeviceDiagnosis {
                try await h.admin.client.json(DeviceDiagnosis.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/diagnosis")
            }
            var diagnosis = try await diagnose()
            #expect(!diagnosis.healthy && diagnosis.findings.map(\.code) == ["notClaimed", "neverSeen"])
            #expect(diagnosis.findings[0].remedy.contains("rampart device claim --device-id \(device.id)"))

            _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/devices", body: DeviceClaimRequest(deviceId: device.id))
            let unknownDigest = String(repeating: "cd", count: 32)
            await h.expectRefusal("measurementUnknown:rampart-runtime",
                                  try device.evidence(nonce: try await h.challenge(device), measurements: [TestDevice.runtime(unknownDigest)]))
            diagnosis = try await diagnose()
            #expect(!diagnosis.healthy && diagnosis.findings.map(\.code) == ["measurementUnknown:rampart-runtime"])
            #expect(diagnosis.findings[0].remedy.contains("runtime-allow add --digest \(unknownDigest) --version '1.0.0'"))

            _ = try await h.attest(try device.evidence(nonce: try await h.challenge(device)))
            diagnosis = try await diagnose()
            #expect(diagnosis.healthy && diagnosis.findings.map(\.code) == ["ok"])
        }
    }
}
