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
        // sockaddr_un holds 108 bytes, the terminating NUL included.
        guard state.socketFile.path.utf8.count < 108 else {
            throw RampartError(
                .configurationInvalid,
                "The local API socket path \(state.socketFile.path) is longer than 107 bytes. Use a shorter --state-dir.")
        }
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
