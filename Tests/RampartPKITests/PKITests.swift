import Crypto
import Foundation
import RampartCore
import RampartPKI
import RampartTestKit
import SwiftASN1
import Testing
import X509

@Suite("Certificates")
struct CertificateTests {
    let now = Date()

    func makeCA() throws -> (Certificate, P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let ca = try CertificateIssuer.makeRootCA(
            subject: try DistinguishedName { CommonName("Test CA") }, key: key, notBefore: now,
            notAfter: now + 3600)
        return (ca, key)
    }

    @Test("a root CA may sign end entities only and has a key identifier")
    func rootCA() throws {
        let (ca, _) = try makeCA()
        #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(try ca.extensions.keyUsage?.keyCertSign == true)
        #expect(try ca.extensions.subjectKeyIdentifier != nil)
        #expect(try ca.sha256Thumbprint.count == 64)
    }

    @Test("a client leaf chains to its CA and openssl verifies it for sslclient")
    func clientLeaf() throws {
        let (ca, caKey) = try makeCA()
        let leafKey = P256.Signing.PrivateKey()
        let leaf = try CertificateIssuer.issueLeaf(
            subject: try DistinguishedName { CommonName("device-1") }, publicKey: leafKey.publicKey, issuer: ca,
            issuerKey: caKey, notBefore: now, notAfter: now + 600, profile: .client)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try ca.pemString.write(to: directory.file("ca.pem"), atomically: true, encoding: .utf8)
        try leaf.pemString.write(to: directory.file("leaf.pem"), atomically: true, encoding: .utf8)
        let result = try OpenSSL.run([
            "verify", "-CAfile", directory.file("ca.pem").path, "-purpose", "sslclient", directory.file("leaf.pem").path,
        ])
        #expect(result.status == 0, "\(result.output)")
    }

    @Test("a certificates-only PKCS#7 bundle lists every certificate with openssl")
    func pkcs7() throws {
        let (first, _) = try makeCA()
        let (second, _) = try makeCA()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Data(try PKCS7.certificatesOnly([first, second])).write(to: directory.file("chain.p7b"))
        let result = try OpenSSL.run(["pkcs7", "-inform", "der", "-in", directory.file("chain.p7b").path, "-print_certs"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.components(separatedBy: "BEGIN CERTIFICATE").count == 3)
    }

    @Test("a PEM bundle parses back into its certificates")
    func bundle() throws {
        let (first, _) = try makeCA()
        let (second, _) = try makeCA()
        let parsed = try Certificate.parseBundle(pem: try first.pemString + second.pemString)
        #expect(parsed == [first, second])
    }

    @Test("PEM text is exactly swift-asn1's, for certificates of many lengths")
    func pemText() throws {
        let (ca, caKey) = try makeCA()
        // Common names of growing length move the DER length across 48-byte (one PEM line) boundaries.
        for length in 1...64 {
            let leaf = try CertificateIssuer.issueLeaf(
                subject: try DistinguishedName { CommonName(String(repeating: "a", count: length)) },
                publicKey: P256.Signing.PrivateKey().publicKey, issuer: ca, issuerKey: caKey,
                notBefore: Date(), notAfter: Date() + 3600, profile: .client)
            #expect(try leaf.pemString == leaf.serializeAsPEM().pemString + "\n")
            #expect(try Certificate(pemEncoded: leaf.pemString) == leaf)
        }
    }

    @Test("the development TLS identity is a CA plus a server certificate for the given names")
    func developmentIdentity() throws {
        let identity = try CertificateIssuer.makeDevelopmentServerIdentity(
            hostnames: ["localhost", "rampart.example"], ipAddresses: ["127.0.0.1", "::1"], now: now, validity: 3600)
        #expect(identity.server.issuer == identity.ca.subject)
        let names = try identity.server.extensions.subjectAlternativeNames.map(Array.init) ?? []
        #expect(names.contains(.dnsName("rampart.example")))
        #expect(names.count == 4)
    }
}

@Suite("Key sealing")
struct KeySealerTests {
    @Test("a sealed key opens with the same master key and owner")
    func roundTrip() throws {
        let sealer = try KeySealer(base64: KeySealer.generateMasterKey())
        let key = P256.Signing.PrivateKey()
        let sealed = try sealer.seal(key, owner: "ca:1")
        #expect(try sealer.open(sealed, owner: "ca:1").rawRepresentation == key.rawRepresentation)
        #expect(!sealed.contains(Data(key.rawRepresentation).base64EncodedString()))
    }

    @Test("a sealed key moved to another owner does not open")
    func wrongOwner() throws {
        let sealer = try KeySealer(base64: KeySealer.generateMasterKey())
        let sealed = try sealer.seal(P256.Signing.PrivateKey(), owner: "ca:1")
        #expect(throws: RampartError(.configurationInvalid, "")) { try sealer.open(sealed, owner: "ca:2") }
    }

    @Test("another master key does not open it, and tampering is detected")
    func wrongMasterKey() throws {
        let sealed = try KeySealer(base64: KeySealer.generateMasterKey()).seal(P256.Signing.PrivateKey(), owner: "x")
        let other = try KeySealer(base64: KeySealer.generateMasterKey())
        #expect(throws: RampartError(.configurationInvalid, "")) { try other.open(sealed, owner: "x") }
        #expect(throws: RampartError(.configurationInvalid, "")) { try other.open("not base64!", owner: "x") }
    }

    @Test("a master key of the wrong size is refused with a clear error")
    func badMasterKey() {
        #expect(throws: RampartError(.configurationInvalid, "")) { try KeySealer(base64: Data(count: 16).base64EncodedString()) }
        #expect(throws: RampartError(.configurationInvalid, "")) { try KeySealer(base64: "%%%") }
    }
}
