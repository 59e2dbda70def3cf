import RampartCore

/// Why an app ended badly: the class an error report files it under, and what happened.
public struct AppFault: Error, Sendable, Equatable, CustomStringConvertible {
    public var eventClass: ErrorEventClass
    /// What happened, for a person; at most 1,024 characters.
    public var message: String

    /// Creates a fault.
    public init(_ eventClass: ErrorEventClass, _ message: String) {
        self.eventClass = eventClass
        self.message = String(message.prefix(1024))
    }

    public var description: String { "\(eventClass.rawValue): \(message)" }
}

/// How a run of an app ended.
public enum AppOutcome: Sendable, Equatable {
    /// The app called `rampart_exit(0)`.
    case exited
    /// The runtime stopped it (a stop request or shutdown).
    case stopped
    /// It trapped, exited non-zero, ran out of fuel or memory, or misused a host call.
    case failed(AppFault)
}

/// Thrown by a host call when the app has been asked to stop, to unwind the guest.
struct AppStopRequest: Error {}

/// Thrown by `rampart_exit` to unwind the guest.
struct AppExitRequest: Error {
    var code: Int32
}
