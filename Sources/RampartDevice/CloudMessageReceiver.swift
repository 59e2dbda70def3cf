import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RampartCore
import ServiceLifecycle

/// Brings cloud-to-device messages (`rampart device message send`) to apps with `DeviceAuthentication`
/// (`app_on_message` with `RAMPART_MESSAGE_CLOUD`), over the runtime's own authenticated connection: it
/// long-polls the service for the device's own messages with the device certificate
/// (`GET /v1/gateway/{t}/cloud-messages?deviceId=…`, where a device always speaks for itself), hands each
/// to the apps it is for, and acknowledges it once an app took it.
///
/// A message goes to the app its `componentId` property names, or else to every running app whose
/// `DeviceAuthentication` names the tenant. One that no app can take now (none running, inboxes full)
/// stays pending on the service until its TTL and is offered again, with a growing pause so that a
/// waiting message does not cost a poll a second. The receiver polls only while some running app takes
/// cloud messages, so devices without such apps spend nothing on it.
public struct CloudMessageReceiver: Service {
    let state: DeviceState
    let server: String
    let serverCAPEM: String?
    let status: DeviceStatusBoard
    let apps: AppSupervisor
    let logger: Logger
    /// How long each long poll waits on the service.
    var pollSeconds = 25

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

    /// The longest pause between polls while messages wait for an app, or after failures. (A message that
    /// waited for an app starting is offered again within this.)
    static let pauseCap: Duration = .seconds(300)

    public func run() async throws {
        var pause: Duration = .zero
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if pause > .zero {
                // A plain sleep: the supervisor's doorbell has one waiter, the supervisor.
                try? await cancelWhenGracefulShutdown { [pause] in try await Task.sleep(for: pause) }
            }
            guard let tenant = status.snapshot.tenantId?.description, state.validCertificate() != nil,
                await apps.hasCloudRecipients(tenant: tenant)
            else {
                pause = .seconds(30)  // nothing to poll for yet: look again later, locally
                continue
            }
            switch await receiveOnce(tenant: tenant, wait: pollSeconds) {
            case .delivered: pause = .zero
            case .waiting, .failed: pause = min(Self.pauseCap, max(.seconds(5), pause * 2))
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

    /// One poll: fetches the device's pending messages (waiting up to `wait` seconds for one), hands them to
    /// apps and acknowledges those taken.
    package func receiveOnce(tenant: String, wait: Int) async -> Outcome {
        guard let certificate = state.validCertificate() else { return .failed }
        let base = "\(server)/v1/gateway/\(tenant)/cloud-messages"
        do {
            let deviceID = status.snapshot.deviceId
            let (code, body) = try await DeviceTLS.send(
                .GET, to: "\(base)?deviceId=\(deviceID)&wait=\(wait)", serverCAPEM: serverCAPEM, certificate: certificate,
                httpClient: .shared, timeout: .seconds(Int64(wait) + 30))
            guard code == .ok else {
                logger.warning("Cloud messages refused", metadata: ["status": "\(code.code)", "body": "\(String(buffer: body).prefix(300))"])
                return .failed
            }
            let list = try JSONCoding.decoder().decode(CloudMessageList.self, from: Data(buffer: body))
            var outcome = Outcome.delivered
            for message in list.messages where message.deviceId == deviceID {
                guard let payload = try? message.payloadEncoding.decode(message.payload) else {
                    logger.warning("A cloud message's payload does not decode; left pending", metadata: ["id": "\(message.id)"])
                    outcome = .waiting
                    continue
                }
                let component = message.properties.first { $0.name == "componentId" }?.value
                let taken = await apps.deliverCloudMessage(payload, componentID: component, tenant: tenant)
                guard taken > 0 else {
                    outcome = .waiting
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
                logger.info("Cloud message delivered to apps", metadata: ["id": "\(message.id)", "apps": "\(taken)"])
            }
            return outcome
        } catch {
            logger.warning("Cloud messages not fetched; will retry", metadata: ["error": "\(error)"])
            return .failed
        }
    }
}
