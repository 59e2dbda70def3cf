import Crypto
import Foundation
import RampartCore

/// Encrypts private keys at rest under the server master key.
///
/// Each purpose derives its own AES-256-GCM key from the master key with HKDF-SHA256, and every sealed blob
/// is bound to its owner through the associated data, so a blob copied onto another row does not open.
public struct KeySealer: Sendable {
    private let masterKey: SymmetricKey

    /// The size of a master key in bytes.
    public static let masterKeyLength = 32

    /// Creates a sealer from raw master key bytes.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when the key is not 32 bytes.
    public init(masterKey bytes: Data) throws {
        guard bytes.count == Self.masterKeyLength else {
            throw RampartError(
                .configurationInvalid,
                "The master key must be \(Self.masterKeyLength) bytes (base64 encoded); it is \(bytes.count).")
        }
        masterKey = SymmetricKey(data: bytes)
    }

    /// A new random master key, base64 encoded as it is stored.
    public static func generateMasterKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// Reads a master key from base64 text.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid`.
    public init(base64 text: String) throws {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw RampartError(.configurationInvalid, "The master key is not valid base64.")
        }
        try self.init(masterKey: data)
    }

    /// A key derived for one purpose, e.g. signing session tokens.
    public func derivedKey(purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: masterKey, info: Data("rampart:\(purpose):v1".utf8), outputByteCount: 32)
    }

    /// Seals a P-256 private key for `owner` (for example a CA's id).
    ///
    /// - Returns: base64 of nonce ‖ ciphertext ‖ tag.
    public func seal(_ key: P256.Signing.PrivateKey, owner: String) throws -> String {
        let box = try AES.GCM.seal(
            key.rawRepresentation, using: derivedKey(purpose: "private-key"), authenticating: Data(owner.utf8))
        guard let combined = box.combined else {
            throw RampartError(.internalError, "AES-GCM produced no combined representation.", status: 500)
        }
        return combined.base64EncodedString()
    }

    /// Opens a key sealed by ``seal(_:owner:)``.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when the master key is wrong or the blob was altered.
    public func open(_ sealed: String, owner: String) throws -> P256.Signing.PrivateKey {
        do {
            guard let data = Data(base64Encoded: sealed) else { throw CryptoKitError.incorrectParameterSize }
            let box = try AES.GCM.SealedBox(combined: data)
            let raw = try AES.GCM.open(box, using: derivedKey(purpose: "private-key"), authenticating: Data(owner.utf8))
            return try P256.Signing.PrivateKey(rawRepresentation: raw)
        } catch {
            throw RampartError(
                .configurationInvalid,
                "A stored private key could not be decrypted. Is this the master key the data was created with?",
                status: 500)
        }
    }
}
