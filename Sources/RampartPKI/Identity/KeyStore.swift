import Crypto
import Foundation
import RampartCore

/// Where a device's identity key lives. The key never leaves it: callers get the public key and signatures.
///
/// ``FileKeyStore`` keeps the key in a 0600 PEM file. A TPM-backed store implements the same protocol and
/// keeps the key inside the TPM.
public protocol KeyStore: Sendable {
    /// The public half of the identity key.
    var publicKey: P256.Signing.PublicKey { get }
    /// Signs `data` (ECDSA P-256 with SHA-256).
    func signature(for data: Data) throws -> P256.Signing.ECDSASignature
}

/// A software key store: a PKCS#8 PEM file readable only by its owner.
public struct FileKeyStore: KeyStore {
    private let key: P256.Signing.PrivateKey
    /// The key file.
    public let file: URL

    public var publicKey: P256.Signing.PublicKey { key.publicKey }

    public func signature(for data: Data) throws -> P256.Signing.ECDSASignature { try key.signature(for: data) }

    /// Creates a new key in `file`, refusing to overwrite an existing one.
    ///
    /// - Throws: ``RampartError`` `conflict` if the file exists.
    public static func create(at file: URL) throws -> FileKeyStore {
        guard !FileManager.default.fileExists(atPath: file.path) else {
            throw RampartError.conflict(.conflict, "\(file.path) already holds a key; it is never overwritten.")
        }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let key = P256.Signing.PrivateKey()
        try SecureFile.write(key.pemRepresentation + "\n", to: file)
        return FileKeyStore(key: key, file: file)
    }

    /// Loads the key in `file`.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when it is missing, unreadable by mode, or not a key.
    public static func load(from file: URL) throws -> FileKeyStore {
        guard let pem = try? String(contentsOf: file, encoding: .utf8) else {
            throw RampartError(.configurationInvalid, "The identity key \(file.path) is missing.")
        }
        guard let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) else {
            throw RampartError(.configurationInvalid, "The identity key \(file.path) is not a P-256 PEM key.")
        }
        return FileKeyStore(key: key, file: file)
    }
}

/// The device ID: lowercase hex SHA-256 of the identity key's DER SubjectPublicKeyInfo, 64 characters, so it
/// fits an X.509 CommonName.
public enum DeviceID {
    /// The ID of the device holding `publicKey`.
    public static func of(_ publicKey: P256.Signing.PublicKey) -> String {
        Hex.encode(SHA256.hash(data: publicKey.derRepresentation))
    }

    /// Whether `text` has the shape of a device ID.
    public static func isValid(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Checks the shape of a device ID.
    ///
    /// - Throws: ``RampartError`` `invalidRequest`.
    public static func validated(_ text: String) throws -> String {
        let lowered = text.lowercased()
        guard isValid(lowered) else {
            throw RampartError.invalidRequest(
                "'\(text.prefix(80))' is not a device ID: 64 hex characters (SHA-256 of the identity public key).")
        }
        return lowered
    }
}
