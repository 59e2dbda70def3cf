import Foundation
import Logging
import RampartCore
import RampartImage
import Synchronization
import WasmKit

/// What an app uses of its quotas, for `device app show-quota`.
public struct AppUsage: Sendable, Equatable, Codable {
    public var memoryBytes: Int
    public var memoryLimitBytes: Int
    public var storageBytes: Int
    public var storageLimitBytes: Int
    /// Fuel spent by all events since the app started.
    public var fuelSpent: UInt64
    /// Events the app has handled (`app_start` included).
    public var events: Int
    /// CPU time its events used, in milliseconds.
    public var cpuMilliseconds: Int
    /// How long the runtime held its events back for its CPU budget, in milliseconds.
    public var throttledMilliseconds: Int
    public init(
        memoryBytes: Int, memoryLimitBytes: Int, storageBytes: Int, storageLimitBytes: Int, fuelSpent: UInt64, events: Int,
        cpuMilliseconds: Int = 0, throttledMilliseconds: Int = 0
    ) {
        self.memoryBytes = memoryBytes
        self.memoryLimitBytes = memoryLimitBytes
        self.storageBytes = storageBytes
        self.storageLimitBytes = storageLimitBytes
        self.fuelSpent = fuelSpent
        self.events = events
        self.cpuMilliseconds = cpuMilliseconds
        self.throttledMilliseconds = throttledMilliseconds
    }
}

/// An app's CPU budget: a bucket of CPU time that refills at `rate` milliseconds per second of wall time
/// and holds a second's worth. Events spend it; while it is empty the app's next event waits.
struct CPUBudget {
    let rate: Int
    private var bucket: TokenBucket
    private(set) var spent: Double = 0

    init(millisecondsPerSecond rate: Int, now: UInt64) {
        self.rate = rate
        bucket = TokenBucket(capacity: Double(rate), perSecond: Double(rate), now: now)
    }

    /// Counts `milliseconds` of CPU used by an event.
    mutating func spend(_ milliseconds: Double, now: UInt64) {
        if rate > 0 { bucket.spend(milliseconds, now: now) }
        spent += milliseconds
    }

    /// How long the next event must wait, in milliseconds (0: it may run now).
    mutating func wait(now: UInt64) -> UInt64 {
        rate > 0 ? bucket.millisecondsUntilSolvent(now: now) : 0
    }

    /// CPU time this thread has used, in milliseconds.
    static var threadMilliseconds: Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) * 1000 + Double(now.tv_nsec) / 1_000_000
    }
}

/// Runs one app, once, on a thread of its own: instantiates it, calls `app_start`, then waits for timers,
/// messages and system events and calls the app for each, until it exits, fails or is stopped. The
/// runtime's supervisor creates a new runner for each restart.
///
/// WebAssembly runs on its own thread, never on Swift's cooperative pool: an event may compute for as
/// long as its fuel lasts, and a host call may block (a connect, a receive) for up to
/// ``AppLimits/maximumBlockingMilliseconds``.
public final class AppRunner: Sendable {
    /// The app's manifest.
    public let manifest: AppManifest
    let wasm: [UInt8]
    let limits: AppLimits
    let environment: AppEnvironment
    let inbox = AppInbox()
    private let usageNow: Mutex<AppUsage>

    /// Prepares a run of `wasm` under `manifest`'s capabilities.
    public init(wasm: [UInt8], manifest: AppManifest, limits: AppLimits = AppLimits(), environment: AppEnvironment) {
        self.wasm = wasm
        self.manifest = manifest
        self.limits = limits
        self.environment = environment
        usageNow = Mutex(
            AppUsage(
                memoryBytes: 0, memoryLimitBytes: limits.memoryBytes, storageBytes: 0,
                storageLimitBytes: (manifest.granted.mutableStorageKB ?? 0) * 1024, fuelSpent: 0, events: 0))
    }

    /// Runs the app until it ends. Cancelling the task stops the app at its next event boundary.
    public func run() async -> AppOutcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<AppOutcome, Never>) in
                let thread = Thread { continuation.resume(returning: self.loop()) }
                thread.name = "app \(manifest.name)"
                thread.stackSize = 4 << 20
                thread.start()
            }
        } onCancel: {
            inbox.requestStop()
        }
    }

    /// Asks the app to stop at its next event boundary.
    public func stop() { inbox.requestStop() }

    /// What the app uses now.
    public var usage: AppUsage { usageNow.withLock { $0 } }

    /// Hands the app a cloud-to-device message. Returns false if its inbox is full, or if it lacks
    /// `DeviceAuthentication` (cloud messages come through the device's own authenticated connection) for
    /// `tenant` (the tenant the message came from; `nil` for any).
    public func deliverCloudMessage(_ payload: [UInt8], tenant: String? = nil) -> Bool {
        guard acceptsCloudMessages(from: tenant) else { return false }
        return inbox.post(.message(kind: HostResult.messageFromCloud, sender: nil, bytes: payload))
    }

    /// Whether the app's `DeviceAuthentication` names `tenant` (or the nil UUID, the device's own tenant).
    public func acceptsCloudMessages(from tenant: String?) -> Bool {
        guard let granted = manifest.granted.deviceAuthentication else { return false }
        return tenant.map { AppCapabilities.deviceAuthentication(granted, covers: $0) } ?? true
    }

    /// Tells the app that an update will install in `seconds`, if it takes system events. Returns whether the
    /// event was queued.
    @discardableResult
    public func notifyUpdatePending(inSeconds seconds: Int) -> Bool {
        guard manifest.granted.systemEventNotifications else { return false }
        return inbox.post(.event(kind: HostResult.eventUpdatePending, argument: Int32(clamping: seconds)))
    }

    /// How long the app takes from its bytes to the end of `app_start`: parse, validate, instantiate and
    /// the first event. For `rampart bench apps`; runs on the calling thread.
    ///
    /// - Throws: ``AppFault`` if the app cannot start or fails in `app_start`.
    public func measureColdStart() throws(AppFault) -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        let app = try AppInstance(wasm: wasm, manifest: manifest, limits: limits, environment: environment, inbox: inbox)
        if case .failed(let fault) = app.run("app_start") { throw fault }
        return clock.now - started
    }

    private func loop() -> AppOutcome {
        guard !inbox.isStopRequested else { return .stopped }
        let app: AppInstance
        do {
            app = try AppInstance(wasm: wasm, manifest: manifest, limits: limits, environment: environment, inbox: inbox)
        } catch {
            return .failed(error)
        }
        environment.messages.join(componentID: manifest.componentID, allowed: manifest.granted.allowedApplicationConnections, inbox: inbox)
        defer { environment.messages.leave(componentID: manifest.componentID, inbox: inbox) }
        var events = 0
        var cpu = CPUBudget(millisecondsPerSecond: limits.cpuMillisecondsPerSecond, now: Monotonic.milliseconds)
        var throttled: UInt64 = 0
        var throttleNoticed = false
        func publishUsage() {
            let usage = AppUsage(
                memoryBytes: app.memoryBytes, memoryLimitBytes: limits.memoryBytes, storageBytes: app.storage?.usedBytes ?? 0,
                storageLimitBytes: (manifest.granted.mutableStorageKB ?? 0) * 1024, fuelSpent: app.fuelSpent, events: events,
                cpuMilliseconds: Int(cpu.spent), throttledMilliseconds: Int(throttled))
            usageNow.withLock { $0 = usage }
        }
        func handle(_ entry: String, _ arguments: [Value] = []) -> AppOutcome? {
            let before = CPUBudget.threadMilliseconds
            let outcome = app.run(entry, arguments)
            cpu.spend(CPUBudget.threadMilliseconds - before, now: Monotonic.milliseconds)
            events += 1
            publishUsage()
            return outcome
        }
        if let outcome = handle("app_start") { return outcome }
        while true {
            if inbox.isStopRequested {
                app.isShuttingDown = true
                if manifest.granted.systemEventNotifications, let outcome = handle("app_on_event", [.i32(UInt32(HostResult.eventShutdown)), .i32(0)]) {
                    return outcome == .exited ? .stopped : outcome
                }
                return .stopped
            }
            // Over its CPU budget the app waits (a stop still ends the wait within 50 ms).
            let hold = cpu.wait(now: Monotonic.milliseconds)
            if hold > 0 {
                if !throttleNoticed {
                    throttleNoticed = true
                    environment.logger.notice(
                        "App held back: it used more than its CPU budget",
                        metadata: ["budget": "\(limits.cpuMillisecondsPerSecond) ms per second"])
                }
                let slice = min(hold, 50)
                usleep(UInt32(slice * 1000))
                throttled += slice
                publishUsage()
                continue
            }
            let now = Monotonic.milliseconds
            if let (id, timer) = app.timers.min(by: { $0.value.deadline < $1.value.deadline }), timer.deadline <= now {
                if timer.period > 0 {
                    // A timer that fell behind (a long event) fires once, then keeps its period from now.
                    let next = timer.deadline + timer.period
                    app.timers[id] = (next > now ? next : now + timer.period, timer.period)
                } else {
                    app.timers[id] = nil
                }
                if let outcome = handle("app_on_timer", [.i32(UInt32(bitPattern: id))]) { return outcome }
                continue
            }
            // The inbox waits on the wall clock; in slices of at most a second, so that a clock stepped back
            // (NTP) delays no timer by more than that. Deadlines themselves are monotonic.
            let wait = min(1000, app.timers.values.map(\.deadline).min().map { $0 - now } ?? 1000)
            guard let item = inbox.next(until: Date() + Double(wait) / 1000) else { continue }
            switch item {
            case .message(let kind, let sender, let bytes):
                app.message = (sender, bytes)
                if let outcome = handle("app_on_message", [.i32(UInt32(bitPattern: kind)), .i32(UInt32(bytes.count))]) { return outcome }
            case .event(let kind, let argument):
                if let outcome = handle("app_on_event", [.i32(UInt32(bitPattern: kind)), .i32(UInt32(bitPattern: argument))]) { return outcome }
            }
        }
    }
}
