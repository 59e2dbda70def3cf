import Foundation
import Synchronization

/// What wakes an app between events: messages, system events and a stop request. The app's own thread
/// waits on it; anyone may post.
public final class AppInbox: @unchecked Sendable {  // every field is guarded by `condition`
    /// One thing waiting for the app.
    enum Item {
        case message(kind: Int32, sender: String?, bytes: [UInt8])
        case event(kind: Int32, argument: Int32)
    }

    /// At most this many messages wait; more are refused (`RAMPART_ENOSPC` for the sender).
    public static let capacity = 16

    private let condition = NSCondition()
    private var items: [Item] = []
    private var stopRequested = false

    init() {}

    /// Queues a message. Returns false if the inbox is full or the app is stopping.
    func post(_ item: Item) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopRequested else { return false }
        if case .message = item, items.count(where: { if case .message = $0 { true } else { false } }) >= Self.capacity {
            return false
        }
        items.append(item)
        condition.signal()
        return true
    }

    /// Asks the app to stop at its next event boundary.
    func requestStop() {
        condition.lock()
        stopRequested = true
        condition.signal()
        condition.unlock()
    }

    var isStopRequested: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopRequested
    }

    /// The next item, waiting until `deadline` at most. Returns nil on a timeout or a stop request.
    func next(until deadline: Date?) -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !stopRequested {
            if let deadline {
                if !condition.wait(until: deadline) { return nil }
            } else {
                condition.wait()
            }
        }
        if stopRequested { return nil }
        return items.removeFirst()
    }
}

/// Routes app-to-app messages between the running apps of one runtime. A message passes only if both
/// apps' manifests name each other in `AllowedApplicationConnections`.
public final class AppMessageBus: Sendable {
    struct Member {
        var allowed: Set<String>
        var inbox: AppInbox
    }
    private let members = Mutex<[String: Member]>([:])

    /// An empty bus.
    public init() {}

    func join(componentID: String, allowed: Set<String>, inbox: AppInbox) {
        members.withLock { $0[componentID] = Member(allowed: allowed, inbox: inbox) }
    }

    func leave(componentID: String, inbox: AppInbox) {
        members.withLock { if $0[componentID]?.inbox === inbox { $0[componentID] = nil } }
    }

    /// Sends `bytes` from one app to another. Returns a host result code.
    func send(from sender: String, allowed: Set<String>, to recipient: String, bytes: [UInt8]) -> Int32 {
        guard allowed.contains(recipient) else { return HostResult.permissionDenied }
        guard let target = members.withLock({ $0[recipient] }) else { return HostResult.notFound }
        guard target.allowed.contains(sender) else { return HostResult.permissionDenied }
        return target.inbox.post(.message(kind: HostResult.messageFromApp, sender: sender, bytes: bytes))
            ? Int32(bytes.count) : HostResult.noSpace
    }
}
