import Crypto
import Foundation
import RampartCore
import RampartPKI

/// What a device measured: one component of the software it runs.
public struct SoftwareMeasurement: Codable, Sendable, Hashable {
    /// What kind of component.
    public enum Kind: String, Codable, Sendable {
        case runtime
        case app
        case config
    }

    public var component: String
    public var kind: Kind
    public var version: String
    /// Lowercase hex SHA-256 of the component.
    public var sha256: String

    public init(component: String, kind: Kind, version: String, sha256: String) {
        self.component = component
        self.kind = kind
        self.version = version
        self.sha256 = sha256
    }
}

/// A P-256 public key as a JSON Web Key (RFC 7517), as EAT's `cnf` carries it.
public struct JSONWebKey: Codable, Sendable, Equatable {
    public var kty: String
    public var crv: String
    public var x: String
    public var y: String

    /// The JWK of a P-256 key.
    public init(_ key: P256.Signing.PublicKey) {
        let raw = key.rawRepresentation  // x ‖ y, 32 bytes each
        kty = "EC"
        crv = "P-256"
        x = Base64URL.encode(raw.prefix(32))
        y = Base64URL.encode(raw.suffix(32))
    }

    /// The key, or `nil` if this is not a valid P-256 point.
    public var publicKey: P256.Signing.PublicKey? {
        guard kty == "EC", crv == "P-256", let x = Base64URL.decode(x), let y = Base64URL.decode(y),
            x.count == 32, y.count == 32
        else { return nil }
        return try? P256.Signing.PublicKey(rawRepresentation: x + y)
    }
}

/// The claims of attestation evidence: an Entity Attestation Token (RFC 9711) in JWT form.
public struct EvidenceClaims: Codable, Sendable, Equatable {
    /// Key confirmation (RFC 7800): the fresh key the device wants certified.
    public struct Confirmation: Codable, Sendable, Equatable {
        public var jwk: JSONWebKey
        public init(jwk: JSONWebKey) { self.jwk = jwk }
    }

    /// The server's challenge, base64url.
    public var eat_nonce: String
    /// The device ID.
    public var ueid: String
    /// Seconds since 1970.
    public var iat: Int64
    public var hwmodel: String
    public var swname: String
    public var swversion: String
    /// 0 debug enabled (development mode) … 4 fully and permanently disabled.
    public var dbgstat: Int
    public var measurements: [SoftwareMeasurement]
    public var cnf: Confirmation

    public init(
        nonce: String, deviceID: String, issuedAt: Date, hardwareModel: String, softwareName: String,
        softwareVersion: String, debugStatus: Int, measurements: [SoftwareMeasurement], freshKey: P256.Signing.PublicKey
    ) {
        eat_nonce = nonce
        ueid = deviceID
        iat = Int64(issuedAt.timeIntervalSince1970)
        hwmodel = hardwareModel
        swname = softwareName
        swversion = softwareVersion
        dbgstat = debugStatus
        self.measurements = measurements
        cnf = Confirmation(jwk: JSONWebKey(freshKey))
    }
}

/// Why an attestation was refused. The code is stable and goes to the device, the tenant's error report,
/// and `rampart doctor`.
public enum AttestationRefusal {
    public static let nonceUnknown: RampartError.Code = "nonceUnknown"
    public static let nonceExpired: RampartError.Code = "nonceExpired"
    public static let nonceReplayed: RampartError.Code = "nonceReplayed"
    public static let signatureInvalid: RampartError.Code = "signatureInvalid"
    public static let endorsementUntrusted: RampartError.Code = "endorsementUntrusted"
    public static let notClaimed: RampartError.Code = "notClaimed"
    public static let evidenceMalformed: RampartError.Code = "evidenceMalformed"

    /// `measurementUnknown:<component>`.
    public static func measurementUnknown(_ component: String) -> RampartError.Code {
        RampartError.Code(rawValue: "measurementUnknown:\(component)")
    }

    /// `measurementRevoked:<component>`.
    public static func measurementRevoked(_ component: String) -> RampartError.Code {
        RampartError.Code(rawValue: "measurementRevoked:\(component)")
    }

    /// A refusal as an API error: 400 for malformed evidence, 403 for everything the server does not accept.
    public static func error(_ code: RampartError.Code, _ message: String) -> RampartError {
        RampartError(code, message, status: code == evidenceMalformed ? 400 : 403)
    }
}
