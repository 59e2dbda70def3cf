import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RampartCore
import RampartDevice

/// HTTPS to the Rampart server as the device the gateway is: mutual TLS with its own 24 h device
/// certificate, read afresh for every client so that a renewed certificate is used.
struct ServerLink: Sendable {
    /// The server's base URL.
    let server: String
    /// The tenant, as it appears in `/v1/gateway/{tenant}/…`.
    let tenant: String
    let state: DeviceState

    /// - Throws: ``RampartError`` `configurationInvalid` when [identity] lacks server, tenant or device_state.
    init(_ identity: GatewayConfiguration.Identity, purpose: String) throws {
        guard let server = identity.server, let tenant = identity.tenant, let statePath = identity.deviceState else {
            throw RampartError(.configurationInvalid, "\(purpose) needs [identity] server, tenant and device_state.")
        }
        self.server = server
        self.tenant = tenant
        self.state = DeviceState(directory: URL(fileURLWithPath: statePath))
    }

    /// A URL under `/v1/gateway/{tenant}`.
    func url(_ path: String) -> String { "\(server)/v1/gateway/\(tenant)\(path)" }

    /// A client that presents the current device certificate; the caller shuts it down.
    func makeClient() throws -> HTTPClient {
        let serverCA = try? String(contentsOf: state.serverCAFile, encoding: .utf8)
        guard let certificate = state.storedCertificate() else {
            throw RampartError(.configurationInvalid, "The gateway's device has no certificate yet; is `rampart device run` attesting it?")
        }
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = try DeviceTLS.configuration(serverCAPEM: serverCA, certificate: certificate)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Runs `body` with a client that presents the current device certificate, and shuts it down after.
    func withClient<T: Sendable>(_ body: (HTTPClient) async throws -> T) async throws -> T {
        let http = try makeClient()
        do {
            let result = try await body(http)
            try? await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// One request; returns the body of a 2xx answer.
    ///
    /// - Throws: ``RampartError`` with the server's code and message for an error answer (status kept), or
    ///   `serverUnreachable` (502) when there is no answer.
    func request(
        _ http: HTTPClient, _ method: HTTPMethod, _ url: String, body: [UInt8]? = nil, timeout: TimeAmount = .seconds(30),
        limit: Int = 8 << 20
    ) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(body)
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: timeout)
            bytes = try await response.body.collect(upTo: limit)
        } catch {
            if Task.isCancelled { throw CancellationError() }  // shutting down, not a failure of the server
            throw RampartError(.serverUnreachable, "\(method) \(url): \(error)", status: 502)
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            if let answer = try? JSONDecoder().decode(APIErrorBody.self, from: Data(bytes.readableBytesView)) {
                throw RampartError(.init(rawValue: answer.code), answer.message, status: Int(response.status.code))
            }
            throw RampartError(
                .serverUnreachable, "\(method) \(url) answered \(response.status.code): \(String(buffer: bytes).prefix(200))",
                status: Int(response.status.code))
        }
        return Array(buffer: bytes)
    }
}

/// One client kept across the requests of a loop, so that a burst of them shares connections instead of
/// a TLS handshake each; replaced after ten minutes (to present a renewed device certificate) and after a
/// request that failed.
actor KeptClient {
    private let link: ServerLink
    private var client: HTTPClient?
    private var created = ContinuousClock.now

    init(_ link: ServerLink) { self.link = link }

    /// Runs `body` with the kept client; a failure discards it, and the error goes to the caller.
    func run<T: Sendable>(_ body: @Sendable (HTTPClient) async throws -> T) async throws -> T {
        if let old = client, ContinuousClock.now - created >= .seconds(600) {
            client = nil
            try? await old.shutdown()
        }
        let http: HTTPClient
        if let client {
            http = client
        } else {
            http = try link.makeClient()
            client = http
            created = .now
        }
        do {
            return try await body(http)
        } catch {
            await discard()
            throw error
        }
    }

    /// Shuts the kept client down.
    func discard() async {
        guard let old = client else { return }
        client = nil
        try? await old.shutdown()
    }
}
