import Foundation
import RampartCore
import RampartPKI
import RampartStore

/// `POST /v1/errors/{tenantId}` as the server reads it: ``ErrorEventUploadRequest``, except that each event's
/// class is a string. One event of a class this server does not know yet (sent by a newer device) is then
/// refused alone, instead of failing the whole batch, which the device would send again forever.
public struct ErrorEventUploadBody: APIRequest {
    public static let allowedKeys = ErrorEventUploadRequest.allowedKeys

    public struct Event: Decodable, Sendable {
        public var key: String
        public var eventClass: String
        public var componentId: String?
        public var description: String
        public var count: Int
        public var firstSeen: Date
        public var lastSeen: Date
    }

    public var events: [Event]

    /// The body a device sends, for callers in the same process.
    public init(_ request: ErrorEventUploadRequest) {
        events = request.events.map {
            Event(
                key: $0.key, eventClass: $0.eventClass.rawValue, componentId: $0.componentId, description: $0.description,
                count: $0.count, firstSeen: $0.firstSeen, lastSeen: $0.lastSeen)
        }
    }
}

extension DeviceService {
    /// Most events in one upload (the device sends at most this many).
    public static let maximumErrorBatch = 500
    /// The longest description stored, in characters (the device cuts its own to this).
    public static let maximumErrorDescription = 1024
    /// The most rows one report answers with when a limit is given.
    public static let maximumErrorReportRows = 100_000
    /// ASCII letters, digits, `-` and `_`: what event classes and component IDs are made of.
    static let nameBytes = Set(Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_".utf8))

    // MARK: The report

    /// The tenant's error report, repeats folded into counts, optionally for one device.
    public func errorReport(tenant: RampartID, deviceID: String?, caller: UserRecord) async throws -> ErrorReport {
        try await errorReport(tenant: tenant, filter: ErrorEventFilter(deviceID: deviceID), caller: caller)
    }

    /// The tenant's error report narrowed by `filter`: one device, one event class, the events that happened
    /// (at least once) between `from` and `to`, the newest `limit` of them. Most recent last.
    ///
    /// - Throws: 400 `invalidRequest` for a malformed device ID, a limit outside 1 to
    ///   ``maximumErrorReportRows``, or `from` not before `to`.
    public func errorReport(tenant: RampartID, filter: ErrorEventFilter, caller: UserRecord) async throws -> ErrorReport {
        var filter = filter
        filter.deviceID = try filter.deviceID.map(DeviceID.validated)
        if let eventClass = filter.eventClass,
            !(1...64).contains(eventClass.utf8.count) || !eventClass.utf8.allSatisfy({ Self.nameBytes.contains($0) })
        {
            throw RampartError.invalidRequest("eventClass must be 1 to 64 letters, digits, '-' or '_'.")
        }
        if let limit = filter.limit, !(1...Self.maximumErrorReportRows).contains(limit) {
            throw RampartError.invalidRequest("limit must be 1 to \(Self.maximumErrorReportRows).")
        }
        if let from = filter.from, let to = filter.to, from >= to {
            throw RampartError.invalidRequest("from must be before to.")
        }
        let query = filter
        return try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return ErrorReport(events: try await session.errorEvents(ofTenant: tenant, query).map {
                ErrorReportRow(
                    deviceId: $0.deviceID, eventType: $0.eventType, eventClass: $0.eventClass, eventCount: $0.count,
                    description: $0.description, startTimestamp: $0.firstAt, endTimestamp: $0.lastAt,
                    componentId: $0.componentID)
            })
        }
    }

    // MARK: Uploads from devices

    /// Stores the events a device uploads with its own certificate, each once however often the batch is
    /// sent: a key stored before only widens its row (largest count, earliest first, latest last), since the
    /// device keeps folding repeats into an event until it hears that it was stored.
    ///
    /// Malformed events, and events of a class this server does not know, are refused one by one; the rest
    /// of the batch is stored in the same transaction.
    /// - Throws: 400 `invalidRequest` for more than ``maximumErrorBatch`` events.
    public func uploadErrorEvents(_ body: ErrorEventUploadBody, from deviceID: String, tenant: RampartID) async throws
        -> ErrorEventUploadResult
    {
        guard body.events.count <= Self.maximumErrorBatch else {
            throw RampartError.invalidRequest(
                "An upload holds at most \(Self.maximumErrorBatch) events, not \(body.events.count).")
        }
        let now = context.clock.now()
        var accepted: [UploadedErrorEvent] = []
        var refused: [TelemetryUploadResult.Refusal] = []
        for (index, event) in body.events.enumerated() {
            do {
                accepted.append(try Self.validated(event, deviceID: deviceID, tenant: tenant, receivedAt: now))
            } catch let error as RampartError {
                refused.append(.init(index: index, code: error.code.rawValue, message: error.message))
            }
        }
        let events = accepted
        let (stored, duplicates) = try await context.store.transaction { session in
            var stored = 0
            for event in events {
                if try await session.storeUploadedErrorEvent(event) { stored += 1 }
            }
            return (stored, events.count - stored)
        }
        return ErrorEventUploadResult(stored: stored, duplicates: duplicates, refused: refused)
    }

    /// One uploaded event checked and made ready to store.
    static func validated(_ event: ErrorEventUploadBody.Event, deviceID: String, tenant: RampartID, receivedAt: Date) throws
        -> UploadedErrorEvent
    {
        guard (1...128).contains(event.key.utf8.count), event.key.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) })
        else {
            throw RampartError.invalidRequest("key must be 1 to 128 printable ASCII characters.")
        }
        guard let eventClass = ErrorEventClass(rawValue: event.eventClass) else {
            throw RampartError(
                .unknownEventClass,
                "This server does not know the event class '\(event.eventClass.prefix(64))'. Known: \(ErrorEventClass.allCases.map(\.rawValue).joined(separator: ", ")).",
                status: 400)
        }
        if let component = event.componentId {
            guard (1...64).contains(component.utf8.count), component.utf8.allSatisfy({ Self.nameBytes.contains($0) || $0 == UInt8(ascii: ".") })
            else {
                throw RampartError.invalidRequest("componentId must be 1 to 64 letters, digits, '-', '_' or '.'.")
            }
        }
        guard event.description.count <= Self.maximumErrorDescription else {
            throw RampartError.invalidRequest("description is at most \(Self.maximumErrorDescription) characters.")
        }
        guard event.count >= 1 else { throw RampartError.invalidRequest("count must be at least 1.") }
        guard event.firstSeen <= event.lastSeen else {
            throw RampartError.invalidRequest("firstSeen must not be after lastSeen.")
        }
        // PostgreSQL cannot store NUL in text; an app's fault text may hold one.
        let description = event.description.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}")
        return UploadedErrorEvent(
            tenantID: tenant, deviceID: deviceID, key: event.key, eventType: eventClass.eventType,
            eventClass: eventClass.rawValue, componentID: event.componentId, description: description, count: event.count,
            firstAt: event.firstSeen, lastAt: event.lastSeen, receivedAt: receivedAt)
    }

    // MARK: Retention

    /// Deletes error events the server last heard of more than `retention` ago (the maintenance job runs it
    /// hourly with ``ServerConfiguration/Limits/errorEventRetention``).
    public func purgeErrorEvents(olderThan retention: TimeInterval) async throws {
        let cutoff = context.clock.now() - retention
        try await context.store.transaction { session in try await session.purgeErrorEvents(before: cutoff) }
    }
}

extension RampartError.Code {
    /// An uploaded error event names a class this server does not know (the device is newer).
    public static let unknownEventClass: Self = "unknownEventClass"
}
