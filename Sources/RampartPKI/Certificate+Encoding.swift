import Crypto
import Foundation
import RampartCore
import SwiftASN1
import X509

extension Certificate {
    /// The DER encoding.
    public var derBytes: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return serializer.serializedBytes
        }
    }

    /// The PEM encoding, ending with a newline.
    public var pemString: String {
        get throws { try serializeAsPEM().pemString + "\n" }
    }

    /// Lowercase hex SHA-256 of the DER encoding, as shown by `ca-certificate list`.
    public var sha256Thumbprint: String {
        get throws { Hex.encode(SHA256.hash(data: try derBytes)) }
    }

    /// Parses every certificate in a PEM bundle.
    ///
    /// - Throws: If any block is not a certificate.
    public static func parseBundle(pem: String) throws -> [Certificate] {
        try PEMDocument.parseMultiple(pemString: pem).map { try Certificate(pemDocument: $0) }
    }
}

/// Base64url without padding (RFC 4648 §5), as JOSE and our tokens use.
public enum Base64URL {
    /// Encodes bytes.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Decodes text; `nil` when it is not base64url.
    public static func decode(_ text: String) -> Data? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            return nil
        }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
