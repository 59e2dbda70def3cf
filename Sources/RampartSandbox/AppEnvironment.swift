import Foundation
import Logging
import RampartCore

/// Result codes of host calls, as `rampart.h` defines them.
enum HostResult {
    static let permissionDenied: Int32 = -1
    static let invalid: Int32 = -2
    static let noSpace: Int32 = -3
    static let again: Int32 = -4
    static let connection: Int32 = -5
    static let notFound: Int32 = -6
    static let timedOut: Int32 = -7
    static let unavailable: Int32 = -8

    static let messageFromApp: Int32 = 1
    static let messageFromCloud: Int32 = 2

    static let eventUpdatePending: Int32 = 1
    static let eventShutdown: Int32 = 2
}

/// What the runtime lends an app beyond its own memory. The sandbox checks the app's capabilities before
/// it touches any of these.
public struct AppEnvironment: Sendable {
    /// The peripherals.
    public var board: any PeripheralBoard
    /// App-to-app messages.
    public var messages: AppMessageBus
    /// Where the app's mutable storage lives (`storage.bin`), kept across restarts and updates.
    public var storageDirectory: URL
    /// Sends telemetry through the runtime's own authenticated connection, for the tenant the app's
    /// `DeviceAuthentication` names; returns a host result (`rampart.h`). Nil when the runtime has none.
    public var telemetry: (@Sendable (_ componentID: String, _ tenant: String, _ payload: [UInt8]) -> Int32)?
    /// The device's TLS client identity for the tenant an app's `DeviceAuthentication` names
    /// (`rampart_tls_connect`). Nil when the runtime lends none.
    public var deviceTLS: (@Sendable (_ tenant: String) -> AppTLSIdentity.Lookup)?
    /// Defers updates by some minutes.
    public var deferUpdate: (@Sendable (_ componentID: String, _ minutes: Int) -> Void)?
    /// Asks the runtime to restart the device.
    public var requestReboot: (@Sendable (_ componentID: String) -> Void)?
    /// The link facts the router control channel last reported (`NetworkConfig`); nil when there is no channel.
    public var linkStatus: (@Sendable () -> LinkFacts?)?
    /// Where the app's log lines go, with `app` (its name) and `component` metadata.
    public var logger: Logger

    /// An environment with a board, a bus and a storage directory; no telemetry, deferral or reboot.
    public init(board: any PeripheralBoard, messages: AppMessageBus, storageDirectory: URL, logger: Logger) {
        self.board = board
        self.messages = messages
        self.storageDirectory = storageDirectory
        self.logger = logger
    }
}
