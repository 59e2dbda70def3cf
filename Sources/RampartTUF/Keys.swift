import Crypto
import Foundation
import RampartCore
import _CryptoExtras

/// A public key as TUF metadata lists it: `{"keytype", "scheme", "keyval": {"public"}}`.
///
/// Verifies `ecdsa-sha2-nistp256` and `ecdsa-sha2-nistp384` (PEM public key, DER signature), `ed25519` (hex
/// public key and signature) and RSA (`rsassa-pss-sha256`, `rsa-pkcs1v15-sha256`; PEM public key).
public struct TUFKey: Sendable, Hashable {
    /// `ecdsa`, `ecdsa-sha2-nistp256`, `ed25519` or `rsa`.
    public var keyType: String
    /// The signature scheme.
    public var scheme: String
    /// `keyval.public`.
    public var publicValue: String
    /// The whole `keyval` object, unknown members included.
    var keyValue: [String: JSONValue]
    /// Other members of the key object, kept for re-encoding.
    var unrecognized: [String: JSONValue]

    /// A key from its parts.
    public init(keyType: String, scheme: String, publicValue: String) {
        self.keyType = keyType
        self.scheme = scheme
        self.publicValue = publicValue
        self.keyValue = ["public": .string(publicValue)]
        self.unrecognized = [:]
    }

    /// A P-256 key as securesystemslib writes it.
    public init(p256 key: P256.Signing.PublicKey) {
        self.init(keyType: "ecdsa", scheme: "ecdsa-sha2-nistp256", publicValue: key.pemRepresentation + "\n")
    }

    init(json: JSONValue) throws {
        guard case .object(var members) = json,
            case .string(let keyType)? = members.removeValue(forKey: "keytype"),
            case .string(let scheme)? = members.removeValue(forKey: "scheme"),
            case .object(let keyValue)? = members.removeValue(forKey: "keyval"),
            case .string(let publicValue)? = keyValue["public"]
        else { throw TUFError.malformed("A key must have string 'keytype' and 'scheme' and 'keyval.public'.") }
        self.keyType = keyType
        self.scheme = scheme
        self.publicValue = publicValue
        self.keyValue = keyValue
        self.unrecognized = members
    }

    /// Parses a key object from JSON.
    public init(jsonBytes: some Collection<UInt8>) throws {
        try self.init(json: JSONValue.parse(jsonBytes))
    }

    /// The key object as canonical JSON text.
    public var jsonText: String { String(decoding: json.canonicalBytes, as: UTF8.self) }

    var json: JSONValue {
        var members = unrecognized
        members["keytype"] = .string(keyType)
        members["scheme"] = .string(scheme)
        members["keyval"] = .object(keyValue)
        return .object(members)
    }

    /// The key ID securesystemslib computes: SHA-256 of the canonical key object.
    public var keyID: String {
        let object: JSONValue = .object([
            "keytype": .string(keyType), "scheme": .string(scheme), "keyval": .object(keyValue),
        ])
        return Hex.encode(SHA256.hash(data: object.canonicalBytes))
    }

    /// Whether `signature` (hex, as in metadata) is this key's signature over `message`.
    ///
    /// Unknown key types and schemes, and unparseable keys or signatures, never verify.
    public func verifies(signature hexSignature: String, over message: [UInt8]) -> Bool {
        guard let signature = Hex.decode(hexSignature) else { return false }
        switch (keyType, scheme) {
        case ("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"):
            guard let key = try? P256.Signing.PublicKey(pemRepresentation: publicValue),
                let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: SHA256.hash(data: message))
        case ("ecdsa", "ecdsa-sha2-nistp384"), ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"):
            guard let key = try? P384.Signing.PublicKey(pemRepresentation: publicValue),
                let parsed = try? P384.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: SHA384.hash(data: message))
        case ("ed25519", "ed25519"):
            guard let raw = Hex.decode(publicValue),
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else { return false }
            return key.isValidSignature(signature, for: message)
        case ("rsa", "rsassa-pss-sha256"), ("rsa", "rsa-pkcs1v15-sha256"):
            guard let key = try? _RSA.Signing.PublicKey(pemRepresentation: publicValue) else { return false }
            let parsed = _RSA.Signing.RSASignature(rawRepresentation: signature)
            let padding: _RSA.Signing.Padding = scheme == "rsassa-pss-sha256" ? .PSS : .insecurePKCS1v1_5
            return key.isValidSignature(parsed, for: SHA256.hash(data: message), padding: padding)
        default:
            return false
        }
    }
}

/// Something that signs TUF metadata: an online key held by the server, or a test key.
public protocol TUFSigner: Sendable {
    /// The public key as metadata lists it.
    var key: TUFKey { get }
    /// Signs `message` and returns the signature in metadata form (hex).
    func sign(_ message: [UInt8]) throws -> String
}

extension TUFSigner {
    /// The key ID of ``key``.
    public var keyID: String { key.keyID }
}

/// An ECDSA P-256 signer, the scheme Rampart signs with.
public struct P256TUFSigner: TUFSigner {
    /// The private key.
    public let privateKey: P256.Signing.PrivateKey
    public let key: TUFKey

    /// A signer for `privateKey`.
    public init(_ privateKey: P256.Signing.PrivateKey = .init()) {
        self.privateKey = privateKey
        self.key = TUFKey(p256: privateKey.publicKey)
    }

    public func sign(_ message: [UInt8]) throws -> String {
        Hex.encode(try privateKey.signature(for: SHA256.hash(data: message)).derRepresentation)
    }
}

/// An Ed25519 signer, accepted when verifying and used by tests for interoperability.
public struct Ed25519TUFSigner: TUFSigner {
    /// The private key.
    public let privateKey: Curve25519.Signing.PrivateKey
    public let key: TUFKey

    /// A signer for `privateKey`.
    public init(_ privateKey: Curve25519.Signing.PrivateKey = .init()) {
        self.privateKey = privateKey
        self.key = TUFKey(keyType: "ed25519", scheme: "ed25519", publicValue: Hex.encode(privateKey.publicKey.rawRepresentation))
    }

    public func sign(_ message: [UInt8]) throws -> String {
        Hex.encode(try privateKey.signature(for: message))
    }
}

