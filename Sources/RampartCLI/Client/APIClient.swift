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

/// The CLI's client for the security service API: HTTPS with the pinned server certificate, JSON in and
/// out, errors turned back into ``RampartError``, and automatic sign-in with the user's key when the cached
/// token is missing or expired.
public final class APIClient: Sendable {
    package let baseURL: URL
    package let profile: ClientProfile
    private let tls: TLSConfiguration
    /// Print each request and its status on standard error.
    package let verbose: Bool

    /// Creates a client for `profile`'s server, or `server` when given.
    ///
    /// - Throws: ``RampartError`` `configurationInvalid` when no server is known.
    public init(profile: ClientProfile, server: String? = nil, verbose: Bool = false) throws {
        guard let text = server ?? profile.server, let url = URL(string: text), url.scheme == "https", url.host != nil
        else {
            throw RampartError(
                .configurationInvalid,
                "No server is set. Pass --server https://HOST:PORT, or register first with 'rampart register-user'.")
        }
        baseURL = url
        self.profile = profile
        self.verbose = verbose
        var tls = TLSConfiguration.makeClientConfiguration()
        if let pem = try? String(contentsOf: profile.pinnedCertificateFile, encoding: .utf8),
            let pinned = try? NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)), !pinned.isEmpty
        {
            // Trust only the CA pinned at registration, and still check the host name against it.
            tls.trustRoots = .certificates(pinned)
        }
        self.tls = tls
    }

    // MARK: Requests

    /// The HTTP methods the API uses.
    package enum Method: String, Sendable {
        case GET, POST, PUT, PATCH, DELETE
        var nio: HTTPMethod { HTTPMethod(rawValue: rawValue) }
    }

    /// A raw response.
    package struct RawResponse: Sendable {
        package var status: Int
        package var contentType: String?
        package var body: [UInt8]
    }

    package func send(
        _ method: Method, _ path: String, body: (any Encodable & Sendable)? = nil, authenticated: Bool = true
    ) async throws -> RawResponse {
        let bytes = try body.map { Array(try JSONCoding.encoder().encode($0)) }
        return try await send(method, path, rawBody: bytes, authenticated: authenticated)
    }

    /// Sends `rawBody` as JSON as it is, which tests use to send malformed bodies.
    package func send(
        _ method: Method, _ path: String, rawBody: [UInt8]?, authenticated: Bool = true, bearer: String? = nil,
        contentType: String = "application/json", progress: (@Sendable (Int, Int) -> Void)? = nil
    ) async throws -> RawResponse {
        var attempt = 0
        while true {
            var request = HTTPClientRequest(url: baseURL.absoluteString.trimmingSuffix("/") + path)
            request.method = method.nio
            // The shared client pools connections per TLS configuration and needs no shutdown.
            request.tlsConfiguration = tls
            if let rawBody {
                request.headers.add(name: "Content-Type", value: contentType)
                if let progress {
                    request.body = .stream(UploadChunks(bytes: rawBody, progress: progress), length: .known(Int64(rawBody.count)))
                } else {
                    request.body = .bytes(ByteBuffer(bytes: rawBody))
                }
            }
            if let bearer {
                request.headers.add(name: "Authorization", value: "Bearer \(bearer)")
            } else if authenticated {
                request.headers.add(name: "Authorization", value: "Bearer \(try await token(forceRefresh: attempt > 0))")
            }
            let response: HTTPClientResponse
            let bytes: ByteBuffer
            do {
                response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
                bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
            } catch let error as RampartError {
                throw error
            } catch {
                throw RampartError(
                    .serverUnreachable, "Cannot reach \(baseURL.absoluteString): \(error). Is the server running?",
                    status: 503)
            }
            let raw = RawResponse(
                status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
                body: Array(buffer: bytes))
            if verbose {
                FileHandle.standardError.write(Data("\(method.rawValue) \(path) → \(raw.status) (\(raw.body.count) bytes)\n".utf8))
            }
            if raw.status == 401 && authenticated && bearer == nil && attempt == 0 {
                attempt += 1  // the cached token was refused: sign in again once
                continue
            }
            guard (200..<300).contains(raw.status) else { throw Self.error(from: raw) }
            return raw
        }
    }

    package func json<T: Decodable>(
        _ type: T.Type, _ method: Method, _ path: String, body: (any Encodable & Sendable)? = nil,
        authenticated: Bool = true
    ) async throws -> T {
        let raw = try await send(method, path, body: body, authenticated: authenticated)
        do {
            return try JSONCoding.decoder().decode(T.self, from: Data(raw.body))
        } catch {
            throw RampartError(.invalidRequest, "The server's answer to \(path) was not what this CLI expects: \(error)", status: 502)
        }
    }

    static func error(from raw: RawResponse) -> RampartError {
        if let body = try? JSONDecoder().decode(APIErrorBody.self, from: Data(raw.body)) {
            return RampartError(RampartError.Code(rawValue: body.code), body.message, status: raw.status)
        }
        return RampartError(.invalidRequest, "The server answered HTTP \(raw.status).", status: raw.status)
    }

    // MARK: Sign-in

    /// A valid session token: the cached one, or a new one from signing a challenge with the user key.
    package func token(forceRefresh: Bool = false) async throws -> String {
        if !forceRefresh, let cached = try? String(contentsOf: profile.tokenFile, encoding: .utf8) {
            // A token is only ever sent to the server that issued it.
            let parts = cached.split(separator: "\n")
            if parts.count == 3, String(parts[2]) == baseURL.absoluteString,
                let expiry = Timestamp.parse(String(parts[1])), expiry > Date() + 30
            {
                return String(parts[0])
            }
        }
        return try await login().token
    }

    /// Signs a fresh challenge and caches the token.
    public func login() async throws -> LoginToken {
        guard let userID = profile.userID else {
            throw RampartError(
                .unauthenticated, "No user is registered here. Run 'rampart register-user --server URL --invitation T'.",
                status: 401)
        }
        let key = try UserKey.load(from: profile.keyFile)
        let challenge = try await json(
            LoginChallenge.self, .POST, "/v1/auth/challenge", body: LoginChallengeRequest(userId: userID),
            authenticated: false)
        let signature = try key.signature(
            for: LoginChallenge.signedMessage(challengeId: challenge.challengeId, nonce: challenge.nonce))
        let token = try await json(
            LoginToken.self, .POST, "/v1/auth/token",
            body: LoginTokenRequest(challengeId: challenge.challengeId, signature: Base64URL.encode(signature.derRepresentation)),
            authenticated: false)
        try SecureFile.write(
            token.token + "\n" + Timestamp.format(token.expiresAt) + "\n" + baseURL.absoluteString + "\n", to: profile.tokenFile)
        return token
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}

/// The user's P-256 key, kept in a 0600 PEM file.
enum UserKey {
    static func load(from file: URL) throws -> P256.Signing.PrivateKey {
        guard let pem = try? String(contentsOf: file, encoding: .utf8) else {
            throw RampartError(.unauthenticated, "The user key \(file.path) is missing. Register again with an invitation.", status: 401)
        }
        do {
            return try P256.Signing.PrivateKey(pemRepresentation: pem)
        } catch {
            throw RampartError(.configurationInvalid, "The user key \(file.path) is not a P-256 PEM key.")
        }
    }
}

/// An upload cut into chunks, reporting how much was handed to the connection.
struct UploadChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let bytes: [UInt8]
    let progress: @Sendable (Int, Int) -> Void
    static let chunkSize = 256 * 1024

    struct AsyncIterator: AsyncIteratorProtocol {
        let bytes: [UInt8]
        let progress: @Sendable (Int, Int) -> Void
        var offset = 0

        mutating func next() async -> ByteBuffer? {
            guard offset < bytes.count else { return nil }
            let end = Swift.min(offset + UploadChunks.chunkSize, bytes.count)
            defer { offset = end }
            progress(end, bytes.count)
            return ByteBuffer(bytes: bytes[offset..<end])
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bytes: bytes, progress: progress) }
}
