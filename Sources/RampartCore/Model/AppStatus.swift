import Foundation

/// An installed app's state in the device runtime, for `device app show-status` (local API `GET /apps`).
public struct AppStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Running, waiting for its next event.
        case running
        /// Stopped by request; it starts again only when asked.
        case stopped
        /// It ended itself with exit code 0.
        case exited
        /// It failed and waits for its restart (see `nextStartAt`).
        case backingOff
        /// It cannot run (its module or manifest is unusable); it is retried after an update.
        case failed
    }

    public var componentId: String
    public var name: String
    public var version: String
    public var state: State
    /// Restarts after failures since the runtime started.
    public var restarts: Int
    public var startedAt: Date?
    public var nextStartAt: Date?
    /// The class and description of the last failure.
    public var lastFaultClass: ErrorEventClass?
    public var lastFault: String?
    /// Memory, storage and fuel against their limits.
    public var memoryBytes: Int
    public var memoryLimitBytes: Int
    public var storageBytes: Int
    public var storageLimitBytes: Int
    public var fuelSpent: UInt64
    /// CPU time the app's events used, and how long its CPU budget held events back, in milliseconds
    /// (absent from a runtime older than the CPU budget).
    public var cpuMilliseconds: Int?
    public var throttledMilliseconds: Int?

    public init(componentId: String, name: String, version: String, state: State) {
        self.componentId = componentId
        self.name = name
        self.version = version
        self.state = state
        restarts = 0
        memoryBytes = 0
        memoryLimitBytes = 0
        storageBytes = 0
        storageLimitBytes = 0
        fuelSpent = 0
        cpuMilliseconds = 0
        throttledMilliseconds = 0
    }
}
