import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import RampartCore
import RampartPKI
import X509

/// TLS settings of the device runtime's connections to the service.
public enum DeviceTLS {
    /// A client configuration that trusts `serverCAPEM` (or the system roots when `nil`) and, when given,
    /// presents the device certificate for mutual TLS.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` for an unreadable CA or certificate.
    public static func configuration(
        serverCAPEM: String?, certificate: (chain: [Certificate], key: P256.Signing.PrivateKey)? = nil
    ) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let serverCAPEM {
            guard let roots = try? NIOSSLCertificate.fromPEMBytes(Array(serverCAPEM.utf8)), !roots.isEmpty else {
                throw RampartError(.configurationInvalid, "The server CA is not a PEM certificate.")
            }
            tls.trustRoots = .certificates(roots)
        }
        if let certificate {
            do {
                tls.certificateChain = try certificate.chain.map { .certificate(try NIOSSLCertificate(bytes: try $0.derBytes, format: .der)) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(certificate.key.pemRepresentation.utf8), format: .pem))
            } catch {
                throw RampartError(.configurationInvalid, "The device certificate cannot be used for TLS: \(error).")
            }
        }
        return tls
    }
}

extension DeviceTLS {
    /// POSTs `body` as JSON to the service with the device certificate (mutual TLS), as the runtime's
    /// reports, error events and app telemetry go. Returns the status and at most 1 MiB of the answer.
    ///
    /// - Throws: the encoding, TLS or transport error.
    static func postJSON(
        _ body: some Encodable, to url: String, serverCAPEM: String?,
        certificate: (chain: [Certificate], key: P256.Signing.PrivateKey), httpClient: HTTPClient
    ) async throws -> (status: HTTPResponseStatus, body: ByteBuffer) {
        try await send(
            .POST, to: url, body: try JSONCoding.encoder().encode(body), serverCAPEM: serverCAPEM, certificate: certificate,
            httpClient: httpClient)
    }

    /// Sends a request to the service with the device certificate. Returns the status and the answer, at most
    /// `maximumAnswer` bytes of it (more is an error).
    static func send(
        _ method: HTTPMethod, to url: String, body: Data? = nil, serverCAPEM: String?,
        certificate: (chain: [Certificate], key: P256.Signing.PrivateKey), httpClient: HTTPClient, timeout: TimeAmount = .seconds(30),
        maximumAnswer: Int = 1 << 20
    ) async throws -> (status: HTTPResponseStatus, body: ByteBuffer) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        request.tlsConfiguration = try configuration(serverCAPEM: serverCAPEM, certificate: certificate)
        let response = try await httpClient.execute(request, timeout: timeout)
        return (response.status, try await response.body.collect(upTo: maximumAnswer))
    }
}
