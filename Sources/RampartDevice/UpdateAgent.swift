import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import RampartCore
import RampartImage
import RampartTUF
import ServiceLifecycle
import Synchronization

/// A wake-up signal for a sleeping loop: `ring()` ends the current `wait(upTo:)` early.
public final class Doorbell: Sendable {
    private let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    public init() {}

    /// Wakes the waiter, or the next one.
    public func ring() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            if state.waiter == nil { state.rung = true }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until rung, `duration` passes, or the task is cancelled.
    public func wait(upTo duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = self.state.withLock { state -> Bool in
                            // Cancelled before registering: the group is done; never wait unwoken.
                            if state.rung || Task.isCancelled {
                                state.rung = false
                                return true
                            }
                            state.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.ring()
                }
            }
            await group.next()
            group.cancelAll()
            self.ring()  // release the other child if it is the continuation
            _ = self.state.withLock { $0.rung = false }
        }
    }
}

/// The device's update agent (DESIGN §4–5): checks at start, every 20 h with jitter, and on push; verifies
/// everything through TUF; installs apps atomically and runtimes into the inactive slot; reports.
public struct UpdateAgent: Service {
    let state: DeviceState
    let server: String
    let serverCAPEM: String?
    let status: DeviceStatusBoard
    let logger: Logger
    /// Rings the attestation agent after apps change, so the new measurements are appraised.
    let attestNow: Doorbell
    /// Rung by push notifications and `check-now`.
    public let checkNow: Doorbell
    /// Rung when a check has fetched the device's settings, which ends a pending check-now on the service.
    let checkStarted = Doorbell()
    /// Called after a runtime was installed: the process should restart into the new slot.
    let restart: @Sendable () async -> Void
    var schedule = DeviceAgent.Schedule()
    /// How long one push long-poll waits; each empty poll costs a few hundred bytes on the wire, so this
    /// trades push latency for data on metered links. 0 disables push.
    public var pushWaitSeconds = UpdateAgent.defaultPushWaitSeconds
    /// The default push long-poll wait.
    public static let defaultPushWaitSeconds = 1200
    /// The HTTP client; the shared one by default.
    public var httpClient: HTTPClient = .shared
    /// Rung after apps were installed or removed, for the app supervisor.
    public var appsInstalled: Doorbell?
    /// Where failed updates are queued as error events.
    public var errors: ErrorEventQueue?
    /// Apps' deferrals (`SoftwareUpdateDeferral`): nothing installs while one is in force, but a critical runtime.
    public var deferral: UpdateDeferral?
    /// The service egress: its clients carry every request, its path check runs before every check, and its
    /// meter counts the month's servicing data against the group's budget.
    public var egress: ServiceEgress? {
        didSet {
            if let egress {
                httpClient = egress.httpClient
                longPollClient = egress.longPollClient
            }
        }
    }
    /// Tells the apps that take system events that an update installs in some seconds; returns how many were
    /// told. They may defer it (`SoftwareUpdateDeferral`) within ``updateNotice``.
    public var updatePending: (@Sendable (_ seconds: Int) async -> Int)?
    /// How long apps have between the update-pending event and the download.
    public var updateNotice: Duration = .seconds(10)
    /// The client of the push long-poll, which is idle by design.
    var longPollClient: HTTPClient = .shared
    /// Link facts from the router control channel: large downloads wait for an acceptable link.
    public var link: LinkBoard?
    /// Downloads of at least this many bytes wait for an acceptable link.
    public static let largeDownloadBytes = 64 * 1024

    public init(
        state: DeviceState, server: String, serverCAPEM: String?, status: DeviceStatusBoard, logger: Logger,
        attestNow: Doorbell, checkNow: Doorbell = Doorbell(), restart: @escaping @Sendable () async -> Void
    ) {
        self.state = state
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.serverCAPEM = serverCAPEM
        self.status = status
        self.logger = logger
        self.attestNow = attestNow
        self.checkNow = checkNow
        self.restart = restart
    }

    var metadataDirectory: URL { state.directory.appendingPathComponent("tuf") }
    var downloads: URL { state.directory.appendingPathComponent("downloads") }

    public func run() async throws {
        AppStore(state: state).recover()
        await withTaskGroup(of: Void.self) { group in
            if pushWaitSeconds > 0 { group.addTask { await listenForPush() } }
            group.addTask {
                var failures = 0
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    let delay: TimeInterval
                    let switching = SlotStore(state: state).pending != nil
                    do {
                        let report = try await checkOnce()
                        await send(report)
                        failures = 0
                        // Soon again while waiting for a certificate, or for a new runtime to confirm its health,
                        // so the service hears how the switch ended.
                        // A download that waits for the link looks again every 15 minutes, and at once when the
                        // router reports a better link.
                        let linkWait: TimeInterval = link?.snapshot.downloadsWaitFor != nil ? 15 * 60 : .infinity
                        delay = report.result == "waiting" || switching
                            ? 5
                            : min(
                                schedule.delay(validity: 24 * 3600), linkWait,
                                max(60, deferral?.deferredUntil()?.timeIntervalSinceNow ?? .infinity))
                        if report.result == "restart" {
                            // Ask for the restart, then stay until the group shuts down: a service that returns
                            // early would make the group stop with an error instead of a clean restart.
                            await restart()
                            try? await gracefulShutdown()
                            return
                        }
                    } catch {
                        failures += 1
                        delay = schedule.backoff(failures: failures)
                        let failure = Self.classify(error)
                        let report = makeReport(failure.code.rawValue, failure.message, Date())
                        record(report)
                        // A link that failed is the network's story, not an update failure; and a report sent over
                        // it would only hold the retry back. The next check reports.
                        if !Self.isLinkFailure(failure) {
                            await send(report)
                            errors?.record(.updateFailure, description: "\(failure.code.rawValue): \(failure.message)")
                        }
                        logger.warning("Update check failed", metadata: ["code": "\(failure.code)", "message": "\(failure.message)"])
                    }
                    await cancelWhenGracefulShutdownOrRing(delay)
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func cancelWhenGracefulShutdownOrRing(_ delay: TimeInterval) async {
        try? await cancelWhenGracefulShutdown { await checkNow.wait(upTo: .seconds(delay)) }
    }

    /// Long-polls the server for "check now" and rings ``checkNow``.
    func listenForPush() async {
        var failures = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                guard let tenant = status.snapshot.tenantId, let tls = try deviceTLS() else {
                    try await Task.sleep(for: .seconds(5))
                    continue
                }
                var poll = HTTPClientRequest(url: "\(server)/v1/tuf/\(tenant)/notifications?wait=\(pushWaitSeconds)")
                poll.tlsConfiguration = tls
                let request = poll
                let client = longPollClient
                let timeout = TimeAmount.seconds(Int64(pushWaitSeconds) + 30)
                let response = try await cancelWhenGracefulShutdown { try await client.execute(request, timeout: timeout) }
                let body = try await response.body.collect(upTo: 4096)
                guard response.status == .ok else { throw RampartError(.serverUnreachable, "notifications answered \(response.status.code)") }
                failures = 0
                if let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any], object["checkNow"] as? Bool == true {
                    logger.info("Update check requested by the service")
                    checkNow.ring()
                    // The request stays pending on the service until a check fetches the settings: poll again only
                    // after that, or every poll would answer at once for as long as a download runs.
                    try? await cancelWhenGracefulShutdown { await checkStarted.wait(upTo: .seconds(300)) }
                }
            } catch {
                failures += 1
                try? await Task.sleep(for: .seconds(schedule.backoff(failures: failures)))
            }
        }
    }

    /// Tells the service what the device runs now (best effort: the next check sends it again).
    public func send(_ report: UpdateReport) async {
        guard let tenant = status.snapshot.tenantId, let certificate = state.validCertificate() else { return }
        _ = try? await DeviceTLS.postJSON(
            report, to: "\(server)/v1/tuf/\(tenant)/report", serverCAPEM: serverCAPEM, certificate: certificate, httpClient: httpClient)
    }

    func deviceTLS() throws -> TLSConfiguration? {
        guard let certificate = state.validCertificate() else { return nil }
        return try DeviceTLS.configuration(serverCAPEM: serverCAPEM, certificate: certificate)
    }

    var runtimeVersion: String { SlotStore(state: state).activeVersion ?? RampartVersion.current }
    var lastSwitch: String? {
        SlotStore(state: state).lastOutcome.map { "\($0.result) \($0.version)\($0.reason.map { ": \($0)" } ?? "")" }
    }
    var installedImages: [UpdateReport.InstalledImage] {
        AppStore(state: state).installed().map { .init(componentId: $0.componentID, name: $0.name, version: $0.version, imageId: $0.imageID) }
    }

    func record(_ report: UpdateReport) {
        status.update { $0.update = report }
    }

    /// One update check.
    ///
    /// - Returns: What happened; `restart` when a runtime was installed and the process must restart.
    @discardableResult
    public func checkOnce(now: Date = Date()) async throws -> UpdateReport {
        guard let tenant = status.snapshot.tenantId, let tls = try deviceTLS() else {
            return finish("waiting", "No valid device certificate yet; updates start after attestation.", now)
        }
        try await egress?.checkPath()
        let fetcher = HTTPFetcher(client: httpClient, tlsConfiguration: tls)
        let base = "\(server)/v1/tuf/\(tenant)"
        guard let settingsBytes = try await fetcher.fetch("\(base)/device", maximumLength: 65_536) else {
            // 403/404: the service no longer accepts this certificate (a revoked CA, a device moved between
            // tenants). A fresh attestation is the remedy, so ask for one now rather than in a day.
            attestNow.ring()
            throw RampartError(.serverUnreachable, "The service refused this device's certificate for updates; attesting again.")
        }
        checkStarted.ring()
        let settings = try JSONCoding.decoder().decode(DeviceUpdateSettings.self, from: Data(settingsBytes))
        egress?.meter.setBudget(settings.dataBudgetBytes)
        followDevelopmentMode(settings)
        // A device in development mode takes no cloud app updates (REFERENCE), whatever its group says: a
        // deployment would replace or remove its sideloaded apps.
        let development = DevelopmentMode(state: state).capability() != nil

        // Trust: the TUF root, first fetched over the pinned, mutually authenticated channel, then only
        // ever replaced through TUF's own root rotation.
        if !FileManager.default.fileExists(atPath: metadataDirectory.appendingPathComponent("root.json").path) {
            guard let root = try await fetcher.fetch("\(base)/metadata/1.root.json", maximumLength: TUFLimits().rootMaximumLength) else {
                throw RampartError(.trustedMetadataMissing, "The service has no TUF root for this tenant.")
            }
            try TUFUpdater.initialize(metadataDirectory: metadataDirectory, trustedRoot: Data(root))
        }
        var updater = TUFUpdater(metadataDirectory: metadataDirectory, metadataBaseURL: "\(base)/metadata/", fetcher: fetcher)
        try await updater.refresh()
        var offered: [TargetFile] = []
        for prefix in settings.targetPrefixes {
            let role = prefix.hasPrefix("feed-") ? prefix : "group-\(prefix)"
            offered += try await updater.targets(ofDelegatedRole: role)
        }

        guard settings.updatePolicy != .noUpdates else {
            return finish("upToDate", "This device's group takes no updates (NoUpdates).", now)
        }
        // What to fetch: the group's apps that differ from what is installed, and the newest runtime offered if
        // newer than what runs. Runtimes come from the feed only (deployments hold apps), and a version that
        // already rolled back here is not tried again: only a newer release is.
        let store = AppStore(state: state)
        let takesApps = settings.updatePolicy == .updateAll && !development
        let wanted = takesApps ? offered.filter { $0.custom?["kind"] == .string("app") } : []
        let installed = Dictionary(uniqueKeysWithValues: store.installed().map { ($0.componentID, $0) })
        let appDownloads = wanted.filter { target in
            guard case .string(let component)? = target.custom?["componentId"], case .string(let imageID)? = target.custom?["imageId"]
            else { return false }
            return installed[component]?.imageID != imageID
        }
        let failed = SlotStore(state: state).lastOutcome.flatMap { $0.result == "rolledBack" ? $0.version : nil }
        let runtimes = offered.filter { target in
            guard target.custom?["kind"] == .string("runtime"), target.path.hasPrefix("feed-") else { return false }
            if case .string(let version)? = target.custom?["version"], version == failed { return false }
            return true
        }
        let newestRuntime = runtimes.max(by: { Self.precedes(Self.version($0), Self.version($1)) }).flatMap { newest in
            Self.precedes(Self.versionParts(runtimeVersion), Self.version(newest)) && SlotStore(state: state).pending == nil
                ? newest : nil
        }
        // Only the runtime about to install makes this check critical: it alone goes past the maintenance window,
        // apps' deferrals, the link's wait and the data budget. Apps wait for all of these as ever.
        let critical = newestRuntime?.custom?["critical"] == .bool(true)
        var appsWaitFor: String?
        if let text = settings.maintenanceWindow, let window = try? MaintenanceWindow(parsing: text), !window.contains(now) {
            appsWaitFor = "Outside the maintenance window \(window)."
        } else if let until = deferral?.deferredUntil(now: now) {
            appsWaitFor = Self.deferredByApp(until)
        }
        if let appsWaitFor, !critical { return finish("deferred", appsWaitFor, now) }
        let ordinary = (appsWaitFor == nil ? appDownloads : []) + (critical ? [] : newestRuntime.map { [$0] } ?? [])
        if let deferred = admitDownloads(ordinary, settings: settings, now: now) {
            guard critical else { return deferred }
            appsWaitFor = appsWaitFor ?? deferred.message
        }
        if critical, let runtime = newestRuntime { admitCriticalRuntime(runtime, settings: settings, now: now) }
        if let appsWaitFor { logger.notice("A critical runtime installs; apps wait", metadata: ["reason": "\(appsWaitFor)"]) }

        // Apps that take system events hear of the update first, and may defer it (not a critical runtime):
        // before the download, so a deferral costs no data.
        let coming = (appsWaitFor == nil ? appDownloads : []) + (newestRuntime.map { [$0] } ?? [])
        if !coming.isEmpty, let updatePending, await updatePending(Int(updateNotice.components.seconds)) > 0 {
            try? await Task.sleep(for: updateNotice)
            if let until = deferral?.deferredUntil(now: Date()) {
                // Only the critical runtime goes past an app's deferral; the apps wait.
                guard critical else { return finish("deferred", Self.deferredByApp(until), now) }
                appsWaitFor = appsWaitFor ?? Self.deferredByApp(until)
            }
        }

        // Apps: the group's deployment, exactly, unless the policy keeps apps as they are.
        var appsChanged = false
        if takesApps, appsWaitFor == nil {
            for target in appDownloads {
                guard case .string(let component)? = target.custom?["componentId"], case .string(let imageID)? = target.custom?["imageId"]
                else { continue }
                let package = try await download(target, base: base, fetcher: fetcher)
                try store.install(package, imageID: imageID)
                appsChanged = true
                logger.info("Installed app", metadata: ["component": "\(component)", "version": "\(package.manifest.version)"])
            }
            let wantedComponents = Set(wanted.compactMap { target -> String? in
                if case .string(let component)? = target.custom?["componentId"] { return component }
                return nil
            })
            for component in installed.keys where !wantedComponents.contains(component) {
                try store.remove(componentID: component)
                appsChanged = true
                logger.info("Removed app no longer deployed", metadata: ["component": "\(component)"])
            }
        }

        // System software.
        if let newest = newestRuntime {
            let package = try await download(newest, base: base, fetcher: fetcher)
            guard package.manifest.kind == .runtime, newest.custom?["version"] == .string(package.manifest.version) else {
                throw RampartError(.packageSignatureInvalid, "\(newest.path) is not the runtime version TUF describes.")
            }
            try SlotStore(state: state).install(payload: package.payload, manifestJSON: package.manifest.jsonText, version: package.manifest.version)
            let report = finish("installed", "Runtime \(package.manifest.version) installed in the inactive slot; restarting into it.", now)
            logger.info("Installed runtime; restarting", metadata: ["version": "\(package.manifest.version)"])
            var restarting = report
            restarting.result = "restart"
            return restarting
        }
        if appsChanged {
            attestNow.ring()
            appsInstalled?.ring()
            return finish("installed", "Apps updated to the group's deployment.", now)
        }
        return finish("upToDate", nil, now)
    }

    /// Follows the server on development mode: stores the capability it hands out, and leaves development
    /// mode (every sideloaded app and the capability go) when it says the device is not in it; a server that
    /// says nothing changes nothing. When the mode changes the device attests again, so that its certificate
    /// reflects what it now runs.
    func followDevelopmentMode(_ settings: DeviceUpdateSettings) {
        let mode = DevelopmentMode(state: state)
        do {
            if let token = settings.developmentCapability {
                if try mode.install(token) {
                    logger.notice("Development mode is on: apps may be sideloaded")
                    attestNow.ring()
                }
            } else if settings.developmentMode == false, mode.hasTraces {
                let removed = try mode.leave()
                logger.notice("Development mode is off: the capability and sideloaded apps are removed", metadata: [
                    "apps": "\(removed.joined(separator: ","))"
                ])
                if !removed.isEmpty { appsInstalled?.ring() }
                attestNow.ring()
            }
        } catch {
            logger.warning("The development capability from the service was not taken", metadata: ["error": "\(error)"])
        }
    }

    static func deferredByApp(_ until: Date) -> String {
        "An app deferred updates until \(Timestamp.format(until)) (SoftwareUpdateDeferral)."
    }

    /// A failure as a ``RampartError``: transport errors (timeouts, resets, refused connections) are the link's;
    /// anything else (a full disk, a malformed answer) stays an update failure.
    package static func classify(_ error: any Error) -> RampartError {
        if let error = error as? RampartError { return error }
        if error is HTTPClientError || error is IOError || error is ChannelError || error is NIOConnectionError {
            return RampartError(
                .serverUnreachable, "The link to the service failed: \(error). The check is retried; downloads resume.", status: 503)
        }
        return RampartError(.internalError, "\(error)", status: 500)
    }

    /// Whether a failure is the network's: the service unreachable (transport errors included), a fetch that
    /// failed or broke off (HTTPFetcher's `downloadFailed`, which also covers the service answering 5xx: its story,
    /// not this device's), or the path refused.
    package static func isLinkFailure(_ error: RampartError) -> Bool {
        [.serverUnreachable, .downloadFailed, .networkPathRefused].contains(error.code)
    }

    private func finish(_ result: String, _ message: String?, _ now: Date) -> UpdateReport {
        let report = makeReport(result, message, now)
        record(report)
        return report
    }

    /// A report of what runs, with the link facts and this month's servicing data.
    func makeReport(_ result: String, _ message: String?, _ now: Date) -> UpdateReport {
        var report = UpdateReport(
            result: result, message: message, at: now, runtimeVersion: runtimeVersion, installedApps: installedImages,
            lastSwitch: lastSwitch, link: link?.snapshot.facts, dataUsage: egress?.meter.usage(now: now))
        report.developmentMode = DevelopmentMode(state: state).capability() != nil
        return report
    }

    /// Whether the downloads may start now: within the group's data budget and, when large, on an acceptable
    /// link. Returns the deferral to report otherwise.
    func admitDownloads(_ targets: [TargetFile], settings: DeviceUpdateSettings, now: Date) -> UpdateReport? {
        let bytes = remainingBytes(targets)
        guard bytes > 0 else { return nil }
        if let budget = settings.dataBudgetBytes, let meter = egress?.meter {
            let used = meter.usage(now: now).bytes
            if used + Int64(bytes) > budget {
                return finish(
                    "deferred",
                    "The update needs \(ServicingDataUsage.megabytes(Int64(bytes))) and this month's servicing has used "
                        + "\(ServicingDataUsage.megabytes(used)) of the group's \(ServicingDataUsage.megabytes(budget)) budget; "
                        + "it waits for next month.", now)
            }
        }
        if bytes >= Self.largeDownloadBytes, let reason = link?.reasonToWait(now: now) {
            return finish("deferred", "A download of \(ServicingDataUsage.megabytes(Int64(bytes))) waits for an acceptable link: \(reason).", now)
        }
        return nil
    }

    /// A security-critical runtime downloads whatever the budget and the link say; going past the budget is
    /// recorded, so the device reports it.
    func admitCriticalRuntime(_ target: TargetFile, settings: DeviceUpdateSettings, now: Date) {
        let bytes = remainingBytes([target])
        guard let budget = settings.dataBudgetBytes, let meter = egress?.meter else { return }
        let used = meter.usage(now: now).bytes
        guard used + Int64(bytes) > budget else { return }
        meter.markExceededForCriticalUpdate()
        logger.warning("A security-critical update exceeds the data budget", metadata: ["needs": "\(bytes)", "used": "\(used)", "budget": "\(budget)"])
    }

    /// Bytes still to fetch for `targets`, counting what their partial files hold.
    func remainingBytes(_ targets: [TargetFile]) -> Int {
        targets.reduce(0) { total, target in
            let partial = target.hashes["sha256"].map { downloads.appendingPathComponent("\($0).part") }
            let have = partial.flatMap { try? FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int } ?? 0
            return total + max(0, target.length - min(have, target.length))
        }
    }

    /// Downloads a target, resuming a partial file with HTTP Range, and verifies it against TUF and the
    /// package's own signed manifest before anything is installed.
    func download(_ target: TargetFile, base: String, fetcher: HTTPFetcher) async throws -> ImagePackage {
        guard let digest = target.hashes["sha256"] else {
            throw RampartError(.lengthOrHashMismatch, "\(target.path) has no SHA-256 in TUF.")
        }
        try FileManager.default.createDirectory(at: downloads, withIntermediateDirectories: true)
        let partial = downloads.appendingPathComponent("\(digest).part")
        var have = (try? Data(contentsOf: partial)) ?? Data()
        if have.count > target.length { have = Data() }
        if have.count < target.length {
            var request = HTTPClientRequest(url: "\(base)/targets/\(target.hashPrefixedPath)")
            request.tlsConfiguration = fetcher.tlsConfiguration
            if !have.isEmpty { request.headers.add(name: "Range", value: "bytes=\(have.count)-") }
            let response = try await httpClient.execute(request, timeout: .seconds(300))
            switch response.status.code {
            case 206: break
            case 200: have = Data()  // the server ignored the range: start over
            default: throw RampartError(.downloadFailed, "Downloading \(target.path) answered HTTP \(response.status.code).")
            }
            let handle: FileHandle
            if !FileManager.default.fileExists(atPath: partial.path) || have.isEmpty {
                FileManager.default.createFile(atPath: partial.path, contents: nil)
            }
            handle = try FileHandle(forWritingTo: partial)
            defer { try? handle.close() }
            try handle.truncate(atOffset: UInt64(have.count))
            try handle.seekToEnd()
            var count = have.count
            for try await chunk in response.body {
                count += chunk.readableBytes
                guard count <= target.length else {
                    try? FileManager.default.removeItem(at: partial)
                    throw RampartError(.downloadTooLarge, "\(target.path) is longer than the \(target.length) bytes TUF allows.")
                }
                try handle.write(contentsOf: Data(buffer: chunk))
                CrashPoint.reach("download")
            }
            try handle.synchronize()
            have = try Data(contentsOf: partial)
        }
        do {
            try TrustedMetadata.verifyLengthAndHashes(have, length: target.length, hashes: target.hashes, what: target.path)
        } catch {
            try? FileManager.default.removeItem(at: partial)
            throw error
        }
        let package = try ImagePackage(bytes: Array(have))
        guard case .string(let keyID)? = target.custom?["signingKeyId"], keyID == package.keyID,
            case .string(let payload)? = target.custom?["payloadSha256"], payload == package.manifest.payloadSHA256,
            case .string(let component)? = target.custom?["componentId"], component == package.manifest.componentID,
            case .string(let pem)? = target.custom?["signingKey"], let key = try? P256.Signing.PublicKey(pemRepresentation: pem),
            package.verifySignature(with: key)
        else {
            try? FileManager.default.removeItem(at: partial)
            throw RampartError(.packageSignatureInvalid, "\(target.path) does not match what TUF says about it (signing key and signature, payload, component).")
        }
        try? FileManager.default.removeItem(at: partial)
        return package
    }

    static func version(_ target: TargetFile) -> [Int] {
        if case .string(let text)? = target.custom?["version"] { return versionParts(text) }
        return []
    }

    /// Numeric dotted-version order: 1.9 < 1.10.
    static func precedes(_ lhs: [Int], _ rhs: [Int]) -> Bool {
        for (a, b) in zip(lhs, rhs) where a != b { return a < b }
        return lhs.count < rhs.count
    }

    static func versionParts(_ text: String) -> [Int] {
        text.split(separator: ".").map { Int($0.prefix { $0.isNumber }) ?? 0 }
    }
}
