import Crypto
import Foundation
import SwiftASN1
import X509

/// Compact JWS (RFC 7515) with ES256 only, as Rampart's signed documents use: attestation evidence, and the
/// development capability. Both sign with P-256 and carry the signer's certificates in `x5c`.
public enum CompactJWS {
    /// The protected header Rampart writes and reads.
    public struct Header: Codable, Sendable {
        public var alg: String
        public var typ: String?
        public var x5c: [String]?
        public var crit: [String]?
    }

    /// Signs `payload` with `sign`, with `typ` and the `x5c` chain in the header.
    public static func sign(
        typ: String, x5c: [Certificate], payload: some Encodable, with sign: (Data) throws -> P256.Signing.ECDSASignature
    ) throws -> String {
        let header = Header(alg: "ES256", typ: typ, x5c: try x5c.map { Data(try $0.derBytes).base64EncodedString() })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let signingInput = Base64URL.encode(try encoder.encode(header)) + "." + Base64URL.encode(try encoder.encode(payload))
        return signingInput + "." + Base64URL.encode(try sign(Data(signingInput.utf8)).rawRepresentation)
    }

    /// A token taken apart, nothing in it trusted yet.
    public struct Parts: Sendable {
        public let header: Header
        public let payload: Data
        /// What the signature covers: the first two segments and the dot between them.
        public let signingInput: Data
        /// The third segment, still base64url.
        let signatureSegment: Substring

        /// The 64-byte raw ES256 signature; `nil` when the third segment is not one.
        public var signature: P256.Signing.ECDSASignature? {
            guard let bytes = Base64URL.decode(String(signatureSegment)), bytes.count == 64 else { return nil }
            return try? P256.Signing.ECDSASignature(rawRepresentation: bytes)
        }

        /// The `x5c` certificates, leaf first; `nil` when an entry is not a DER certificate.
        public func certificates() -> [Certificate]? {
            var chain: [Certificate] = []
            for text in header.x5c ?? [] {
                guard let der = Data(base64Encoded: text), let certificate = try? Certificate(derEncoded: Array(der)) else { return nil }
                chain.append(certificate)
            }
            return chain
        }
    }

    /// Why a token could not be taken apart.
    public enum Failure: Error, Equatable {
        /// Not three base64url segments.
        case notCompact
        case headerMalformed
        /// The header marks extensions critical; none are understood.
        case critical
        /// An algorithm other than ES256 (`none` and HS256 included), as the header names it.
        case algorithm(String)
        case payloadMalformed
    }

    /// Takes a compact JWS apart, checking its shape and that it claims ES256. The caller checks the
    /// signature, the `typ` and the payload.
    public static func split(_ token: String) throws(Failure) -> Parts {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .notCompact }
        guard let headerData = Base64URL.decode(String(parts[0])), let header = try? JSONDecoder().decode(Header.self, from: headerData)
        else { throw .headerMalformed }
        guard header.crit == nil else { throw .critical }
        guard header.alg == "ES256" else { throw .algorithm(String(header.alg.prefix(16))) }
        guard let payload = Base64URL.decode(String(parts[1])) else { throw .payloadMalformed }
        return Parts(header: header, payload: payload, signingInput: Data("\(parts[0]).\(parts[1])".utf8), signatureSegment: parts[2])
    }
}
