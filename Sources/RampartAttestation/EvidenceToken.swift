import Crypto
import Foundation
import RampartCore
import RampartPKI
import SwiftASN1
import X509

/// Attestation evidence as a compact JWS: ES256, signed by the identity key, with the endorsement chain in
/// the `x5c` header.
public enum EvidenceToken {
    /// The largest token accepted; real evidence is a few kilobytes.
    public static let maximumLength = 32 * 1024

    /// Signs evidence on the device.
    ///
    /// - Parameters:
    ///   - claims: What the device asserts.
    ///   - identity: The identity key store.
    ///   - endorsement: The endorsement certificate, then any intermediates.
    /// - Returns: The compact JWS.
    public static func sign(_ claims: EvidenceClaims, identity: any KeyStore, endorsement: [Certificate]) throws
        -> String
    {
        try CompactJWS.sign(typ: "eat+jwt", x5c: endorsement, payload: claims) { try identity.signature(for: $0) }
    }

    /// Evidence taken apart, not yet trusted.
    public struct Parsed: Sendable {
        public let claims: EvidenceClaims
        /// The endorsement chain from `x5c`, leaf first.
        public let chain: [Certificate]
        let signingInput: Data
        let signature: P256.Signing.ECDSASignature

        /// Whether the signature verifies with the endorsed identity key.
        public func signatureVerifies() -> Bool {
            guard let key = P256.Signing.PublicKey(chain[0].publicKey) else { return false }
            return key.isValidSignature(signature, for: signingInput)
        }
    }

    /// Parses a compact JWS without trusting it.
    ///
    /// - Throws: ``RampartError`` `evidenceMalformed` for anything that is not well-formed evidence, and
    ///   `signatureInvalid` for an algorithm other than ES256 (`none` and HS256 included).
    public static func parse(_ token: String) throws -> Parsed {
        func malformed(_ why: String) -> RampartError { AttestationRefusal.error(AttestationRefusal.evidenceMalformed, why) }
        guard token.utf8.count <= maximumLength else {
            throw malformed("The evidence is larger than \(maximumLength) bytes.")
        }
        let parts: CompactJWS.Parts
        do {
            parts = try CompactJWS.split(token)
        } catch .notCompact {
            throw malformed("The evidence is not a compact JWS (header.payload.signature).")
        } catch .headerMalformed {
            throw malformed("The evidence header is not base64url JSON.")
        } catch .critical {
            throw malformed("The evidence header marks extensions critical (crit); none are understood.")
        } catch .algorithm(let name) {
            throw AttestationRefusal.error(AttestationRefusal.signatureInvalid, "The evidence must be signed with ES256, not '\(name)'.")
        } catch .payloadMalformed {
            throw malformed("The evidence payload is not base64url.")
        }
        let payload = parts.payload
        let claims: EvidenceClaims
        do {
            claims = try JSONDecoder().decode(EvidenceClaims.self, from: payload)
        } catch let DecodingError.keyNotFound(key, _) {
            throw malformed("The evidence lacks the claim '\(key.stringValue)'.")
        } catch {
            throw malformed("The evidence claims are not valid: \(Self.describe(error)).")
        }
        guard let signature = parts.signature else {
            throw AttestationRefusal.error(AttestationRefusal.signatureInvalid, "The evidence signature is not a 64-byte ES256 signature.")
        }
        guard let x5c = parts.header.x5c, !x5c.isEmpty, x5c.count <= 4 else {
            throw malformed("The evidence header must carry the endorsement chain in x5c (1 to 4 certificates).")
        }
        guard let chain = parts.certificates() else { throw malformed("An x5c entry is not a DER certificate.") }
        guard P256.Signing.PublicKey(chain[0].publicKey) != nil else {
            throw malformed("The endorsed identity key is not a P-256 key.")
        }
        try validate(claims, malformed)
        return Parsed(claims: claims, chain: chain, signingInput: parts.signingInput, signature: signature)
    }

    static func validate(_ claims: EvidenceClaims, _ malformed: (String) -> RampartError) throws {
        guard let nonce = Base64URL.decode(claims.eat_nonce), (8...64).contains(nonce.count) else {
            throw malformed("eat_nonce must be 8 to 64 bytes, base64url.")
        }
        guard DeviceID.isValid(claims.ueid) else { throw malformed("ueid must be the 64-character device ID.") }
        guard (0...4).contains(claims.dbgstat) else { throw malformed("dbgstat must be 0 to 4.") }
        guard let fresh = claims.cnf.jwk.publicKey else { throw malformed("cnf.jwk is not a P-256 public key.") }
        guard DeviceID.of(fresh) != claims.ueid else {
            throw malformed("cnf must be a fresh key, not the identity key: the identity key never leaves the device's key store.")
        }
        guard !claims.measurements.isEmpty, claims.measurements.count <= 256 else {
            throw malformed("measurements must list 1 to 256 components.")
        }
        for text in [claims.hwmodel, claims.swname, claims.swversion] where !isPlainToken(text, maximum: 128, spaces: true) {
            throw malformed("hwmodel, swname and swversion must be 1 to 128 letters, digits, spaces or . _ + : ~ -.")
        }
        guard claims.measurements.contains(where: { $0.kind == .runtime }) else {
            throw malformed("The evidence must measure the runtime it runs (a measurement of kind runtime).")
        }
        for measurement in claims.measurements {
            guard isPlainToken(measurement.component, maximum: 128, spaces: false),
                isPlainToken(measurement.version, maximum: 64, spaces: false), measurement.sha256.count == 64,
                measurement.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase })
            else {
                throw malformed("Measurement '\(measurement.component.prefix(64))' needs a component, a version and a lowercase hex SHA-256.")
            }
        }
    }

    /// Device-supplied names end up in tables, reports and suggested commands, so they are kept to a small,
    /// shell-safe alphabet.
    static func isPlainToken(_ text: String, maximum: Int, spaces: Bool) -> Bool {
        (1...maximum).contains(text.count)
            && text.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII
                    && (CharacterSet.alphanumerics.contains(scalar) || "._+:~-".unicodeScalars.contains(scalar)
                        || (spaces && scalar == " "))
            }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            return "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' \(context.debugDescription)"
        default:
            return "not JSON"
        }
    }
}
