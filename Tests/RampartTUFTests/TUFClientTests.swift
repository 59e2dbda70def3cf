import Crypto
import Foundation
import RampartCore
import RampartTUF
import RampartTestKit
import Synchronization
import Testing

@Suite("TUF canonical JSON and keys")
struct CanonicalJSONTests {
    @Test("canonical form matches securesystemslib byte for byte")
    func canonicalMatchesPython() throws {
        // securesystemslib 1.6 output for the same document (see the tuf research notes in docs/updates.md).
        let input = #"{"b":[1,true,null,{"z":"q\"uo\\te","a":-5}], "a":"ünï€😀", "B":"ctl\n\t\u0001", "é":1, "Ａ":2, "😀":3}"#
        let expected: [UInt8] =
            Array(#"{"B":"ctl"#.utf8) + [0x0A, 0x09, 0x01]
            + Array(#"","a":"ünï€😀","b":[1,true,null,{"a":-5,"z":"q\"uo\\te"}],"é":1,"Ａ":2,"😀":3}"#.utf8)
        #expect(try JSONValue.parse(Array(input.utf8)).canonicalBytes == expected)
    }

    @Test("floats, duplicate keys, bad escapes and trailing data are refused", arguments: [
        #"{"a":1.5}"#, #"{"a":1e3}"#, #"{"a":1,"a":2}"#, #"{"a":"\x"}"#, #"{"a":1} x"#, #"{"a":01}"#, "[", #""\ud800""#,
    ])
    func malformedJSON(_ text: String) {
        #expect(throws: RampartError(.metadataMalformed, "")) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test("key IDs are securesystemslib's: SHA-256 of the canonical key object")
    func keyIDMatchesPython() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjTeswpJrhxfwJKrl9nHEqJnX1jR1\n4fCz2L6GT1fu0I/9Aj/8Pj9D2+gbVEyQnmWIjiqzGuf2OYGg8sKxeyrTJw==\n-----END PUBLIC KEY-----\n"
        let key = TUFKey(keyType: "ecdsa", scheme: "ecdsa-sha2-nistp256", publicValue: pem)
        let canonical = #"{"keytype":"ecdsa","keyval":{"public":"\#(pem)"},"scheme":"ecdsa-sha2-nistp256"}"#
        #expect(key.keyID == Hex.encode(SHA256.hash(data: Data(canonical.utf8))))
    }

    @Test("P-256 and Ed25519 signatures verify, and a signature by another key does not")
    func signatures() throws {
        for signer in [P256TUFSigner(), Ed25519TUFSigner()] as [any TUFSigner] {
            let message = Array("signed".utf8)
            let signature = try signer.sign(message)
            #expect(signer.key.verifies(signature: signature, over: message))
            #expect(!signer.key.verifies(signature: signature, over: Array("other".utf8)))
            #expect(!P256TUFSigner().key.verifies(signature: signature, over: message))
            #expect(!signer.key.verifies(signature: "", over: message))
        }
    }

    @Test("consistent-snapshot targets are served with the hash in front of the file name")
    func hashPrefixedPath() {
        let nested = TargetFile(path: "group/app.rpkg", length: 1, hashes: ["sha512": "bb", "sha256": "aa"])
        #expect(nested.hashPrefixedPath == "group/aa.app.rpkg")
        #expect(TargetFile(path: "top.txt", length: 1, hashes: ["sha512": "cc"]).hashPrefixedPath == "cc.top.txt")
    }

    @Test("delegation path patterns match per segment, as python-tuf does")
    func pathPatterns() {
        let role = { (patterns: [String]) in
            DelegatedRole(name: "r", keys: RoleKeys(keyIDs: ["k"], threshold: 1), terminating: false, paths: patterns)
        }
        #expect(role(["releases/*/*"]).covers("releases/x/x_v1"))
        #expect(!role(["releases/*"]).covers("releases/x/x_v1"))
        #expect(role(["*.txt"]).covers("a.txt"))
        #expect(!role(["*.txt"]).covers("dir/a.txt"))
        #expect(role(["file-?.[ab]"]).covers("file-1.a"))
        #expect(!role(["file-?.[!ab]"]).covers("file-1.a"))
    }
}

@Suite("TUF client workflow")
struct TUFClientTests {
    let repository = RepositorySimulator()
    let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory(prefix: "rampart-tuf")
    }

    func updater(now: Date = Date()) throws -> TUFUpdater {
        TUFUpdater(
            metadataDirectory: directory.url.appendingPathComponent("metadata"),
            metadataBaseURL: repository.metadataBase, fetcher: repository, now: { now })
    }

    func initialized(now: Date = Date()) throws -> TUFUpdater {
        try TUFUpdater.initialize(metadataDirectory: directory.url.appendingPathComponent("metadata"), trustedRoot: repository.trustedRoot)
        return try updater(now: now)
    }

    func storedFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.url.appendingPathComponent("metadata").path)
            .filter { $0.hasSuffix(".json") }.sorted()
    }

    func storedVersion(_ role: String) throws -> Int {
        let bytes = try Data(contentsOf: directory.url.appendingPathComponent("metadata/\(role).json"))
        guard case .integer(let version)? = try SignedMetadata(bytes: bytes).signed["version"] else { return 0 }
        return Int(version)
    }

    func expectRefusal(_ code: RampartError.Code, _ updater: inout TUFUpdater) async {
        await #expect(throws: RampartError(code, "")) { try await updater.refresh() }
    }

    @Test("a first refresh fetches root N+1, timestamp, snapshot and targets, in that order, and stores them")
    func firstRefresh() async throws {
        var updater = try initialized()
        try await updater.refresh()
        #expect(repository.requests == ["2.root.json", "timestamp.json", "1.snapshot.json", "1.targets.json"])
        #expect(try storedFiles() == ["root.json", "snapshot.json", "targets.json", "timestamp.json"])
    }

    @Test("an unchanged repository costs one timestamp request after the root probe")
    func unchangedRepository() async throws {
        var updater = try initialized()
        try await updater.refresh()
        repository.clearRequests()
        var again = try self.updater()
        try await again.refresh()
        #expect(repository.requests == ["2.root.json", "timestamp.json"])
    }

    @Test("a target is found, downloaded from its hash-prefixed name, verified and reused")
    func download() async throws {
        repository.addTarget("apps/hello.txt", Array("hello".utf8))
        repository.bump(["targets"])
        var updater = try initialized()
        try await updater.refresh()
        let target = try #require(try await updater.targetInfo(for: "apps/hello.txt"))
        let targets = directory.url.appendingPathComponent("targets")
        let file = try await updater.download(target, baseURL: repository.targetBase, into: targets)
        #expect(file.lastPathComponent == "apps%2Fhello.txt")
        #expect(try Data(contentsOf: file) == Data("hello".utf8))
        repository.clearRequests()
        _ = try await updater.download(target, baseURL: repository.targetBase, into: targets)
        #expect(repository.requests.isEmpty)
    }

    @Test("root rotation: each new root needs the old and the new threshold; timestamp and snapshot keys can rotate")
    func rootRotation() async throws {
        var updater = try initialized()
        try await updater.refresh()
        // Rotate the timestamp and snapshot keys with a properly signed root 2 and reset their versions.
        let oldRootSigner = repository.signers["root"]!
        for role in ["timestamp", "snapshot"] {
            let signer = P256TUFSigner()
            repository.signers[role] = [signer]
            repository.root.keys[signer.keyID] = signer.key
            repository.root.roles[TopLevelRole(rawValue: role)!] = RoleKeys(keyIDs: [signer.keyID], threshold: 1)
        }
        repository.root.common.version = 2
        repository.publishRoot()
        repository.timestamp.common.version = 1  // a fast-forward recovery: versions start again
        repository.snapshot.common.version = 1
        repository.publish()
        var rotated = try self.updater()
        try await rotated.refresh()
        #expect(try storedVersion("root") == 2)
        #expect(try storedVersion("timestamp") == 1)

        // Root 3 signed only by a new root key, without the old threshold, is refused.
        let newRootSigner = P256TUFSigner()
        repository.signers["root"] = [newRootSigner]
        repository.root.keys[newRootSigner.keyID] = newRootSigner.key
        repository.root.roles[.root] = RoleKeys(keyIDs: [newRootSigner.keyID], threshold: 1)
        repository.root.common.version = 3
        repository.publishRoot()
        var refused = try self.updater()
        await expectRefusal(.thresholdNotMet, &refused)
        #expect(try storedVersion("root") == 2)
        // Cross-signed by the old root key, it is accepted.
        repository.publishRoot(signedBy: oldRootSigner)
        var accepted = try self.updater()
        try await accepted.refresh()
        #expect(try storedVersion("root") == 3)
    }

    @Test("a root whose version does not follow the trusted one is refused")
    func rootVersionSkip() async throws {
        var updater = try initialized()
        repository.root.common.version = 3
        let bytes = try SignedMetadata(signing: repository.root.signed, with: repository.signers["root"]!).fileBytes
        repository.serve("2.root.json", bytes)
        await expectRefusal(.versionMismatch, &updater)
    }

    @Test("rollback of the timestamp is refused and the trusted copy kept")
    func timestampRollback() async throws {
        repository.bump()
        var updater = try initialized()
        try await updater.refresh()
        repository.timestamp.common.version = 1
        repository.serve("timestamp.json", repository.signed(repository.timestamp.signed, by: "timestamp"))
        var again = try self.updater()
        await expectRefusal(.versionRollback, &again)
        #expect(try storedVersion("timestamp") == 2)
    }

    @Test("rollback of the snapshot (via the timestamp) and of targets (via the snapshot) is refused")
    func snapshotAndTargetsRollback() async throws {
        repository.bump(["targets"])
        var updater = try initialized()
        try await updater.refresh()
        // A timestamp that points at an older snapshot.
        repository.timestamp.common.version += 1
        repository.timestamp.snapshot = MetaFile(version: 1)
        repository.serve("timestamp.json", repository.signed(repository.timestamp.signed, by: "timestamp"))
        var first = try self.updater()
        await expectRefusal(.versionRollback, &first)
        // A new snapshot that lists an older targets version.
        repository.targets["targets"]!.common.version = 1
        repository.bump()
        var second = try self.updater()
        await expectRefusal(.versionRollback, &second)
        #expect(try storedVersion("targets") == 2)
    }

    @Test("an expired timestamp (a frozen repository) is refused and not stored")
    func frozenRepository() async throws {
        var updater = try initialized()
        try await updater.refresh()
        repository.timestamp.common.expires = Date().addingTimeInterval(-60)
        repository.bump()
        var again = try self.updater()
        await expectRefusal(.metadataExpired, &again)
        #expect(try storedVersion("timestamp") == 1)
        // The same repository seen from a clock past every expiry is refused too.
        var late = try self.updater(now: Date().addingTimeInterval(86_400 * 365))
        await expectRefusal(.metadataExpired, &late)
    }

    @Test("mix-and-match: a snapshot other than the one the timestamp names is refused")
    func mixAndMatch() async throws {
        var updater = try initialized()
        repository.serve("1.snapshot.json", repository.signed(
            SnapshotMetadata(version: 2, expires: repository.expires, meta: ["targets.json": MetaFile(version: 1)]).signed,
            by: "snapshot"))
        await expectRefusal(.versionMismatch, &updater)
        #expect(try storedFiles() == ["root.json", "timestamp.json"])
    }

    @Test("a snapshot whose hash or length differs from the timestamp's is refused")
    func wrongHashOrLength() async throws {
        repository.publish()
        let real = repository.state.withLock { $0.files[repository.metadataBase + "1.snapshot.json"]! }
        repository.timestamp.snapshot = MetaFile(version: 1, length: real.count + 1)
        repository.serve("timestamp.json", repository.signed(repository.timestamp.signed, by: "timestamp"))
        var byLength = try initialized()
        await expectRefusal(.lengthOrHashMismatch, &byLength)
        repository.timestamp.common.version = 2
        repository.timestamp.snapshot = MetaFile(version: 1, hashes: ["sha256": String(repeating: "0", count: 64)])
        repository.serve("timestamp.json", repository.signed(repository.timestamp.signed, by: "timestamp"))
        var byHash = try updater()
        await expectRefusal(.lengthOrHashMismatch, &byHash)
    }

    @Test("bad signatures and signatures below the threshold are refused")
    func signatures() async throws {
        var updater = try initialized()
        // Signed by a key that is not the timestamp key.
        let stranger = try SignedMetadata(signing: repository.timestamp.signed, with: [P256TUFSigner()]).fileBytes
        repository.serve("timestamp.json", stranger)
        await expectRefusal(.thresholdNotMet, &updater)
        // A tampered body under a genuine signature.
        var tampered = String(decoding: repository.signed(repository.timestamp.signed, by: "timestamp"), as: UTF8.self)
        tampered = tampered.replacingOccurrences(of: "\"version\": 1\n", with: "\"version\": 7\n")
        repository.serve("timestamp.json", Array(tampered.utf8))
        var again = try self.updater()
        await expectRefusal(.thresholdNotMet, &again)
    }

    @Test("a threshold of two is not met by one key listed twice, nor by one signature")
    func threshold() async throws {
        let signer = repository.signers["timestamp"]![0]
        let second = P256TUFSigner()
        repository.root.keys[second.keyID] = second.key
        repository.root.keys["alias"] = signer.key
        repository.root.roles[.timestamp] = RoleKeys(keyIDs: [signer.keyID, "alias", second.keyID], threshold: 2)
        repository.publishRoot()
        var updater = try initialized()
        // Signed by the one key under both IDs.
        var envelope = try SignedMetadata(signing: repository.timestamp.signed, with: [signer]).json.objectValue!
        let sig = try signer.sign(repository.timestamp.signed.canonicalBytes)
        envelope["signatures"] = .array([
            .object(["keyid": .string(signer.keyID), "sig": .string(sig)]), .object(["keyid": .string("alias"), "sig": .string(sig)]),
        ])
        repository.serve("timestamp.json", JSONValue.object(envelope).prettyBytes)
        await expectRefusal(.thresholdNotMet, &updater)
        // With the second key it passes.
        repository.signers["timestamp"] = [signer, second]
        repository.publish()
        var again = try self.updater()
        try await again.refresh()
    }

    @Test("an oversized timestamp and an endless target are cut off at their caps")
    func endlessData() async throws {
        var updater = try initialized()
        repository.serve("timestamp.json", Array(repeating: 0x20, count: 20_000))
        await expectRefusal(.downloadTooLarge, &updater)
        repository.publish()
        repository.addTarget("big.bin", Array(repeating: 1, count: 10))
        repository.bump(["targets"])
        let served = TargetFile(path: "big.bin", bytes: Array(repeating: 1, count: 10)).hashes["sha256"]!
        repository.serveTarget("\(served).big.bin", Array(repeating: 1, count: 10_000))
        var again = try self.updater()
        try await again.refresh()
        let target = try #require(try await again.targetInfo(for: "big.bin"))
        let targets = directory.url.appendingPathComponent("targets")
        await #expect(throws: RampartError(.downloadTooLarge, "")) {
            _ = try await again.download(target, baseURL: repository.targetBase, into: targets)
        }
        #expect(!FileManager.default.fileExists(atPath: targets.appendingPathComponent("big.bin").path))
    }

    @Test("a target whose content does not match its hash is refused and never stored")
    func substitutedTarget() async throws {
        repository.addTarget("a.txt", Array("good".utf8))
        repository.bump(["targets"])
        var updater = try initialized()
        try await updater.refresh()
        let target = try #require(try await updater.targetInfo(for: "a.txt"))
        repository.serveTarget("\(target.hashes["sha256"]!).a.txt", Array("evil".utf8))
        let targets = directory.url.appendingPathComponent("targets")
        await #expect(throws: RampartError(.lengthOrHashMismatch, "")) {
            _ = try await updater.download(target, baseURL: repository.targetBase, into: targets)
        }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: targets.path)) ?? []
        #expect(left.filter { !$0.hasPrefix(".") }.isEmpty)
    }

    @Test("delegations are walked pre-order, and a role is not trusted for paths outside its delegation")
    func delegations() async throws {
        let groupSigner = P256TUFSigner()
        repository.delegatedSigners["group-a"] = [groupSigner]
        repository.targets["targets"]!.delegations = Delegations(
            keys: [groupSigner.keyID: groupSigner.key],
            roles: [DelegatedRole(name: "group-a", keys: RoleKeys(keyIDs: [groupSigner.keyID], threshold: 1), terminating: true, paths: ["a/*"])])
        repository.targets["group-a"] = TargetsMetadata(version: 1, expires: repository.expires, targets: [:])
        repository.addTarget("a/app.wasm", Array("app".utf8), role: "group-a")
        repository.addTarget("b/other.wasm", Array("outside".utf8), role: "group-a")
        repository.bump(["targets"])
        var updater = try initialized()
        try await updater.refresh()
        #expect(try await updater.targetInfo(for: "a/app.wasm") != nil)
        #expect(try storedFiles().contains("group-a.json"))
        // group-a lists b/other.wasm, but it is trusted only for a/*.
        #expect(try await updater.targetInfo(for: "b/other.wasm") == nil)
    }

    @Test("an initial root that is not signed by its own threshold is refused before any request")
    func untrustedInitialRoot() async throws {
        let forged = try SignedMetadata(signing: repository.root.signed, with: [P256TUFSigner()]).fileBytes
        try TUFUpdater.initialize(metadataDirectory: directory.url.appendingPathComponent("metadata"), trustedRoot: Data(forged))
        var updater = try self.updater()
        await expectRefusal(.thresholdNotMet, &updater)
        #expect(repository.requests.isEmpty)
    }

    @Test("malformed metadata is refused with a clear reason", arguments: [
        "{}", "[]", #"{"signatures":[],"signed":{"_type":"timestamp"}}"#,
        #"{"signatures":[{"keyid":"a","sig":"00"},{"keyid":"a","sig":"00"}],"signed":{"_type":"timestamp"}}"#,
    ])
    func malformedMetadata(_ text: String) async throws {
        var updater = try initialized()
        repository.serve("timestamp.json", Array(text.utf8))
        await expectRefusal(.metadataMalformed, &updater)
    }
}
