import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RampartCore
import RampartDevice
import ServiceLifecycle

/// Keeps the gateway's trust bundle and child list current from the Rampart server; a `Service`.
///
/// The gateway asks as the device it is, with its own 24 h device certificate (mutual TLS). The bundle
/// holds every tenant CA that is not revoked, successor included, so a CA rollover needs no one's hands.
/// Each answer is cached on disk, so a gateway restarted while the server is away keeps working.
struct ServerRefresher: Service {
    let configuration: GatewayConfiguration
    let tls: GatewayTLS
    let broker: Broker
    let logger: Logger

    /// Where the child list is cached.
    static func childrenCache(_ configuration: GatewayConfiguration) -> URL {
        URL(fileURLWithPath: configuration.store.directory).appendingPathComponent("children.json")
    }

    /// Loads the cached child list (before the first refresh).
    static func cachedChildren(_ configuration: GatewayConfiguration) -> Set<String>? {
        guard let data = try? Data(contentsOf: childrenCache(configuration)),
            let list = try? JSONDecoder().decode(ChildList.self, from: data)
        else { return nil }
        return Set(list.children)
    }

    func run() async throws {
        let link = try ServerLink(configuration.identity, purpose: "Refreshing from the server")
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let ok = await refresh(link)
                let wait = ok ? configuration.trust.refreshSeconds : min(60, configuration.trust.refreshSeconds)
                try? await Task.sleep(for: .seconds(wait))
            }
        }
    }

    /// One refresh; returns whether everything that was asked for succeeded.
    private func refresh(_ link: ServerLink) async -> Bool {
        do {
            try await link.withClient { http in
                if configuration.trust.refreshFromServer {
                    let pem = try await link.request(http, .GET, link.url("/trust-bundle"))
                    let text = String(decoding: pem, as: UTF8.self)
                    if try tls.updateTrust(bundlePEM: text) {
                        logger.notice("Trust bundle updated from the server", metadata: ["cas": "\(text.components(separatedBy: "BEGIN CERTIFICATE").count - 1)"])
                        try SecureFile.write(text, to: URL(fileURLWithPath: configuration.trust.bundle), mode: 0o644)
                    }
                }
                if configuration.children == .registered {
                    let body = try await link.request(http, .GET, link.url("/children"))
                    let list = try JSONDecoder().decode(ChildList.self, from: Data(body))
                    broker.setRegisteredChildren(Set(list.children))
                    try SecureFile.write(Data(body), to: Self.childrenCache(configuration), mode: 0o600)
                }
            }
            return true
        } catch {
            logger.warning("Refresh from the server failed; keeping what the gateway has", metadata: ["error": "\(error)"])
            return false
        }
    }
}
