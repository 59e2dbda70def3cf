import Foundation

/// The signing side of a TUF repository: from the published state and the wanted content, the next files.
///
/// Pure and deterministic given its inputs, so the server can run it inside a database transaction and tests
/// can check it against the client. A role gets a new version only when its content changes or it is due for
/// re-signing; snapshot and timestamp follow whatever changed below them.
public struct RepositoryPublisher: Sendable {
    /// One published metadata file.
    public struct File: Sendable {
        /// Role name (`root`, `timestamp`, `snapshot`, `targets` or a delegated role).
        public var role: String
        /// Its version.
        public var version: Int
        /// Its expiry.
        public var expires: Date
        /// The signed file as served.
        public var bytes: [UInt8]

        /// A file from its parts.
        public init(role: String, version: Int, expires: Date, bytes: [UInt8]) {
            self.role = role
            self.version = version
            self.expires = expires
            self.bytes = bytes
        }

        /// The name clients fetch: `timestamp.json`, or `<version>.<quoted role>.json`.
        public var fileName: String {
            role == "timestamp" ? "timestamp.json" : "\(version).\(TUFUpdater.quote(role)).json"
        }
    }

    /// A delegated role's wanted content.
    public struct DelegatedContent: Sendable {
        /// Path patterns it is trusted for.
        public var paths: [String]
        /// Its targets.
        public var targets: [String: TargetFile]

        /// Content from its parts.
        public init(paths: [String], targets: [String: TargetFile]) {
            self.paths = paths
            self.targets = targets
        }
    }

    /// How long each role's signature lasts.
    public struct Lifetimes: Sendable {
        public var timestamp: TimeInterval = 86_400
        public var snapshot: TimeInterval = 7 * 86_400
        public var targets: TimeInterval = 30 * 86_400
        public var root: TimeInterval = 365 * 86_400
        /// Re-sign once less than this fraction of a lifetime remains.
        public var renewFraction = 0.5
        /// The default lifetimes: DESIGN §4.
        public init() {}
    }

    /// Online keys: targets, snapshot, timestamp, and the key of every delegated role.
    public var targetsSigner: any TUFSigner
    public var snapshotSigner: any TUFSigner
    public var timestampSigner: any TUFSigner
    public var delegationSigner: any TUFSigner
    public var lifetimes: Lifetimes

    /// A publisher with online keys.
    public init(
        targets: any TUFSigner, snapshot: any TUFSigner, timestamp: any TUFSigner, delegation: any TUFSigner,
        lifetimes: Lifetimes = .init()
    ) {
        self.targetsSigner = targets
        self.snapshotSigner = snapshot
        self.timestampSigner = timestamp
        self.delegationSigner = delegation
        self.lifetimes = lifetimes
    }

    /// A first root, signed by `rootSigners` with threshold `threshold`, naming this publisher's online keys.
    public func makeRoot(
        rootKeys: [TUFKey], threshold: Int, signers: [any TUFSigner], version: Int = 1, now: Date
    ) throws -> File {
        var keys: [String: TUFKey] = [:]
        for key in rootKeys + [targetsSigner.key, snapshotSigner.key, timestampSigner.key] { keys[key.keyID] = key }
        let root = RootMetadata(
            version: version, expires: now.addingTimeInterval(lifetimes.root), consistentSnapshot: true, keys: keys,
            roles: [
                .root: RoleKeys(keyIDs: rootKeys.map(\.keyID), threshold: threshold),
                .targets: RoleKeys(keyIDs: [targetsSigner.keyID], threshold: 1),
                .snapshot: RoleKeys(keyIDs: [snapshotSigner.keyID], threshold: 1),
                .timestamp: RoleKeys(keyIDs: [timestampSigner.keyID], threshold: 1),
            ])
        let bytes = try SignedMetadata(signing: root.signed, with: signers).fileBytes
        return File(role: "root", version: version, expires: root.common.expires, bytes: bytes)
    }

    /// The files to publish so that the repository serves `targets` (top-level) and `delegated`, given what is
    /// published now (`current`: the newest file of each role, root excluded). Returns only new files; an
    /// empty result means nothing changed and nothing is due.
    ///
    /// A delegated role that was published once stays listed (empty, trusted for no path): clients refuse a
    /// snapshot that drops a role an earlier one listed.
    public func publish(
        targets: [String: TargetFile], delegated wanted: [String: DelegatedContent], current: [String: File], now: Date
    ) throws -> [File] {
        var delegated = wanted
        if let snapshot = current["snapshot"], let metadata = try? SignedMetadata(bytes: snapshot.bytes),
            let listed = try? SnapshotMetadata(metadata.signed)
        {
            for name in listed.meta.keys where name != "targets.json" && name.hasSuffix(".json") {
                let role = String(name.dropLast(5))
                if delegated[role] == nil { delegated[role] = DelegatedContent(paths: [], targets: [:]) }
            }
        }
        var out: [File] = []
        var versions: [String: Int] = [:]
        for (role, file) in current where role != "timestamp" && role != "snapshot" { versions[role] = file.version }

        func due(_ file: File?, lifetime: TimeInterval) -> Bool {
            guard let file else { return true }
            return file.expires.timeIntervalSince(now) < lifetime * lifetimes.renewFraction
        }

        func content(of file: File?) -> JSONValue? {
            guard let file, let metadata = try? SignedMetadata(bytes: file.bytes) else { return nil }
            guard case .object(var members) = metadata.signed else { return nil }
            for key in ["version", "expires", "spec_version"] { members.removeValue(forKey: key) }
            return .object(members)
        }

        func emit(_ role: String, _ signed: (Int, Date) -> JSONValue, signer: any TUFSigner, lifetime: TimeInterval) throws {
            let old = current[role]
            let version = (old?.version ?? 0) + 1
            let expires = now.addingTimeInterval(lifetime)
            let candidate = signed(version, expires)
            var comparable = candidate.objectValue ?? [:]
            for key in ["version", "expires", "spec_version"] { comparable.removeValue(forKey: key) }
            guard content(of: old) != .object(comparable) || due(old, lifetime: lifetime) else { return }
            let bytes = try SignedMetadata(signing: candidate, with: [signer]).fileBytes
            out.append(File(role: role, version: version, expires: expires, bytes: bytes))
            versions[role] = version
        }

        // Delegated roles first, then the top-level targets that delegate to them.
        for (role, wanted) in delegated.sorted(by: { $0.key < $1.key }) {
            try emit(role, { TargetsMetadata(version: $0, expires: $1, targets: wanted.targets).signed },
                signer: delegationSigner, lifetime: lifetimes.targets)
        }
        let delegations = Delegations(
            keys: [delegationSigner.keyID: delegationSigner.key],
            roles: delegated.keys.sorted().map {
                DelegatedRole(
                    name: $0, keys: RoleKeys(keyIDs: [delegationSigner.keyID], threshold: 1), terminating: true,
                    paths: delegated[$0]!.paths)
            })
        try emit("targets", {
            TargetsMetadata(version: $0, expires: $1, targets: targets, delegations: delegated.isEmpty ? nil : delegations).signed
        }, signer: targetsSigner, lifetime: lifetimes.targets)

        let meta = Dictionary(uniqueKeysWithValues: (["targets"] + delegated.keys.sorted()).map {
            ("\($0).json", MetaFile(version: versions[$0]!))
        })
        try emit("snapshot", { SnapshotMetadata(version: $0, expires: $1, meta: meta).signed },
            signer: snapshotSigner, lifetime: lifetimes.snapshot)
        let snapshotVersion = out.first(where: { $0.role == "snapshot" })?.version ?? current["snapshot"]!.version
        try emit("timestamp", {
            TimestampMetadata(version: $0, expires: $1, snapshot: MetaFile(version: snapshotVersion)).signed
        }, signer: timestampSigner, lifetime: lifetimes.timestamp)
        return out
    }
}
