import Foundation
import Logging
import RampartCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor step of A/B updates, run at every start of `rampart device run`.
public enum Supervisor {
    /// Set in the environment once a start has been counted, so the slot's runtime does not count it again.
    static let decidedVariable = "RAMPART_BOOT_DECIDED"
    /// Set to the slot a process was started from (kept across a slot runtime that execs another binary).
    static let slotVariable = "RAMPART_BOOTED_SLOT"

    /// Decides the slot for this start (rolling back an unconfirmed switch whose deadline or starts ran
    /// out) and, when the active slot's runtime is not the running binary, replaces this process with it.
    public static func bootActiveSlot(state: DeviceState, logger: Logger, now: Date = Date()) throws {
        let slots = SlotStore(state: state)
        if ProcessInfo.processInfo.environment[decidedVariable] == "1" {
            unsetenv(decidedVariable)
            return
        }
        let decision = try slots.decideBoot(now: now)
        if let outcome = slots.lastOutcome, outcome.result == "rolledBack", outcome.at >= now.addingTimeInterval(-1) {
            logger.error("Rolled back a runtime update", metadata: ["version": "\(outcome.version)", "reason": "\(outcome.reason ?? "")"])
        }
        guard case .slot(let slot, let executable) = decision else {
            unsetenv(slotVariable)
            return
        }
        setenv(slotVariable, slot.rawValue, 1)
        let running = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        guard running != executable.resolvingSymlinksInPath() else { return }
        setenv(decidedVariable, "1", 1)
        try exec(executable)
    }

    /// Replaces this process with the active slot's runtime (or the same binary for the factory runtime),
    /// with the same arguments; the new process counts its own start.
    public static func restart(state: DeviceState) throws {
        unsetenv(decidedVariable)
        unsetenv(slotVariable)
        let slots = SlotStore(state: state)
        let executable = slots.active.map(slots.executable) ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        try exec(executable)
    }

    private static func exec(_ executable: URL) throws {
        var arguments = CommandLine.arguments
        arguments[0] = executable.path
        let cArguments = arguments.map { strdup($0) } + [nil]
        execv(executable.path, cArguments)
        throw RampartError(.configurationInvalid, "Cannot start \(executable.path): errno \(errno).")
    }
}

/// Holds the service group, weakly, so that a service can ask it to stop without keeping it (and the
/// state directory lock its services hold) alive after it stopped.
public final class GroupBox: Sendable {
    private struct Reference { weak var group: ServiceGroup? }
    private let stored = Mutex(Reference())
    public init() {}
    public var group: ServiceGroup? {
        get { stored.withLock { $0.group } }
        set { stored.withLock { $0.group = newValue } }
    }
}

/// Rolls back a runtime switch that runs but never confirms its health before the deadline.
public struct HealthWatchdog: Service {
    let slots: SlotStore
    let executable: URL
    let logger: Logger
    let restart: @Sendable () async -> Void

    public init(slots: SlotStore, executable: URL, logger: Logger, restart: @escaping @Sendable () async -> Void) {
        self.slots = slots
        self.executable = executable
        self.logger = logger
        self.restart = restart
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            guard let pending = slots.pending, slots.active == pending.slot,
                slots.executable(pending.slot).resolvingSymlinksInPath() == executable.resolvingSymlinksInPath()
            else {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(30)) }
                continue
            }
            let wait = pending.deadline.timeIntervalSinceNow
            if wait > 0 {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(min(wait, 30))) }
                continue
            }
            guard let still = slots.pending, still.slot == pending.slot else { continue }
            try slots.rollBack(still, reason: "the new runtime did not confirm its health before the deadline")
            logger.error("Runtime update did not confirm its health; rolling back", metadata: ["version": "\(still.version)"])
            await restart()
            try? await gracefulShutdown()
            return
        }
    }
}

/// Named points in the update path where the power-loss check (scripts/external-checks) cuts the power:
/// with `RAMPART_CRASH_AT=<name>` in the environment the process kills itself with SIGKILL on reaching
/// that point, exactly as a power cut would stop it. Without the variable this does nothing.
public enum CrashPoint {
    static let requested = ProcessInfo.processInfo.environment["RAMPART_CRASH_AT"]

    /// Kills the process if `name` is the requested crash point.
    public static func reach(_ name: String) {
        guard let requested, requested == name else { return }
        kill(getpid(), SIGKILL)
    }
}
