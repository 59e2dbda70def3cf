import Crypto
import Foundation

/// A key store that keeps its key in memory only: for benchmarks and simulations of many devices, never
/// for a real device.
public struct MemoryKeyStore: KeyStore {
    private let key: P256.Signing.PrivateKey

    /// A new random key.
    public init() { key = P256.Signing.PrivateKey() }

    public var publicKey: P256.Signing.PublicKey { key.publicKey }

    public func signature(for data: Data) throws -> P256.Signing.ECDSASignature { try key.signature(for: data) }
}
