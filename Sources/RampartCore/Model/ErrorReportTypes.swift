import Foundation

/// What went wrong, for an error report (REFERENCE: error reports). Stable strings on the wire.
public enum ErrorEventClass: String, Codable, Sendable, CaseIterable {
    /// An app trapped: an invalid memory access, an unreachable instruction, a stack overflow, …
    case appTrap
    /// An app ended itself with a non-zero exit code.
    case appExit
    /// An app asked for more linear memory than its quota.
    case memoryExhausted
    /// An app spent its fuel budget on one event (an endless loop, say).
    case fuelExhausted
    /// An app passed memory it does not own to a host call, or flooded host calls.
    case hostCallFault
    /// An app failed to start: an invalid module or manifest, a missing export.
    case appLoadFailure
    /// An app crashed so often that the runtime stopped restarting it for a while.
    case restartLoop
    /// A system software or app update failed to install.
    case updateFailure
    /// The device could not attest.
    case attestationFailure

    /// `unplanned` for crashes and failures; every class is unplanned today (planned events, such as an
    /// update's restart, are not reported).
    public var eventType: String { "unplanned" }
}

/// One folded error event as the device queues and uploads it: repeats of the same class, component and
/// description are counted, with the time of the first and the last.
public struct ErrorEvent: Codable, Sendable, Equatable {
    /// Unique per device, so that an upload sent twice is stored once.
    public var key: String
    public var eventClass: ErrorEventClass
    /// The app's component ID, or nil for the runtime itself.
    public var componentId: String?
    /// What happened, for a person (at most 1,024 characters).
    public var description: String
    public var count: Int
    public var firstSeen: Date
    public var lastSeen: Date
    public init(
        key: String, eventClass: ErrorEventClass, componentId: String?, description: String, count: Int, firstSeen: Date,
        lastSeen: Date
    ) {
        self.key = key
        self.eventClass = eventClass
        self.componentId = componentId
        self.description = description
        self.count = count
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
    }
}

/// `POST /v1/errors/{tenantId}`: a device's queued events, sent with its device certificate.
public struct ErrorEventUploadRequest: APIRequest, Codable {
    public static let allowedKeys: Set<String> = ["events"]
    /// At most 500.
    public var events: [ErrorEvent]
    public init(events: [ErrorEvent]) { self.events = events }
}

/// The server's answer to an upload: how many events were new, how many it had already (their counts and
/// times brought up to date), and which it refused (malformed, or of a class it does not know). Refused events
/// are not worth sending again.
public struct ErrorEventUploadResult: Codable, Sendable, Equatable {
    public var stored: Int
    public var duplicates: Int
    /// By position in the batch; the same shape as a telemetry upload's refusals.
    public var refused: [TelemetryUploadResult.Refusal]
    public init(stored: Int, duplicates: Int, refused: [TelemetryUploadResult.Refusal] = []) {
        self.stored = stored
        self.duplicates = duplicates
        self.refused = refused
    }
}
