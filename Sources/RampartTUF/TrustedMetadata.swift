import Crypto
import Foundation
import RampartCore

/// The metadata a client trusts, and the rules for replacing it (TUF specification §5.3–5.6).
///
/// Updates must come in the specification's order: root, timestamp, snapshot, then targets. Each update
/// checks signatures, versions and expiry against `referenceTime`, fixed when the update began. Some checks
/// fail only after the new metadata was accepted as an intermediate step (as python-tuf does): an expired
/// local timestamp still protects against a rollback of the next one.
public struct TrustedMetadata: Sendable {
    /// The time all expiry checks use.
    public let referenceTime: Date
    /// Trusted root.
    public private(set) var root: RootMetadata
    /// Trusted timestamp.
    public private(set) var timestamp: TimestampMetadata?
    /// Trusted snapshot.
    public private(set) var snapshot: SnapshotMetadata?
    /// Trusted targets metadata by role name (`targets` and delegated roles).
    public private(set) var targets: [String: TargetsMetadata] = [:]

    /// Starts from a trusted root, which must be signed by a threshold of its own root keys.
    public init(trustedRoot bytes: some Collection<UInt8>, referenceTime: Date) throws {
        let metadata = try SignedMetadata(bytes: bytes)
        let root = try RootMetadata(metadata.signed)
        try root.verify(.root, metadata)
        self.root = root
        self.referenceTime = referenceTime
    }

    /// Accepts root version N+1 (§5.3.4–5.3.9): signed by the old and the new root keys' thresholds.
    ///
    /// - Returns: Whether the timestamp or snapshot keys changed, in which case their trusted files must go.
    @discardableResult
    public mutating func updateRoot(_ bytes: some Collection<UInt8>) throws -> Bool {
        precondition(timestamp == nil, "root cannot change after the timestamp was loaded")
        let metadata = try SignedMetadata(bytes: bytes)
        let new = try RootMetadata(metadata.signed)
        try root.verify(.root, metadata)
        guard new.common.version == root.common.version + 1 else {
            throw TUFError(
                .versionMismatch,
                "Expected root version \(root.common.version + 1), got \(new.common.version).")
        }
        try new.verify(.root, metadata)
        let rotated = [TopLevelRole.timestamp, .snapshot].contains { role in
            Set(new.roles[role]!.keyIDs.compactMap { new.keys[$0] }) != Set(root.roles[role]!.keyIDs.compactMap { root.keys[$0] })
        }
        root = new
        return rotated
    }

    /// Checks the final root's expiry (§5.3.10).
    public func checkRootNotExpired() throws {
        guard !root.common.isExpired(at: referenceTime) else {
            throw TUFError(.metadataExpired, "The trusted root (version \(root.common.version)) has expired.")
        }
    }

    /// Accepts a timestamp (§5.4).
    ///
    /// - Returns: `false` when it has the same version as the trusted one, which is then kept unchanged.
    @discardableResult
    public mutating func updateTimestamp(_ bytes: some Collection<UInt8>) throws -> Bool {
        precondition(snapshot == nil, "timestamp cannot change after the snapshot was loaded")
        try checkRootNotExpired()
        let metadata = try SignedMetadata(bytes: bytes)
        let new = try TimestampMetadata(metadata.signed)
        try root.verify(.timestamp, metadata)
        if let timestamp {
            if new.common.version < timestamp.common.version {
                throw TUFError(
                    .versionRollback,
                    "Timestamp version \(new.common.version) is older than the trusted \(timestamp.common.version).")
            }
            if new.common.version == timestamp.common.version { return false }
            if new.snapshot.version < timestamp.snapshot.version {
                throw TUFError(
                    .versionRollback,
                    "The timestamp points at snapshot version \(new.snapshot.version), older than the trusted \(timestamp.snapshot.version).")
            }
        }
        timestamp = new
        try checkTimestampNotExpired()
        return true
    }

    func checkTimestampNotExpired() throws {
        guard let timestamp, !timestamp.common.isExpired(at: referenceTime) else {
            throw TUFError(.metadataExpired, "The timestamp has expired: the repository may be frozen.")
        }
    }

    /// Accepts a snapshot (§5.5). `trusted` skips the hash check for a copy read from local storage.
    public mutating func updateSnapshot(_ bytes: some Collection<UInt8>, trusted: Bool = false) throws {
        guard let timestamp else { preconditionFailure("snapshot needs a timestamp") }
        precondition(targets.isEmpty, "snapshot cannot change after targets were loaded")
        try checkTimestampNotExpired()
        if !trusted { try Self.verifyLengthAndHashes(bytes, length: timestamp.snapshot.length, hashes: timestamp.snapshot.hashes, what: "snapshot") }
        let metadata = try SignedMetadata(bytes: bytes)
        let new = try SnapshotMetadata(metadata.signed)
        try root.verify(.snapshot, metadata)
        if let snapshot {
            for (name, old) in snapshot.meta {
                guard let replacement = new.meta[name] else {
                    throw TUFError(.snapshotInconsistent, "The new snapshot leaves out \(name), which the trusted one lists.")
                }
                guard replacement.version >= old.version else {
                    throw TUFError(
                        .versionRollback,
                        "The new snapshot rolls \(name) back from version \(old.version) to \(replacement.version).")
                }
            }
        }
        snapshot = new
        guard !new.common.isExpired(at: referenceTime) else {
            throw TUFError(.metadataExpired, "The snapshot has expired.")
        }
        guard new.common.version == timestamp.snapshot.version else {
            throw TUFError(
                .versionMismatch,
                "The timestamp names snapshot version \(timestamp.snapshot.version), got \(new.common.version).")
        }
    }

    /// Accepts top-level or delegated targets metadata (§5.6), verified with the delegator's keys.
    public mutating func updateTargets(_ bytes: some Collection<UInt8>, role: String, delegator: String) throws {
        guard let snapshot, let timestamp, snapshot.common.version == timestamp.snapshot.version,
            !snapshot.common.isExpired(at: referenceTime)
        else { throw TUFError(.trustedMetadataMissing, "Targets need a current, trusted snapshot first.") }
        guard let reference = snapshot.meta["\(role).json"] else {
            throw TUFError(.snapshotInconsistent, "The snapshot does not list \(role).json.")
        }
        try Self.verifyLengthAndHashes(bytes, length: reference.length, hashes: reference.hashes, what: role)
        let metadata = try SignedMetadata(bytes: bytes)
        let new = try TargetsMetadata(metadata.signed)
        if role == TopLevelRole.targets.rawValue {
            try root.verify(.targets, metadata)
        } else {
            guard let parent = targets[delegator], let keys = parent.delegations?.keys(of: role) else {
                throw TUFError(.trustedMetadataMissing, "\(delegator) does not delegate to \(role).")
            }
            try metadata.verify(role: role, keys: parent.delegations!.keys, keyIDs: keys.keyIDs, threshold: keys.threshold)
        }
        guard new.common.version == reference.version else {
            throw TUFError(
                .versionMismatch, "The snapshot names \(role) version \(reference.version), got \(new.common.version).")
        }
        guard !new.common.isExpired(at: referenceTime) else {
            throw TUFError(.metadataExpired, "\(role) metadata has expired.")
        }
        targets[role] = new
    }

    /// Checks `bytes` against a length and hashes from signed metadata.
    ///
    /// An unknown hash algorithm counts as a mismatch: nothing is accepted unchecked.
    public static func verifyLengthAndHashes(
        _ bytes: some Collection<UInt8>, length: Int?, hashes: [String: String]?, what: String
    ) throws {
        if let length, bytes.count != length {
            throw TUFError(.lengthOrHashMismatch, "\(what): expected \(length) bytes, got \(bytes.count).")
        }
        for (algorithm, expected) in hashes ?? [:] {
            let data = Data(bytes)
            let actual: String
            switch algorithm {
            case "sha256": actual = Hex.encode(SHA256.hash(data: data))
            case "sha384": actual = Hex.encode(SHA384.hash(data: data))
            case "sha512": actual = Hex.encode(SHA512.hash(data: data))
            default: throw TUFError(.lengthOrHashMismatch, "\(what): hash algorithm '\(algorithm)' is not supported.")
            }
            guard actual == expected.lowercased() else {
                throw TUFError(.lengthOrHashMismatch, "\(what): the \(algorithm) hash does not match signed metadata.")
            }
        }
    }
}
