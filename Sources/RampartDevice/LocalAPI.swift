import Foundation
import NIOCore
import NIOFoundationCompat
import Hummingbird
import Logging
import RampartCore
import ServiceLifecycle

/// The device's local management API: HTTP on a Unix socket in the state directory, reachable only by
/// users who may open that file.
public enum LocalAPI {
    /// The Hummingbird application serving `GET /status`.
    public static func application(
        state: DeviceState, status: DeviceStatusBoard, logger: Logger, checkNow: Doorbell? = nil, apps: AppSupervisor? = nil,
        network: (board: LinkBoard, egress: ServiceEgress)? = nil
    ) throws -> some Service {
        // sockaddr_un holds 108 bytes, the terminating NUL included.
        guard state.socketFile.path.utf8.count < 108 else {
            throw RampartError(
                .configurationInvalid,
                "The local API socket path \(state.socketFile.path) is longer than 107 bytes. Use a shorter --state-dir.")
        }
        try? FileManager.default.removeItem(at: state.socketFile)  // a stale socket from a crash
        let router = Router()
        router.get("/status") { _, _ in status.snapshot }
        router.get("/images") { _, _ in
            InstalledImages(
                runtimeVersion: SlotStore(state: state).activeVersion ?? RampartVersion.current,
                activeSlot: SlotStore(state: state).active?.rawValue ?? "factory",
                apps: AppStore(state: state).installed().map {
                    .init(componentId: $0.componentID, name: $0.name, version: $0.version, imageId: $0.imageID)
                })
        }
        router.post("/update/check-now") { _, _ -> HTTPResponse.Status in
            checkNow?.ring()
            return .accepted
        }
        if let apps {
            router.get("/apps") { _, _ in AppStatusList(apps: await apps.statuses()) }
            router.get("/apps/:componentId") { _, context in
                try await answer { try await apps.status(of: try context.parameters.require("componentId")) }
            }
            router.post("/apps/:componentId/start") { _, context in
                try await answer { try await apps.start(try context.parameters.require("componentId")) }
            }
            router.post("/apps/:componentId/stop") { _, context in
                try await answer { try await apps.stop(try context.parameters.require("componentId")) }
            }
        }
        if let network {
            router.get("/network/interfaces") { _, _ in
                NetworkInterfaceList(interfaces: NetworkInterfaces.list(policy: network.board.policy))
            }
            router.get("/network/status") { _, _ in
                var snapshot = network.board.snapshot
                snapshot.refusedServicingConnections = network.egress.refusalCount
                snapshot.lastRefusal = network.egress.lastRefusalMessage
                snapshot.dataUsage = network.egress.meter.usage()
                return snapshot
            }
        }
        return Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: state.socketFile.path), serverName: "rampart-device"),
            logger: logger)
    }

    /// The JSON of `body`, or of the ``RampartError`` it throws with that error's status.
    private static func answer(_ body: () async throws -> some Encodable) async throws -> Response {
        do {
            return try json(try await body(), status: .ok)
        } catch let error as RampartError {
            return try json(APIErrorBody(code: error.code.rawValue, message: error.message), status: .init(code: error.status))
        }
    }

    private static func json(_ value: some Encodable, status: HTTPResponse.Status) throws -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(data: try JSONCoding.encoder().encode(value))))
    }
}

/// `GET /apps` of the local API.
public struct AppStatusList: Codable, Sendable, ResponseEncodable {
    public var apps: [AppStatus]
    public init(apps: [AppStatus]) { self.apps = apps }
}

/// `GET /network/interfaces` of the local API.
public struct NetworkInterfaceList: Codable, Sendable, ResponseEncodable {
    public var interfaces: [NetworkInterfaceInfo]
    public init(interfaces: [NetworkInterfaceInfo]) { self.interfaces = interfaces }
}

extension LinkBoard.Snapshot: ResponseEncodable {}
extension DeviceStatus: ResponseEncodable {}
extension InstalledImages: ResponseEncodable {}
