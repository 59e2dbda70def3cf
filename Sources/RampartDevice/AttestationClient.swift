import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import RampartAttestation
import RampartCore
import RampartPKI

/// Talks to the security service's attestation endpoints over HTTPS.
public struct AttestationClient: Sendable {
    let server: String
    let tls: TLSConfiguration
    /// How long one request may take, connecting included.
    public var requestTimeout: TimeInterval = 30
    /// The HTTP client. Whatever it is, each attestation ends its connection: the challenge and the evidence
    /// share one, which the evidence request closes, since the next attestation is a day away.
    public var httpClient: HTTPClient = .shared
    /// The service egress: when set, requests go through its client after its path check.
    public var egress: ServiceEgress? {
        didSet { if let egress { httpClient = egress.httpClient } }
    }

    /// Creates a client that trusts `serverCA` (PEM) if given, or the system roots.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` for an unreadable CA.
    public init(server: String, serverCAPEM: String?) throws {
        guard let url = URL(string: server), url.scheme == "https", url.host != nil else {
            throw RampartError(.configurationInvalid, "The server URL must be https://HOST:PORT, not '\(server)'.")
        }
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.tls = try DeviceTLS.configuration(serverCAPEM: serverCAPEM)
    }

    /// One complete attestation: challenge, evidence, certificate.
    ///
    /// - Returns: The result and the fresh key it certifies.
    /// - Throws: ``RampartError`` with the server's refusal code, or `serverUnreachable`.
    public func attest(identity: DeviceState.Identity, measurements: [SoftwareMeasurement], debugStatus: Int) async throws
        -> (AttestationResult, P256.Signing.PrivateKey)
    {
        try await egress?.checkPath()
        let challenge = try await post(
            "/v1/attestation/challenge", AttestationChallengeRequest(deviceId: identity.deviceID), as: AttestationChallenge.self)
        let freshKey = P256.Signing.PrivateKey()
        let claims = EvidenceClaims(
            nonce: challenge.nonce, deviceID: identity.deviceID, issuedAt: Date(), hardwareModel: identity.model,
            softwareName: "rampart", softwareVersion: RampartVersion.current, debugStatus: debugStatus,
            measurements: measurements, freshKey: freshKey.publicKey)
        let evidence = try EvidenceToken.sign(claims, identity: identity.keyStore, endorsement: identity.endorsement)
        let result = try await post(
            "/v1/attestation", AttestationRequest(evidence: evidence), as: AttestationResult.self, closeConnection: true)
        return (result, freshKey)
    }

    func post<Body: Encodable & Sendable, Answer: Decodable>(
        _ path: String, _ body: Body, as: Answer.Type, closeConnection: Bool = false
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: server + path)
        request.method = .POST
        request.tlsConfiguration = tls
        request.headers.add(name: "Content-Type", value: "application/json")
        if closeConnection { request.headers.add(name: "Connection", value: "close") }
        request.body = .bytes(ByteBuffer(data: try JSONCoding.encoder().encode(body)))
        let status: Int
        let bytes: ByteBuffer
        do {
            let response = try await httpClient.execute(request, timeout: .milliseconds(Int64(requestTimeout * 1000)))
            status = Int(response.status.code)
            bytes = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw RampartError(.serverUnreachable, "Cannot reach \(server): \(error)", status: 503)
        }
        guard (200..<300).contains(status) else {
            if let error = try? JSONDecoder().decode(APIErrorBody.self, from: Data(buffer: bytes)) {
                throw RampartError(RampartError.Code(rawValue: error.code), error.message, status: status)
            }
            throw RampartError(.serverUnreachable, "\(server)\(path) answered HTTP \(status).", status: 502)
        }
        do {
            return try JSONCoding.decoder().decode(Answer.self, from: Data(buffer: bytes))
        } catch {
            throw RampartError(.serverUnreachable, "\(server)\(path) answered something that is not \(Answer.self).", status: 502)
        }
    }
}
