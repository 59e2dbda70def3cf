import Crypto
import Foundation
import Logging
import NIOHTTP1
import RampartCLI
import RampartCore
import RampartDevice
import RampartImage
import RampartPKI
import RampartSandbox
import RampartServer
import RampartTestKit
import ServiceLifecycle
import SwiftASN1
import Testing
import X509

@Suite("Development mode and sideloading")
struct DevelopmentModeTests {
    static func enable(_ h: AttestationHarness, _ device: String, group: RampartID? = nil) async throws -> DevelopmentModeInfo {
        try await h.admin.client.json(
            DevelopmentModeInfo.self, .POST, "/v1/tenants/\(h.tenant.id)/devices/\(device)/enable-development",
            body: DevelopmentModeRequest(deviceGroupId: group))
    }

    static func cloudTest(_ h: AttestationHarness, _ device: String, group: RampartID? = nil) async throws -> DevelopmentModeInfo {
        try await h.admin.client.json(
            DevelopmentModeInfo.self, .POST, "/v1/tenants/\(h.tenant.id)/devices/\(device)/enable-cloud-test",
            body: DevelopmentModeRequest(deviceGroupId: group))
    }

    @Test("enable-development grants a signed capability; sideloaded apps attest only in development mode; enable-cloud-test takes both back")
    func lifecycle() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let dut = try await DeviceUnderTest.make(h, group: groups["Field Test"]!)
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "success")
            let mode = DevelopmentMode(state: dut.device.state)
            let component = RampartID()
            let package = try factory.app(component, version: "0.1.0-dev")

            // Not in development mode: sideloading is refused, and nothing is installed.
            let refused = #expect(throws: RampartError.self) { try mode.sideload(package.bytes) }
            #expect(refused?.code == .developmentModeRequired)
            #expect(AppStore(state: dut.device.state).installed().isEmpty)

            // A group that takes cloud app updates would wipe sideloaded apps, so it is refused.
            await expectAPIError("invalidRequest", status: 400, containing: "UpdateAll") {
                _ = try await Self.enable(h, dut.device.id, group: groups["Production"]!.id)
            }
            let info = try await Self.enable(h, dut.device.id)
            #expect(info.developmentMode && info.deviceGroup.name == "Development" && info.developmentSince != nil)
            let shown = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)")
            #expect(shown.developmentSince != nil)

            // The device takes the capability with its update check, and says so in its report.
            #expect(mode.capability() == nil)
            _ = try await dut.updates.checkOnce()
            #expect(mode.capability()?.deviceId == dut.device.id)
            #expect(mode.status().developmentMode)
            await dut.updates.send(try await dut.updates.checkOnce())
            let reported = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)")
            #expect(reported.developmentSince != nil && reported.deviceDevelopmentMode == true)

            let installed = try mode.sideload(package.bytes)
            #expect(installed.sideloaded && installed.imageID == nil && installed.version == "0.1.0-dev")
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "success")
            // Development (No3rdPartyAppUpdates) leaves the sideloaded app alone…
            #expect(try await dut.updates.checkOnce().result == "upToDate")
            #expect(AppStore(state: dut.device.state).installed().map(\.componentID) == [component.description])
            // …and so does a group with a deployment, while the device is in development mode: it takes no cloud
            // app updates, which would replace or remove what was sideloaded.
            let deployed = try await h.upload(try factory.app(component, version: "1.0.0"))
            let other = try await h.upload(try factory.app())
            try await h.deploy([deployed, other], to: groups["Production"]!)
            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)", body: DeviceUpdateRequest(deviceGroupId: groups["Production"]!.id))
            _ = try await dut.updates.checkOnce()
            #expect(AppStore(state: dut.device.state).installed().map(\.version) == ["0.1.0-dev"])
            // The server signs the capability afresh for every check; the same claims are not news.
            #expect(try mode.install(try #require(try await Self.enable(h, dut.device.id, group: groups["Development"]!.id).capability)) == false)

            // Out of development mode on the server: the sideloaded app no longer attests…
            let back = try await Self.cloudTest(h, dut.device.id)
            #expect(!back.developmentMode && back.deviceGroup.name == "Field Test" && back.capability == nil)
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "measurementUnknown:\(component)")
            // …until the device's next check drops the capability and the sideloaded app.
            let behind = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)")
            #expect(behind.developmentSince == nil && behind.deviceDevelopmentMode == true)  // the device has not caught up
            await dut.updates.send(try await dut.updates.checkOnce())
            let caughtUp = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)")
            #expect(caughtUp.deviceDevelopmentMode == false)
            #expect(mode.capability() == nil && !FileManager.default.fileExists(atPath: mode.capabilityFile.path))
            #expect(AppStore(state: dut.device.state).installed().isEmpty)
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "success")
        }
    }

    @Test("a device in development mode on the server alone, reporting debug disabled, is appraised as in production")
    func bothSidesMustAgree() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let dut = try await DeviceUnderTest.make(h, group: groups["Field Test"]!)
            await dut.attest()
            _ = try await Self.enable(h, dut.device.id)
            // An app put in place without the capability (by hand, say): dbgstat stays 3, so it is refused.
            let component = RampartID()
            try AppStore(state: dut.device.state).install(try factory.app(component), imageID: nil)
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "measurementUnknown:\(component)")
        }
    }

    @Test("development mode needs a group or a product, a claimed device, and Contributor")
    func serverRefusals() async throws {
        try await AttestationHarness.run { h in
            let loose = try await h.device()
            await expectAPIError("invalidRequest", status: 400, containing: "--device-group-id") {
                _ = try await Self.enable(h, loose.id)
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await Self.enable(h, String(repeating: "7", count: 64))
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await Self.enable(h, loose.id, group: RampartID())
            }
            await expectAPIError("unknownField", status: 400) {
                _ = try await h.admin.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/devices/\(loose.id)/enable-development", body: ["group": "x"])
            }
            let reader = try await h.admin.invite("reader@test.rampart", as: .reader, to: h.tenant.id, on: h.server)
            await expectAPIError("forbidden", status: 403) {
                _ = try await reader.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/devices/\(loose.id)/enable-cloud-test", body: DevelopmentModeRequest())
            }
            let development = try await h.productGroups()["Development"]!
            let info = try await Self.enable(h, loose.id, group: development.id)
            #expect(info.developmentMode && info.capability != nil)
        }
    }

    @Test("a capability for another device, from another CA, altered, unsigned or malformed is refused and not stored")
    func forgedCapabilities() async throws {
        try await AttestationHarness.run { h in
            let groups = try await h.productGroups()
            let dut = try await DeviceUnderTest.make(h, group: groups["Development"]!)
            let other = try await DeviceUnderTest.make(h, group: groups["Development"]!)
            let mode = DevelopmentMode(state: dut.device.state)
            let genuine = try #require(try await Self.enable(h, dut.device.id).capability)
            let foreign = try #require(try await Self.enable(h, other.device.id).capability)

            func refusal(_ token: String) -> String? {
                let error = #expect(throws: RampartError.self) { try mode.install(token) }
                #expect(error?.code == .capabilityInvalid)
                #expect(!FileManager.default.fileExists(atPath: mode.capabilityFile.path))
                return error?.message
            }
            // Before the device holds a certificate there is no CA to check against.
            #expect(refusal(genuine)?.contains("attest first") == true)
            await dut.attest()
            #expect(refusal(foreign)?.contains("not this one") == true)

            // Signed by a CA of the same name that is not the tenant's.
            let parts = genuine.split(separator: ".").map(String.init)
            let header = try JSONDecoder().decode(CompactJWS.Header.self, from: Base64URL.decode(parts[0])!)
            let tenantCA = try Certificate(derEncoded: Array(Data(base64Encoded: header.x5c![0])!))
            let rogueKey = P256.Signing.PrivateKey()
            let rogue = try CertificateIssuer.makeRootCA(
                subject: tenantCA.subject, key: rogueKey, notBefore: Date(), notAfter: Date() + 3600)
            let claims = try JSONDecoder().decode(DevelopmentCapability.self, from: Base64URL.decode(parts[1])!)
            #expect(refusal(try claims.sign(issuer: rogue, key: rogueKey))?.contains("not signed by the CA") == true)
            // The genuine CA's certificate with the rogue key's signature.
            #expect(refusal(try claims.sign(issuer: tenantCA, key: rogueKey))?.contains("does not verify") == true)
            // Claims altered after signing.
            var widened = claims
            widened.capability = "fieldServicing"
            let encoder = JSONEncoder()
            let altered = parts[0] + "." + Base64URL.encode(try encoder.encode(widened)) + "." + parts[2]
            #expect(refusal(altered)?.contains("does not verify") == true)
            // alg none, and junk.
            let none = Base64URL.encode(Array(#"{"alg":"none","typ":"rampart-capability+jwt"}"#.utf8)) + "." + parts[1] + "."
            #expect(refusal(none)?.contains("ES256") == true)
            #expect(refusal("not a token") != nil)
            #expect(refusal(String(repeating: "a", count: 9000))?.contains("larger") == true)
            #expect(refusal(parts[0] + "." + parts[1] + ".AAAA") != nil)

            #expect(try mode.install(genuine))
            #expect(try mode.install(genuine) == false)  // unchanged
            #expect(mode.capability()?.tenantId == h.tenant.id)
        }
    }

    @Test("sideload through the local API and the CLI: bad packages refused, apps replaced and deleted, all gone on leaving")
    func localAPI() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            let groups = try await h.productGroups()
            let dut = try await DeviceUnderTest.make(h, group: groups["Development"]!)
            await dut.attest()
            let state = dut.device.state
            let logger = Logger(label: "test")
            let apps = AppSupervisor(state: state, errors: ErrorEventQueue(state: state), logger: logger)
            let attestNow = Doorbell()
            let api = try LocalAPI.application(
                state: state, status: dut.status, logger: logger, apps: apps, attestNow: attestNow)
            let directory = h.fleet.directory
            let first = RampartID(), second = RampartID()
            let files = try [
                ("first", factory.app(first, version: "1.0.0").bytes), ("first-2", factory.app(first, version: "2.0.0").bytes),
                ("second", factory.app(second).bytes),
                ("runtime", factory.runtime(version: "9.0.0", payload: [1, 2, 3]).bytes),
                ("not-wasm", factory.app(RampartID(), payload: Array("#!/bin/sh\n".utf8)).bytes),
            ].map { name, bytes in
                let file = directory.file("\(name).rpkg")
                try Data(bytes).write(to: file)
                return (name, file.path)
            }
            let file = Dictionary(uniqueKeysWithValues: files)
            var truncated = try Data(contentsOf: URL(fileURLWithPath: file["first"]!))
            truncated.removeLast(3)
            let truncatedFile = directory.file("truncated.rpkg")
            try truncated.write(to: truncatedFile)

            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await api.run() }
                let path = state.directory.path
                #expect(try await AppSupervisorTests.eventually {
                    (try? await LocalAPIClient.get(DevelopmentStatus.self, "/development", state: state)) != nil
                })
                #expect(try await LocalAPIClient.get(DevelopmentStatus.self, "/development", state: state).developmentMode == false)
                let notYet = await #expect(throws: RampartError.self) {
                    try await LocalAPIClient.request(
                        SideloadResult.self, "/sideload", state: state, method: .POST, body: Array(try Data(contentsOf: URL(fileURLWithPath: file["first"]!))))
                }
                #expect(notYet?.code == .developmentModeRequired && notYet?.status == 403)
                #expect(await RampartCommand.main(arguments: ["device", "sideload", "deploy", "--state-dir", path, "--image-package", file["first"]!]) != 0)

                // A capability through the local API, as 'device enable-development --state-dir' hands it over.
                let capability = try #require(try await Self.enable(h, dut.device.id).capability)
                let garbage = await #expect(throws: RampartError.self) {
                    try await LocalAPIClient.request(DevelopmentStatus.self, "/development/capability", state: state, method: .PUT, body: Array("junk".utf8))
                }
                #expect(garbage?.code == .capabilityInvalid)
                let on = try await LocalAPIClient.request(
                    DevelopmentStatus.self, "/development/capability", state: state, method: .PUT, body: Array(capability.utf8))
                #expect(on.developmentMode && on.tenantId == h.tenant.id)
                #expect(await RampartCommand.main(arguments: ["device", "sideload", "show", "--state-dir", path]) == 0)

                for bad in [file["runtime"]!, file["not-wasm"]!, truncatedFile.path, "/nonexistent.rpkg"] {
                    #expect(await RampartCommand.main(arguments: ["device", "sideload", "deploy", "--state-dir", path, "--image-package", bad]) != 0)
                }
                let malformed = await #expect(throws: RampartError.self) {
                    try await LocalAPIClient.request(SideloadResult.self, "/sideload", state: state, method: .POST, body: Array(truncated))
                }
                #expect(malformed?.code == .packageMalformed)
                #expect(AppStore(state: state).installed().isEmpty)

                // Two sideloads of one component at once: one wins whole, nothing half-written is left.
                await withTaskGroup(of: Int32.self) { racing in
                    for name in ["first", "first-2"] {
                        racing.addTask { await RampartCommand.main(arguments: ["device", "sideload", "deploy", "--state-dir", path, "--image-package", file[name]!]) }
                    }
                    for await code in racing { #expect(code == 0) }
                }
                let raced = AppStore(state: state).installed()
                #expect(raced.count == 1 && ["1.0.0", "2.0.0"].contains(raced.first?.version ?? ""))
                let leftovers = try FileManager.default.contentsOfDirectory(atPath: AppStore(state: state).directory.path).filter { $0.hasPrefix(".") }
                #expect(leftovers.isEmpty)
                for name in ["first", "second", "first-2"] {
                    #expect(await RampartCommand.main(arguments: ["device", "sideload", "deploy", "--state-dir", path, "--image-package", file[name]!]) == 0)
                }
                let installed = AppStore(state: state).installed()
                #expect(Set(installed.map(\.componentID)) == [first.description, second.description])
                #expect(installed.first { $0.componentID == first.description }?.version == "2.0.0")
                let allSideloaded = installed.allSatisfy { $0.sideloaded }
                #expect(allSideloaded)

                #expect(await RampartCommand.main(arguments: ["device", "sideload", "delete", "--state-dir", path, "--component-id", "nope"]) != 0)
                let unknown = await #expect(throws: RampartError.self) {
                    try await LocalAPIClient.request(SideloadResult.self, "/sideload?componentId=\(RampartID())", state: state, method: .DELETE)
                }
                #expect(unknown?.code == .notFound)
                #expect(await RampartCommand.main(arguments: ["device", "sideload", "delete", "--state-dir", path, "--component-id", second.description]) == 0)
                #expect(AppStore(state: state).installed().map(\.componentID) == [first.description])

                // Leaving development mode on the device removes the capability and every sideloaded app.
                let left = try await LocalAPIClient.request(SideloadResult.self, "/development/capability", state: state, method: .DELETE)
                #expect(left.componentIds == [first.description])
                #expect(AppStore(state: state).installed().isEmpty)
                #expect(try await LocalAPIClient.get(DevelopmentStatus.self, "/development", state: state).developmentMode == false)
                // The capability it held cannot be handed back: it predates the end of development mode.
                let replay = await #expect(throws: RampartError.self) {
                    try await LocalAPIClient.request(DevelopmentStatus.self, "/development/capability", state: state, method: .PUT, body: Array(capability.utf8))
                }
                #expect(replay?.code == .capabilityInvalid && replay?.message.contains("old one") == true)
                // A new enable-development issues a newer one, which is taken.
                _ = try await Self.cloudTest(h, dut.device.id, group: groups["Development"]!.id)
                try await Task.sleep(for: .seconds(1.1))  // capability times are whole seconds
                let renewed = try #require(try await Self.enable(h, dut.device.id).capability)
                #expect(try DevelopmentMode(state: state).install(renewed))
                group.cancelAll()
            }
        }
    }
}

@Suite("The device identity lent to apps")
struct AppTLSLendingTests {
    @Test("apps get the device's valid certificate and the service CA for its own tenant only, and nothing before attestation")
    func lending() async throws {
        try await AttestationHarness.run { h in
            let dut = try await DeviceUnderTest.make(h, group: nil)
            let lend = AppTLSIdentity.lending(state: dut.device.state, status: dut.status)
            guard case .unavailable = lend("00000000-0000-0000-0000-000000000000") else {
                Issue.record("an identity before attestation")
                return
            }
            try h.server.tlsCAPEM.write(to: dut.device.state.serverCAFile, atomically: true, encoding: .utf8)
            await dut.attest()
            for tenant in ["00000000-0000-0000-0000-000000000000", h.tenant.id.description] {
                guard case .identity(let identity) = lend(tenant) else {
                    Issue.record("no identity for \(tenant)")
                    continue
                }
                let chain = try Certificate.parseBundle(pem: identity.certificateChainPEM)
                #expect(chain.count == 2 && chain[0].subject.commonName == dut.device.id)
                #expect(identity.additionalTrustedCAsPEM == (try h.server.tlsCAPEM))
                let key = try P256.Signing.PrivateKey(pemRepresentation: identity.privateKeyPEM)
                #expect(chain[0].publicKey == Certificate.PublicKey(key.publicKey))
            }
            guard case .otherTenant = lend(RampartID().description) else {
                Issue.record("another tenant's DeviceAuthentication was lent the identity")
                return
            }
        }
    }
}
