import Crypto
import Foundation
import RampartCore
import SwiftASN1
import X509

/// Creates CA and leaf certificates with the profiles Rampart uses.
///
/// Every certificate is ECDSA P-256 with SHA-256, carries a subject key identifier, and keeps its validity
/// starting five minutes early to absorb clock skew between server and relying parties.
public enum CertificateIssuer {
    /// How far back `notBefore` is set, for clock skew.
    public static let backdate: TimeInterval = 300

    /// Creates a self-signed CA certificate that may issue end-entity certificates only.
    ///
    /// - Parameters:
    ///   - subject: The CA's distinguished name.
    ///   - key: The CA key.
    ///   - notBefore: Start of validity (before backdating).
    ///   - notAfter: End of validity.
    /// - Returns: The certificate.
    /// - Throws: If the certificate cannot be built.
    public static func makeRootCA(
        subject: DistinguishedName, key: P256.Signing.PrivateKey, notBefore: Date, notAfter: Date
    ) throws -> Certificate {
        let publicKey = Certificate.PublicKey(key.publicKey)
        return try Certificate(
            version: .v3,
            serialNumber: randomSerialNumber(),
            publicKey: publicKey,
            notValidBefore: notBefore - backdate,
            notValidAfter: notAfter,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
    }

    /// The profile of an end-entity certificate.
    public enum LeafProfile: Sendable {
        /// TLS client (devices): EKU clientAuth.
        case client
        /// TLS server: EKU serverAuth, with the given DNS names and IP addresses.
        case server(dnsNames: [String], ipAddresses: [String])
        /// No extended key usage (proof-of-possession certificates).
        case plain
    }

    /// Issues an end-entity certificate signed by `issuer`.
    ///
    /// - Parameters:
    ///   - subject: The subject name.
    ///   - publicKey: The key to certify.
    ///   - issuer: The issuing CA certificate.
    ///   - issuerKey: The issuing CA key.
    ///   - notBefore: Start of validity (before backdating).
    ///   - notAfter: End of validity.
    ///   - profile: Extended key usage and names.
    /// - Returns: The certificate.
    /// - Throws: If the certificate cannot be built.
    public static func issueLeaf(
        subject: DistinguishedName, publicKey: P256.Signing.PublicKey, issuer: Certificate,
        issuerKey: P256.Signing.PrivateKey, notBefore: Date, notAfter: Date, profile: LeafProfile,
        backdate: TimeInterval = CertificateIssuer.backdate
    ) throws -> Certificate {
        let leafKey = Certificate.PublicKey(publicKey)
        let authorityKeyID = try issuer.extensions.subjectKeyIdentifier?.keyIdentifier
        return try Certificate(
            version: .v3,
            serialNumber: randomSerialNumber(),
            publicKey: leafKey,
            notValidBefore: notBefore - backdate,
            notValidAfter: notAfter,
            issuer: issuer.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                switch profile {
                case .client:
                    try ExtendedKeyUsage([.clientAuth])
                case .server(let dnsNames, let ipAddresses):
                    try ExtendedKeyUsage([.serverAuth])
                    SubjectAlternativeNames(
                        dnsNames.map { GeneralName.dnsName($0) } + ipAddresses.compactMap(Self.ipAddressName))
                case .plain:
                    Certificate.Extensions()
                }
                SubjectKeyIdentifier(hash: leafKey)
                if let authorityKeyID {
                    AuthorityKeyIdentifier(keyIdentifier: authorityKeyID)
                }
            },
            issuerPrivateKey: Certificate.PrivateKey(issuerKey))
    }

    /// Creates a development TLS identity: a private CA (the trust anchor clients pin) and a server
    /// certificate it issues for the given names. TLS libraries refuse a self-signed end-entity certificate as
    /// a trust anchor, hence the two levels.
    ///
    /// - Returns: The CA certificate, the server certificate, and the server key.
    public static func makeDevelopmentServerIdentity(
        hostnames: [String], ipAddresses: [String], now: Date, validity: TimeInterval
    ) throws -> (ca: Certificate, server: Certificate, key: P256.Signing.PrivateKey) {
        let caKey = P256.Signing.PrivateKey()
        let ca = try makeRootCA(
            subject: try DistinguishedName {
                OrganizationName("Rampart development")
                CommonName("Rampart development TLS CA \(Hex.encode(caKey.publicKey.rawRepresentation.prefix(4)))")
            }, key: caKey, notBefore: now, notAfter: now + validity)
        let key = P256.Signing.PrivateKey()
        let server = try issueLeaf(
            subject: try DistinguishedName {
                OrganizationName("Rampart development")
                CommonName(hostnames.first ?? "localhost")
            }, publicKey: key.publicKey, issuer: ca, issuerKey: caKey, notBefore: now, notAfter: now + validity,
            profile: .server(dnsNames: hostnames, ipAddresses: ipAddresses))
        return (ca, server, key)
    }

    /// A random positive serial of 16 bytes. RFC 5280 allows at most 20 octets and linters require the value
    /// to stay below 2^159, so the top bit is cleared and the next one set to keep the length fixed.
    public static func randomSerialNumber() -> Certificate.SerialNumber {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[0] = (bytes[0] & 0x7f) | 0x40
        return Certificate.SerialNumber(bytes: bytes)
    }

    static func ipAddressName(_ text: String) -> GeneralName? {
        if let v4 = IPv4(text) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(v4.bytes))) }
        if let v6 = IPv6(text) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(v6.bytes))) }
        return nil
    }
}

/// Minimal dotted-quad parsing for certificate IP SANs.
struct IPv4 {
    let bytes: [UInt8]
    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        self.bytes = bytes
    }
}

/// IPv6 parsing through `inet_pton`.
struct IPv6 {
    let bytes: [UInt8]
    init?(_ text: String) {
        var address = in6_addr()
        guard text.contains(":"), inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        bytes = withUnsafeBytes(of: &address) { Array($0) }
    }
}
