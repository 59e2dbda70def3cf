import Crypto
import Foundation
import RampartCore
import X509

/// The `appDevelopment` capability: a document the server signs for one device when `device
/// enable-development` puts it in development mode. With it the device accepts sideloaded apps; without
/// it, only what TUF authorises.
///
/// It is a compact JWS (ES256, `typ` `rampart-capability+jwt`) signed by the tenant's Active CA, whose
/// certificate rides in `x5c`. A device trusts it only when that CA is the one that issued the device
/// certificate it holds, so a capability from another tenant, or forged with any other key, is refused.
/// After a CA rotation the server hands the device a capability signed by the new CA with its next update
/// check.
public struct DevelopmentCapability: Codable, Sendable, Equatable {
    /// Always `appDevelopment`.
    public var capability: String
    /// The one device it is for.
    public var deviceId: String
    public var tenantId: RampartID
    /// When the device was put in development mode, in seconds since 1970.
    public var iat: Int64

    /// The only capability there is.
    public static let appDevelopment = "appDevelopment"
    /// The JWS `typ`.
    public static let type = "rampart-capability+jwt"
    /// The largest token accepted; a real one is under 2 KiB.
    public static let maximumLength = 8 * 1024

    public init(deviceId: String, tenantId: RampartID, issuedAt: Date) {
        capability = Self.appDevelopment
        self.deviceId = deviceId
        self.tenantId = tenantId
        iat = Int64(issuedAt.timeIntervalSince1970)
    }

    /// Signs the capability with a tenant CA.
    public func sign(issuer: Certificate, key: P256.Signing.PrivateKey) throws -> String {
        try CompactJWS.sign(typ: Self.type, x5c: [issuer], payload: self) { try key.signature(for: $0) }
    }

    /// Verifies a capability for `deviceID` against the CAs that issued the device's certificate.
    ///
    /// - Parameter trustedIssuers: The CA certificates of the device certificate chain the device holds.
    /// - Throws: ``RampartError`` `capabilityInvalid`, saying what is wrong.
    public static func verify(_ token: String, deviceID: String, trustedIssuers: [Certificate]) throws -> DevelopmentCapability {
        try verifyWithSigner(token, deviceID: deviceID, trustedIssuers: trustedIssuers).claims
    }

    /// ``verify(_:deviceID:trustedIssuers:)``, also returning the CA key that signed it.
    public static func verifyWithSigner(_ token: String, deviceID: String, trustedIssuers: [Certificate]) throws
        -> (claims: DevelopmentCapability, signer: Certificate.PublicKey)
    {
        func invalid(_ why: String) -> RampartError { RampartError(.capabilityInvalid, "The development capability \(why)") }
        let text = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count <= maximumLength else { throw invalid("is larger than \(maximumLength) bytes.") }
        let parts: CompactJWS.Parts
        do {
            parts = try CompactJWS.split(text)
        } catch .algorithm(let name) {
            throw invalid("must be signed with ES256, not '\(name)'.")
        } catch {
            throw invalid("is not a compact JWS (header.payload.signature with a JSON header, no crit).")
        }
        guard parts.header.typ == type else { throw invalid("is not a Rampart capability (typ must be \(type)).") }
        guard let chain = parts.certificates(), chain.count == 1, let signer = P256.Signing.PublicKey(chain[0].publicKey) else {
            throw invalid("must carry exactly one P-256 CA certificate in x5c.")
        }
        guard let signature = parts.signature, signer.isValidSignature(signature, for: parts.signingInput) else {
            throw invalid("signature does not verify.")
        }
        guard !trustedIssuers.isEmpty else {
            throw invalid("cannot be checked before the device holds a device certificate; attest first.")
        }
        guard trustedIssuers.contains(where: { $0.publicKey == chain[0].publicKey && $0.subject == chain[0].subject }) else {
            throw invalid("was not signed by the CA that issued this device's certificate (another tenant's, or an older CA).")
        }
        let claims: DevelopmentCapability
        do {
            claims = try JSONDecoder().decode(DevelopmentCapability.self, from: parts.payload)
        } catch {
            throw invalid("payload is not a capability document.")
        }
        guard claims.capability == appDevelopment else { throw invalid("grants '\(claims.capability.prefix(32))', not \(appDevelopment).") }
        guard claims.deviceId == deviceID else { throw invalid("is for device \(claims.deviceId.prefix(64)), not this one (\(deviceID)).") }
        return (claims, chain[0].publicKey)
    }
}

extension RampartError.Code {
    /// A development capability that does not verify for this device.
    public static let capabilityInvalid: Self = "capabilityInvalid"
    /// Sideloading without development mode.
    public static let developmentModeRequired: Self = "developmentModeRequired"
}
