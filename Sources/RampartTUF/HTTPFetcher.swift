import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL
import RampartCore

/// Fetches repository files over HTTP(S), counting bytes as they arrive so that an endless response is cut
/// off at the cap.
public struct HTTPFetcher: TUFFetcher {
    /// The client; the process-wide shared one by default.
    public var client: HTTPClient
    /// TLS for HTTPS requests (trust roots, and the device certificate for mTLS); `nil` uses the client's.
    public var tlsConfiguration: TLSConfiguration?
    /// How long one file may take.
    public var timeout: TimeAmount

    /// A fetcher.
    public init(client: HTTPClient = .shared, tlsConfiguration: TLSConfiguration? = nil, timeout: TimeAmount = .seconds(60)) {
        self.client = client
        self.tlsConfiguration = tlsConfiguration
        self.timeout = timeout
    }

    public func fetch(_ url: String, maximumLength: Int) async throws -> [UInt8]? {
        var request = HTTPClientRequest(url: url)
        request.tlsConfiguration = tlsConfiguration
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw TUFError(.downloadFailed, "Cannot fetch \(url): \(error).")
        }
        switch response.status.code {
        case 200: break
        case 403, 404:
            // Read the short answer, so an HTTP/1.1 connection stays usable for the next file: on a metered
            // link a new connection costs a TLS handshake.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return nil
        default: throw TUFError(.downloadFailed, "Fetching \(url) answered HTTP \(response.status.code).")
        }
        if let declared = response.headers.first(name: "content-length").flatMap(Int.init), declared > maximumLength {
            throw TUFError(.downloadTooLarge, "\(url) is \(declared) bytes; at most \(maximumLength) are allowed.")
        }
        var bytes: [UInt8] = []
        do {
            for try await chunk in response.body {
                guard bytes.count + chunk.readableBytes <= maximumLength else {
                    throw TUFError(.downloadTooLarge, "\(url) is larger than the \(maximumLength) bytes allowed.")
                }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
        } catch let error as RampartError {
            throw error
        } catch {
            throw TUFError(.downloadFailed, "Download of \(url) broke off: \(error).")
        }
        return bytes
    }
}
