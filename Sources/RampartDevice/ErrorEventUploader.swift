import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RampartCore
import ServiceLifecycle

/// Uploads the device's queued error events to `POST /v1/errors/{tenant}` with the device certificate:
/// soon after an event, then every few minutes while any wait; with backoff while the server is away.
public struct ErrorEventUploader: Service {
    let state: DeviceState
    let server: String
    let serverCAPEM: String?
    let queue: ErrorEventQueue
    let status: DeviceStatusBoard
    let logger: Logger
    /// Rung when an event is queued, so it goes out soon.
    public let eventQueued: Doorbell
    var httpClient: HTTPClient = .shared
    /// The service egress: when set, uploads go through its client after its path check.
    public var egress: ServiceEgress? {
        didSet { if let egress { httpClient = egress.httpClient } }
    }
    /// How long to gather events after the first before sending (a crash loop folds into one upload).
    var gather: Duration = .seconds(5)

    /// Creates the reporter.
    public init(
        state: DeviceState, server: String, serverCAPEM: String?, queue: ErrorEventQueue, status: DeviceStatusBoard,
        logger: Logger, eventQueued: Doorbell
    ) {
        self.state = state
        self.server = server
        self.serverCAPEM = serverCAPEM
        self.queue = queue
        self.status = status
        self.logger = logger
        self.eventQueued = eventQueued
    }

    public func run() async throws {
        var failures = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let wait: Duration = queue.pending(limit: 1).isEmpty ? .seconds(15 * 60) : failures > 0
                ? .seconds(min(1800, 5 << min(failures, 9))) : .seconds(5 * 60)
            await cancelWhenGracefulShutdown { await eventQueued.wait(upTo: wait) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: gather) }
            switch await uploadOnce() {
            case .sent, .nothing: failures = 0
            case .failed: failures += 1
            }
        }
    }

    package enum UploadResult: Equatable { case nothing, sent(Int), failed }

    /// One upload of up to 500 waiting events.
    package func uploadOnce() async -> UploadResult {
        let events = queue.pending(limit: 500)
        guard !events.isEmpty else { return .nothing }
        guard let tenant = status.snapshot.tenantId, let certificate = state.validCertificate() else {
            return .failed  // not attested yet: the events wait for a certificate
        }
        do {
            try await egress?.checkPath()
            let response = try await DeviceTLS.postJSON(
                ErrorEventUploadRequest(events: events), to: "\(server)/v1/errors/\(tenant)", serverCAPEM: serverCAPEM,
                certificate: certificate, httpClient: httpClient)
            guard response.status == .ok || response.status == .created else {
                logger.warning("Error report upload refused", metadata: ["status": "\(response.status.code)", "body": "\(String(buffer: response.body).prefix(300))"])
                return .failed
            }
            queue.acknowledge(events)
            logger.info("Error events uploaded", metadata: ["events": "\(events.count)"])
            return .sent(events.count)
        } catch {
            logger.warning("Error report upload failed; will retry", metadata: ["error": "\(error)"])
            return .failed
        }
    }
}
