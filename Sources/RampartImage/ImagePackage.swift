import Crypto
import Foundation
import RampartCore
import RampartTUF

/// What an image is.
public enum ImageKind: String, Codable, Sendable, CaseIterable {
    /// A WebAssembly app with its `app_manifest.json`.
    case app
    /// System software: the rampart runtime itself.
    case runtime
    /// Board configuration.
    case boardConfig
}

/// The signed description of an image package's payload.
public struct ImageManifest: Sendable, Equatable {
    /// Package format version; 1.
    public var formatVersion: Int
    public var kind: ImageKind
    /// The component: an app's `ComponentId`, or `rampart-runtime`.
    public var componentID: String
    /// A display name.
    public var name: String
    public var version: String
    /// Lowercase hex SHA-256 of the payload: what the device measures once it runs it.
    public var payloadSHA256: String
    public var payloadLength: Int
    /// Whether system software is a security-critical update.
    public var critical: Bool
    /// The app manifest, for apps.
    public var appManifest: AppManifest?

    /// The component ID every runtime package carries.
    public static let runtimeComponentID = "rampart-runtime"

    /// A manifest from its parts.
    public init(
        kind: ImageKind, componentID: String, name: String, version: String, payloadSHA256: String, payloadLength: Int,
        critical: Bool = false, appManifest: AppManifest? = nil
    ) {
        self.formatVersion = 1
        self.kind = kind
        self.componentID = componentID
        self.name = name
        self.version = version
        self.payloadSHA256 = payloadSHA256
        self.payloadLength = payloadLength
        self.critical = critical
        self.appManifest = appManifest
    }

    /// The manifest as canonical JSON text, as stored and signed.
    public var jsonText: String { String(decoding: json.canonicalBytes, as: UTF8.self) }

    var json: JSONValue {
        var members: [String: JSONValue] = [
            "formatVersion": .integer(Int64(formatVersion)), "kind": .string(kind.rawValue),
            "componentId": .string(componentID), "name": .string(name), "version": .string(version),
            "payloadSha256": .string(payloadSHA256), "payloadLength": .integer(Int64(payloadLength)),
            "critical": .bool(critical),
        ]
        if let appManifest { members["appManifest"] = appManifest.json }
        return .object(members)
    }

    init(json: JSONValue) throws {
        guard case .object(let m) = json else { throw ImagePackage.malformed("the manifest is not an object") }
        let allowed: Set<String> = [
            "formatVersion", "kind", "componentId", "name", "version", "payloadSha256", "payloadLength", "critical",
            "appManifest",
        ]
        if let unknown = m.keys.first(where: { !allowed.contains($0) }) {
            throw ImagePackage.malformed("unknown manifest field '\(unknown)'")
        }
        guard case .integer(1)? = m["formatVersion"] else { throw ImagePackage.malformed("formatVersion must be 1") }
        guard case .string(let kindText)? = m["kind"], let kind = ImageKind(rawValue: kindText) else {
            throw ImagePackage.malformed("kind must be app, runtime or boardConfig")
        }
        guard case .string(let componentID)? = m["componentId"], case .string(let name)? = m["name"],
            case .string(let version)? = m["version"], case .string(let digest)? = m["payloadSha256"],
            case .integer(let length)? = m["payloadLength"]
        else { throw ImagePackage.malformed("componentId, name, version, payloadSha256 and payloadLength are required") }
        var critical = false
        if let value = m["critical"] {
            guard case .bool(let flag) = value else { throw ImagePackage.malformed("critical must be a boolean") }
            critical = flag
        }
        self.init(
            kind: kind, componentID: componentID, name: name, version: version, payloadSHA256: digest,
            payloadLength: Int(length), critical: critical,
            appManifest: try m["appManifest"].map { try AppManifest(json: $0) })
        try validate()
    }

    func validate() throws {
        guard payloadSHA256.count == 64, Hex.decode(payloadSHA256) != nil, payloadSHA256 == payloadSHA256.lowercased() else {
            throw ImagePackage.malformed("payloadSha256 must be 64 lowercase hex digits")
        }
        guard payloadLength >= 0, payloadLength <= ImagePackage.maximumPayloadLength else {
            throw ImagePackage.malformed("payloadLength is out of range")
        }
        try ImagePackage.checkText(version, what: "version", limit: 64)
        try ImagePackage.checkText(name, what: "name", limit: 100)
        switch kind {
        case .app:
            guard let appManifest else { throw ImagePackage.malformed("an app package needs its app_manifest.json") }
            guard appManifest.componentID == componentID else {
                throw ImagePackage.malformed("componentId differs from the app manifest's ComponentId")
            }
        case .runtime:
            guard componentID == Self.runtimeComponentID, appManifest == nil else {
                throw ImagePackage.malformed("a runtime package has componentId \(Self.runtimeComponentID) and no app manifest")
            }
        case .boardConfig:
            guard appManifest == nil else { throw ImagePackage.malformed("a board configuration has no app manifest") }
            try ImagePackage.checkText(componentID, what: "componentId", limit: 64)
        }
    }
}

/// An image package: one file holding a signed manifest and the payload it describes.
///
/// Layout: the 8 bytes `RPKG1\n\0\0`, a big-endian UInt32 header length, the header (JSON:
/// `{"manifest": {...}, "signature": {"keyid", "sig"}}`), then the payload. The signature is ECDSA P-256
/// (DER, hex) over the canonical JSON of `manifest`, by a package signing key registered with the tenant;
/// `keyid` is the SHA-256 of the key's SubjectPublicKeyInfo.
public struct ImagePackage: Sendable {
    public var manifest: ImageManifest
    /// The signing key's ID.
    public var keyID: String
    /// The signature over the manifest, hex DER.
    public var signature: String
    /// Where the payload starts in `bytes`.
    public var payloadOffset: Int
    /// The whole package.
    public var bytes: [UInt8]

    /// The payload.
    public var payload: ArraySlice<UInt8> { bytes[payloadOffset...] }

    static let magic: [UInt8] = Array("RPKG1\n".utf8) + [0, 0]
    /// The largest header accepted.
    public static let maximumHeaderLength = 256 * 1024
    /// The largest payload accepted.
    public static let maximumPayloadLength = 256 * 1024 * 1024

    /// The ID of a package signing key: lowercase hex SHA-256 of its SubjectPublicKeyInfo.
    public static func keyID(of key: P256.Signing.PublicKey) -> String {
        Hex.encode(SHA256.hash(data: key.derRepresentation))
    }

    /// Builds and signs a package.
    public static func pack(manifest: ImageManifest, payload: [UInt8], signingKey: P256.Signing.PrivateKey) throws -> ImagePackage {
        try manifest.validate()
        let message = manifest.json.canonicalBytes
        let signature = Hex.encode(try signingKey.signature(for: SHA256.hash(data: message)).derRepresentation)
        let keyID = keyID(of: signingKey.publicKey)
        let header = JSONValue.object([
            "manifest": manifest.json,
            "signature": .object(["keyid": .string(keyID), "sig": .string(signature)]),
        ]).canonicalBytes
        var bytes = magic
        let length = UInt32(header.count)
        bytes += [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
        bytes += header
        let offset = bytes.count
        bytes += payload
        return ImagePackage(manifest: manifest, keyID: keyID, signature: signature, payloadOffset: offset, bytes: bytes)
    }

    private init(manifest: ImageManifest, keyID: String, signature: String, payloadOffset: Int, bytes: [UInt8]) {
        self.manifest = manifest
        self.keyID = keyID
        self.signature = signature
        self.payloadOffset = payloadOffset
        self.bytes = bytes
    }

    /// Parses a package and checks that the payload matches the manifest. The signature is not checked
    /// here: see ``verifySignature(with:)``.
    ///
    /// - Throws: ``RampartError`` `packageMalformed` saying what is wrong.
    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 12, Array(bytes[0..<8]) == Self.magic else {
            throw Self.malformed("it does not start with the image package signature (RPKG1)")
        }
        let length = Int(bytes[8]) << 24 | Int(bytes[9]) << 16 | Int(bytes[10]) << 8 | Int(bytes[11])
        guard length <= Self.maximumHeaderLength, bytes.count >= 12 + length else {
            throw Self.malformed("the header length is \(length), past the end of the file or above the limit")
        }
        let header = try JSONValue.parse(bytes[12..<(12 + length)])
        guard case .object(let members) = header, let manifestJSON = members["manifest"],
            case .string(let keyID)? = members["signature"]?["keyid"], case .string(let signature)? = members["signature"]?["sig"],
            members.count == 2
        else { throw Self.malformed("the header must hold exactly 'manifest' and 'signature' {keyid, sig}") }
        let manifest = try ImageManifest(json: manifestJSON)
        let payload = bytes[(12 + length)...]
        guard payload.count == manifest.payloadLength,
            Hex.encode(SHA256.hash(data: Data(payload))) == manifest.payloadSHA256
        else { throw RampartError(.packageMalformed, "The payload does not match the manifest's length and SHA-256: the package was altered or truncated.") }
        self.manifest = manifest
        self.keyID = keyID
        self.signature = signature
        self.payloadOffset = 12 + length
        self.bytes = bytes
    }

    /// Whether `key` signed the manifest.
    public func verifySignature(with key: P256.Signing.PublicKey) -> Bool {
        guard Self.keyID(of: key) == keyID, let der = Hex.decode(signature),
            let parsed = try? P256.Signing.ECDSASignature(derRepresentation: der)
        else { return false }
        return key.isValidSignature(parsed, for: SHA256.hash(data: manifest.json.canonicalBytes))
    }

    static func malformed(_ what: String) -> RampartError {
        RampartError(.packageMalformed, "Not a valid image package: \(what).")
    }

    static func checkText(_ text: String, what: String, limit: Int) throws {
        guard !text.isEmpty, text.count <= limit,
            text.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 0x20 && $0.value != 0x7f })
        else { throw malformed("\(what) must be 1 to \(limit) printable ASCII characters") }
    }
}

extension RampartError.Code {
    /// An image package or app manifest is malformed, or its payload does not match.
    public static let packageMalformed: Self = "packageMalformed"
    /// An image package's signature does not verify with a registered signing key.
    public static let packageSignatureInvalid: Self = "packageSignatureInvalid"
    /// An image package was signed by a key the tenant revoked.
    public static let signingKeyRevoked: Self = "signingKeyRevoked"
}
