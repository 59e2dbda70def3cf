import Foundation
import RampartCore
import Synchronization

/// The device's queue of error events waiting for upload (DESIGN §5), in `D/errors/queue.json`.
///
/// - Bounded: at most ``capacity`` events, and at most ``capacityPerComponent`` of one app, so that an app
///   raising many distinct events drops its own oldest rather than everyone else's. When the queue is full,
///   the component with the most events gives up its oldest. Every drop is counted.
/// - Folded: a repeat of an event still waiting (same class, component and description) raises its count
///   and its last-seen time instead of adding a row, so a crash loop costs one row.
/// - Durable: every change is written atomically (rename) before `record` returns, so events survive a
///   restart or a power cut; a write that fails (a full disk) keeps the queue in memory and tries again at
///   the next change.
public final class ErrorEventQueue: Sendable {
    /// The most events kept.
    public static let capacity = 200
    /// The most events kept for one component (an app).
    public static let capacityPerComponent = 50

    struct Contents: Codable {
        var events: [ErrorEvent] = []
        var dropped = 0
    }

    private let file: URL
    private let contents: Mutex<Contents>

    /// Why the stored queue could not be loaded, if it could not: for the runtime to log.
    public let loadProblem: String?

    /// Loads the queue of `state`: empty if there is none. An unreadable one is kept aside as
    /// `queue.json.corrupt` (see ``loadProblem``) and the queue starts empty.
    public init(state: DeviceState) {
        file = state.directory.appendingPathComponent("errors/queue.json")
        var loaded = Contents()
        var problem: String?
        if FileManager.default.fileExists(atPath: file.path) {
            if let data = try? Data(contentsOf: file), let stored = try? JSONCoding.decoder().decode(Contents.self, from: data) {
                loaded = stored
            } else {
                problem = SecureFile.setAside(file, consequence: "the error events it held will not be uploaded.")
            }
        }
        loadProblem = problem
        contents = Mutex(loaded)
    }

    /// Queues an event, or folds it into a waiting one.
    public func record(_ eventClass: ErrorEventClass, componentID: String? = nil, description: String, at time: Date = Date()) {
        let description = String(description.prefix(1024))
        contents.withLock { contents in
            if let index = contents.events.firstIndex(where: {
                $0.eventClass == eventClass && $0.componentId == componentID && $0.description == description
            }) {
                contents.events[index].count += 1
                contents.events[index].lastSeen = max(contents.events[index].lastSeen, time)
            } else {
                let own = componentID.map { component in contents.events.indices.filter { contents.events[$0].componentId == component } } ?? []
                if own.count >= Self.capacityPerComponent {
                    contents.events.remove(at: own[0])
                    contents.dropped += 1
                } else if contents.events.count >= Self.capacity {
                    // Full: the component with the most events (the runtime's own counting as one) gives up its oldest.
                    let counts = Dictionary(grouping: contents.events.indices, by: { contents.events[$0].componentId })
                    let largest = counts.values.max { $0.count < $1.count || ($0.count == $1.count && $0[0] > $1[0]) }
                    contents.events.remove(at: largest?.first ?? 0)
                    contents.dropped += 1
                }
                contents.events.append(
                    ErrorEvent(
                        key: Self.newKey(), eventClass: eventClass, componentId: componentID, description: description, count: 1,
                        firstSeen: time, lastSeen: time))
            }
            save(contents)
        }
    }

    /// The events waiting, oldest first, at most `limit`.
    public func pending(limit: Int = 500) -> [ErrorEvent] { contents.withLock { Array($0.events.prefix(limit)) } }

    /// Events dropped because the queue was full, since the device was made.
    public var dropped: Int { contents.withLock { $0.dropped } }

    /// Removes events the server has stored. An event whose count grew since it was sent stays, with only
    /// the repeats that came after, under a new key.
    public func acknowledge(_ sent: [ErrorEvent]) {
        let byKey = Dictionary(sent.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        contents.withLock { contents in
            contents.events = contents.events.compactMap { event in
                guard let delivered = byKey[event.key] else { return event }
                guard event.count > delivered.count else { return nil }
                var rest = event
                rest.key = Self.newKey()
                rest.count = event.count - delivered.count
                rest.firstSeen = delivered.lastSeen
                return rest
            }
            save(contents)
        }
    }

    /// Written under the lock, so that the file never goes back to an older state.
    private func save(_ contents: Contents) {
        guard let data = try? JSONCoding.encoder(pretty: false).encode(contents) else { return }
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? SecureFile.write(data, to: file, mode: 0o600)
    }

    private static func newKey() -> String {
        Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255) })
    }
}
