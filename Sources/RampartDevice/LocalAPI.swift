import Foundation
import NIOCore
import NIOFoundationCompat
import Hummingbird
import Logging
import RampartCore
import RampartPKI
import ServiceLifecycle

/// The device's local management API: HTTP on a Unix socket in the state directory, reachable only by
/// users who may open that file.
public enum LocalAPI {
    /// The Hummingbird application serving `GET /status` and the rest of the local API.
    ///
    /// - Parameter attestNow: Rung when what the device would measure or report changes (a sideloaded app,
    ///   development mode on or off), so that its next certificate reflects it.
    public static func application(
        state: DeviceState, status: DeviceStatusBoard, logger: Logger, checkNow: Doorbell? = nil, apps: AppSupervisor? = nil,
        network: (board: LinkBoard, egress: ServiceEgress)? = nil, attestNow: Doorbell? = nil
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
        addDevelopment(to: router, state: state, apps: apps, attestNow: attestNow)
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

    /// Development mode and sideloading: `GET /development`, `PUT` and `DELETE /development/capability`,
    /// `POST /sideload` (an image package as the body) and `DELETE /sideload[?componentId=]`.
    private static func addDevelopment(to router: Router<BasicRequestContext>, state: DeviceState, apps: AppSupervisor?, attestNow: Doorbell?) {
        let development = DevelopmentMode(state: state)
        @Sendable func changed(apps changedApps: Bool) {
            if changedApps { apps?.appsChanged.ring() }
            attestNow?.ring()
        }
        router.get("/development") { _, _ in development.status() }
        router.put("/development/capability") { request, _ in
            let body = try await request.body.collect(upTo: DevelopmentCapability.maximumLength + 2)
            return try await answer {
                if try development.install(String(buffer: body)) { changed(apps: false) }
                return development.status()
            }
        }
        router.delete("/development/capability") { _, _ in
            try await answer {
                let removed = try development.leave()
                changed(apps: !removed.isEmpty)
                return SideloadResult(componentIds: removed)
            }
        }
        router.post("/sideload") { request, _ in
            let body = try await request.body.collect(upTo: DevelopmentMode.maximumPackageBytes)
            return try await answer {
                let app = try development.sideload(Array(buffer: body))
                changed(apps: true)
                return SideloadResult(componentIds: [app.componentID])
            }
        }
        router.delete("/sideload") { request, _ in
            try await answer {
                let removed = try development.delete(componentID: request.uri.queryParameters.get("componentId"))
                changed(apps: !removed.isEmpty)
                return SideloadResult(componentIds: removed)
            }
        }
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
extension DevelopmentStatus: ResponseEncodable {}
