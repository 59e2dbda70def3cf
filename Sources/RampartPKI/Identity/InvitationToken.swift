import Crypto
import Foundation
import RampartCore

/// The text of an invitation, as handed to a new user: `rpi1.<id>.<secret>.<tls-pin>`.
///
/// Only a hash of the secret is stored. The TLS pin is the SHA-256 of the server certificate, so the CLI
/// can trust a self-signed development server without a separate download step.
public struct InvitationToken: Sendable, Equatable {
    public var id: RampartID
    public var secret: String
    /// Lowercase hex SHA-256 of the server's TLS certificate, if known.
    public var tlsPin: String?

    /// A new invitation with a random 256-bit secret.
    public init(tlsPin: String?) {
        id = RampartID()
        secret = Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
        self.tlsPin = tlsPin
    }

    /// Parses invitation text.
    ///
    /// - Throws: ``RampartError`` `invitationInvalid`.
    public init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "rpi1", let id = RampartID(String(parts[1])),
            Base64URL.decode(String(parts[2]))?.count == 32,
            parts[3].isEmpty || (parts[3].count == 64 && parts[3].allSatisfy(\.isHexDigit))
        else {
            throw RampartError(
                .invitationInvalid, "This is not a Rampart invitation. Copy the whole 'rpi1.…' text you were given.",
                status: 401)
        }
        self.id = id
        self.secret = String(parts[2])
        self.tlsPin = parts[3].isEmpty ? nil : String(parts[3]).lowercased()
    }

    /// The text to hand out.
    public var text: String { "rpi1.\(id).\(secret).\(tlsPin ?? "")" }

    /// The hash stored in place of the secret.
    public var secretHash: String { Self.hash(secret) }

    static func hash(_ secret: String) -> String { Hex.encode(SHA256.hash(data: Data(secret.utf8))) }
}
