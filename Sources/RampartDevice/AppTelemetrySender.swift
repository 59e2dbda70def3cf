import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RampartCore
import RampartImage
import ServiceLifecycle
import Synchronization

/// Carries apps' telemetry (`rampart_telemetry_send`, `DeviceAuthentication`) over the runtime's own
/// authenticated connection, tagged with the app's component ID (`componentId`):
/// - through the gateway `device.toml` names (``GatewayConnection``: MQTT with the device certificate, QoS 1),
///   which routes it like any device's telemetry;
/// - without one, to the service: the device's certificate on `POST /v1/gateway/{t}/messages`, where a device
///   may always speak for itself. The server stores it with the device's other telemetry
///   (`rampart device message list`).
///
/// Apps hand messages over without waiting: they queue here (at most ``capacity``) and go out in
/// batches. Over HTTPS each message has a unique key, so a batch sent again after a lost answer is stored
/// once; over MQTT a message is sent again until the gateway acknowledges it (at least once).
public final class AppTelemetrySender: Service, Sendable {
    /// The most messages waiting; beyond it apps get `RAMPART_ENOSPC`.
    public static let capacity = 256

    let state: DeviceState
    let server: String
    let serverCAPEM: String?
    let status: DeviceStatusBoard
    let logger: Logger
    /// Where messages go instead of the service, when `device.toml` names a gateway.
    let gateway: GatewayConnection?
    /// Rung when a message is queued, or the gateway connection comes up.
    let queued: Doorbell
    private let waiting = Mutex<[TelemetryUpload]>([])

    /// Creates the sender.
    /// - Parameters:
    ///   - gateway: The gateway connection to send through; `nil` to send to the service.
    ///   - queued: The doorbell that wakes the sender (give the gateway connection the same one as its `linkUp`).
    public init(
        state: DeviceState, server: String, serverCAPEM: String?, status: DeviceStatusBoard, gateway: GatewayConnection? = nil,
        queued: Doorbell = Doorbell(), logger: Logger
    ) {
        self.state = state
        self.server = server
        self.serverCAPEM = serverCAPEM
        self.status = status
        self.gateway = gateway
        self.queued = queued
        self.logger = logger
    }

    /// Queues an app's message. Returns a host result (`rampart.h`): the payload's length, or
    /// `RAMPART_EUNAVAIL` without a valid device certificate, `RAMPART_EPERM` when the app's
    /// `DeviceAuthentication` names another tenant, `RAMPART_ENOSPC` when the queue is full.
    public func submit(componentID: String, tenant: String, payload: [UInt8]) -> Int32 {
        guard waiting.withLock({ $0.count < Self.capacity }) else { return -3 }
        let snapshot = status.snapshot
        guard let ownTenant = snapshot.tenantId, snapshot.certificateValid else { return -8 }
        let deviceID = snapshot.deviceId
        guard AppCapabilities.deviceAuthentication(tenant, covers: ownTenant.description) else { return -1 }
        let message = TelemetryUpload(
            key: "app-" + Hex.encode((0..<12).map { _ in UInt8.random(in: 0...255) }),
            deviceId: deviceID, moduleId: nil, enqueuedAt: Date(),
            properties: [MessageProperty(name: "componentId", value: componentID)], systemProperties: [:],
            payload: Data(payload).base64EncodedString())
        let accepted = waiting.withLock { waiting -> Bool in
            guard waiting.count < Self.capacity else { return false }
            waiting.append(message)
            return true
        }
        guard accepted else { return -3 }
        queued.ring()
        return Int32(payload.count)
    }

    public func run() async throws {
        var failures = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let wait: Duration = failures == 0 ? .seconds(60) : .seconds(min(300, 2 << min(failures, 8)))
            await cancelWhenGracefulShutdown { await self.queued.wait(upTo: wait) }
            guard !Task.isCancelled else { return }
            // Gather a moment, so that a burst goes out in one request.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(200)) }
            failures = await sendOnce() ? 0 : failures + 1
        }
    }

    /// Sends up to 500 waiting messages. Returns false if any stay queued.
    package func sendOnce() async -> Bool {
        let batch = waiting.withLock { Array($0.prefix(500)) }
        guard !batch.isEmpty else { return true }
        if let gateway {
            let sent = await gateway.publish(batch)
            waiting.withLock { $0.removeAll { sent.contains($0.key) } }
            return sent.count == batch.count
        }
        guard let tenant = status.snapshot.tenantId, let certificate = state.validCertificate() else { return false }
        do {
            let response = try await DeviceTLS.postJSON(
                TelemetryUploadRequest(messages: batch), to: "\(server)/v1/gateway/\(tenant)/messages", serverCAPEM: serverCAPEM,
                certificate: certificate, httpClient: .shared)
            guard response.status == .ok else {
                logger.warning("App telemetry refused", metadata: ["status": "\(response.status.code)", "body": "\(String(buffer: response.body).prefix(300))"])
                return false
            }
            if let result = try? JSONCoding.decoder().decode(TelemetryUploadResult.self, from: Data(buffer: response.body)), !result.refused.isEmpty {
                logger.warning("App telemetry messages refused", metadata: ["refused": "\(result.refused.count)", "first": "\(result.refused[0].message)"])
            }
            let sent = Set(batch.map(\.key))
            waiting.withLock { $0.removeAll { sent.contains($0.key) } }
            return true
        } catch {
            logger.warning("App telemetry not sent; will retry", metadata: ["error": "\(error)"])
            return false
        }
    }
}
