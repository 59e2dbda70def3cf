import Crypto
import Foundation
import Logging
import RampartCore
import RampartImage
import RampartPKI
import RampartSandbox
import ServiceLifecycle
import Synchronization

/// Runs the installed apps (DESIGN §5): each in its own sandbox, restarted after a failure with exponential
/// backoff, every failure queued as an error event. Apps installed, replaced or removed by an update are
/// picked up when ``appsChanged`` rings. The local API starts and stops apps through it.
public actor AppSupervisor: Service {
    struct Slot {
        var app: AppStore.InstalledApp
        var status: AppStatus
        /// Whether the app should run (false after a stop request, a clean exit or an unloadable module).
        var wanted = true
        var removed = false
        var runner: AppRunner?
        /// Failures in a row; reset by a run that lasts ``AppSupervisor/healthyRun``.
        var consecutiveFailures = 0
        let wake = Doorbell()
        /// Tells this installation from a reinstall under the same component ID while the old run ends.
        let generation = UUID()
    }

    /// The longest wait between restarts.
    public static let backoffCap: TimeInterval = 300
    /// A run at least this long resets the backoff.
    public static let healthyRun: TimeInterval = 60
    /// This many failures in a row is a restart loop, reported once.
    public static let restartLoopThreshold = 5

    let state: DeviceState
    /// Whether the installed apps have been looked at once.
    private var reconciled = false
    let limits: AppLimits
    let board: any PeripheralBoard
    let bus = AppMessageBus()
    let errors: ErrorEventQueue
    let errorQueued: Doorbell?
    let logger: Logger
    /// Ring after apps were installed or removed.
    public nonisolated let appsChanged = Doorbell()
    let telemetry: AppTelemetrySender?
    let deferral: UpdateDeferral?
    /// The link facts apps with `NetworkConfig` may read.
    let link: LinkBoard?
    /// The device's TLS identity for apps with `DeviceAuthentication` (`rampart_tls_connect`).
    let deviceTLS: (@Sendable (String) -> AppTLSIdentity.Lookup)?
    /// Restarts the device runtime in an orderly way (an app's `rampart_reboot_request`).
    let restart: (@Sendable () async -> Void)?
    private let reboot = RebootRequest()
    private var slots: [String: Slot] = [:]

    /// Creates the supervisor of `state`'s apps.
    public init(
        state: DeviceState, limits: AppLimits = AppLimits(), board: any PeripheralBoard = VirtualPeripheralBoard(),
        errors: ErrorEventQueue, errorQueued: Doorbell? = nil, telemetry: AppTelemetrySender? = nil,
        deferral: UpdateDeferral? = nil, restart: (@Sendable () async -> Void)? = nil, link: LinkBoard? = nil,
        deviceTLS: (@Sendable (String) -> AppTLSIdentity.Lookup)? = nil, logger: Logger
    ) {
        self.deviceTLS = deviceTLS
        self.link = link
        self.telemetry = telemetry
        self.deferral = deferral
        self.restart = restart
        self.state = state
        self.limits = limits
        self.board = board
        self.errors = errors
        self.errorQueued = errorQueued
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            if let restart {
                group.addTask {
                    while !Task.isCancelled {
                        await self.reboot.bell.wait(upTo: .seconds(3600))
                        guard !Task.isCancelled, let component = self.reboot.take() else { continue }
                        self.logger.notice("An app asked to restart the device", metadata: ["component": "\(component)"])
                        await restart()
                        return
                    }
                }
            }
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                for (id, generation) in self.reconcile() {
                    group.addTask { await self.supervise(id, generation) }
                }
                await cancelWhenGracefulShutdown { await self.appsChanged.wait(upTo: .seconds(3600)) }
            }
            group.cancelAll()
        }
    }

    // MARK: Control, for the local API

    /// Every installed app's status, in component ID order.
    public func statuses() -> [AppStatus] {
        slots.values.filter { !$0.removed }.map { slot in
            var status = slot.status
            if let usage = slot.runner?.usage { status.apply(usage) }
            return status
        }.sorted { $0.componentId < $1.componentId }
    }

    /// One app's status.
    ///
    /// - Throws: ``RampartError`` `notFound` for an app that is not installed.
    public func status(of componentID: String) throws -> AppStatus {
        guard let status = statuses().first(where: { $0.componentId == componentID.lowercased() }) else {
            throw Self.notInstalled(componentID)
        }
        return status
    }

    /// Starts a stopped, exited or failed app now, forgetting its backoff.
    public func start(_ componentID: String) throws -> AppStatus {
        let id = componentID.lowercased()
        guard slots[id] != nil, slots[id]?.removed == false else { throw Self.notInstalled(componentID) }
        slots[id]?.wanted = true
        slots[id]?.consecutiveFailures = 0
        slots[id]?.status.nextStartAt = nil
        slots[id]?.wake.ring()
        return try status(of: id)
    }

    /// Tells every running app that takes system events that an update installs in `seconds`
    /// (`RAMPART_EVENT_UPDATE_PENDING`). Returns how many were told.
    public func notifyUpdatePending(inSeconds seconds: Int) -> Int {
        var told = 0
        for slot in slots.values where slot.runner?.notifyUpdatePending(inSeconds: seconds) == true {
            told += 1
        }
        return told
    }

    /// Whether a running app takes cloud-to-device messages from `tenant`.
    public func hasCloudRecipients(tenant: String) -> Bool {
        slots.values.contains { $0.runner?.acceptsCloudMessages(from: tenant) == true }
    }

    /// What became of a cloud-to-device message handed to an app.
    public enum CloudDelivery: Sendable, Equatable {
        /// The app's inbox took it.
        case taken
        /// The app is installed but cannot take it now: not running, or its inbox is full.
        case notNow
        /// No installed app has that component ID, or the running app's `DeviceAuthentication` does not
        /// cover the tenant: it would not take the message later either.
        case noRecipient
    }

    /// Hands a cloud-to-device message to the running app `componentID` names, if its `DeviceAuthentication`
    /// names `tenant` (or the nil UUID).
    public func deliverCloudMessage(_ payload: [UInt8], componentID: String, tenant: String) -> CloudDelivery {
        // Before the first look at the installed apps, nothing is known yet.
        guard reconciled else { return .notNow }
        guard let slot = slots[componentID.lowercased()], !slot.removed else { return .noRecipient }
        guard let runner = slot.runner else {
            // Stopped or between restarts: its manifest says whether it would take the message once it runs.
            let manifestFile = slot.app.payloadFile.deletingLastPathComponent().appendingPathComponent("app_manifest.json")
            guard let manifest = try? AppManifest(bytes: try Data(contentsOf: manifestFile)) else { return .notNow }
            guard let granted = manifest.granted.deviceAuthentication, AppCapabilities.deviceAuthentication(granted, covers: tenant) else {
                return .noRecipient
            }
            return .notNow
        }
        guard runner.acceptsCloudMessages(from: tenant) else { return .noRecipient }
        return runner.deliverCloudMessage(payload, tenant: tenant) ? .taken : .notNow
    }

    /// Stops an app at its next event boundary; it stays stopped until started.
    public func stop(_ componentID: String) throws -> AppStatus {
        let id = componentID.lowercased()
        guard slots[id] != nil, slots[id]?.removed == false else { throw Self.notInstalled(componentID) }
        slots[id]?.wanted = false
        slots[id]?.runner?.stop()
        if slots[id]?.runner == nil { slots[id]?.status.state = .stopped }
        slots[id]?.wake.ring()
        return try status(of: id)
    }

    static func notInstalled(_ componentID: String) -> RampartError {
        RampartError(.notFound, "No app with component ID \(componentID) is installed on this device.", status: 404)
    }

    // MARK: Supervision

    /// Brings the slots in line with the installed apps; returns the apps that need a supervising task.
    private func reconcile() -> [(String, UUID)] {
        let installed = AppStore(state: state).installed()
        var added: [(String, UUID)] = []
        for app in installed {
            if var slot = slots[app.componentID], !slot.removed {
                guard slot.app != app else { continue }
                // Replaced by an update: run the new version now, with a clean slate.
                slot.app = app
                slot.status.version = app.version
                slot.status.name = app.name
                slot.wanted = true
                slot.consecutiveFailures = 0
                slot.status.nextStartAt = nil
                slot.runner?.stop()
                slot.wake.ring()
                slots[app.componentID] = slot
            } else {
                let slot = Slot(
                    app: app, status: AppStatus(componentId: app.componentID, name: app.name, version: app.version, state: .stopped))
                slots[app.componentID] = slot
                added.append((app.componentID, slot.generation))
            }
        }
        let present = Set(installed.map(\.componentID))
        for (id, slot) in slots where !present.contains(id) && !slot.removed {
            slots[id]?.removed = true
            slot.runner?.stop()
            slot.wake.ring()
        }
        reconciled = true
        return added
    }

    private func supervise(_ id: String, _ generation: UUID) async {
        while !Task.isCancelled {
            guard let slot = slots[id], slot.generation == generation else { return }  // reinstalled: its own task runs it
            guard !slot.removed else {
                slots[id] = nil
                return
            }
            if !slot.wanted {
                await slot.wake.wait(upTo: .seconds(3600))
                continue
            }
            if let next = slot.status.nextStartAt, next > Date() {
                await slot.wake.wait(upTo: .milliseconds(Int64(next.timeIntervalSinceNow * 1000) + 1))
                continue
            }
            guard let runner = makeRunner(slot) else { continue }
            slots[id]?.runner = runner
            slots[id]?.status.state = .running
            let started = Date()
            slots[id]?.status.startedAt = started
            slots[id]?.status.nextStartAt = nil
            logger.info("App started", metadata: ["app": "\(slot.app.name)", "component": "\(id)", "version": "\(slot.app.version)"])
            let outcome = await runner.run()
            guard slots[id]?.generation == generation else { return }
            slots[id]?.runner = nil
            slots[id]?.status.apply(runner.usage)
            switch outcome {
            case .stopped:
                if Task.isCancelled { return }
                if slots[id]?.wanted == false { slots[id]?.status.state = .stopped }
            case .exited:
                logger.info("App exited", metadata: ["app": "\(slot.app.name)"])
                slots[id]?.wanted = false
                slots[id]?.status.state = .exited
            case .failed(let fault):
                failed(id, fault, ranFor: Date().timeIntervalSince(started))
            }
        }
    }

    /// The runner for a slot's app, or nil (with the failure recorded) if its files are unusable.
    private func makeRunner(_ slot: Slot) -> AppRunner? {
        let id = slot.app.componentID
        let folder = slot.app.payloadFile.deletingLastPathComponent()
        do {
            let manifest = try AppManifest(bytes: try Data(contentsOf: folder.appendingPathComponent("app_manifest.json")))
            let wasm = try Data(contentsOf: slot.app.payloadFile)
            var logger = self.logger
            logger[metadataKey: "app"] = "\(manifest.name)"
            var environment = AppEnvironment(
                board: board, messages: bus, storageDirectory: state.directory.appendingPathComponent("appdata/\(id)"),
                logger: logger)
            if let telemetry {
                environment.telemetry = { telemetry.submit(componentID: $0, tenant: $1, payload: $2) }
            }
            environment.deviceTLS = deviceTLS
            if let link, link.snapshot.routerControl != nil {
                environment.linkStatus = { link.snapshot.facts }
            }
            if let deferral {
                let logger = logger
                environment.deferUpdate = { component, minutes in
                    let until = deferral.postpone(minutes: minutes)
                    logger.notice("An app deferred updates", metadata: ["component": "\(component)", "until": "\(Timestamp.format(until))"])
                }
            }
            if restart != nil {
                let reboot = self.reboot
                environment.requestReboot = { reboot.request(by: $0) }
            }
            return AppRunner(wasm: Array(wasm), manifest: manifest, limits: limits, environment: environment)
        } catch {
            failed(id, AppFault(.appLoadFailure, "The installed app cannot be read: \(error)"), ranFor: 0)
            return nil
        }
    }

    private func failed(_ id: String, _ fault: AppFault, ranFor duration: TimeInterval) {
        guard var slot = slots[id] else { return }
        logger.warning("App failed", metadata: ["app": "\(slot.app.name)", "class": "\(fault.eventClass.rawValue)", "reason": "\(fault.message)"])
        errors.record(fault.eventClass, componentID: id, description: fault.message)
        slot.status.lastFaultClass = fault.eventClass
        slot.status.lastFault = fault.message
        if fault.eventClass == .appLoadFailure {
            // Restarting cannot help; an update that replaces the app will.
            slot.wanted = false
            slot.status.state = .failed
        } else {
            slot.consecutiveFailures = duration >= Self.healthyRun ? 1 : slot.consecutiveFailures + 1
            var delay = min(Self.backoffCap, pow(2, Double(slot.consecutiveFailures - 1)))
            if slot.consecutiveFailures >= Self.restartLoopThreshold {
                delay = Self.backoffCap
                if slot.consecutiveFailures == Self.restartLoopThreshold {
                    errors.record(
                        .restartLoop, componentID: id,
                        description: "\(slot.app.name) failed \(Self.restartLoopThreshold) times in a row (last: \(fault.eventClass.rawValue)); restarts now wait \(Int(Self.backoffCap)) s.")
                }
            }
            slot.status.restarts += 1
            slot.status.state = .backingOff
            slot.status.nextStartAt = Date() + delay
        }
        slots[id] = slot
        errorQueued?.ring()
    }
}

extension AppStatus {
    mutating func apply(_ usage: AppUsage) {
        memoryBytes = usage.memoryBytes
        memoryLimitBytes = usage.memoryLimitBytes
        storageBytes = usage.storageBytes
        storageLimitBytes = usage.storageLimitBytes
        fuelSpent = usage.fuelSpent
        cpuMilliseconds = usage.cpuMilliseconds
        throttledMilliseconds = usage.throttledMilliseconds
    }
}

/// An app's request to restart the device, carried from its thread to the supervisor's task.
final class RebootRequest: Sendable {
    let bell = Doorbell()
    private let requester = Mutex<String?>(nil)

    func request(by componentID: String) {
        requester.withLock { $0 = $0 ?? componentID }
        bell.ring()
    }

    /// The app that asked, once; nil if none has.
    func take() -> String? { requester.withLock { value in defer { value = nil }; return value } }
}

extension AppTLSIdentity {
    /// Lends apps the device's identity: its valid device certificate, its key and the runtime's service CA,
    /// for the device's own tenant (or the nil UUID, which means it); nothing before the first attestation.
    public static func lending(state: DeviceState, status: DeviceStatusBoard) -> @Sendable (String) -> Lookup {
        { tenant in
            guard let own = status.snapshot.tenantId, let (chain, key) = state.validCertificate(),
                let pem = try? chain.map({ try $0.pemString }).joined(separator: "\n")
            else { return .unavailable }
            guard AppCapabilities.deviceAuthentication(tenant, covers: own.description) else { return .otherTenant }
            return .identity(
                AppTLSIdentity(
                    certificateChainPEM: pem, privateKeyPEM: key.pemRepresentation,
                    additionalTrustedCAsPEM: try? String(contentsOf: state.serverCAFile, encoding: .utf8)))
        }
    }
}
