import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RampartCore
import ServiceLifecycle

/// Brings cloud-to-device messages addressed to an app (`rampart device message send --property
/// componentId=C`) to that app, if its `DeviceAuthentication` allows it (`app_on_message` with
/// `RAMPART_MESSAGE_CLOUD`), over the runtime's own authenticated connection: it long-polls the service for
/// the device's own app-addressed messages with the device certificate
/// (`GET /v1/gateway/{t}/cloud-messages?deviceId=…&forApps=true`, where a device always speaks for itself),
/// hands each to its app, and acknowledges it once the app took it. Messages without a `componentId` are
/// the device's own, for its MQTT connection through a gateway (IoT Hub's device-bound topic), and are left
/// to it.
///
/// A message its app cannot take now (not running, inbox full) stays pending on the service until its TTL
/// and is offered again every minute; meanwhile the poll asks only for newer messages, so one waiting
/// message neither delays the others nor costs a poll a second. The receiver polls only while some running
/// app takes cloud messages, so devices without such apps spend nothing on it.
public struct CloudMessageReceiver: Service {
    let state: DeviceState
    let server: String
    let serverCAPEM: String?
    let status: DeviceStatusBoard
    let apps: AppSupervisor
    let logger: Logger
    /// How long each long poll waits on the service: the most it allows.
    package var pollSeconds = 10

    public init(
        state: DeviceState, server: String, serverCAPEM: String?, status: DeviceStatusBoard, apps: AppSupervisor, logger: Logger
    ) {
        self.state = state
        self.server = server
        self.serverCAPEM = serverCAPEM
        self.status = status
        self.apps = apps
        self.logger = logger
    }

    /// The longest pause between polls after failures.
    static let pauseCap: Duration = .seconds(300)
    /// How often messages no app could take are offered again.
    static let retryInterval: Duration = .seconds(60)

    public func run() async throws {
        var pause: Duration = .zero
        var cursor = Cursor()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if pause > .zero {
                // A plain sleep: the supervisor's doorbell has one waiter, the supervisor.
                try? await cancelWhenGracefulShutdown { [pause] in try await Task.sleep(for: pause) }
            }
            guard let tenant = status.snapshot.tenantId?.description, state.validCertificate() != nil,
                await apps.hasCloudRecipients(tenant: tenant)
            else {
                pause = .seconds(5)  // nothing to poll for yet: look again soon (a local check, no traffic)
                continue
            }
            switch await receiveOnce(tenant: tenant, wait: pollSeconds, cursor: &cursor) {
            case .delivered, .waiting: pause = .zero
            case .failed: pause = min(Self.pauseCap, max(.seconds(5), pause * 2))
            }
        }
    }

    /// Where polling stands: messages no app could take are skipped (and the poll asks only for newer ones, so
    /// that they do not end its wait) until ``retryInterval`` passes, when they are offered again.
    package struct Cursor {
        var stuck: Set<String> = []
        var since: Date?
        var retryAt: ContinuousClock.Instant?
        package init() {}

        /// Sets a message aside, and asks from now on only for messages created after the server's clock now.
        /// The wire carries whole seconds, so that is the next whole second: a message created later in this
        /// second waits for the retry, as the set-aside one does.
        mutating func setAside(_ id: String, serverTime: Date) {
            stuck.insert(id)
            since = Date(timeIntervalSince1970: serverTime.timeIntervalSince1970.rounded(.down) + 1)
            retryAt = retryAt ?? ContinuousClock.now + CloudMessageReceiver.retryInterval
        }

        mutating func retryIfDue() {
            if let retryAt, ContinuousClock.now >= retryAt {
                stuck = []
                since = nil
                self.retryAt = nil
            }
        }
    }

    /// What one poll came to.
    package enum Outcome: Equatable {
        /// Every message it brought was taken (or there were none).
        case delivered
        /// Some message found no app to take it.
        case waiting
        case failed
    }

    /// One poll: fetches the device's pending app-addressed messages (waiting up to `wait` seconds for one),
    /// hands them to their apps and acknowledges those taken.
    package func receiveOnce(tenant: String, wait: Int) async -> Outcome {
        var cursor = Cursor()
        return await receiveOnce(tenant: tenant, wait: wait, cursor: &cursor)
    }

    package func receiveOnce(tenant: String, wait: Int, cursor: inout Cursor) async -> Outcome {
        guard let certificate = state.validCertificate() else { return .failed }
        cursor.retryIfDue()
        let base = "\(server)/v1/gateway/\(tenant)/cloud-messages"
        do {
            let deviceID = status.snapshot.deviceId
            var query = "deviceId=\(deviceID)&forApps=true&wait=\(wait)"
            if let since = cursor.since { query += "&since=\(Timestamp.format(since))" }
            // A page holds up to 2 MiB of payloads, base64 in JSON.
            let (code, body) = try await DeviceTLS.send(
                .GET, to: "\(base)?\(query)", serverCAPEM: serverCAPEM, certificate: certificate,
                httpClient: .shared, timeout: .seconds(Int64(wait) + 30), maximumAnswer: 4 << 20)
            guard code == .ok else {
                logger.warning("Cloud messages refused", metadata: ["status": "\(code.code)", "body": "\(String(buffer: body).prefix(300))"])
                return .failed
            }
            let list = try JSONCoding.decoder().decode(CloudMessageList.self, from: Data(buffer: body))
            var outcome = Outcome.delivered
            for message in list.messages where message.deviceId == deviceID && !cursor.stuck.contains(message.id) {
                guard let payload = try? message.payloadEncoding.decode(message.payload) else {
                    logger.warning("A cloud message's payload does not decode; left pending", metadata: ["id": "\(message.id)"])
                    outcome = .waiting
                    cursor.setAside(message.id, serverTime: list.serverTime)
                    continue
                }
                guard let component = message.properties.first(where: { $0.name == "componentId" })?.value else { continue }
                guard await apps.deliverCloudMessage(payload, componentID: component, tenant: tenant) == .taken else {
                    // Its app is not running or its inbox is full: offered again within a minute. Meanwhile the
                    // poll asks only for messages newer than the server's clock now, so that it waits again.
                    outcome = .waiting
                    cursor.setAside(message.id, serverTime: list.serverTime)
                    continue
                }
                let (acknowledged, answer) = try await DeviceTLS.send(
                    .POST, to: "\(base)/\(message.id)/delivered", serverCAPEM: serverCAPEM, certificate: certificate, httpClient: .shared)
                if acknowledged != .noContent {
                    // The app has it; the service will offer it again, and the app may see it twice (at least once).
                    logger.warning("A cloud message was not acknowledged", metadata: [
                        "id": "\(message.id)", "status": "\(acknowledged.code)", "body": "\(String(buffer: answer).prefix(200))",
                    ])
                }
                logger.info("Cloud message delivered to its app", metadata: ["id": "\(message.id)", "componentId": "\(component)"])
            }
            return outcome
        } catch {
            logger.warning("Cloud messages not fetched; will retry", metadata: ["error": "\(error)"])
            return .failed
        }
    }
}
