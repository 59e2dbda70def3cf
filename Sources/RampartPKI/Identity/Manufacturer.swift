import Crypto
import Foundation
import RampartCore
import SwiftASN1
import X509

/// A manufacturer CA, which endorses device identity keys at manufacture. The security service trusts the
/// manufacturer roots it is configured with, as Azure Sphere trusts Microsoft's knowledge of every Pluton key.
///
/// On disk: `manufacturer-ca.pem` (the root, for the server's configuration) and `manufacturer-ca-key.pem`
/// (0600, keep offline).
public struct ManufacturerCA: Sendable {
    public let certificate: Certificate
    let key: P256.Signing.PrivateKey

    public static let certificateFile = "manufacturer-ca.pem"
    public static let keyFile = "manufacturer-ca-key.pem"

    /// Creates a manufacturer CA valid for 20 years and writes it to `directory`.
    ///
    /// - Throws: ``RampartError`` `conflict` if the directory already holds one.
    public static func create(in directory: URL, name: String, now: Date = Date()) throws -> ManufacturerCA {
        let keyURL = directory.appendingPathComponent(keyFile)
        guard !FileManager.default.fileExists(atPath: keyURL.path) else {
            throw RampartError.conflict(.conflict, "\(directory.path) already holds a manufacturer CA.")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let key = P256.Signing.PrivateKey()
        // Path length 0: the manufacturer CA endorses devices directly.
        let certificate = try CertificateIssuer.makeRootCA(
            subject: try DistinguishedName {
                OrganizationName(name)
                CommonName("\(name) Manufacturer CA")
            }, key: key, notBefore: now, notAfter: now + 20 * 365 * 24 * 3600)
        try SecureFile.write(key.pemRepresentation + "\n", to: keyURL)
        try SecureFile.write(try certificate.pemString, to: directory.appendingPathComponent(certificateFile), mode: 0o644)
        return ManufacturerCA(certificate: certificate, key: key)
    }

    /// Loads a manufacturer CA from `directory`.
    public static func load(from directory: URL) throws -> ManufacturerCA {
        guard let pem = try? String(contentsOf: directory.appendingPathComponent(certificateFile), encoding: .utf8),
            let keyPEM = try? String(contentsOf: directory.appendingPathComponent(keyFile), encoding: .utf8),
            let certificate = try? Certificate(pemEncoded: pem),
            let key = try? P256.Signing.PrivateKey(pemRepresentation: keyPEM)
        else {
            throw RampartError(
                .configurationInvalid,
                "\(directory.path) does not hold a manufacturer CA. Create one with 'rampart manufacture ca create --out DIR'.")
        }
        return ManufacturerCA(certificate: certificate, key: key)
    }

    /// Endorses a device identity key: a certificate with CN = device ID, valid for 20 years.
    public func endorse(_ publicKey: P256.Signing.PublicKey, model: String, now: Date = Date()) throws -> Certificate {
        try CertificateIssuer.issueLeaf(
            subject: try DistinguishedName {
                OrganizationName(model)
                CommonName(DeviceID.of(publicKey))
            }, publicKey: publicKey, issuer: certificate, issuerKey: key, notBefore: now,
            notAfter: min(now + 20 * 365 * 24 * 3600, certificate.notValidAfter), profile: .plain)
    }
}
