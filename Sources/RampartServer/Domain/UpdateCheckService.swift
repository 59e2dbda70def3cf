import Foundation
import RampartCore
import RampartStore
import RampartTUF
import ServiceLifecycle
import Synchronization

/// Push "check now" to devices through a long-poll, and their update reports back.
///
/// Requests live in the database, so any replica can take the device's poll.
public struct UpdateCheckService: Sendable {
    let context: DomainContext
    let repository: TUFRepositoryService

    /// How often a waiting poll looks at this process's signals (memory), and at the database, where a
    /// request made through another replica shows up.
    static let signalInterval: Duration = .milliseconds(250)
    static let databaseInterval = 20  // signal intervals: every 5 s

    /// Requests made through this process, by device, so its waiting polls answer at once.
    static let signals = Mutex<[String: Int]>([:])

    public init(context: DomainContext, repository: TUFRepositoryService) {
        self.context = context
        self.repository = repository
    }

    /// Asks a device to check for updates within seconds (Contributor or above).
    public func checkNow(tenant: RampartID, deviceID rawID: String, caller: UserRecord) async throws {
        let deviceID = rawID.lowercased()
        try await context.audited(Actor(user: caller), tenant: tenant, action: "device.update-check", target: deviceID) { session in
            _ = try await context.authorize(caller, tenant: tenant, .update, session: session)
            guard let device = try await session.device(id: deviceID), device.tenantID == tenant else {
                throw RampartError.notFound("Device \(deviceID)")
            }
            try await session.requestUpdateCheck(deviceID: deviceID, at: context.clock.now())
        }
        Self.signals.withLock { $0[deviceID, default: 0] += 1 }
    }

    /// A device's long-poll: answers as soon as a check is requested, or after `wait`.
    ///
    /// A request stays pending until the device actually checks (``TUFRepositoryService/deviceSettings``
    /// clears it): a poll the device already gave up on (a cut link, a NAT timeout) may answer into a dead
    /// connection, and the device's next poll must still hear it.
    ///
    /// A server shutting down answers waiting polls at once (`checkNow` false) instead of holding its
    /// shutdown for up to the whole wait.
    public func waitForCheck(deviceID: String, wait: Duration) async throws -> UpdateNotification {
        do {
            return try await cancelWhenGracefulShutdown { try await poll(deviceID: deviceID, wait: wait) }
        } catch is CancellationError {
            return UpdateNotification(checkNow: false)
        }
    }

    private func poll(deviceID: String, wait: Duration) async throws -> UpdateNotification {
        let deadline = ContinuousClock.now + wait
        var seen = Self.signals.withLock { $0[deviceID] }
        var ticks = 0
        while true {
            let signal = Self.signals.withLock { $0[deviceID] }
            if ticks % Self.databaseInterval == 0 || signal != seen {
                seen = signal
                if try await context.store.read({ try await $0.hasUpdateCheck(deviceID: deviceID) }) {
                    return UpdateNotification(checkNow: true)
                }
            }
            guard ContinuousClock.now < deadline, !Task.isCancelled, !Task.isShuttingDownGracefully else {
                return UpdateNotification(checkNow: false)
            }
            ticks += 1
            try await Task.sleep(for: Self.signalInterval)
        }
    }

    /// A device is checking now: its pending check-now request, if any, is done. A read when there is none, as
    /// on nearly every check.
    static func markChecked(deviceID: String, store: Store) async throws {
        signals.withLock { _ = $0.removeValue(forKey: deviceID) }
        if try await store.read({ try await $0.hasUpdateCheck(deviceID: deviceID) }) {
            _ = try await store.transaction { try await $0.takeUpdateCheck(deviceID: deviceID) }
        }
    }

    /// Stores a device's update report.
    ///
    /// - Throws: 400 `invalidRequest` for link facts or data use out of range.
    public func report(deviceID: String, report: UpdateReport) async throws {
        try Self.validate(report)
        let text = String(decoding: try JSONCoding.encoder().encode(report), as: UTF8.self)
        try await context.store.transaction { try await $0.setUpdateReport(deviceID: deviceID, report: text) }
    }

    /// The link facts come from a router the device does not trust and are shown to users as they are, so
    /// their ranges are checked here and text with control characters is refused.
    static func validate(_ report: UpdateReport) throws {
        if let link = report.link {
            if let dBm = link.signalDBm, !(-200...0).contains(dBm) {
                throw RampartError.invalidRequest("'link.signalDBm' must be from -200 to 0 dBm; got \(dBm).")
            }
            if let ber = link.bitErrorRate, !(0...7).contains(ber) {
                throw RampartError.invalidRequest("'link.bitErrorRate' must be a class from 0 to 7; got \(ber).")
            }
            if let name = link.operatorName,
                name.count > 64 || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            {
                throw RampartError.invalidRequest(
                    "'link.operatorName' has at most 64 characters and no control characters.")
            }
            guard (link.routerSentBytes ?? 0) >= 0, (link.routerReceivedBytes ?? 0) >= 0 else {
                throw RampartError.invalidRequest("The router's byte counts in 'link' must not be negative.")
            }
        }
        if let usage = report.dataUsage {
            let parts = usage.month.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].count == 4, parts[1].count == 2,
                parts.allSatisfy({ $0.allSatisfy { ("0"..."9").contains($0) } }), let month = Int(parts[1]),
                (1...12).contains(month)
            else {
                throw RampartError.invalidRequest("'dataUsage.month' must be a UTC month as YYYY-MM.")
            }
            guard usage.bytes >= 0, (usage.budgetBytes ?? 0) >= 0 else {
                throw RampartError.invalidRequest("'dataUsage.bytes' and 'dataUsage.budgetBytes' must not be negative.")
            }
        }
    }

    /// What a device runs against what it should run.
    public func deploymentStatus(tenant: RampartID, deviceID rawID: String, caller: UserRecord) async throws -> DeploymentStatus {
        let deviceID = rawID.lowercased()
        return try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            guard let device = try await session.device(id: deviceID), device.tenantID == tenant else {
                throw RampartError.notFound("Device \(deviceID)")
            }
            let group = try await session.deviceGroupID(ofDevice: deviceID)
            let content = try await TUFRepositoryService.content(
                tenant: tenant, session: session, scope: Set(group.map { [TUFRepositoryService.roleName(group: $0)] } ?? []))
            let offered = group.flatMap { content[TUFRepositoryService.roleName(group: $0)]?.targets.values.map { $0 } } ?? []
            let ids = offered.compactMap { target -> RampartID? in
                if case .string(let text)? = target.custom?["imageId"] { return RampartID(text) }
                return nil
            }
            let report = try await session.updateReport(deviceID: deviceID).flatMap {
                try? JSONCoding.decoder().decode(UpdateReport.self, from: Data($0.utf8))
            }
            let wantedApps = Set(offered.filter { $0.custom?["kind"] == .string("app") }.compactMap { target -> String? in
                if case .string(let text)? = target.custom?["imageId"] { return text }
                return nil
            })
            let installed = Set(report?.installedApps.compactMap(\.imageId) ?? [])
            return DeploymentStatus(
                deviceId: deviceID, deviceGroupId: group, targetImageIds: ids.sorted { $0.description < $1.description },
                report: report, upToDate: report != nil && wantedApps == installed)
        }
    }
}
