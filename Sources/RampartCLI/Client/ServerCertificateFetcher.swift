import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import RampartCore


/// Reads the certificate chain a TLS server presents, without trusting it, so that it can be compared with the
/// pin carried by an invitation.
enum ServerCertificateFetcher {
    /// The DER certificates the server presented, leaf first.
    static func fetchChain(url: URL) async throws -> [[UInt8]] {
        guard let host = url.host else { throw RampartError.invalidRequest("The server URL '\(url)' has no host.") }
        let port = url.port ?? 443
        var tls = TLSConfiguration.makeClientConfiguration()
        let context = try NIOSSLContext(configuration: tls)
        let (chains, continuation) = AsyncStream.makeStream(of: [[UInt8]].self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Accept whatever is presented: the caller compares it with the pin and trusts nothing else.
                    let handler = try NIOSSLClientHandler(
                        context: context, serverHostname: IPAddressText.isIPAddress(host) ? nil : host,
                        customVerificationCallback: { certificates, promise in
                            continuation.yield(certificates.compactMap { try? $0.toDERBytes() })
                            continuation.finish()
                            promise.succeed(.certificateVerified)
                        })
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: host, port: port).get()
        defer { channel.close(promise: nil) }
        let timeout = Task {
            try await Task.sleep(for: .seconds(10))
            continuation.finish()
        }
        defer { timeout.cancel() }
        for await chain in chains { return chain }
        throw RampartError(.certificateInvalid, "The server at \(url) did not complete a TLS handshake.", status: 502)
    }
}
