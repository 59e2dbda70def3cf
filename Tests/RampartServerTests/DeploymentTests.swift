import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import RampartAttestation
import RampartCLI
import RampartCore
import RampartDevice
import RampartImage
import RampartServer
import RampartTUF
import RampartTestKit
import Testing

/// Builds packages the way `rampart image-package` does.
struct PackageFactory {
    let key = P256.Signing.PrivateKey()

    func app(_ component: RampartID = RampartID(), version: String = "1.0.0", payload: [UInt8] = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]) throws
        -> ImagePackage
    {
        let manifest = try AppManifest(bytes: Array("""
            {"SchemaVersion": 1, "Name": "blink", "ComponentId": "\(component)", "EntryPoint": "app.wasm",
             "Capabilities": {"AllowedConnections": ["127.0.0.1"], "MutableStorage": {"SizeKB": 64}}}
            """.utf8))
        return try ImagePackage.pack(
            manifest: ImageManifest(
                kind: .app, componentID: component.description, name: "blink", version: version,
                payloadSHA256: Hex.encode(SHA256.hash(data: Data(payload))), payloadLength: payload.count, appManifest: manifest),
            payload: payload, signingKey: key)
    }

    func runtime(version: String, payload: [UInt8], critical: Bool = false) throws -> ImagePackage {
        try ImagePackage.pack(
            manifest: ImageManifest(
                kind: .runtime, componentID: ImageManifest.runtimeComponentID, name: "rampart", version: version,
                payloadSHA256: Hex.encode(SHA256.hash(data: Data(payload))), payloadLength: payload.count, critical: critical),
            payload: payload, signingKey: key)
    }
}

extension AttestationHarness {
    func register(_ factory: PackageFactory) async throws {
        _ = try await admin.client.send(
            .POST, "/v1/tenants/\(tenant.id)/signing-keys",
            body: SigningKeyRequest(publicKey: factory.key.publicKey.pemRepresentation, description: "ci"))
    }

    func upload(_ package: ImagePackage) async throws -> ImageInfo {
        let raw = try await admin.client.send(
            .POST, "/v1/tenants/\(tenant.id)/images", rawBody: package.bytes, contentType: "application/octet-stream")
        return try JSONCoding.decoder().decode(ImageInfo.self, from: Data(raw.body))
    }

    func productGroups() async throws -> [String: DeviceGroupInfo] {
        _ = try await admin.client.send(.POST, "/v1/tenants/\(tenant.id)/products", body: ProductRequest(name: "Board", description: nil))
        let list = try await admin.client.json(DeviceGroupList.self, .GET, "/v1/tenants/\(tenant.id)/device-groups")
        return Dictionary(uniqueKeysWithValues: list.deviceGroups.map { ($0.name, $0) })
    }

    func deploy(_ images: [ImageInfo], to group: DeviceGroupInfo) async throws {
        _ = try await admin.client.send(
            .POST, "/v1/tenants/\(tenant.id)/device-groups/\(group.id)/deployments", body: DeploymentRequest(imageIds: images.map(\.id)))
    }
}

@Suite("Updates: images, deployments, and attestation against TUF")
struct DeploymentTests {
    @Test("image packages: accepted when signed by a registered key; tampered, unregistered and revoked ones refused")
    func uploads() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            let package = try factory.app()
            await expectAPIError("packageSignatureInvalid", status: 403) { _ = try await h.upload(package) }
            try await h.register(factory)
            let image = try await h.upload(package)
            #expect(image.kind == "app" && image.payloadSha256 == package.manifest.payloadSHA256)
            #expect(try await h.upload(package).id == image.id)  // idempotent

            var tampered = package.bytes
            tampered[tampered.count - 1] ^= 0xff
            await expectAPIError("packageMalformed", status: 400) {
                _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/images", rawBody: tampered, contentType: "application/octet-stream")
            }
            // A manifest changed after signing fails the signature check.
            let signed = try factory.app(version: "1.0.0")
            var edited = signed.bytes
            let header = Array("\"version\":\"1.0.0\"".utf8)
            let at = try #require(edited.firstRange(of: header))
            edited.replaceSubrange(at, with: Array("\"version\":\"9.0.0\"".utf8))
            await expectAPIError("packageSignatureInvalid", status: 403) {
                _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/images", rawBody: edited, contentType: "application/octet-stream")
            }
            // Signed by a key the tenant never registered.
            await expectAPIError("packageSignatureInvalid", status: 403) { _ = try await h.upload(try PackageFactory().app()) }
            for garbage in [[UInt8](), Array("RPKG1\n".utf8), Array(repeating: 0x41, count: 100)] {
                await expectAPIError("packageMalformed", status: 400) {
                    _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/images", rawBody: garbage, contentType: "application/octet-stream")
                }
            }
            _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/signing-keys/\(image.signingKeyId)/revoke")
            await expectAPIError("signingKeyRevoked", status: 403) { _ = try await h.upload(try factory.app()) }
        }
    }

    @Test("a deployment is published to the group's TUF role, and a device downloads and verifies it (resuming with Range)")
    func deploymentReachesDevices() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let production = groups["Production"]!
            let app = try await h.upload(try factory.app(payload: [0, 0x61, 0x73, 0x6d] + Array(repeating: 7, count: 4000)))
            try await h.deploy([app], to: production)

            let attested = try await h.attestedDevice()
            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/devices/\(attested.device.id)", body: DeviceUpdateRequest(deviceGroupId: production.id))
            let tls = try DeviceTLS.configuration(serverCAPEM: h.server.tlsCAPEM, certificate: (attested.chain, attested.key))
            let settings = try await HTTPFetcher(tlsConfiguration: tls).fetch("\(h.server.url)/v1/tuf/\(h.tenant.id)/device", maximumLength: 65536)
            let decoded = try JSONCoding.decoder().decode(DeviceUpdateSettings.self, from: Data(try #require(settings)))
            #expect(decoded.deviceGroupId == production.id && decoded.targetPrefixes == [production.id.description, "feed-retail"])

            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            var updater = try h.updater(directory, certificate: (attested.chain, attested.key), root: try await h.root())
            try await updater.refresh()
            let target = try #require(try await updater.targetInfo(for: "\(production.id)/\(app.id).rpkg"))
            #expect(target.custom?["componentId"] == .string(app.componentId))
            let file = try await updater.download(
                target, baseURL: "\(h.server.url)/v1/tuf/\(h.tenant.id)/targets/", into: directory.file("targets"))
            let package = try ImagePackage(bytes: Array(try Data(contentsOf: file)))
            #expect(package.manifest.componentID == app.componentId)

            // Range requests resume a download.
            var request = HTTPClientRequestBuilder.get("\(h.server.url)/v1/tuf/\(h.tenant.id)/targets/\(production.id)/\(target.hashes["sha256"]!).\(app.id).rpkg")
            request.headers.add(name: "Range", value: "bytes=100-")
            request.tlsConfiguration = tls
            let response = try await HTTPClientRequestBuilder.execute(request)
            #expect(response.status == 206 && response.body == Array(package.bytes[100...]))

            // Another group's device does not find it, and a new deployment replaces it.
            #expect(try await updater.targetInfo(for: "\(groups["Field Test"]!.id)/\(app.id).rpkg") == nil)
            try await h.deploy([], to: production)
            var again = try h.updater(directory, certificate: (attested.chain, attested.key), root: try await h.root())
            try await again.refresh()
            #expect(try await again.targetInfo(for: "\(production.id)/\(app.id).rpkg") == nil)
            await expectAPIError("notFound", status: 404) {
                _ = try await HTTPClientRequestBuilder.status(request)
            }
        }
    }

    @Test("attestation appraises against TUF: feed runtimes and deployed apps pass, others are refused")
    func attestationFromTUF() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let production = groups["Production"]!
            let runtimeBytes = Array("runtime 2.0.0".utf8)
            let runtime = try await h.upload(try factory.runtime(version: "2.0.0", payload: runtimeBytes))
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/runtime-releases", body: RuntimeReleaseRequest(imageId: runtime.id, feed: .retail))
            let component = RampartID()
            let app = try await h.upload(try factory.app(component, version: "1.0.0"))
            try await h.deploy([app], to: production)

            let device = try await h.device()
            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)", body: DeviceUpdateRequest(deviceGroupId: production.id))
            let published = TestDevice.runtime(runtime.payloadSha256, version: "2.0.0")
            let appMeasurement = SoftwareMeasurement(component: component.description, kind: .app, version: "1.0.0", sha256: app.payloadSha256)
            let result = try await h.attest(try device.evidence(nonce: try await h.challenge(device), measurements: [published, appMeasurement]))
            #expect(result.deviceGroupId == production.id)

            // An app that is not deployed, and a runtime that is neither released nor allowed.
            let stray = SoftwareMeasurement(component: RampartID().description, kind: .app, version: "1.0.0", sha256: app.payloadSha256)
            await h.expectRefusal("measurementUnknown:\(stray.component)", try device.evidence(nonce: try await h.challenge(device), measurements: [published, stray]))
            let unknown = TestDevice.runtime(String(repeating: "cd", count: 32), version: "2.0.0")
            await h.expectRefusal("measurementUnknown:rampart-runtime", try device.evidence(nonce: try await h.challenge(device), measurements: [unknown]))

            // During the rollout grace period the previous deployment still passes.
            let newer = try await h.upload(try factory.app(component, version: "1.1.0", payload: [0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]))
            try await h.deploy([newer], to: production)
            _ = try await h.attest(try device.evidence(nonce: try await h.challenge(device), measurements: [published, appMeasurement]))

            // Runtimes reach groups through feeds, never through deployments.
            await expectAPIError("invalidRequest", status: 400) { try await h.deploy([runtime], to: production) }
            // A group that had deployments can be deleted once it holds no devices.
            let spare = groups["Field Test"]!
            try await h.deploy([newer], to: spare)
            _ = try await h.admin.client.send(.DELETE, "/v1/tenants/\(h.tenant.id)/device-groups/\(spare.id)")

            // Revoking the signing key withdraws everything it signed.
            _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/signing-keys/\(runtime.signingKeyId)/revoke")
            await h.expectRefusal("measurementUnknown:rampart-runtime", try device.evidence(nonce: try await h.challenge(device), measurements: [published]))
        }
    }
}

extension DeploymentTests {
    @Test("a runtime digest revoked in the tenant's list is refused even while its feed lists it")
    func revokedDigestBeatsFeed() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let runtime = try await h.upload(try factory.runtime(version: "3.0.0", payload: Array("runtime 3".utf8)))
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/runtime-releases", body: RuntimeReleaseRequest(imageId: runtime.id, feed: .retail))
            let device = try await h.device()
            let measured = TestDevice.runtime(runtime.payloadSha256, version: "3.0.0")
            _ = try await h.attest(try device.evidence(nonce: try await h.challenge(device), measurements: [measured]))
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/reference-values", body: ReferenceValueRequest(sha256: runtime.payloadSha256, version: "3.0.0"))
            _ = try await h.admin.client.send(.DELETE, "/v1/tenants/\(h.tenant.id)/reference-values/\(runtime.payloadSha256)")
            await h.expectRefusal("measurementRevoked:rampart-runtime", try device.evidence(nonce: try await h.challenge(device), measurements: [measured]))
        }
    }
}

/// A few direct HTTPS calls for what the TUF client does not expose.
enum HTTPClientRequestBuilder {
    struct Answer { var status: Int; var body: [UInt8] }

    static func get(_ url: String) -> HTTPClientRequest { HTTPClientRequest(url: url) }

    static func execute(_ request: HTTPClientRequest) async throws -> Answer {
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 24)
        return Answer(status: Int(response.status.code), body: Array(buffer: body))
    }

    static func status(_ request: HTTPClientRequest) async throws {
        let answer = try await execute(request)
        if answer.status >= 400 {
            let error = try JSONDecoder().decode(APIErrorBody.self, from: Data(answer.body))
            throw RampartError(RampartError.Code(rawValue: error.code), error.message, status: answer.status)
        }
    }
}
