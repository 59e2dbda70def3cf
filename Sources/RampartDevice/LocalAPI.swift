import Foundation
import Hummingbird
import Logging
import RampartCore
import ServiceLifecycle

/// The device's local management API: HTTP on a Unix socket in the state directory, reachable only by
/// users who may open that file.
public enum LocalAPI {
    /// The Hummingbird application serving `GET /status`.
    public static func application(state: DeviceState, status: DeviceStatusBoard, logger: Logger) throws
        -> some Service
    {
        try? FileManager.default.removeItem(at: state.socketFile)  // a stale socket from a crash
        let router = Router()
        router.get("/status") { _, _ in status.snapshot }
        return Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: state.socketFile.path), serverName: "rampart-device"),
            logger: logger)
    }
}

extension DeviceStatus: ResponseEncodable {}
