import Crypto
import Foundation
import Logging
import RampartAttestation
import RampartCore
import RampartPKI
import ServiceLifecycle
import Synchronization
import SwiftASN1
import X509

/// The device runtime's attestation loop: attest at start, then every 20 h with jitter, and earlier when
/// less than 4 h of certificate validity remain; on failure back off exponentially with jitter and a cap.
/// The last good certificate is kept, and an expired one is never handed out.
public struct DeviceAgent: Service {
    /// When to attest.
    public struct Schedule: Sendable {
        /// The normal interval between attestations.
        public var interval: TimeInterval = 20 * 3600
        /// ± this fraction of jitter, so a fleet does not attest in lockstep.
        public var jitter: Double = 0.1
        /// Attest again when less validity than this remains.
        public var renewBefore: TimeInterval = 4 * 3600
        /// The first retry delay after a failure; doubles with each failure.
        public var backoffBase: TimeInterval = 5
        /// The longest retry delay.
        public var backoffCap: TimeInterval = 30 * 60
        public init() {}

        /// The delay before the next attempt after `failures` consecutive failures (≥ 1): full jitter over
        /// the capped exponential.
        public func backoff(failures: Int) -> TimeInterval {
            let ceiling = max(1, min(backoffCap, backoffBase * pow(2, Double(min(max(failures, 1), 30) - 1))))
            return Double.random(in: (ceiling / 2)...ceiling)
        }

        /// How long to wait after a success, given the certificate's validity period. Computed from durations
        /// so that a device clock that is off (no RTC before NTP) neither sleeps for years nor spins; jittered
        /// below the deadline so certificates issued together do not renew in lockstep.
        public func delay(validity: TimeInterval) -> TimeInterval {
            let base = min(interval, validity - renewBefore)
            return max(60, base * Double.random(in: (1 - max(0, min(jitter, 0.5)))...1))
        }
    }

    let state: DeviceState
    let client: AttestationClient
    let schedule: Schedule
    let status: DeviceStatusBoard
    let logger: Logger
    let executable: URL
    /// Held while the agent exists, so no second runtime shares the state directory.
    let directoryLock: StateDirectoryLock?
    /// Rung to attest before the schedule says so (after an update).
    let attestNow: Doorbell
    /// Where failed attestations are queued as error events.
    public var errors: ErrorEventQueue?

    /// Creates the agent for a manufactured state directory.
    public init(
        state: DeviceState, client: AttestationClient, schedule: Schedule = Schedule(), status: DeviceStatusBoard,
        logger: Logger, executable: URL = Measurer.runningExecutable, directoryLock: StateDirectoryLock? = nil,
        attestNow: Doorbell = Doorbell()
    ) {
        self.attestNow = attestNow
        self.directoryLock = directoryLock
        self.state = state
        self.client = client
        self.schedule = schedule
        self.status = status
        self.logger = logger
        self.executable = executable
    }

    public func run() async throws {
        let identity = try state.identity()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let delay = await attestOnce(identity: identity)
            try? await cancelWhenGracefulShutdown { await attestNow.wait(upTo: .seconds(delay)) }
        }
    }

    /// One attempt, for tests. Returns how long the agent would wait before the next one.
    package func attestOnceForTesting() async -> TimeInterval {
        guard let identity = try? state.identity() else { return 0 }
        return await attestOnce(identity: identity)
    }

    /// One attempt. Returns how long to wait before the next one.
    func attestOnce(identity: DeviceState.Identity) async -> TimeInterval {
        let now = Date()
        do {
            let measurements = try Measurer.measure(state: state, executable: executable)
            // EAT dbgstat: 0 (enabled) in development mode, else 3 (disabled permanently: no debug path is open).
            let debugStatus = DevelopmentMode(state: state).capability() == nil ? 3 : 0
            let (result, key) = try await client.attest(identity: identity, measurements: measurements, debugStatus: debugStatus)
            // Keep only what is what we asked for: our fresh key, our device ID.
            guard let leafPEM = result.certificateChain.first, let leaf = try? Certificate(pemEncoded: leafPEM),
                leaf.publicKey == Certificate.PublicKey(key.publicKey),
                leaf.subject.description == "CN=\(identity.deviceID)"
            else {
                throw RampartError(
                    .certificateInvalid, "The server returned a certificate that is not for this device's fresh key.", status: 502)
            }
            try state.store(chain: result.certificateChain, key: key)
            // A runtime fresh from an update has proven itself: the service accepted its measurements.
            try SlotStore(state: state).confirm(executable: executable)
            let wait = schedule.delay(validity: leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore))
            let next = now + wait
            status.update { status in
                status.tenantId = result.tenantId
                status.certificateNotAfter = result.notAfter
                status.certificateValid = true
                status.lastAttestationAt = now
                status.lastAttestationResult = "success"
                status.lastAttestationMessage = nil
                status.nextAttestationAt = next
                status.consecutiveFailures = 0
            }
            logger.info("Attested", metadata: ["notAfter": "\(Timestamp.format(result.notAfter))"])
            return wait
        } catch {
            let failure = error as? RampartError ?? RampartError(.internalError, "\(error)", status: 500)
            var delay: TimeInterval = 0
            status.update { status in
                status.consecutiveFailures += 1
                delay = schedule.backoff(failures: status.consecutiveFailures)
                status.lastAttestationAt = now
                status.lastAttestationResult = failure.code.rawValue
                status.lastAttestationMessage = failure.message
                status.nextAttestationAt = now + delay
                status.certificateValid = (status.certificateNotAfter ?? .distantPast) > now
            }
            errors?.record(.attestationFailure, description: "\(failure.code.rawValue): \(failure.message)")
            logger.warning("Attestation failed; retrying", metadata: [
                "code": "\(failure.code)", "message": "\(failure.message)", "retryInSeconds": "\(Int(delay))",
            ])
            return delay
        }
    }
}

/// The device's current status, shared by the agent and the local API, and kept in `status.json` so that
/// it survives a restart.
public final class DeviceStatusBoard: Sendable {
    private let current: Mutex<DeviceStatus>
    private let file: URL

    /// Loads the last status from `state`, or starts fresh for `deviceID`.
    public init(state: DeviceState, deviceID: String) {
        file = state.statusFile
        var status = (try? Data(contentsOf: state.statusFile)).flatMap {
            try? JSONCoding.decoder().decode(DeviceStatus.self, from: $0)
        } ?? DeviceStatus(deviceId: deviceID)
        status.deviceId = deviceID
        if let stored = state.storedCertificate() {
            status.certificateNotAfter = stored.chain[0].notValidAfter
        }
        status.certificateValid = (status.certificateNotAfter ?? .distantPast) > Date()
        current = Mutex(status)
    }

    /// A snapshot, with certificate validity evaluated now.
    public var snapshot: DeviceStatus {
        var status = current.withLock { $0 }
        status.certificateValid = (status.certificateNotAfter ?? .distantPast) > Date()
        return status
    }

    package func update(_ change: (inout DeviceStatus) -> Void) {
        let status = current.withLock { status -> DeviceStatus in
            change(&status)
            return status
        }
        if let data = try? JSONCoding.encoder(pretty: true).encode(status) {
            try? SecureFile.write(data, to: file, mode: 0o644)
        }
    }
}

extension DeviceState {
    /// The device certificate chain and key, only while the certificate is valid and matches the key. An
    /// expired certificate is never used, even though it is kept for inspection.
    public func validCertificate(at time: Date = Date()) -> (chain: [Certificate], key: P256.Signing.PrivateKey)? {
        guard let stored = storedCertificate(), stored.chain[0].notValidAfter > time, stored.chain[0].notValidBefore <= time,
            stored.chain[0].publicKey == Certificate.PublicKey(stored.key.publicKey)
        else { return nil }
        return stored
    }
}
