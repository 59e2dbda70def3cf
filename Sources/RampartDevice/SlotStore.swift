import Foundation
import RampartCore
import RampartTUF

/// A/B slots for system software (DESIGN §5), in `D/slots/`:
///
/// ```
/// slots/a/rampart, slots/a/image.json   a runtime and the package manifest it came from
/// slots/b/…                             the other slot
/// slots/active                          "a", "b", or absent: the factory runtime
/// slots/pending.json                    a switch not yet confirmed healthy: slot, previous, deadline, boots
/// slots/last-result.json                how the last switch ended (confirmed, or rolled back and why)
/// ```
///
/// Installing writes the inactive slot completely (fsynced, renamed into place), then records the pending
/// switch, then flips `active`: each step is one atomic rename, so a power cut at any point leaves the device
/// on a complete, verified slot. The new slot must confirm its health (a successful attestation with its
/// new measurements) before the deadline and within ``maximumBoots`` starts; otherwise the next start rolls
/// back to the previous slot and records why.
public struct SlotStore: Sendable {
    public let directory: URL
    /// How long a new slot has to confirm its health.
    public var healthDeadline: TimeInterval = 10 * 60
    /// How many starts a new slot gets to confirm.
    public var maximumBoots = 3

    public init(state: DeviceState) {
        directory = state.directory.appendingPathComponent("slots")
    }

    /// A slot name.
    public enum Slot: String, Codable, Sendable {
        case a, b
        public var other: Slot { self == .a ? .b : .a }
    }

    /// A switch waiting for health confirmation.
    public struct Pending: Codable, Sendable, Equatable {
        public var slot: Slot
        /// The slot to return to; `nil` is the factory runtime.
        public var previous: Slot?
        public var deadline: Date
        public var boots: Int
        public var version: String
    }

    /// How the last switch ended.
    public struct Outcome: Codable, Sendable, Equatable {
        public var version: String
        /// `confirmed` or `rolledBack`.
        public var result: String
        public var reason: String?
        public var at: Date
    }

    /// What the supervisor should run on this start.
    public enum BootDecision: Sendable, Equatable {
        /// The factory runtime (no slot active).
        case factory
        /// A slot's runtime.
        case slot(Slot, executable: URL)
    }

    func file(_ name: String) -> URL { directory.appendingPathComponent(name) }
    public func executable(_ slot: Slot) -> URL { file("\(slot.rawValue)/rampart") }
    func manifestFile(_ slot: Slot) -> URL { file("\(slot.rawValue)/image.json") }

    /// The active slot, if any.
    public var active: Slot? {
        (try? String(contentsOf: file("active"), encoding: .utf8)).flatMap { Slot(rawValue: $0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The pending switch, if any.
    public var pending: Pending? {
        (try? Data(contentsOf: file("pending.json"))).flatMap { try? JSONCoding.decoder().decode(Pending.self, from: $0) }
    }

    /// How the last switch ended.
    public var lastOutcome: Outcome? {
        (try? Data(contentsOf: file("last-result.json"))).flatMap { try? JSONCoding.decoder().decode(Outcome.self, from: $0) }
    }

    /// The installed manifest (JSON text) of a slot.
    public func manifest(_ slot: Slot) -> String? {
        try? String(contentsOf: manifestFile(slot), encoding: .utf8)
    }

    /// The version the active runtime reports, from its package; `nil` for the factory runtime.
    public var activeVersion: String? {
        guard let active, let text = manifest(active), case .string(let version)? = (try? JSONValue.parse(Array(text.utf8)))?["version"]
        else { return nil }
        return version
    }

    /// Installs a verified runtime payload into the inactive slot and switches to it, pending confirmation.
    public func install(payload: some Collection<UInt8>, manifestJSON: String, version: String, now: Date = Date()) throws {
        let target = active?.other ?? .a
        let slotDirectory = file(target.rawValue)
        try FileManager.default.createDirectory(at: slotDirectory, withIntermediateDirectories: true)
        try SecureFile.write(Data(payload), to: executable(target), mode: 0o755)
        CrashPoint.reach("slot-written")
        try SecureFile.write(manifestJSON, to: manifestFile(target), mode: 0o644)
        let pending = Pending(slot: target, previous: active, deadline: now + healthDeadline, boots: 0, version: version)
        try SecureFile.write(try JSONCoding.encoder(pretty: true).encode(pending), to: file("pending.json"), mode: 0o644)
        CrashPoint.reach("slot-pending")
        try SecureFile.write(target.rawValue + "\n", to: file("active"), mode: 0o644)
        CrashPoint.reach("slot-switched")
    }

    /// Decides what to run on this start, rolling back an unconfirmed switch whose deadline or boots ran
    /// out, and counting the start otherwise.
    public func decideBoot(now: Date = Date()) throws -> BootDecision {
        if let stale = pending, active != stale.slot {
            // The power went before the switch: the half-prepared slot is simply not used.
            try FileManager.default.removeItem(at: file("pending.json"))
        }
        if var pending, active == pending.slot {
            // The deadline runs from the new runtime's first start, not from the install: a device that was
            // off in between still gives it the whole time.
            if pending.boots == 0 { pending.deadline = now + healthDeadline }
            if pending.deadline <= now || pending.boots >= maximumBoots || !FileManager.default.isExecutableFile(atPath: executable(pending.slot).path) {
                let reason = pending.deadline <= now
                    ? "the new runtime did not confirm its health before the deadline"
                    : "the new runtime did not confirm its health within \(maximumBoots) starts"
                try rollBack(pending, reason: reason, now: now)
            } else {
                pending.boots += 1
                try SecureFile.write(try JSONCoding.encoder(pretty: true).encode(pending), to: file("pending.json"), mode: 0o644)
            }
        }
        guard let active, FileManager.default.isExecutableFile(atPath: executable(active).path) else { return .factory }
        return .slot(active, executable: executable(active))
    }

    /// Marks the pending switch healthy: called once the new runtime attested successfully. Only the new
    /// slot's own process may confirm it (the old one may still finish an attestation while it stops).
    ///
    /// - Parameter executable: What the calling process measures as its runtime.
    public func confirm(executable: URL, now: Date = Date()) throws {
        guard let pending, active == pending.slot else { return }
        let bootedFromSlot = ProcessInfo.processInfo.environment[Supervisor.slotVariable] == pending.slot.rawValue
        guard bootedFromSlot || executable.resolvingSymlinksInPath() == self.executable(pending.slot).resolvingSymlinksInPath()
        else { return }
        try record(Outcome(version: pending.version, result: "confirmed", reason: nil, at: now))
        try FileManager.default.removeItem(at: file("pending.json"))
    }

    /// Returns to the previous slot now, recording `reason`.
    public func rollBack(_ pending: Pending, reason: String, now: Date = Date()) throws {
        if let previous = pending.previous {
            try SecureFile.write(previous.rawValue + "\n", to: file("active"), mode: 0o644)
        } else {
            try? FileManager.default.removeItem(at: file("active"))
        }
        try record(Outcome(version: pending.version, result: "rolledBack", reason: reason, at: now))
        try? FileManager.default.removeItem(at: file("pending.json"))
    }

    private func record(_ outcome: Outcome) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try SecureFile.write(try JSONCoding.encoder(pretty: true).encode(outcome), to: file("last-result.json"), mode: 0o644)
    }
}
