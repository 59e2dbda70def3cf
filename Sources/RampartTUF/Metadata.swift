import Crypto
import Foundation
import RampartCore

/// The four top-level roles.
public enum TopLevelRole: String, Sendable, CaseIterable {
    case root, timestamp, snapshot, targets
}

/// A signed metadata file: `{"signatures": [...], "signed": {...}}`, parsed but not yet trusted.
public struct SignedMetadata: Sendable {
    /// The `signed` object exactly as received; its canonical form is what the signatures cover.
    public let signed: JSONValue
    /// Signatures by key ID.
    public let signatures: [String: String]
    /// The `_type` of `signed`.
    public let type: String

    /// Parses an envelope.
    ///
    /// - Throws: `metadataMalformed` for bad JSON, a missing part, or two signatures with one key ID.
    public init(bytes: some Collection<UInt8>) throws {
        let document = try JSONValue.parse(bytes)
        guard case .object(let members) = document, case .array(let signatureList)? = members["signatures"],
            case .object(let signedMembers)? = members["signed"], case .string(let type)? = signedMembers["_type"]
        else { throw TUFError.malformed("Metadata must be an object with 'signatures' and a typed 'signed' object.") }
        var signatures: [String: String] = [:]
        for entry in signatureList {
            guard case .string(let keyID)? = entry["keyid"], case .string(let sig)? = entry["sig"] else {
                throw TUFError.malformed("Every signature needs a string 'keyid' and 'sig'.")
            }
            guard signatures.updateValue(sig, forKey: keyID) == nil else {
                throw TUFError.malformed("Two signatures carry the key ID \(keyID).")
            }
        }
        self.signed = .object(signedMembers)
        self.signatures = signatures
        self.type = type
    }

    /// Signs `signed` with every signer.
    public init(signing signed: JSONValue, with signers: [any TUFSigner]) throws {
        guard case .string(let type)? = signed["_type"] else { throw TUFError.malformed("'signed' needs a '_type'.") }
        let message = signed.canonicalBytes
        var signatures: [String: String] = [:]
        for signer in signers { signatures[signer.keyID] = try signer.sign(message) }
        self.signed = signed
        self.signatures = signatures
        self.type = type
    }

    /// The envelope as a JSON document.
    public var json: JSONValue {
        let list = signatures.keys.sorted().map { keyID -> JSONValue in
            .object(["keyid": .string(keyID), "sig": .string(signatures[keyID]!)])
        }
        return .object(["signatures": .array(list), "signed": signed])
    }

    /// The envelope as a readable file.
    public var fileBytes: [UInt8] { json.prettyBytes }

    /// Checks that at least `threshold` of `keyIDs`, looked up in `keys`, signed this metadata.
    ///
    /// Each key ID counts once, and so does each distinct public key, so one key listed under two IDs cannot
    /// meet a threshold of two.
    ///
    /// - Throws: `thresholdNotMet` naming the role and the count.
    public func verify(role: String, keys: [String: TUFKey], keyIDs: [String], threshold: Int) throws {
        let message = signed.canonicalBytes
        var counted = Set<TUFKey>()
        for keyID in keyIDs {
            guard let key = keys[keyID], let signature = signatures[keyID], !counted.contains(key) else { continue }
            if key.verifies(signature: signature, over: message) { counted.insert(key) }
        }
        guard counted.count >= threshold else {
            throw TUFError(
                .thresholdNotMet,
                "\(role) metadata has \(counted.count) valid signature(s); its threshold is \(threshold).")
        }
    }
}

// MARK: - Fields common to every role

/// The part of `signed` that every role has.
public struct CommonFields: Sendable, Hashable {
    /// `spec_version`.
    public var specVersion: String
    /// `version`, at least 1.
    public var version: Int
    /// `expires`.
    public var expires: Date

    /// The specification version Rampart writes.
    public static let specVersion = "1.0.31"

    /// Fields from their parts.
    public init(specVersion: String = CommonFields.specVersion, version: Int, expires: Date) {
        self.specVersion = specVersion
        self.version = version
        self.expires = expires
    }

    init(_ members: [String: JSONValue], type: String) throws {
        guard case .string(let actualType)? = members["_type"], actualType == type else {
            throw TUFError.malformed("Expected \(type) metadata, got '\(members["_type"].flatMap(\.stringValue) ?? "?")'.")
        }
        let spec = try members.string("spec_version", in: type)
        let parts = spec.split(separator: ".", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }) else {
            throw TUFError.malformed("\(type): spec_version '\(spec)' is not of the form 1.0.x.")
        }
        guard parts[0] == "1" else {
            throw TUFError.malformed("\(type): spec_version \(spec) is not supported; this client follows 1.x.")
        }
        self.specVersion = spec
        self.version = try members.integer("version", in: type)
        guard version > 0 else { throw TUFError.malformed("\(type): version must be at least 1.") }
        let expiresText = try members.string("expires", in: type)
        guard let expires = TUFDate.parse(expiresText) else {
            throw TUFError.malformed("\(type): expires '\(expiresText)' is not YYYY-MM-DDTHH:MM:SSZ.")
        }
        self.expires = expires
    }

    func members(type: String) -> [String: JSONValue] {
        [
            "_type": .string(type), "spec_version": .string(specVersion), "version": .integer(Int64(version)),
            "expires": .string(TUFDate.format(expires)),
        ]
    }

    /// Whether the metadata has expired at `date`.
    public func isExpired(at date: Date) -> Bool { expires <= date }
}

/// TUF's timestamp format, `2026-11-21T08:00:00Z`, and nothing else.
public enum TUFDate {
    /// Formats whole seconds in UTC.
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle())
    }

    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ`.
    public static func parse(_ text: String) -> Date? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 20, utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-"),
            utf8[10] == UInt8(ascii: "T"), utf8[13] == UInt8(ascii: ":"), utf8[16] == UInt8(ascii: ":"),
            utf8[19] == UInt8(ascii: "Z")
        else { return nil }
        return try? Date(text, strategy: .iso8601)
    }
}

// MARK: - Root

/// A role's keys and threshold.
public struct RoleKeys: Sendable, Hashable {
    /// Key IDs, without repeats.
    public var keyIDs: [String]
    /// How many of them must sign.
    public var threshold: Int

    /// A role from its parts.
    public init(keyIDs: [String], threshold: Int) {
        self.keyIDs = keyIDs
        self.threshold = threshold
    }

    init(_ value: JSONValue, in context: String) throws {
        guard case .object(let members) = value else { throw TUFError.malformed("\(context) must be an object.") }
        self.keyIDs = try members.stringArray("keyids", in: context)
        self.threshold = try members.integer("threshold", in: context)
        guard Set(keyIDs).count == keyIDs.count else { throw TUFError.malformed("\(context) repeats a key ID.") }
        guard threshold >= 1 else { throw TUFError.malformed("\(context): threshold must be at least 1.") }
    }

    var members: [String: JSONValue] {
        ["keyids": .array(keyIDs.map { .string($0) }), "threshold": .integer(Int64(threshold))]
    }
}

/// Root metadata: the keys and thresholds of the top-level roles.
public struct RootMetadata: Sendable {
    /// Version and expiry.
    public var common: CommonFields
    /// `consistent_snapshot`; absent means false.
    public var consistentSnapshot: Bool
    /// Keys by ID.
    public var keys: [String: TUFKey]
    /// The four roles.
    public var roles: [TopLevelRole: RoleKeys]

    /// A root from its parts.
    public init(version: Int, expires: Date, consistentSnapshot: Bool = true, keys: [String: TUFKey], roles: [TopLevelRole: RoleKeys]) {
        self.common = CommonFields(specVersion: CommonFields.specVersion, version: version, expires: expires)
        self.consistentSnapshot = consistentSnapshot
        self.keys = keys
        self.roles = roles
    }

    /// Parses `signed`.
    public init(_ signed: JSONValue) throws {
        let members = signed.objectValue ?? [:]
        self.common = try CommonFields(members, type: "root")
        switch members["consistent_snapshot"] {
        case nil: self.consistentSnapshot = false
        case .bool(let value)?: self.consistentSnapshot = value
        default: throw TUFError.malformed("root: consistent_snapshot must be a boolean.")
        }
        self.keys = try parseKeys(members["keys"], in: "root")
        guard case .object(let roleMembers)? = members["roles"],
            Set(roleMembers.keys) == Set(TopLevelRole.allCases.map(\.rawValue))
        else { throw TUFError.malformed("root: roles must name exactly root, timestamp, snapshot and targets.") }
        var roles: [TopLevelRole: RoleKeys] = [:]
        for role in TopLevelRole.allCases {
            roles[role] = try RoleKeys(roleMembers[role.rawValue]!, in: "root: roles.\(role.rawValue)")
        }
        self.roles = roles
    }

    /// The `signed` object.
    public var signed: JSONValue {
        var members = common.members(type: "root")
        members["consistent_snapshot"] = .bool(consistentSnapshot)
        members["keys"] = .object(keys.mapValues(\.json))
        members["roles"] = .object(Dictionary(uniqueKeysWithValues: roles.map { ($0.key.rawValue, .object($0.value.members)) }))
        return .object(members)
    }

    /// Checks that `metadata` carries a threshold of signatures of `role`'s keys.
    public func verify(_ role: TopLevelRole, _ metadata: SignedMetadata) throws {
        let keys = roles[role]!
        try metadata.verify(role: role.rawValue, keys: self.keys, keyIDs: keys.keyIDs, threshold: keys.threshold)
    }
}

func parseKeys(_ value: JSONValue?, in context: String) throws -> [String: TUFKey] {
    guard case .object(let members)? = value else { throw TUFError.malformed("\(context): keys must be an object.") }
    return try members.mapValues { try TUFKey(json: $0) }
}

// MARK: - Timestamp and snapshot

/// What timestamp and snapshot say about another metadata file.
public struct MetaFile: Sendable, Hashable {
    /// Its version.
    public var version: Int
    /// Its length in bytes, if given.
    public var length: Int?
    /// Its hashes by algorithm, if given.
    public var hashes: [String: String]?

    /// A reference from its parts.
    public init(version: Int, length: Int? = nil, hashes: [String: String]? = nil) {
        self.version = version
        self.length = length
        self.hashes = hashes
    }

    init(_ value: JSONValue, in context: String) throws {
        guard case .object(let members) = value else { throw TUFError.malformed("\(context) must be an object.") }
        self.version = try members.integer("version", in: context)
        guard version > 0 else { throw TUFError.malformed("\(context): version must be at least 1.") }
        self.length = try members.optionalInteger("length", in: context)
        if let length, length < 0 { throw TUFError.malformed("\(context): length must not be negative.") }
        self.hashes = try members.optionalHashes(in: context)
    }

    var json: JSONValue {
        var members: [String: JSONValue] = ["version": .integer(Int64(version))]
        if let length { members["length"] = .integer(Int64(length)) }
        if let hashes { members["hashes"] = .object(hashes.mapValues { .string($0) }) }
        return .object(members)
    }
}

/// Timestamp metadata: which snapshot is current.
public struct TimestampMetadata: Sendable {
    /// Version and expiry.
    public var common: CommonFields
    /// `meta["snapshot.json"]`.
    public var snapshot: MetaFile

    /// A timestamp from its parts.
    public init(version: Int, expires: Date, snapshot: MetaFile) {
        self.common = CommonFields(specVersion: CommonFields.specVersion, version: version, expires: expires)
        self.snapshot = snapshot
    }

    /// Parses `signed`.
    public init(_ signed: JSONValue) throws {
        let members = signed.objectValue ?? [:]
        self.common = try CommonFields(members, type: "timestamp")
        guard case .object(let meta)? = members["meta"], meta.count == 1, let snapshot = meta["snapshot.json"] else {
            throw TUFError.malformed("timestamp: meta must hold exactly snapshot.json.")
        }
        self.snapshot = try MetaFile(snapshot, in: "timestamp: meta.snapshot.json")
    }

    /// The `signed` object.
    public var signed: JSONValue {
        var members = common.members(type: "timestamp")
        members["meta"] = .object(["snapshot.json": snapshot.json])
        return .object(members)
    }
}

/// Snapshot metadata: the versions of every targets metadata file.
public struct SnapshotMetadata: Sendable {
    /// Version and expiry.
    public var common: CommonFields
    /// File name (`targets.json`, `<role>.json`) to reference.
    public var meta: [String: MetaFile]

    /// A snapshot from its parts.
    public init(version: Int, expires: Date, meta: [String: MetaFile]) {
        self.common = CommonFields(specVersion: CommonFields.specVersion, version: version, expires: expires)
        self.meta = meta
    }

    /// Parses `signed`.
    public init(_ signed: JSONValue) throws {
        let members = signed.objectValue ?? [:]
        self.common = try CommonFields(members, type: "snapshot")
        guard case .object(let meta)? = members["meta"] else { throw TUFError.malformed("snapshot: meta must be an object.") }
        self.meta = try meta.reduce(into: [:]) { $0[$1.key] = try MetaFile($1.value, in: "snapshot: meta.\($1.key)") }
    }

    /// The `signed` object.
    public var signed: JSONValue {
        var members = common.members(type: "snapshot")
        members["meta"] = .object(meta.mapValues(\.json))
        return .object(members)
    }
}

// MARK: - Targets

/// A target file: its length, hashes and custom data.
public struct TargetFile: Sendable, Hashable {
    /// The target path.
    public var path: String
    /// Its length in bytes.
    public var length: Int
    /// Its hashes by algorithm; at least one.
    public var hashes: [String: String]
    /// `custom`, if any.
    public var custom: JSONValue?

    /// A target from its parts.
    public init(path: String, length: Int, hashes: [String: String], custom: JSONValue? = nil) {
        self.path = path
        self.length = length
        self.hashes = hashes
        self.custom = custom
    }

    /// A target describing `bytes`.
    public init(path: String, bytes: some Sequence<UInt8>, custom: JSONValue? = nil) {
        let data = Data(bytes)
        self.init(path: path, length: data.count, hashes: ["sha256": Hex.encode(SHA256.hash(data: data))], custom: custom)
    }

    /// The name a consistent-snapshot repository serves this target under: the hash in front of the
    /// file name, `dir/<hash>.name` (sha256 when listed, else the first algorithm in order).
    public var hashPrefixedPath: String {
        let hash = hashes["sha256"] ?? hashes[hashes.keys.sorted()[0]]!
        guard let slash = path.lastIndex(of: "/") else { return "\(hash).\(path)" }
        return "\(path[...slash])\(hash).\(path[path.index(after: slash)...])"
    }

    init(path: String, _ value: JSONValue) throws {
        let context = "targets: '\(path)'"
        guard case .object(let members) = value else { throw TUFError.malformed("\(context) must be an object.") }
        self.path = path
        self.length = try members.integer("length", in: context)
        guard length >= 0 else { throw TUFError.malformed("\(context): length must not be negative.") }
        guard let hashes = try members.optionalHashes(in: context), !hashes.isEmpty else {
            throw TUFError.malformed("\(context) needs hashes.")
        }
        self.hashes = hashes
        self.custom = members["custom"]
    }

    var json: JSONValue {
        var members: [String: JSONValue] = [
            "length": .integer(Int64(length)), "hashes": .object(hashes.mapValues { .string($0) }),
        ]
        if let custom { members["custom"] = custom }
        return .object(members)
    }
}

/// One delegated role.
public struct DelegatedRole: Sendable, Hashable {
    /// The role name.
    public var name: String
    /// Its keys and threshold.
    public var keys: RoleKeys
    /// Whether the search stops here for the paths it covers.
    public var terminating: Bool
    /// Path patterns (`fnmatch` per path segment), or `nil` when ``pathHashPrefixes`` is used.
    public var paths: [String]?
    /// Hex prefixes of SHA-256(target path), or `nil`.
    public var pathHashPrefixes: [String]?

    /// A delegation by path patterns.
    public init(name: String, keys: RoleKeys, terminating: Bool, paths: [String]) {
        self.name = name
        self.keys = keys
        self.terminating = terminating
        self.paths = paths
    }

    init(_ value: JSONValue) throws {
        guard case .object(let members) = value else { throw TUFError.malformed("targets: a delegated role must be an object.") }
        let name = try members.string("name", in: "targets: delegations.roles")
        let context = "targets: delegated role '\(name)'"
        guard !name.isEmpty, TopLevelRole(rawValue: name) == nil else {
            throw TUFError.malformed("\(context): the name must not be empty or a top-level role.")
        }
        self.name = name
        self.keys = try RoleKeys(value, in: context)
        guard case .bool(let terminating)? = members["terminating"] else {
            throw TUFError.malformed("\(context): terminating must be a boolean.")
        }
        self.terminating = terminating
        self.paths = try members["paths"].map { _ in try members.stringArray("paths", in: context) }
        self.pathHashPrefixes = try members["path_hash_prefixes"].map { _ in
            try members.stringArray("path_hash_prefixes", in: context)
        }
        guard (paths == nil) != (pathHashPrefixes == nil) else {
            throw TUFError.malformed("\(context): exactly one of paths and path_hash_prefixes must be set.")
        }
    }

    var json: JSONValue {
        var members = keys.members
        members["name"] = .string(name)
        members["terminating"] = .bool(terminating)
        if let paths { members["paths"] = .array(paths.map { .string($0) }) }
        if let pathHashPrefixes { members["path_hash_prefixes"] = .array(pathHashPrefixes.map { .string($0) }) }
        return .object(members)
    }

    /// Whether this role is trusted for `targetPath`.
    public func covers(_ targetPath: String) -> Bool {
        if let paths {
            return paths.contains { PathPattern.matches(targetPath, pattern: $0) }
        }
        let digest = Hex.encode(SHA256.hash(data: Data(targetPath.utf8)))
        return pathHashPrefixes?.contains { digest.hasPrefix($0) } ?? false
    }
}

/// TAP 15 succinct hash-bin delegations.
public struct SuccinctRoles: Sendable, Hashable {
    /// The bins' shared keys and threshold.
    public var keys: RoleKeys
    /// Bits of the path hash that pick the bin, 1…32.
    public var bitLength: Int
    /// The bin names' prefix.
    public var namePrefix: String

    init(_ value: JSONValue) throws {
        let context = "targets: succinct_roles"
        guard case .object(let members) = value else { throw TUFError.malformed("\(context) must be an object.") }
        self.keys = try RoleKeys(value, in: context)
        self.bitLength = try members.integer("bit_length", in: context)
        guard (1...32).contains(bitLength) else { throw TUFError.malformed("\(context): bit_length must be 1…32.") }
        self.namePrefix = try members.string("name_prefix", in: context)
    }

    var json: JSONValue {
        var members = keys.members
        members["bit_length"] = .integer(Int64(bitLength))
        members["name_prefix"] = .string(namePrefix)
        return .object(members)
    }

    /// The bin that holds `targetPath`.
    public func roleName(for targetPath: String) -> String {
        let digest = Array(SHA256.hash(data: Data(targetPath.utf8)))
        let prefix = UInt32(digest[0]) << 24 | UInt32(digest[1]) << 16 | UInt32(digest[2]) << 8 | UInt32(digest[3])
        let bin = UInt64(prefix) >> (32 - bitLength)
        let width = String((UInt64(1) << bitLength) - 1, radix: 16).count
        let hex = String(bin, radix: 16)
        return "\(namePrefix)-\(String(repeating: "0", count: width - hex.count))\(hex)"
    }
}

/// A targets role's delegations.
public struct Delegations: Sendable {
    /// Keys by ID.
    public var keys: [String: TUFKey]
    /// Ordered roles, or `nil` when ``succinctRoles`` is used.
    public var roles: [DelegatedRole]?
    /// Hash bins, or `nil`.
    public var succinctRoles: SuccinctRoles?

    /// Delegations to named roles.
    public init(keys: [String: TUFKey], roles: [DelegatedRole]) {
        self.keys = keys
        self.roles = roles
    }

    init(_ value: JSONValue) throws {
        guard case .object(let members) = value else { throw TUFError.malformed("targets: delegations must be an object.") }
        self.keys = try parseKeys(members["keys"], in: "targets: delegations")
        if case .array(let list)? = members["roles"] {
            let roles = try list.map(DelegatedRole.init)
            guard Set(roles.map(\.name)).count == roles.count else {
                throw TUFError.malformed("targets: delegated role names must be unique.")
            }
            self.roles = roles
        } else if members["roles"] != nil {
            throw TUFError.malformed("targets: delegations.roles must be an array.")
        }
        self.succinctRoles = try members["succinct_roles"].map(SuccinctRoles.init)
        guard (roles == nil) != (succinctRoles == nil) else {
            throw TUFError.malformed("targets: delegations need exactly one of roles and succinct_roles.")
        }
    }

    var json: JSONValue {
        var members: [String: JSONValue] = ["keys": .object(keys.mapValues(\.json))]
        if let roles { members["roles"] = .array(roles.map(\.json)) }
        if let succinctRoles { members["succinct_roles"] = succinctRoles.json }
        return .object(members)
    }

    /// The roles to visit for `targetPath`, in order, each with whether it terminates the search.
    public func roles(for targetPath: String) -> [(name: String, keys: RoleKeys, terminating: Bool)] {
        if let succinctRoles {
            return [(succinctRoles.roleName(for: targetPath), succinctRoles.keys, true)]
        }
        return (roles ?? []).filter { $0.covers(targetPath) }.map { ($0.name, $0.keys, $0.terminating) }
    }

    /// The keys and threshold of the delegated role `name`, if it is delegated here.
    func keys(of name: String) -> RoleKeys? {
        if let role = roles?.first(where: { $0.name == name }) { return role.keys }
        if let succinctRoles, name.hasPrefix(succinctRoles.namePrefix + "-") {
            let suffix = name.dropFirst(succinctRoles.namePrefix.count + 1)
            let width = String((UInt64(1) << succinctRoles.bitLength) - 1, radix: 16).count
            guard suffix.count == width, let bin = UInt64(suffix, radix: 16), bin < UInt64(1) << succinctRoles.bitLength
            else { return nil }
            return succinctRoles.keys
        }
        return nil
    }
}

/// Targets metadata, top-level or delegated.
public struct TargetsMetadata: Sendable {
    /// Version and expiry.
    public var common: CommonFields
    /// Target files by path.
    public var targets: [String: TargetFile]
    /// Delegations, if any.
    public var delegations: Delegations?

    /// Targets from their parts.
    public init(version: Int, expires: Date, targets: [String: TargetFile], delegations: Delegations? = nil) {
        self.common = CommonFields(specVersion: CommonFields.specVersion, version: version, expires: expires)
        self.targets = targets
        self.delegations = delegations
    }

    /// Parses `signed`.
    public init(_ signed: JSONValue) throws {
        let members = signed.objectValue ?? [:]
        self.common = try CommonFields(members, type: "targets")
        guard case .object(let targets)? = members["targets"] else {
            throw TUFError.malformed("targets: targets must be an object.")
        }
        self.targets = try targets.reduce(into: [:]) { $0[$1.key] = try TargetFile(path: $1.key, $1.value) }
        self.delegations = try members["delegations"].map(Delegations.init)
    }

    /// The `signed` object.
    public var signed: JSONValue {
        var members = common.members(type: "targets")
        members["targets"] = .object(targets.mapValues(\.json))
        if let delegations { members["delegations"] = delegations.json }
        return .object(members)
    }
}

// MARK: - Path patterns

/// Delegation path patterns as python-tuf matches them: the same number of `/`-separated segments, each
/// matched with shell wildcards (`*`, `?`, `[...]`, `[!...]`).
enum PathPattern {
    static func matches(_ path: String, pattern: String) -> Bool {
        let pathParts = path.split(separator: "/", omittingEmptySubsequences: false)
        let patternParts = pattern.split(separator: "/", omittingEmptySubsequences: false)
        guard pathParts.count == patternParts.count else { return false }
        return zip(pathParts, patternParts).allSatisfy { fnmatch(Array($0.unicodeScalars), Array($1.unicodeScalars)) }
    }

    private static func fnmatch(_ text: [Unicode.Scalar], _ pattern: [Unicode.Scalar]) -> Bool {
        var memo: [Int: Bool] = [:]
        func match(_ t: Int, _ p: Int) -> Bool {
            let key = t * (pattern.count + 1) + p
            if let known = memo[key] { return known }
            let result: Bool
            if p == pattern.count {
                result = t == text.count
            } else if pattern[p] == "*" {
                result = match(t, p + 1) || (t < text.count && match(t + 1, p))
            } else if t == text.count {
                result = false
            } else if pattern[p] == "?" {
                result = match(t + 1, p + 1)
            } else if pattern[p] == "[", let (matched, next) = bracket(text[t], pattern, p) {
                result = matched && match(t + 1, next)
            } else {
                result = pattern[p] == text[t] && match(t + 1, p + 1)
            }
            memo[key] = result
            return result
        }
        return match(0, 0)
    }

    /// Matches a `[...]` class at `start`; `nil` when unterminated (then `[` is literal, as in Python).
    private static func bracket(_ c: Unicode.Scalar, _ pattern: [Unicode.Scalar], _ start: Int) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < pattern.count, pattern[i] == "!" {
            negate = true
            i += 1
        }
        var matched = false
        var first = true
        while i < pattern.count, pattern[i] != "]" || first {
            first = false
            if i + 2 < pattern.count, pattern[i + 1] == "-", pattern[i + 2] != "]" {
                if pattern[i].value <= c.value, c.value <= pattern[i + 2].value { matched = true }
                i += 3
            } else {
                if pattern[i] == c { matched = true }
                i += 1
            }
        }
        guard i < pattern.count else { return nil }
        return (matched != negate, i + 1)
    }
}

// MARK: - Member access with clear errors

extension JSONValue {
    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension Dictionary where Key == String, Value == JSONValue {
    func string(_ key: String, in context: String) throws -> String {
        guard case .string(let value)? = self[key] else { throw TUFError.malformed("\(context): '\(key)' must be a string.") }
        return value
    }

    func integer(_ key: String, in context: String) throws -> Int {
        guard case .integer(let value)? = self[key] else { throw TUFError.malformed("\(context): '\(key)' must be an integer.") }
        return Int(value)
    }

    func optionalInteger(_ key: String, in context: String) throws -> Int? {
        guard self[key] != nil else { return nil }
        return try integer(key, in: context)
    }

    func stringArray(_ key: String, in context: String) throws -> [String] {
        guard case .array(let list)? = self[key] else { throw TUFError.malformed("\(context): '\(key)' must be an array.") }
        return try list.map {
            guard case .string(let value) = $0 else { throw TUFError.malformed("\(context): '\(key)' must hold strings.") }
            return value
        }
    }

    func optionalHashes(in context: String) throws -> [String: String]? {
        guard let value = self["hashes"] else { return nil }
        guard case .object(let members) = value else { throw TUFError.malformed("\(context): hashes must be an object.") }
        return try members.mapValues {
            guard case .string(let hex) = $0 else { throw TUFError.malformed("\(context): hashes must be strings.") }
            return hex
        }
    }
}
