import Foundation
import RampartCore

/// Fetches repository files.
public protocol TUFFetcher: Sendable {
    /// Fetches `url`, refusing more than `maximumLength` bytes.
    ///
    /// - Returns: The body, or `nil` when the server answers 403 or 404 (the file does not exist).
    /// - Throws: `downloadTooLarge` past the cap, `downloadFailed` for other failures.
    func fetch(_ url: String, maximumLength: Int) async throws -> [UInt8]?
}

/// The caps that bound what a malicious repository can make a client download or walk.
public struct TUFLimits: Sendable {
    /// Largest root file.
    public var rootMaximumLength = 512_000
    /// Largest timestamp file.
    public var timestampMaximumLength = 16_384
    /// Largest snapshot when the timestamp gives no length.
    public var snapshotMaximumLength = 2_000_000
    /// Largest targets file when the snapshot gives no length.
    public var targetsMaximumLength = 5_000_000
    /// Most root versions fetched in one refresh.
    public var maximumRootRotations = 256
    /// Most targets roles visited looking for one target.
    public var maximumDelegations = 32

    /// The specification's suggested caps.
    public init() {}
}

/// The TUF client workflow (specification §5) over a metadata directory that holds trusted metadata under
/// unversioned names (`root.json`, `timestamp.json`, …, `<quoted role>.json`), and nothing else named `.json`.
public struct TUFUpdater: Sendable {
    /// Where trusted metadata lives.
    public let metadataDirectory: URL
    /// The repository's metadata URL, ending in `/`.
    public let metadataBaseURL: String
    /// Fetches files.
    public let fetcher: any TUFFetcher
    /// Download caps.
    public let limits: TUFLimits
    /// The trusted metadata after ``refresh()``.
    public private(set) var trusted: TrustedMetadata?
    private let now: @Sendable () -> Date

    /// An updater over `metadataDirectory`, which must already hold a `root.json`.
    public init(
        metadataDirectory: URL, metadataBaseURL: String, fetcher: any TUFFetcher, limits: TUFLimits = .init(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.metadataDirectory = metadataDirectory
        self.metadataBaseURL = metadataBaseURL.hasSuffix("/") ? metadataBaseURL : metadataBaseURL + "/"
        self.fetcher = fetcher
        self.limits = limits
        self.now = now
    }

    /// Installs a trusted root in an empty or existing metadata directory (out of band, no network).
    public static func initialize(metadataDirectory: URL, trustedRoot: Data) throws {
        try FileManager.default.createDirectory(at: metadataDirectory, withIntermediateDirectories: true)
        try SecureFile.write(trustedRoot, to: metadataDirectory.appendingPathComponent("root.json"), mode: 0o644)
    }

    /// Brings root, timestamp, snapshot and top-level targets up to date (§5.3–5.6).
    ///
    /// Each file is stored as soon as it is verified, exactly as served; rejected files are never stored.
    public mutating func refresh() async throws {
        let rootBytes: [UInt8]
        do {
            rootBytes = Array(try Data(contentsOf: file("root")))
        } catch {
            throw TUFError(.trustedMetadataMissing, "No trusted root in \(metadataDirectory.path); run init first.")
        }
        var set = try TrustedMetadata(trustedRoot: rootBytes, referenceTime: now())
        defer { trusted = set }

        // §5.3: root N+1 until there is none.
        let first = set.root.common.version + 1
        var keysRotated = false
        for version in first..<(first + limits.maximumRootRotations) {
            guard let bytes = try await fetch("\(version).root.json", limit: limits.rootMaximumLength) else { break }
            keysRotated = try set.updateRoot(bytes) || keysRotated
            try persist(bytes, role: "root")
        }
        if keysRotated {  // §5.3.11: fast-forward attack recovery.
            for role in ["timestamp", "snapshot"] { try? FileManager.default.removeItem(at: file(role)) }
        }
        try set.checkRootNotExpired()

        // §5.4: timestamp. A local copy, even expired, is the reference for rollback checks.
        if let local = localBytes("timestamp") { _ = try? set.updateTimestamp(local) }
        guard let timestamp = try await fetch("timestamp.json", limit: limits.timestampMaximumLength) else {
            throw TUFError(.downloadFailed, "The repository has no timestamp.json.")
        }
        if try set.updateTimestamp(timestamp) { try persist(timestamp, role: "timestamp") }

        // §5.5: snapshot, reusing the local one when it is still the current version.
        var snapshotCurrent = false
        if let local = localBytes("snapshot") {
            snapshotCurrent = (try? set.updateSnapshot(local, trusted: true)) != nil
        }
        if !snapshotCurrent {
            let reference = set.timestamp!.snapshot
            let name = set.root.consistentSnapshot ? "\(reference.version).snapshot.json" : "snapshot.json"
            guard let bytes = try await fetch(name, limit: reference.length ?? limits.snapshotMaximumLength) else {
                throw TUFError(.downloadFailed, "The repository has no \(name).")
            }
            try set.updateSnapshot(bytes)
            try persist(bytes, role: "snapshot")
        }

        // §5.6: top-level targets.
        try await loadTargets(role: "targets", delegator: "root", into: &set)
    }

    /// Finds a target by a pre-order depth-first walk of the delegations (§5.6.7), loading delegated
    /// roles as needed. Call after ``refresh()``.
    ///
    /// - Returns: The target, or `nil` when no trusted role lists it.
    public mutating func targetInfo(for path: String) async throws -> TargetFile? {
        guard var set = trusted else { throw TUFError(.trustedMetadataMissing, "Refresh before looking up targets.") }
        defer { trusted = set }
        var stack: [(role: String, delegator: String)] = [("targets", "root")]
        var visited = Set<String>()
        var budget = limits.maximumDelegations
        while budget > 0, let (role, delegator) = stack.popLast() {
            if visited.contains(role) { continue }
            try await loadTargets(role: role, delegator: delegator, into: &set)
            let metadata = set.targets[role]!
            if let target = metadata.targets[path] { return target }
            visited.insert(role)
            budget -= 1
            guard let delegations = metadata.delegations else { continue }
            var children: [(String, String)] = []
            for child in delegations.roles(for: path) {
                children.append((child.name, role))
                if child.terminating {
                    stack.removeAll()
                    break
                }
            }
            stack.append(contentsOf: children.reversed())
        }
        return nil
    }

    /// Every target of a role that top-level targets delegates to directly (a device group's or a feed's),
    /// verified. Call after ``refresh()``.
    ///
    /// - Returns: The targets, or none when `targets` does not delegate `role`.
    public mutating func targets(ofDelegatedRole role: String) async throws -> [TargetFile] {
        guard var set = trusted else { throw TUFError(.trustedMetadataMissing, "Refresh before looking up targets.") }
        defer { trusted = set }
        guard set.targets["targets"]?.delegations?.roles?.contains(where: { $0.name == role }) == true else { return [] }
        try await loadTargets(role: role, delegator: "targets", into: &set)
        let delegation = set.targets["targets"]!.delegations!.roles!.first { $0.name == role }!
        // Only what the delegation trusts the role for.
        return set.targets[role]!.targets.values.filter { delegation.covers($0.path) }.sorted { $0.path < $1.path }
    }

    private func loadTargets(role: String, delegator: String, into set: inout TrustedMetadata) async throws {
        if set.targets[role] != nil { return }
        if let local = localBytes(role), (try? set.updateTargets(local, role: role, delegator: delegator)) != nil {
            return
        }
        guard let reference = set.snapshot?.meta["\(role).json"] else {
            throw TUFError(.snapshotInconsistent, "The snapshot does not list \(role).json.")
        }
        let quoted = Self.quote(role)
        let name = set.root.consistentSnapshot ? "\(reference.version).\(quoted).json" : "\(quoted).json"
        guard let bytes = try await fetch(name, limit: reference.length ?? limits.targetsMaximumLength) else {
            throw TUFError(.downloadFailed, "The repository has no \(name).")
        }
        try set.updateTargets(bytes, role: role, delegator: delegator)
        try persist(bytes, role: role)
    }

    /// Downloads `target` into `directory` as `quote(path)`, verified against its length and hashes; a
    /// matching file already there is reused. Nothing unverified is ever left in `directory`.
    ///
    /// - Returns: The file's location.
    public func download(_ target: TargetFile, baseURL: String, into directory: URL) async throws -> URL {
        let destination = directory.appendingPathComponent(Self.quote(target.path))
        if let existing = try? Data(contentsOf: destination),
            (try? TrustedMetadata.verifyLengthAndHashes(existing, length: target.length, hashes: target.hashes, what: target.path)) != nil
        {
            return destination
        }
        let remotePath = trusted?.root.consistentSnapshot ?? false ? target.hashPrefixedPath : target.path
        let base = baseURL.hasSuffix("/") ? baseURL : baseURL + "/"
        guard let bytes = try await fetcher.fetch(base + remotePath, maximumLength: target.length) else {
            throw TUFError(.downloadFailed, "The repository has no file for target \(target.path).")
        }
        try TrustedMetadata.verifyLengthAndHashes(bytes, length: target.length, hashes: target.hashes, what: target.path)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try SecureFile.write(Data(bytes), to: destination, mode: 0o644)
        return destination
    }

    // MARK: - Files

    /// Percent-encodes everything but `A–Z a–z 0–9 _ . - ~`, as Python's `quote(s, safe="")`.
    public static func quote(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    private func file(_ role: String) -> URL {
        metadataDirectory.appendingPathComponent(Self.quote(role) + ".json")
    }

    private func localBytes(_ role: String) -> [UInt8]? {
        (try? Data(contentsOf: file(role))).map(Array.init)
    }

    private func persist(_ bytes: [UInt8], role: String) throws {
        try SecureFile.write(Data(bytes), to: file(role), mode: 0o644)
    }

    private func fetch(_ name: String, limit: Int) async throws -> [UInt8]? {
        try await fetcher.fetch(metadataBaseURL + name, maximumLength: limit)
    }
}
