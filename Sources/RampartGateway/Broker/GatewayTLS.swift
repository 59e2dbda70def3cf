import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import RampartCore
import RampartPKI
import SwiftASN1
import X509

/// The listener's TLS: the gateway's server certificate, and the tenant CAs that client certificates
/// must chain to. The CAs can be replaced while running (a CA rollover); new connections use them.
public final class GatewayTLS: Sendable {
    private let serverChain: [NIOSSLCertificate]
    private let serverKey: NIOSSLPrivateKey
    private let current: NIOLockedValueBox<(bundle: String, context: NIOSSLContext)>

    /// Loads the server certificate and key, and the trust bundle.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when a file is missing or not PEM, or the bundle
    ///   holds no CA certificate.
    public init(certificateFile: String, keyFile: String, bundlePEM: String) throws {
        do {
            serverChain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw RampartError(.configurationInvalid, "Cannot read the gateway's server certificate \(certificateFile): \(error). Run `rampart gateway init` to make one.")
        }
        do {
            serverKey = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw RampartError(.configurationInvalid, "Cannot read the gateway's server key \(keyFile): \(error).")
        }
        let context = try Self.makeContext(chain: serverChain, key: serverKey, bundlePEM: bundlePEM)
        current = NIOLockedValueBox((bundlePEM, context))
    }

    /// The context for the next connection.
    var context: NIOSSLContext { current.withLockedValue { $0.context } }

    /// The bundle in use.
    public var bundlePEM: String { current.withLockedValue { $0.bundle } }

    /// Replaces the trusted CAs; returns whether they changed.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when `bundlePEM` holds no certificate; the old CAs stay.
    @discardableResult
    public func updateTrust(bundlePEM: String) throws -> Bool {
        if bundlePEM == self.bundlePEM { return false }
        let context = try Self.makeContext(chain: serverChain, key: serverKey, bundlePEM: bundlePEM)
        current.withLockedValue { $0 = (bundlePEM, context) }
        return true
    }

    private static func makeContext(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey, bundlePEM: String) throws -> NIOSSLContext {
        let roots: [NIOSSLCertificate]
        do {
            roots = try NIOSSLCertificate.fromPEMBytes(Array(bundlePEM.utf8))
        } catch {
            throw RampartError(.configurationInvalid, "The trust bundle is not PEM: \(error).")
        }
        guard !roots.isEmpty else {
            throw RampartError(.configurationInvalid, "The trust bundle holds no CA certificate, so no device could connect.")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        // Require a client certificate and check its chain against the tenant CAs only.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(roots)
        configuration.sendCANameList = true
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RampartError(.configurationInvalid, "Cannot build the TLS context: \(error).")
        }
    }

    /// The CN of the connection's verified client certificate, if it may authenticate a client (its
    /// extended key usage, when present, allows client authentication).
    static func clientCommonName(_ context: ChannelHandlerContext) -> String? {
        guard let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let peer = handler.peerCertificate, let der = try? peer.toDERBytes(),
            let certificate = try? Certificate(derEncoded: der)
        else { return nil }
        if let usage = try? certificate.extensions.extendedKeyUsage, !usage.contains(.clientAuth), !usage.contains(.any) {
            return nil
        }
        return certificate.subject.commonName
    }
}

extension GatewayTLS {
    /// The TLS side of an MQTT client that connects as a device: its certificate chain and key from PEM files,
    /// and, when given, the CAs that sign the broker's certificate.
    ///
    /// - Returns: The configuration, and the chain (its first certificate names the client).
    /// - Throws: ``RampartError`` `configurationInvalid` naming what could not be loaded.
    public static func clientConfiguration(certificateFile: String, keyFile: String, caFile: String?) throws
        -> (tls: TLSConfiguration, chain: [NIOSSLCertificate])
    {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
            tls.certificateChain = chain.map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            if let caFile { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
            return (tls, chain)
        } catch {
            throw RampartError(.configurationInvalid, "Cannot load the MQTT client's TLS files: \(error).")
        }
    }
}
