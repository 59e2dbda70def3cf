import Crypto
import Foundation
import RampartCLI
import RampartCore
import RampartDevice
import RampartServer
import RampartStore
import RampartAttestation
import SwiftASN1
import RampartTUF
import RampartTestKit
import Testing
import X509

extension AttestationHarness {
    /// An attested device: its certificate chain and the key it certifies.
    func attestedDevice() async throws -> (device: TestDevice, chain: [Certificate], key: P256.Signing.PrivateKey) {
        let device = try await device()
        let key = P256.Signing.PrivateKey()
        let result = try await attest(try device.evidence(nonce: try await challenge(device), freshKey: key.publicKey))
        return (device, try result.certificateChain.map { try Certificate(pemEncoded: $0) }, key)
    }

    /// A TUF client of the tenant's repository, fetching with `certificate` (mutual TLS), trusting `root`.
    func updater(_ directory: TemporaryDirectory, certificate: (chain: [Certificate], key: P256.Signing.PrivateKey)?, root: [UInt8])
        throws -> TUFUpdater
    {
        let metadata = directory.file("metadata")
        try TUFUpdater.initialize(metadataDirectory: metadata, trustedRoot: Data(root))
        let tls = try DeviceTLS.configuration(serverCAPEM: server.tlsCAPEM, certificate: certificate)
        return TUFUpdater(
            metadataDirectory: metadata, metadataBaseURL: "\(server.url)/v1/tuf/\(tenant.id)/metadata/",
            fetcher: HTTPFetcher(tlsConfiguration: tls))
    }

    func root() async throws -> [UInt8] {
        try await admin.client.send(.GET, "/v1/tenants/\(tenant.id)/tuf/root").body
    }
}

@Suite("Updates: TUF repository, products and device groups")
struct UpdateTests {
    @Test("an attested device refreshes its tenant's TUF repository over mutual TLS, and sees each group's role")
    func deviceRefreshes() async throws {
        try await AttestationHarness.run { h in
            let attested = try await h.attestedDevice()
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            var updater = try h.updater(directory, certificate: (attested.chain, attested.key), root: try await h.root())
            try await updater.refresh()
            #expect(updater.trusted?.targets["targets"]?.delegations == nil)

            let product = try await h.admin.client.json(
                ProductInfo.self, .POST, "/v1/tenants/\(h.tenant.id)/products", body: ProductRequest(name: "Sensor", description: nil))
            let groups = try await h.admin.client.json(
                DeviceGroupList.self, .GET, "/v1/tenants/\(h.tenant.id)/device-groups?product=\(product.id)")
            var again = try h.updater(directory, certificate: (attested.chain, attested.key), root: try await h.root())
            try await again.refresh()
            let delegated = try #require(again.trusted?.targets["targets"]?.delegations?.roles)
            #expect(Set(delegated.map(\.name)) == Set(groups.deviceGroups.map(\.tufRole)))
            let group = groups.deviceGroups[0]
            #expect(delegated.first { $0.name == group.tufRole }?.paths == ["\(group.id)/*"])
            #expect(try await again.targetInfo(for: "\(group.id)/nothing-deployed-yet") == nil)
            #expect(FileManager.default.fileExists(atPath: directory.file("metadata/\(group.tufRole).json").path))
        }
    }

    @Test("the repository refuses clients without a device certificate, and devices of other tenants")
    func deviceAuthentication() async throws {
        try await AttestationHarness.run { h in
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let root = try await h.root()
            var anonymous = try h.updater(directory, certificate: nil, root: root)
            await #expect(throws: RampartError(.downloadFailed, "")) { try await anonymous.refresh() }

            // A device certificate of another tenant is refused with a reason, seen through the API.
            let other = try await h.admin.createTenant("Other")
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(other.id)/reference-values",
                body: ReferenceValueRequest(sha256: TestDevice.runtime().sha256, version: "1.0.0"))
            let otherHarness = AttestationHarness(server: h.server, fleet: h.fleet, admin: h.admin, tenant: other)
            let stranger = try await otherHarness.attestedDevice()
            var foreign = try h.updater(directory, certificate: (stranger.chain, stranger.key), root: root)
            await #expect(throws: RampartError(.downloadFailed, "")) { try await foreign.refresh() }
            let authenticator = DeviceCertificateAuthenticator(context: h.server.runtime.context)
            await expectAPIError("deviceCertificateInvalid", status: 403) {
                _ = try await authenticator.authenticate(stranger.chain[0], tenant: h.tenant.id)
            }
            // Its own tenant accepts it.
            #expect(try await authenticator.authenticate(stranger.chain[0], tenant: other.id) == stranger.device.id)
        }
    }

    @Test("the server re-signs the timestamp well before it expires, and clients accept the new version")
    func resigning() async throws {
        let clock = ManualWallClock(Date())
        try await AttestationHarness.run(clock: clock) { h in
            let before = try await h.admin.client.json(TUFRepositoryInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/tuf")
            #expect(try await h.server.runtime.repository.resignDue() == 0)
            clock.advance(by: 13 * 3600)
            #expect(try await h.server.runtime.repository.resignDue() == 1)
            let after = try await h.admin.client.json(TUFRepositoryInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/tuf")
            let version = { (info: TUFRepositoryInfo, role: String) in info.roles.first { $0.role == role }!.version }
            #expect(version(after, "timestamp") == version(before, "timestamp") + 1)
            #expect(version(after, "snapshot") == version(before, "snapshot"))
            #expect(after.roles.first { $0.role == "timestamp" }!.expiresAt > clock.now() + 23 * 3600)
        }
    }

    @Test("root rotation moves root keys into offline custody; a root without the old threshold is refused")
    func rootRotation() async throws {
        try await AttestationHarness.run { h in
            let current = try RootMetadata(try SignedMetadata(bytes: try await h.root()).signed)
            func next(_ base: RootMetadata, signers: [any TUFSigner], rootKeys: [any TUFSigner], threshold: Int) throws -> String {
                var root = base
                root.common = CommonFields(version: base.common.version + 1, expires: Date() + 300 * 86_400)
                for keyID in base.roles[.root]!.keyIDs { root.keys.removeValue(forKey: keyID) }
                for key in rootKeys { root.keys[key.keyID] = key.key }
                root.roles[.root] = RoleKeys(keyIDs: rootKeys.map(\.keyID), threshold: threshold)
                return String(decoding: try SignedMetadata(signing: root.signed, with: signers).fileBytes, as: UTF8.self)
            }
            let offline = [P256TUFSigner(), P256TUFSigner()]
            let info = try await h.admin.client.json(
                TUFRepositoryInfo.self, .POST, "/v1/tenants/\(h.tenant.id)/tuf/root",
                body: TUFRootRotationRequest(root: try next(current, signers: offline, rootKeys: offline, threshold: 2)))
            #expect(info.rootVersion == 2 && info.rootThreshold == 2 && !info.rootKeysHeldByServer)

            // Version 3 signed by the new keys but only one of the two offline keys: below the old threshold.
            let v2 = try RootMetadata(try SignedMetadata(bytes: try await h.root()).signed)
            let newer = [P256TUFSigner()]
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await h.admin.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/tuf/root",
                    body: TUFRootRotationRequest(root: try next(v2, signers: newer + [offline[0]], rootKeys: newer, threshold: 1)))
            }
            // A root without consistent snapshots would strand every client of this repository.
            var flat = v2
            flat.consistentSnapshot = false
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await h.admin.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/tuf/root",
                    body: TUFRootRotationRequest(root: try next(flat, signers: newer + offline, rootKeys: newer, threshold: 1)))
            }
            // Not a root at all.
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await h.admin.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/tuf/root", body: TUFRootRotationRequest(root: "{\"signed\": 1}"))
            }
            // A client that trusted version 1 follows the rotation.
            let attested = try await h.attestedDevice()
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let v1 = try await h.server.runtime.store.read {
                try await $0.tufMetadata(ofTenant: h.tenant.id, role: "root", version: 1)!.content
            }
            var updater = try h.updater(directory, certificate: (attested.chain, attested.key), root: Array(v1.utf8))
            try await updater.refresh()
            #expect(updater.trusted?.root.common.version == 2)
        }
    }

    @Test("a product gets the five default groups; names are unique; groups holding devices cannot be deleted")
    func productsAndGroups() async throws {
        try await AttestationHarness.run { h in
            let base = "/v1/tenants/\(h.tenant.id)"
            let product = try await h.admin.client.json(
                ProductInfo.self, .POST, "\(base)/products", body: ProductRequest(name: "Coffee Maker", description: "v1 board"))
            let groups = try await h.admin.client.json(DeviceGroupList.self, .GET, "\(base)/device-groups?product=Coffee%20Maker")
            let byName = Dictionary(uniqueKeysWithValues: groups.deviceGroups.map { ($0.name, $0) })
            #expect(Set(byName.keys) == ["Development", "Field Test", "Production", "Field Test OS Evaluation", "Production OS Evaluation"])
            #expect(byName["Development"]?.updatePolicy == .no3rdPartyAppUpdates)
            #expect(byName["Production"]?.updatePolicy == .updateAll && byName["Production"]?.osFeed == .retail)
            #expect(byName["Production OS Evaluation"]?.osFeed == .retailEval)

            await expectAPIError("conflict", status: 409) {
                _ = try await h.admin.client.send(.POST, "\(base)/products", body: ProductRequest(name: "Coffee Maker", description: nil))
            }
            await expectAPIError("invalidName", status: 400) {
                _ = try await h.admin.client.send(.POST, "\(base)/products", body: ProductRequest(name: "bad/name", description: nil))
            }
            let custom = try await h.admin.client.json(
                DeviceGroupInfo.self, .POST, "\(base)/device-groups",
                body: DeviceGroupRequest(product: product.id.description, name: "Night Shift", maintenanceWindow: "22:00-02:00 utc"))
            #expect(custom.maintenanceWindow == "22:00-02:00 UTC" && custom.updatePolicy == .updateAll)
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await h.admin.client.send(
                    .PATCH, "\(base)/device-groups/\(custom.id)", body: DeviceGroupRequest(maintenanceWindow: "25:00-26:00"))
            }
            let updated = try await h.admin.client.json(
                DeviceGroupInfo.self, .PATCH, "\(base)/device-groups/\(custom.id)",
                body: DeviceGroupRequest(updatePolicy: .noUpdates, maintenanceWindow: ""))
            #expect(updated.updatePolicy == .noUpdates && updated.maintenanceWindow == nil)

            let device = try await h.device()
            let moved = try await h.admin.client.json(
                DeviceGroupInfo.self, .PATCH, "\(base)/devices/\(device.id)", body: DeviceUpdateRequest(deviceGroupId: custom.id))
            #expect(moved.deviceCount == 1)
            await expectAPIError("conflict", status: 409) { _ = try await h.admin.client.send(.DELETE, "\(base)/device-groups/\(custom.id)") }
            await expectAPIError("conflict", status: 409) { _ = try await h.admin.client.send(.DELETE, "\(base)/products/\(product.id)") }
            _ = try await h.admin.client.send(.PATCH, "\(base)/devices/\(device.id)", body: DeviceUpdateRequest(deviceGroupId: byName["Production"]!.id))
            _ = try await h.admin.client.send(.DELETE, "\(base)/device-groups/\(custom.id)")
            await expectAPIError("notFound", status: 404) { _ = try await h.admin.client.send(.GET, "\(base)/device-groups/\(custom.id)") }
            // A device of no tenant of the caller cannot be moved; nor into another tenant's group.
            await expectAPIError("notFound", status: 404) {
                _ = try await h.admin.client.send(.PATCH, "\(base)/devices/\(String(repeating: "0", count: 64))", body: DeviceUpdateRequest(deviceGroupId: custom.id))
            }
        }
    }

    @Test("readers cannot create products and contributors cannot delete them")
    func productRoles() async throws {
        try await AttestationHarness.run { h in
            let base = "/v1/tenants/\(h.tenant.id)"
            let reader = try await h.admin.invite("reader@test.rampart", as: .reader, to: h.tenant.id, on: h.server)
            let contributor = try await h.admin.invite("contrib@test.rampart", as: .contributor, to: h.tenant.id, on: h.server)
            await expectAPIError("forbidden", status: 403) {
                _ = try await reader.client.send(.POST, "\(base)/products", body: ProductRequest(name: "X", description: nil))
            }
            let product = try await contributor.client.json(ProductInfo.self, .POST, "\(base)/products", body: ProductRequest(name: "X", description: nil))
            await expectAPIError("forbidden", status: 403) { _ = try await contributor.client.send(.DELETE, "\(base)/products/\(product.id)") }
            _ = try await reader.client.json(ProductList.self, .GET, "\(base)/products")
        }
    }
}
