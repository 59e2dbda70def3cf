import Crypto
import Foundation
import Logging
import RampartCore
import RampartPKI
import RampartStore
import RampartTUF
import Synchronization

/// One TUF repository per tenant (DESIGN §4): online targets, snapshot, timestamp and delegation keys held
/// sealed by the server; root keys held by the server until administrators take them into offline custody
/// with a root rotation.
///
/// Top-level `targets` delegates one role per device group, `group-<groupId>`, trusted for `<groupId>/*`.
public struct TUFRepositoryService: Sendable {
    let context: DomainContext
    /// Shared by every instance in the process, so that publishing anywhere invalidates it.
    private static let timestampCache = TimestampCache()
    private var timestampCache: TimestampCache { Self.timestampCache }

    /// How long a served timestamp.json is reused before the database is read again. Polling clients see a
    /// new timestamp at most this much later; every replica converges within it.
    static let timestampCacheLifetime: TimeInterval = 1

    /// Old versions of non-root metadata kept for clients mid-update.
    static let versionsKept = 20

    public init(context: DomainContext) {
        self.context = context
    }

    // MARK: Publishing

    /// Creates the repository of a new tenant: keys, root version 1, and the first targets, snapshot and
    /// timestamp.
    func initialize(tenant: RampartID, now: Date, session: StoreSession) async throws {
        var signers: [String: P256TUFSigner] = [:]
        for role in ["root", "targets", "snapshot", "timestamp", "delegation"] {
            let signer = P256TUFSigner()
            signers[role] = signer
            try await session.insertTUFKey(
                TUFKeyRecord(
                    id: RampartID(), tenantID: tenant, role: role, keyID: signer.keyID, publicKey: signer.key.jsonText,
                    sealedPrivate: try context.sealer.seal(signer.privateKey, owner: "tuf:\(tenant):\(signer.keyID)"),
                    createdAt: now))
        }
        let publisher = RepositoryPublisher(
            targets: signers["targets"]!, snapshot: signers["snapshot"]!, timestamp: signers["timestamp"]!,
            delegation: signers["delegation"]!)
        let root = try publisher.makeRoot(rootKeys: [signers["root"]!.key], threshold: 1, signers: [signers["root"]!], now: now)
        try await store([root], tenant: tenant, now: now, session: session)
        try await republish(tenant: tenant, now: now, session: session)
    }

    /// Creates the repository of a tenant that predates repositories.
    func ensureRepository(tenant: RampartID) async throws {
        try await context.store.transaction { session in
            try await session.lockTenant(tenant)
            guard try await session.tufMetadata(ofTenant: tenant, role: "root", version: nil) == nil else { return }
            try await initialize(tenant: tenant, now: context.clock.now(), session: session)
        }
    }

    /// Publishes whatever changed in the tenant's content, and re-signs what is due. Call inside the
    /// transaction that changed the content, so the repository never disagrees with the database.
    ///
    /// - Returns: The roles that got a new version.
    @discardableResult
    func republish(tenant: RampartID, now: Date, session: StoreSession) async throws -> [String] {
        let publisher = try await publisher(tenant: tenant, session: session)
        let current = try await session.latestTUFMetadata(ofTenant: tenant).filter { $0.key != "root" }.mapValues {
            RepositoryPublisher.File(role: $0.role, version: $0.version, expires: $0.expiresAt, bytes: Array($0.content.utf8))
        }
        let delegated = try await Self.content(tenant: tenant, session: session)
        let files = try publisher.publish(targets: [:], delegated: delegated, current: current, now: now)
        try await store(files, tenant: tenant, now: now, session: session)
        if !files.isEmpty { try await session.pruneTUFMetadata(ofTenant: tenant, keep: Self.versionsKept) }
        return files.map(\.role)
    }

    /// Re-signs every tenant's metadata that is due; the background job calls this.
    ///
    /// - Returns: How many tenants got new metadata.
    public func resignDue() async throws -> Int {
        let tenants = try await context.store.read { try await $0.tenantsWithTUF() }
        var renewed = 0
        for tenant in tenants {
            let roles = try await context.store.transaction { session in
                try await session.lockTenant(tenant)
                return try await republish(tenant: tenant, now: context.clock.now(), session: session)
            }
            if !roles.isEmpty {
                renewed += 1
                context.logger.info("Re-signed TUF metadata", metadata: ["tenant": "\(tenant)", "roles": "\(roles)"])
            }
        }
        return renewed
    }

    private func publisher(tenant: RampartID, session: StoreSession) async throws -> RepositoryPublisher {
        var signers: [String: P256TUFSigner] = [:]
        for key in try await session.tufKeys(ofTenant: tenant) where key.role != "root" {
            guard let sealed = key.sealedPrivate else { continue }
            signers[key.role] = P256TUFSigner(try context.sealer.open(sealed, owner: "tuf:\(tenant):\(key.keyID)"))
        }
        guard let targets = signers["targets"], let snapshot = signers["snapshot"], let timestamp = signers["timestamp"],
            let delegation = signers["delegation"]
        else { throw RampartError(.internalError, "The TUF repository of tenant \(tenant) lacks an online key.", status: 500) }
        return RepositoryPublisher(targets: targets, snapshot: snapshot, timestamp: timestamp, delegation: delegation)
    }

    private func store(_ files: [RepositoryPublisher.File], tenant: RampartID, now: Date, session: StoreSession) async throws {
        if files.contains(where: { $0.role == "timestamp" }) { timestampCache.remove(tenant) }
        for file in files {
            try await session.insertTUFMetadata(
                TUFMetadataRecord(
                    role: file.role, version: file.version, expiresAt: file.expires,
                    content: String(decoding: file.bytes, as: UTF8.self)),
                tenant: tenant, at: now)
        }
    }

    /// The delegated role of a device group.
    static func roleName(group: RampartID) -> String { "group-\(group)" }

    /// The delegated role, and target path prefix, of a runtime feed.
    static func roleName(feed: OSFeed) -> String { "feed-\(feed.rawValue.lowercased())" }

    /// Runtime releases kept listed per feed.
    static let releasesListed = 5

    /// What the repository must list, from the database: each group's current deployment under its role,
    /// and each feed's newest runtime releases under the feed's role. Images signed by a revoked key are
    /// left out, so revoking a key withdraws what it signed.
    ///
    /// - Parameter scope: Only these roles' content, when a caller needs one group's or one feed's (attestation,
    ///   target downloads); every role when `nil`.
    static func content(tenant: RampartID, session: StoreSession, scope: Set<String>? = nil) async throws
        -> [String: RepositoryPublisher.DelegatedContent]
    {
        let keys = try await SigningKeyIndex(tenant: tenant, session: session)
        var delegated: [String: RepositoryPublisher.DelegatedContent] = [:]
        var groups = try await session.deviceGroups(ofTenant: tenant)
        if let scope { groups = groups.filter { scope.contains(roleName(group: $0.id)) } }
        for group in groups {
            var targets: [String: TargetFile] = [:]
            if let deployment = try await session.deployments(ofGroup: group.id, limit: 1).first {
                for target in try await Self.targets(of: deployment.imageIDs, prefix: group.id.description, keys: keys, session: session) {
                    targets[target.path] = target
                }
            }
            delegated[roleName(group: group.id)] = .init(paths: ["\(group.id)/*"], targets: targets)
        }
        let feeds = OSFeed.allCases.filter { scope?.contains(roleName(feed: $0)) ?? true }
        let releases = feeds.isEmpty ? [] : try await session.runtimeReleases(ofTenant: tenant)
        for feed in feeds {
            var targets: [String: TargetFile] = [:]
            let released = releases.filter { $0.feed == feed.rawValue }.prefix(releasesListed).map(\.imageID)
            for target in try await Self.targets(of: released, prefix: roleName(feed: feed), keys: keys, session: session) {
                targets[target.path] = target
            }
            if !targets.isEmpty || !releases.isEmpty {
                delegated[roleName(feed: feed)] = .init(paths: ["\(roleName(feed: feed))/*"], targets: targets)
            }
        }
        return delegated
    }

    /// The targets of these images under `prefix`, leaving out images that are gone or signed by a revoked key.
    static func targets(of imageIDs: [RampartID], prefix: String, keys: SigningKeyIndex, session: StoreSession) async throws
        -> [TargetFile]
    {
        var out: [TargetFile] = []
        for id in imageIDs {
            guard let image = try await session.image(id: id, tenant: keys.tenant), !keys.revoked.contains(image.signingKeyID)
            else { continue }
            out.append(try target(image, prefix: prefix, signingKeys: keys.publicKeys))
        }
        return out
    }

    /// A device's group, if it is in one, and the feed it follows (Retail outside any group).
    static func placement(ofDevice deviceID: String, tenant: RampartID, session: StoreSession) async throws
        -> (group: DeviceGroupRecord?, feed: OSFeed)
    {
        try await placement(inGroup: try await session.deviceGroupID(ofDevice: deviceID), tenant: tenant, session: session)
    }

    /// The group with this ID, if it is the tenant's, and the feed its devices follow (Retail outside any group).
    static func placement(inGroup groupID: RampartID?, tenant: RampartID, session: StoreSession) async throws
        -> (group: DeviceGroupRecord?, feed: OSFeed)
    {
        var group: DeviceGroupRecord?
        if let groupID { group = try await session.deviceGroup(id: groupID, tenant: tenant) }
        return (group, group.flatMap { OSFeed(rawValue: $0.osFeed) } ?? .retail)
    }

    /// An image as a TUF target under `prefix`: the package's length and hash, and what the device needs
    /// in `custom`.
    static func target(_ image: ImageRecord, prefix: String, signingKeys: [String: String]) throws -> TargetFile {
        let manifest = try JSONValue.parse(Array(image.manifest.utf8))
        let custom: JSONValue = .object([
            "imageId": .string(image.id.description), "componentId": .string(image.componentID), "name": .string(image.name),
            "kind": .string(image.kind), "version": .string(image.version),
            "payloadSha256": manifest["payloadSha256"] ?? .null, "critical": manifest["critical"] ?? .bool(false),
            "signingKeyId": .string(image.signingKeyID), "signingKey": signingKeys[image.signingKeyID].map { .string($0) } ?? .null,
        ])
        return TargetFile(
            path: "\(prefix)/\(image.id).rpkg", length: image.length, hashes: ["sha256": image.sha256], custom: custom)
    }

    // MARK: Serving

    /// A metadata file by the name clients fetch: `N.root.json`, `root.json`, `timestamp.json`, or
    /// `N.<role>.json`.
    ///
    /// - Throws: 404 `notFound` for anything else.
    public func metadataFile(tenant: RampartID, name: String) async throws -> String {
        // The hot path: devices poll timestamp.json.
        if name == "timestamp.json", let cached = timestampCache.lookup(tenant, at: context.clock.now()) { return cached }
        guard name.hasSuffix(".json") else { throw RampartError.notFound("Metadata \(name)") }
        let stem = String(name.dropLast(5))
        var role = stem
        var version: Int?
        if let dot = stem.firstIndex(of: "."), let number = Int(stem[..<dot]), number > 0 {
            version = number
            role = String(stem[stem.index(after: dot)...])
        }
        role = role.removingPercentEncoding ?? role
        if version == nil, role != "timestamp", role != "root" {
            throw RampartError.notFound("Metadata \(name)")  // consistent snapshots: versioned names only
        }
        let (wantedRole, wantedVersion) = (role, version)
        guard let record = try await context.store.read({ try await $0.tufMetadata(ofTenant: tenant, role: wantedRole, version: wantedVersion) })
        else { throw RampartError.notFound("Metadata \(name)") }
        if version == nil, role == "timestamp" {
            timestampCache.store(tenant, record.content, until: context.clock.now() + Self.timestampCacheLifetime)
        }
        return record.content
    }

    /// A target file (an image package) by the name clients fetch: `<prefix>/<sha256>.<imageId>.rpkg`.
    ///
    /// - Throws: 404 unless the repository currently lists that target, so nothing withdrawn is served.
    public func targetFile(tenant: RampartID, prefix: String, name: String) async throws -> [UInt8] {
        let parts = name.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, parts[0].count == 64, parts[1].hasSuffix(".rpkg") else { throw RampartError.notFound("Target \(name)") }
        let (digest, file) = (String(parts[0]).lowercased(), String(parts[1]))
        return try await context.store.read { session in
            let role = prefix.hasPrefix("feed-") ? prefix : RampartID(prefix).map { Self.roleName(group: $0) } ?? prefix
            let listed = try await Self.content(tenant: tenant, session: session, scope: [role]).values.contains { role in
                role.targets["\(prefix)/\(file)"]?.hashes["sha256"] == digest
            }
            guard listed, let bytes = try await session.imagePackage(sha256: digest) else {
                throw RampartError.notFound("Target \(prefix)/\(name)")
            }
            return bytes
        }
    }

    /// What a device needs to look for updates: its group's settings and where its targets are. The device is
    /// checking now, so a pending check-now request is done.
    public func deviceSettings(tenant: RampartID, deviceID: String) async throws -> DeviceUpdateSettings {
        try await UpdateCheckService.markChecked(deviceID: deviceID, store: context.store)
        return try await context.store.read { session in
            let (group, feed) = try await Self.placement(ofDevice: deviceID, tenant: tenant, session: session)
            var prefixes = [Self.roleName(feed: feed)]
            if let group { prefixes.insert(group.id.description, at: 0) }
            return DeviceUpdateSettings(
                deviceId: deviceID, deviceGroupId: group?.id,
                updatePolicy: group.flatMap { UpdatePolicy(rawValue: $0.updatePolicy) } ?? .no3rdPartyAppUpdates, osFeed: feed,
                maintenanceWindow: group?.maintenanceWindow, targetPrefixes: prefixes,
                dataBudgetBytes: group?.dataBudgetMB.map { Int64($0) * 1_000_000 })
        }
    }

    /// How long a group's previous deployment stays acceptable in attestation after a new one.
    static let rolloutGrace: TimeInterval = 7 * 86_400

    /// The images a device of `group` (or of no group) may run, as TUF targets: the group's current
    /// deployment, the previous one during the rollout grace period, and the feed's runtime releases.
    /// Attestation appraises measurements against these, so what may run is the one fact TUF signs.
    func acceptedTargets(tenant: RampartID, group groupID: RampartID?, now: Date, session: StoreSession) async throws
        -> AcceptedTargets
    {
        let (group, feed) = try await Self.placement(inGroup: groupID, tenant: tenant, session: session)
        var scope: Set<String> = [Self.roleName(feed: feed)]
        if let group { scope.insert(Self.roleName(group: group.id)) }
        let content = try await Self.content(tenant: tenant, session: session, scope: scope)
        var accepted = AcceptedTargets(targets: Array(content[Self.roleName(feed: feed)]?.targets.values ?? [:].values))
        if let group {
            accepted.targets += content[Self.roleName(group: group.id)]?.targets.values ?? [:].values
            let recent = try await session.deployments(ofGroup: group.id, limit: 2)
            if recent.count == 2 {
                let until = recent[0].createdAt + Self.rolloutGrace
                accepted.previousDeployment = (until, now < until)
                if now < until {
                    let keys = try await SigningKeyIndex(tenant: tenant, session: session)
                    accepted.targets += try await Self.targets(
                        of: recent[1].imageIDs, prefix: group.id.description, keys: keys, session: session)
                }
            }
        }
        return accepted
    }

    // MARK: Administration

    /// The repository's state for `tenant tuf show`.
    public func status(tenant: RampartID, caller: UserRecord) async throws -> TUFRepositoryInfo {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            let latest = try await session.latestTUFMetadata(ofTenant: tenant)
            let keys = try await session.tufKeys(ofTenant: tenant)
            guard let root = latest["root"], let metadata = try? SignedMetadata(bytes: Array(root.content.utf8)),
                let parsed = try? RootMetadata(metadata.signed)
            else { throw RampartError.notFound("TUF repository of tenant \(tenant)") }
            let roles = latest.values.sorted { $0.role < $1.role }.map {
                TUFRoleInfo(role: $0.role, version: $0.version, expiresAt: $0.expiresAt)
            }
            let rootKeys = keys.filter { $0.role == "root" }
            return TUFRepositoryInfo(
                rootVersion: root.version, rootThreshold: parsed.roles[.root]!.threshold,
                rootKeyIDs: parsed.roles[.root]!.keyIDs,
                rootKeysHeldByServer: !rootKeys.isEmpty && rootKeys.allSatisfy { $0.sealedPrivate != nil },
                roles: roles)
        }
    }

    /// The current root file, for bootstrapping clients and for root rotation.
    public func currentRoot(tenant: RampartID, caller: UserRecord) async throws -> String {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            guard let root = try await session.tufMetadata(ofTenant: tenant, role: "root", version: nil) else {
                throw RampartError.notFound("TUF repository of tenant \(tenant)")
            }
            return root.content
        }
    }

    /// Accepts the next root version (Administrator). The server adds the signature of the root key it
    /// holds, if it still holds one; the new root must then meet both the old root's threshold and its own,
    /// exactly as clients will check it. A root whose keys the server does not hold moves root custody
    /// offline: the server forgets its root key.
    public func rotateRoot(tenant: RampartID, newRoot: String, caller: UserRecord) async throws -> TUFRepositoryInfo {
        _ = try await context.audited(Actor(user: caller), tenant: tenant, action: "tuf.root.rotate", target: "root") { session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            try await session.lockTenant(tenant)
            guard let current = try await session.tufMetadata(ofTenant: tenant, role: "root", version: nil) else {
                throw RampartError.notFound("TUF repository of tenant \(tenant)")
            }
            let submitted: SignedMetadata
            let parsed: RootMetadata
            do {
                submitted = try SignedMetadata(bytes: Array(newRoot.utf8))
                parsed = try RootMetadata(submitted.signed)
            } catch let error as RampartError {
                throw RampartError.invalidRequest("The new root is not valid TUF root metadata: \(error.message)")
            }
            // Add the server's signature with the old root key it holds.
            var signatures = submitted.signatures
            let keys = try await session.tufKeys(ofTenant: tenant)
            for key in keys where key.role == "root" {
                guard let sealed = key.sealedPrivate else { continue }
                let signer = P256TUFSigner(try context.sealer.open(sealed, owner: "tuf:\(tenant):\(key.keyID)"))
                signatures[signer.keyID] = try signer.sign(submitted.signed.canonicalBytes)
            }
            let list = signatures.keys.sorted().map { JSONValue.object(["keyid": .string($0), "sig": .string(signatures[$0]!)]) }
            let bytes = JSONValue.object(["signatures": .array(list), "signed": submitted.signed]).prettyBytes
            var trusted = try TrustedMetadata(trustedRoot: Array(current.content.utf8), referenceTime: context.clock.now())
            do {
                try trusted.updateRoot(bytes)
                try trusted.checkRootNotExpired()
            } catch let error as RampartError {
                throw RampartError.invalidRequest("The new root would be refused by devices: \(error.message)")
            }
            guard parsed.consistentSnapshot else {
                throw RampartError.invalidRequest("The new root must keep consistent_snapshot true: this repository serves versioned files only.")
            }
            // The online roles must keep keys the server holds, or it could not publish any more.
            for role in [TopLevelRole.targets, .snapshot, .timestamp] {
                let held = Set(keys.filter { $0.role == role.rawValue }.map(\.keyID))
                guard parsed.roles[role]!.threshold == 1, parsed.roles[role]!.keyIDs.contains(where: held.contains) else {
                    throw RampartError.invalidRequest(
                        "The new root must keep the server's online \(role.rawValue) key (threshold 1).")
                }
            }
            let now = context.clock.now()
            let serverRootKeys = Set(keys.filter { $0.role == "root" }.map(\.keyID))
            if !parsed.roles[.root]!.keyIDs.contains(where: serverRootKeys.contains) {
                try await session.retireTUFKeys(ofTenant: tenant, role: "root", at: now)
                for keyID in parsed.roles[.root]!.keyIDs {
                    try await session.insertTUFKey(
                        TUFKeyRecord(
                            id: RampartID(), tenantID: tenant, role: "root", keyID: keyID,
                            publicKey: parsed.keys[keyID]?.jsonText ?? "{}", sealedPrivate: nil, createdAt: now))
                }
            }
            try await session.insertTUFMetadata(
                TUFMetadataRecord(
                    role: "root", version: parsed.common.version, expiresAt: parsed.common.expires,
                    content: String(decoding: bytes, as: UTF8.self)),
                tenant: tenant, at: now)
            return parsed.common.version
        }
        return try await status(tenant: tenant, caller: caller)
    }
}

/// The newest timestamp.json per tenant, for a second: devices poll it far more than it changes.
final class TimestampCache: Sendable {
    private let entries = Mutex<[RampartID: (content: String, until: Date)]>([:])

    func lookup(_ tenant: RampartID, at time: Date) -> String? {
        entries.withLock { entries in
            guard let entry = entries[tenant], entry.until > time else { return nil }
            return entry.content
        }
    }

    func remove(_ tenant: RampartID) {
        _ = entries.withLock { $0.removeValue(forKey: tenant) }
    }

    func store(_ tenant: RampartID, _ content: String, until: Date) {
        entries.withLock { entries in
            if entries.count > 100_000 { entries.removeAll(keepingCapacity: true) }
            entries[tenant] = (content, until)
        }
    }
}

/// A tenant's package signing keys as publishing needs them: which are revoked, and each key's PEM.
/// What ``TUFRepositoryService/acceptedTargets(tenant:group:now:session:)`` found, and until when it holds.
struct AcceptedTargets: Sendable {
    var targets: [TargetFile]
    /// When the group's previous deployment stops being accepted, and whether it was included.
    var previousDeployment: (until: Date, included: Bool)?

    /// Whether the same reading at `time` would include the same deployments (the data unchanged).
    func holds(at time: Date) -> Bool {
        previousDeployment.map { (time < $0.until) == $0.included } ?? true
    }
}

struct SigningKeyIndex {
    let tenant: RampartID
    let revoked: Set<String>
    let publicKeys: [String: String]

    init(tenant: RampartID, session: StoreSession) async throws {
        let keys = try await session.signingKeys(ofTenant: tenant)
        self.tenant = tenant
        revoked = Set(keys.filter { $0.revokedAt != nil }.map(\.keyID))
        publicKeys = Dictionary(keys.map { ($0.keyID, $0.publicKey) }, uniquingKeysWith: { first, _ in first })
    }
}
