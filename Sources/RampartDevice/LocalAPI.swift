import Foundation
import Hummingbird
import Logging
import RampartCore
import ServiceLifecycle

/// The device's local management API: HTTP on a Unix socket in the state directory, reachable only by
/// users who may open that file.
public enum LocalAPI {
    /// The Hummingbird application serving `GET /status`.
    public static func application(state: DeviceState, status: DeviceStatusBoard, logger: Logger, checkNow: Doorbell? = nil) throws
        -> some Service
    {
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
        return Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: state.socketFile.path), serverName: "rampart-device"),
            logger: logger)
    }
}

extension DeviceStatus: ResponseEncodable {}
extension InstalledImages: ResponseEncodable {}
