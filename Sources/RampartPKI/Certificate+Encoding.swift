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
        // The same text as swift-asn1's PEMDocument, which showed in the attestation profile (it walks the
        // string by index to break lines).
        get throws {
            let body = Data(try derBytes).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
            return "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"
        }
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

/// Base64url without padding (RFC 4648 §5), as JOSE and our tokens use. Byte-level: attestation encodes
/// and decodes several per request, and Foundation's string replacing showed in the profile.
public enum Base64URL {
    /// Encodes bytes.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = Array(Data(bytes).base64EncodedString().utf8)
        while out.last == UInt8(ascii: "=") { out.removeLast() }
        for index in out.indices {
            switch out[index] {
            case UInt8(ascii: "+"): out[index] = UInt8(ascii: "-")
            case UInt8(ascii: "/"): out[index] = UInt8(ascii: "_")
            default: break
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes text; `nil` when it is not base64url.
    public static func decode(_ text: String) -> Data? {
        var bytes = Array(text.utf8)
        for index in bytes.indices {
            switch bytes[index] {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                break
            case UInt8(ascii: "-"): bytes[index] = UInt8(ascii: "+")
            case UInt8(ascii: "_"): bytes[index] = UInt8(ascii: "/")
            default: return nil
            }
        }
        while bytes.count % 4 != 0 { bytes.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(bytes))
    }
}

extension DistinguishedName {
    /// The CommonName, when the name holds exactly one: a device ID is a certificate's CN, and a name
    /// with two would be ambiguous.
    public var commonName: String? {
        var names: [String] = []
        for rdn in self {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                names.append(attribute.value.description)
            }
        }
        return names.count == 1 ? names[0] : nil
    }
}
