import Foundation
import RampartCore
import Synchronization

/// Counts servicing bytes on the wire per UTC month and keeps the count in `D/network/usage.json`, so a restart
/// does not forget what the month has used.
public final class ServicingDataMeter: Sendable {
    private struct Stored: Codable {
        var month: String
        var bytes: Int64
        var budgetBytes: Int64?
        var exceededForCriticalUpdate: Bool
    }

    private let file: URL?
    private let state: Mutex<(usage: Stored, persisted: Int64)>
    /// Bytes counted between writes of the file.
    static let persistEvery: Int64 = 64 * 1024

    /// A meter kept in the state directory; `nil` keeps it in memory only.
    public init(state: DeviceState?, now: Date = Date()) {
        file = state.map { $0.directory.appendingPathComponent("network/usage.json") }
        var stored = Stored(month: Self.month(of: now), bytes: 0, budgetBytes: nil, exceededForCriticalUpdate: false)
        if let file, let data = try? Data(contentsOf: file), let loaded = try? JSONDecoder().decode(Stored.self, from: data),
            loaded.bytes >= 0
        {
            stored = loaded
        }
        self.state = Mutex((stored, stored.bytes))
    }

    /// `YYYY-MM` in UTC.
    public static func month(of date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month], from: date)
        return String(format: "%04d-%02d", parts.year ?? 1970, parts.month ?? 1)
    }

    /// Adds bytes that crossed the wire.
    public func add(_ bytes: Int, now: Date = Date()) {
        let write = state.withLock { state -> Stored? in
            rollOver(&state, now: now)
            state.usage.bytes += Int64(bytes)
            guard state.usage.bytes - state.persisted >= Self.persistEvery else { return nil }
            state.persisted = state.usage.bytes
            return state.usage
        }
        if let write { persist(write) }
    }

    /// This month's use.
    public func usage(now: Date = Date()) -> ServicingDataUsage {
        state.withLock { state in
            rollOver(&state, now: now)
            return ServicingDataUsage(
                month: state.usage.month, bytes: state.usage.bytes, budgetBytes: state.usage.budgetBytes,
                exceededForCriticalUpdate: state.usage.exceededForCriticalUpdate)
        }
    }

    /// Records the group's budget as the service last stated it.
    public func setBudget(_ bytes: Int64?) {
        update { $0.budgetBytes = bytes }
    }

    /// Records that a security-critical update was downloaded beyond the budget this month.
    public func markExceededForCriticalUpdate() {
        update { $0.exceededForCriticalUpdate = true }
    }

    /// Writes the count now (at shutdown).
    public func flush() {
        let usage = state.withLock { state in
            state.persisted = state.usage.bytes
            return state.usage
        }
        persist(usage)
    }

    private func update(_ change: (inout Stored) -> Void) {
        let usage = state.withLock { state in
            rollOver(&state, now: Date())
            change(&state.usage)
            state.persisted = state.usage.bytes
            return state.usage
        }
        persist(usage)
    }

    private func rollOver(_ state: inout (usage: Stored, persisted: Int64), now: Date) {
        let month = Self.month(of: now)
        guard month != state.usage.month else { return }
        state.usage = Stored(month: month, bytes: 0, budgetBytes: state.usage.budgetBytes, exceededForCriticalUpdate: false)
        state.persisted = -Self.persistEvery  // write the new month at the next count
    }

    private func persist(_ usage: Stored) {
        guard let file else { return }
        try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let data = try? JSONEncoder().encode(usage) { try? SecureFile.write(data, to: file) }
    }
}
