import Foundation
import RampartCore
import RampartTUF
import Synchronization

/// An in-memory TUF repository that tests can sign, tamper with and serve, recording every request.
final class RepositorySimulator: TUFFetcher, @unchecked Sendable {
    let metadataBase = "https://repo.test/metadata/"
    let targetBase = "https://repo.test/targets/"
    let state = Mutex(State())

    struct State {
        var files: [String: [UInt8]] = [:]
        var requests: [String] = []
    }

    var signers: [String: [any TUFSigner]] = [:]
    var root: RootMetadata
    var timestamp: TimestampMetadata
    var snapshot: SnapshotMetadata
    var targets: [String: TargetsMetadata] = [:]
    /// Delegated roles' signers, by role.
    var delegatedSigners: [String: [any TUFSigner]] = [:]
    let expires = Date().addingTimeInterval(86_400 * 30)

    init() {
        for role in TopLevelRole.allCases { signers[role.rawValue] = [P256TUFSigner()] }
        var keys: [String: TUFKey] = [:]
        var roles: [TopLevelRole: RoleKeys] = [:]
        for role in TopLevelRole.allCases {
            let signer = signers[role.rawValue]![0]
            keys[signer.keyID] = signer.key
            roles[role] = RoleKeys(keyIDs: [signer.keyID], threshold: 1)
        }
        root = RootMetadata(version: 1, expires: expires, keys: keys, roles: roles)
        timestamp = TimestampMetadata(version: 1, expires: expires, snapshot: MetaFile(version: 1))
        snapshot = SnapshotMetadata(version: 1, expires: expires, meta: ["targets.json": MetaFile(version: 1)])
        targets["targets"] = TargetsMetadata(version: 1, expires: expires, targets: [:])
        publishRoot()
        publish()
    }

    // MARK: Serving

    func fetch(_ url: String, maximumLength: Int) async throws -> [UInt8]? {
        let name = url.hasPrefix(metadataBase) ? String(url.dropFirst(metadataBase.count)) : url
        let bytes = state.withLock {
            $0.requests.append(name)
            return $0.files[url]
        }
        if let bytes, bytes.count > maximumLength {
            throw RampartError(.downloadTooLarge, "\(url) is larger than \(maximumLength) bytes.")
        }
        return bytes
    }

    var requests: [String] { state.withLock { $0.requests } }
    func clearRequests() { state.withLock { $0.requests.removeAll() } }
    func serve(_ name: String, _ bytes: [UInt8]) { state.withLock { $0.files[metadataBase + name] = bytes } }
    func serveTarget(_ name: String, _ bytes: [UInt8]) { state.withLock { $0.files[targetBase + name] = bytes } }
    func remove(_ name: String) { state.withLock { _ = $0.files.removeValue(forKey: metadataBase + name) } }

    // MARK: Signing

    func signed(_ signed: JSONValue, by role: String) -> [UInt8] {
        let signers = TopLevelRole(rawValue: role) != nil ? self.signers[role]! : delegatedSigners[role]!
        return try! SignedMetadata(signing: signed, with: signers).fileBytes
    }

    /// Signs and serves the current root under its version, with the given signers.
    func publishRoot(signedBy extra: [any TUFSigner] = []) {
        let bytes = try! SignedMetadata(signing: root.signed, with: signers["root"]! + extra).fileBytes
        serve("\(root.common.version).root.json", bytes)
    }

    /// Signs and serves targets (all roles), snapshot and timestamp at their current versions.
    func publish() {
        for (role, metadata) in targets {
            serve("\(metadata.common.version).\(TUFUpdater.quote(role)).json", signed(metadata.signed, by: role == "targets" ? "targets" : role))
            snapshot.meta["\(role).json"] = MetaFile(version: metadata.common.version)
        }
        serve("\(snapshot.common.version).snapshot.json", signed(snapshot.signed, by: "snapshot"))
        timestamp.snapshot = MetaFile(version: snapshot.common.version)
        serve("timestamp.json", signed(timestamp.signed, by: "timestamp"))
    }

    /// Adds a target file to `role` and serves its content under the hash-prefixed name.
    func addTarget(_ path: String, _ content: [UInt8], role: String = "targets") {
        let target = TargetFile(path: path, bytes: content)
        targets[role]!.targets[path] = target
        let hash = target.hashes["sha256"]!
        let remote = path.contains("/") ? path.replacingOccurrences(of: "/([^/]*)$", with: "/\(hash).$1", options: .regularExpression) : "\(hash).\(path)"
        serveTarget(remote, content)
    }

    /// Bumps the versions of the named roles and of snapshot and timestamp, then publishes.
    func bump(_ roles: [String] = []) {
        for role in roles { targets[role]!.common.version += 1 }
        snapshot.common.version += 1
        timestamp.common.version += 1
        publish()
    }

    var trustedRoot: Data { Data(state.withLock { $0.files[metadataBase + "1.root.json"]! }) }
}

