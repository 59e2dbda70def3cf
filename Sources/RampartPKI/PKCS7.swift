import SwiftASN1
import X509

/// PKCS#7 / CMS "certificates only" bundles (`.p7b`), as `openssl pkcs7 -print_certs` reads them.
public enum PKCS7 {
    private static let signedData: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 7, 2]
    private static let data: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 7, 1]

    /// Encodes a degenerate SignedData (no signers) that carries `certificates`, in DER.
    ///
    /// - Throws: If a certificate cannot be serialised.
    public static func certificatesOnly(_ certificates: [Certificate]) throws -> [UInt8] {
        // DER orders a SET OF by its encodings.
        let encoded = try certificates.map { try $0.derBytes }.sorted { $0.lexicographicallyPrecedes($1) }
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { contentInfo in
            try contentInfo.serialize(signedData)
            try contentInfo.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                explicit in
                try explicit.appendConstructedNode(identifier: .sequence) { body in
                    try body.serialize(1)  // version
                    body.appendConstructedNode(identifier: .set) { _ in }  // digestAlgorithms
                    try body.appendConstructedNode(identifier: .sequence) { encapsulated in
                        try encapsulated.serialize(data)
                    }
                    body.appendConstructedNode(
                        identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
                    ) { set in
                        for der in encoded { set.serializeRawBytes(der) }
                    }
                    body.appendConstructedNode(identifier: .set) { _ in }  // signerInfos
                }
            }
        }
        return serializer.serializedBytes
    }
}
