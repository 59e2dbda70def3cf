import Foundation
import RampartCore
import Synchronization

/// Counts servicing bytes on the wire per UTC month and keeps the count in `D/network/usage.json`, so a restart
/// does not forget what the month has used.
public final class ServicingDataMeter: Sendable {
    private let file: URL?
    private let state: Mutex<(usage: ServicingDataUsage, persisted: Int64)>
    /// Serialises writes of the file, each of the latest count.
    private let writing = Mutex(())
    /// Set when the stored count could not be read: it was moved aside (`usage.json.corrupt`) and counting started
    /// again from zero. The runtime logs it.
    public let loadProblem: String?
    /// Bytes counted between writes of the file.
    static let persistEvery: Int64 = 64 * 1024

    /// A meter kept in the state directory; `nil` keeps it in memory only.
    public init(state: DeviceState?, now: Date = Date()) {
        file = state.map { $0.directory.appendingPathComponent("network/usage.json") }
        var stored = ServicingDataUsage(month: Self.month(of: now), bytes: 0, budgetBytes: nil)
        var problem: String?
        if let file, FileManager.default.fileExists(atPath: file.path) {
            if let data = try? Data(contentsOf: file), let loaded = try? JSONDecoder().decode(ServicingDataUsage.self, from: data), loaded.bytes >= 0,
                loaded.month.count == 7
            {
                stored = loaded
            } else {
                problem = SecureFile.setAside(file, consequence: "this month's count starts at 0.")
            }
        }
        loadProblem = problem
        self.state = Mutex((stored, stored.bytes))
    }

    /// `YYYY-MM` in UTC.
    public static func month(of date: Date) -> String { UTCTime(date).yearMonth }

    /// Adds bytes that crossed the wire.
    public func add(_ bytes: Int, now: Date = Date()) {
        let due = state.withLock { state -> Bool in
            rollOver(&state, now: now)
            state.usage.bytes += Int64(bytes)
            guard state.usage.bytes - state.persisted >= Self.persistEvery else { return false }
            state.persisted = state.usage.bytes
            return true
        }
        if due { persist() }
    }

    /// This month's use.
    public func usage(now: Date = Date()) -> ServicingDataUsage {
        state.withLock { state in
            rollOver(&state, now: now)
            return state.usage
        }
    }

    /// Records the group's budget as the service last stated it (written only when it changed).
    public func setBudget(_ bytes: Int64?) {
        guard state.withLock({ $0.usage.budgetBytes != bytes }) else { return }
        update { $0.budgetBytes = bytes }
    }

    /// Records that a security-critical update was downloaded beyond the budget this month.
    public func markExceededForCriticalUpdate() {
        update { $0.exceededForCriticalUpdate = true }
    }

    /// Writes the count now (at shutdown).
    public func flush() {
        state.withLock { $0.persisted = $0.usage.bytes }
        persist()
    }

    private func update(_ change: (inout ServicingDataUsage) -> Void) {
        state.withLock { state in
            rollOver(&state, now: Date())
            change(&state.usage)
            state.persisted = state.usage.bytes
        }
        persist()
    }

    /// Starts a new month only forward: a clock that jumps back (no RTC before time sync) keeps the count.
    private func rollOver(_ state: inout (usage: ServicingDataUsage, persisted: Int64), now: Date) {
        let month = Self.month(of: now)
        guard month > state.usage.month else { return }
        state.usage = ServicingDataUsage(month: month, bytes: 0, budgetBytes: state.usage.budgetBytes)
        state.persisted = -Self.persistEvery  // write the new month at the next count
    }

    /// Writes the latest count, one writer at a time.
    private func persist() {
        guard let file else { return }
        writing.withLock { _ in
            let latest = state.withLock { $0.usage }
            try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            if let data = try? JSONEncoder().encode(latest) { try? SecureFile.write(data, to: file) }
        }
    }
}
