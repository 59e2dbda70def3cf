import Crypto
import Foundation
import RampartCore
import RampartImage
import RampartPKI
import RampartStore
import RampartTUF

/// Package signing keys, images, deployments and runtime releases. Every change that alters what devices
/// may run republishes the tenant's TUF repository in the same transaction.
public struct ImageService: Sendable {
    let context: DomainContext
    let repository: TUFRepositoryService

    public init(context: DomainContext, repository: TUFRepositoryService) {
        self.context = context
        self.repository = repository
    }

    // MARK: Signing keys

    /// Registers a package signing key (Administrator).
    public func addSigningKey(tenant: RampartID, request: SigningKeyRequest, caller: UserRecord) async throws -> SigningKeyInfo {
        guard let key = try? P256.Signing.PublicKey(pemRepresentation: request.publicKey) else {
            throw RampartError.invalidRequest("publicKey must be a P-256 public key in PEM (SubjectPublicKeyInfo).")
        }
        let keyID = ImagePackage.keyID(of: key)
        return try await context.audited(Actor(user: caller), tenant: tenant, action: "signing-key.add", target: keyID) { session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            if let existing = try await session.signingKeys(ofTenant: tenant).first(where: { $0.keyID == keyID }) {
                throw RampartError.conflict(
                    .conflict, existing.revokedAt == nil ? "This key is already registered." : "This key was revoked; a revoked key cannot come back.")
            }
            let record = SigningKeyRecord(
                id: RampartID(), tenantID: tenant, keyID: keyID, publicKey: key.pemRepresentation + "\n",
                description: try ProductService.description(request.description), createdAt: context.clock.now())
            try await session.insertSigningKey(record)
            return Self.info(record)
        }
    }

    /// The tenant's signing keys.
    public func signingKeys(tenant: RampartID, caller: UserRecord) async throws -> SigningKeyList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return SigningKeyList(signingKeys: try await session.signingKeys(ofTenant: tenant).map(Self.info))
        }
    }

    /// Revokes a signing key (Administrator): what it signed is withdrawn from every deployment and feed, and
    /// new uploads signed by it are refused.
    public func revokeSigningKey(tenant: RampartID, keyID rawKeyID: String, caller: UserRecord) async throws -> SigningKeyInfo {
        let keyID = rawKeyID.lowercased()
        return try await context.audited(Actor(user: caller), tenant: tenant, action: "signing-key.revoke", target: keyID) { session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            try await session.lockTenant(tenant)
            guard try await session.signingKeys(ofTenant: tenant).contains(where: { $0.keyID == keyID }) else {
                throw RampartError.notFound("Signing key \(keyID)")
            }
            let now = context.clock.now()
            try await session.revokeSigningKey(keyID: keyID, tenant: tenant, at: now)
            try await repository.republish(tenant: tenant, now: now, session: session)
            return Self.info(try await session.signingKeys(ofTenant: tenant).first { $0.keyID == keyID }!)
        }
    }

    // MARK: Images

    /// Verifies and stores an uploaded image package (Contributor or above).
    ///
    /// - Throws: `packageMalformed`, `packageSignatureInvalid` (no registered key signed it) or
    ///   `signingKeyRevoked`, each 400/403 with the reason.
    public func addImage(tenant: RampartID, package bytes: [UInt8], caller: UserRecord) async throws -> ImageInfo {
        let digest = Hex.encode(SHA256.hash(data: Data(bytes)))
        return try await context.audited(Actor(user: caller), tenant: tenant, action: "image.add", target: digest) { session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            let package = try ImagePackage(bytes: bytes)
            let keys = try await session.signingKeys(ofTenant: tenant)
            guard let key = keys.first(where: { $0.keyID == package.keyID }),
                let publicKey = try? P256.Signing.PublicKey(pemRepresentation: key.publicKey)
            else {
                throw RampartError(
                    .packageSignatureInvalid,
                    "The package is signed by key \(package.keyID), which is not registered with this tenant. Register it with 'rampart tenant signing-key add'.",
                    status: 403)
            }
            guard key.revokedAt == nil else {
                throw RampartError(.signingKeyRevoked, "The package is signed by key \(key.keyID), which was revoked.", status: 403)
            }
            guard package.verifySignature(with: publicKey) else {
                throw RampartError(.packageSignatureInvalid, "The package signature does not verify: it was altered after signing.", status: 403)
            }
            if let existing = try await session.image(sha256: digest, tenant: tenant) { return Self.info(existing) }
            let manifest = package.manifest
            let record = ImageRecord(
                id: RampartID(), tenantID: tenant, componentID: manifest.componentID, name: manifest.name,
                kind: manifest.kind.rawValue, version: manifest.version, sha256: digest, length: bytes.count,
                manifest: manifest.jsonText, signingKeyID: key.keyID, createdAt: context.clock.now())
            try await session.insertImage(record, package: bytes)
            return Self.info(record)
        }
    }

    /// The tenant's images.
    public func images(tenant: RampartID, caller: UserRecord) async throws -> ImageList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return ImageList(images: try await session.images(ofTenant: tenant).map(Self.info))
        }
    }

    /// One image.
    public func image(tenant: RampartID, id: RampartID, caller: UserRecord) async throws -> ImageInfo {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            guard let image = try await session.image(id: id, tenant: tenant) else { throw RampartError.notFound("Image \(id)") }
            return Self.info(image)
        }
    }

    // MARK: Deployments

    /// Deploys a set of images to a group (Contributor or above): the group's TUF role then lists exactly them.
    public func deploy(tenant: RampartID, group id: RampartID, imageIDs: [RampartID], caller: UserRecord) async throws -> DeploymentInfo {
        try await context.audited(Actor(user: caller), tenant: tenant, action: "deployment.create", target: id.description) { session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            try await session.lockTenant(tenant)
            _ = try await ProductService.group(id, tenant: tenant, session: session)
            guard imageIDs.count <= 64, Set(imageIDs).count == imageIDs.count else {
                throw RampartError.invalidRequest("A deployment holds at most 64 distinct images.")
            }
            let revoked = try await SigningKeyIndex(tenant: tenant, session: session).revoked
            var components: Set<String> = []
            for imageID in imageIDs {
                guard let image = try await session.image(id: imageID, tenant: tenant) else { throw RampartError.notFound("Image \(imageID)") }
                guard image.kind != "runtime" else {
                    throw RampartError.invalidRequest(
                        "Image \(imageID) is a runtime: runtimes reach groups through their feed ('runtime-release publish'), not deployments.")
                }
                guard !revoked.contains(image.signingKeyID) else {
                    throw RampartError(.signingKeyRevoked, "Image \(imageID) is signed by a revoked key.", status: 403)
                }
                guard components.insert(image.componentID).inserted else {
                    throw RampartError.invalidRequest("Two images of component \(image.componentID): a deployment holds one version of each.")
                }
            }
            let deployment = DeploymentRecord(
                id: RampartID(), tenantID: tenant, deviceGroupID: id, imageIDs: imageIDs, createdBy: caller.email,
                createdAt: context.clock.now())
            try await session.insertDeployment(deployment)
            try await repository.republish(tenant: tenant, now: deployment.createdAt, session: session)
            return Self.info(deployment, current: true)
        }
    }

    /// A group's deployments, newest first.
    public func deployments(tenant: RampartID, group id: RampartID, caller: UserRecord) async throws -> DeploymentList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            _ = try await ProductService.group(id, tenant: tenant, session: session)
            let list = try await session.deployments(ofGroup: id)
            return DeploymentList(deployments: list.enumerated().map { Self.info($1, current: $0 == 0) })
        }
    }

    // MARK: Runtime releases

    /// Publishes a runtime image to a feed (Administrator).
    public func publishRuntime(tenant: RampartID, request: RuntimeReleaseRequest, caller: UserRecord) async throws -> RuntimeReleaseInfo {
        try await context.audited(
            Actor(user: caller), tenant: tenant, action: "runtime-release.publish", target: request.imageId.description
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            try await session.lockTenant(tenant)
            guard let image = try await session.image(id: request.imageId, tenant: tenant) else {
                throw RampartError.notFound("Image \(request.imageId)")
            }
            guard image.kind == "runtime" else { throw RampartError.invalidRequest("Only runtime images go to a feed.") }
            let release = RuntimeReleaseRecord(
                id: RampartID(), tenantID: tenant, feed: request.feed.rawValue, imageID: image.id, createdAt: context.clock.now())
            try await session.insertRuntimeRelease(release)
            try await repository.republish(tenant: tenant, now: release.createdAt, session: session)
            return RuntimeReleaseInfo(id: release.id, feed: request.feed, imageId: image.id, version: image.version, createdAt: release.createdAt)
        }
    }

    /// The tenant's runtime releases.
    public func runtimeReleases(tenant: RampartID, caller: UserRecord) async throws -> RuntimeReleaseList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            var out: [RuntimeReleaseInfo] = []
            for release in try await session.runtimeReleases(ofTenant: tenant) {
                let version = try await session.image(id: release.imageID, tenant: tenant)?.version ?? "?"
                out.append(
                    RuntimeReleaseInfo(
                        id: release.id, feed: OSFeed(rawValue: release.feed) ?? .retail, imageId: release.imageID, version: version,
                        createdAt: release.createdAt))
            }
            return RuntimeReleaseList(runtimeReleases: out)
        }
    }

    // MARK: Helpers

    static func info(_ key: SigningKeyRecord) -> SigningKeyInfo {
        SigningKeyInfo(keyId: key.keyID, publicKey: key.publicKey, description: key.description, createdAt: key.createdAt, revokedAt: key.revokedAt)
    }

    static func info(_ image: ImageRecord) -> ImageInfo {
        let payload = (try? JSONValue.parse(Array(image.manifest.utf8)))?["payloadSha256"]
        var digest = ""
        if case .string(let text)? = payload { digest = text }
        return ImageInfo(
            id: image.id, componentId: image.componentID, name: image.name, kind: image.kind, version: image.version,
            sha256: image.sha256, length: image.length, payloadSha256: digest, signingKeyId: image.signingKeyID,
            createdAt: image.createdAt)
    }

    static func info(_ deployment: DeploymentRecord, current: Bool) -> DeploymentInfo {
        DeploymentInfo(
            id: deployment.id, deviceGroupId: deployment.deviceGroupID, imageIds: deployment.imageIDs,
            createdBy: deployment.createdBy, createdAt: deployment.createdAt, current: current)
    }
}
