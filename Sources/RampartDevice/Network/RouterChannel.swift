import Foundation
import Logging
import NIOCore
import NIOPosix
import RampartCore
import RampartLink
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the runtime knows about its uplink, shared by the router channel, the update agent and the local API.
public final class LinkBoard: Sendable {
    /// The channel's state, as `GET /network/status` shows it.
    public struct Snapshot: Codable, Sendable, Equatable {
        /// Where the router channel comes from, `nil` when there is none.
        public var routerControl: String?
        public var connected = false
        public var facts: LinkFacts?
        public var counters = RouterChannelCounters()
        public var lastRejection: String?
        public var lastDisconnect: String?
        /// Servicing connections the egress refused for their path, and why the last one was.
        public var refusedServicingConnections = 0
        public var lastRefusal: String?
        public var dataUsage: ServicingDataUsage?
        /// Why large downloads wait, when they do, and since when.
        public var downloadsWaitFor: String?
        public var downloadsWaitingSince: Date?
        public init() {}
    }

    private let state: Mutex<(snapshot: Snapshot, lastRing: ContinuousClock.Instant?)>
    let policy: DeviceConfiguration.Network
    /// Where the start of a wait is kept, so that a restart does not start the day again.
    private let waitFile: URL?
    /// Rung when the link turns acceptable after a download waited for it, at most every ``minimumRingInterval``
    /// (each ring costs an update check, and a flapping router must not spend the data budget).
    public let linkImproved: Doorbell
    /// The longest downloads wait for the link. The router is not trusted: what it reports may delay an update,
    /// never withhold one.
    public static let maximumWait: TimeInterval = 24 * 3600
    public static let minimumRingInterval: Duration = .seconds(15 * 60)

    public init(
        policy: DeviceConfiguration.Network, routerControl: DeviceConfiguration.RouterControl?, linkImproved: Doorbell = Doorbell(),
        state directory: DeviceState? = nil
    ) {
        self.policy = policy
        self.linkImproved = linkImproved
        waitFile = directory.map { $0.directory.appendingPathComponent("network/link-wait-since") }
        var snapshot = Snapshot()
        snapshot.routerControl = routerControl?.description
        if let waitFile, let text = try? String(contentsOf: waitFile, encoding: .utf8) {
            snapshot.downloadsWaitingSince = Timestamp.parse(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        state = Mutex((snapshot, nil))
    }

    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    func update(_ change: (inout Snapshot) -> Void) {
        let ring = state.withLock { state -> Bool in
            let waited = state.snapshot.downloadsWaitFor != nil
            change(&state.snapshot)
            guard waited, Self.reasonToWait(state.snapshot.facts, policy: policy) == nil else { return false }
            // The wait's start stays: only a download that goes ends it, so a router that flaps between good
            // and bad cannot restart the day.
            state.snapshot.downloadsWaitFor = nil
            let now = ContinuousClock.now
            guard state.lastRing.map({ now - $0 >= Self.minimumRingInterval }) ?? true else { return false }
            state.lastRing = now
            return true
        }
        if ring { linkImproved.ring() }
    }

    /// Why a large download should wait now, or `nil` to go ahead. Unknown facts never hold a download back, and
    /// after ``maximumWait`` of waiting the download goes ahead whatever the router says.
    public func reasonToWait(now: Date = Date()) -> String? {
        let (reason, before, after) = state.withLock { state -> (String?, Date?, Date?) in
            let before = state.snapshot.downloadsWaitingSince
            var reason = Self.reasonToWait(state.snapshot.facts, policy: policy)
            // A start in the future (a clock that jumped back) counts from now.
            let since = min(before ?? now, now)
            if reason != nil && now.timeIntervalSince(since) >= Self.maximumWait { reason = nil }
            state.snapshot.downloadsWaitFor = reason
            state.snapshot.downloadsWaitingSince = reason == nil ? nil : since
            return (reason, before, state.snapshot.downloadsWaitingSince)
        }
        if let waitFile, after != before {
            if let after {
                try? FileManager.default.createDirectory(at: waitFile.deletingLastPathComponent(), withIntermediateDirectories: true)
                try? SecureFile.write(Timestamp.format(after), to: waitFile)
            } else {
                try? FileManager.default.removeItem(at: waitFile)
            }
        }
        return reason
    }

    static func reasonToWait(_ facts: LinkFacts?, policy: DeviceConfiguration.Network) -> String? {
        guard let facts else { return nil }
        if let registration = facts.registration, registration != .home, registration != .roaming {
            return "the router reports the modem is not registered (\(registration.rawValue))"
        }
        if facts.roaming && !policy.allowRoaming {
            return "the router reports roaming and device.toml does not allow_roaming"
        }
        if let signal = facts.signalDBm, signal < policy.minimumSignalDBm {
            return "the router reports a signal of \(signal) dBm, below minimum_signal_dbm \(policy.minimumSignalDBm)"
        }
        return nil
    }
}

/// Reads the optional router control channel (docs/router-control-channel.md): a TCP stream or a serial device
/// that only ever speaks to the runtime. Every line goes through ``RouterChannelReader``: bounded, parsed
/// strictly, rate-limited per type; a flooding or garbage-sending router is disconnected and backed off.
/// Facts inform scheduling only.
public struct RouterChannel: Service {
    let source: DeviceConfiguration.RouterControl
    let board: LinkBoard
    let logger: Logger
    var limits = RouterChannelLimits()
    /// Reconnect delays: from 1 s doubling to 5 min, with jitter (the attestation agent's backoff).
    public var backoff: DeviceAgent.Schedule = {
        var schedule = DeviceAgent.Schedule()
        schedule.backoffBase = 1
        schedule.backoffCap = 300
        return schedule
    }()

    public init(source: DeviceConfiguration.RouterControl, board: LinkBoard, logger: Logger) {
        self.source = source
        self.board = board
        self.logger = logger
    }

    public func run() async throws {
        var reader = RouterChannelReader(limits: limits)
        let clockStart = ContinuousClock.now
        var failures = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let started = ContinuousClock.now
            do {
                let (reason, after) = try await cancelWhenGracefulShutdown { [reader] in try await session(reader, clockStart: clockStart) }
                reader = after
                board.update { $0.lastDisconnect = reason }
                logger.warning("Router control channel closed", metadata: ["source": "\(source)", "reason": "\(reason)"])
            } catch {
                board.update { $0.lastDisconnect = "\(error)" }
                if !Task.isShuttingDownGracefully {
                    logger.warning("Router control channel unavailable", metadata: ["source": "\(source)", "error": "\(error)"])
                }
            }
            board.update { $0.connected = false }
            reader.reset()
            // A session that lasted a minute was healthy: start the backoff again.
            failures = ContinuousClock.now - started > .seconds(60) ? 1 : failures + 1
            let delay = backoff.backoff(failures: failures)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(delay)) }
        }
    }

    /// One connection: returns why it ended, and the reader with its counters.
    private func session(_ initial: RouterChannelReader, clockStart start: ContinuousClock.Instant) async throws
        -> (String, RouterChannelReader)
    {
        let channel = try await openChannel()
        board.update { $0.connected = true }
        return try await channel.executeThenClose { inbound, _ in
            var reader = initial
            // An error ends the session but keeps what the reader counted (its rate windows too).
            do {
                for try await buffer in inbound {
                    let (accepted, verdict) = reader.consume(buffer.readableBytesView, now: ContinuousClock.now - start)
                    let snapshotFacts = reader.facts
                    let counters = reader.counters
                    let rejection = reader.lastRejection?.description
                    board.update { snapshot in
                        if !accepted.isEmpty {
                            var facts = snapshotFacts
                            facts.reportedAt = Date()
                            snapshot.facts = facts
                        }
                        snapshot.counters = counters
                        snapshot.lastRejection = rejection
                    }
                    if case .disconnect(let reason) = verdict { return ("disconnected: \(reason)", reader) }
                }
            } catch {
                return ("the channel failed: \(error)", reader)
            }
            return ("the router closed the channel", reader)
        }
    }

    private func openChannel() async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let group = MultiThreadedEventLoopGroup.singleton
        switch source {
        case .tcp(let host, let port):
            return try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(10))
                .channelOption(.maxMessagesPerRead, value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        case .serial(let path):
            let fd = Glibc.open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else {
                throw RampartError(.serverUnreachable, "Cannot open the router channel \(path): \(String(cString: strerror(errno))).")
            }
            // A terminal: raw, so the kernel neither echoes the router's bytes back to it nor edits them (CR
            // translation, ^D as end of file). The line speed stays as the system configured it.
            if isatty(fd) == 1 {
                var settings = termios()
                guard tcgetattr(fd, &settings) == 0 else {
                    close(fd)
                    throw RampartError(.serverUnreachable, "Cannot read the terminal settings of \(path): \(String(cString: strerror(errno))).")
                }
                cfmakeraw(&settings)
                settings.c_cflag |= tcflag_t(CREAD | CLOCAL)
                guard tcsetattr(fd, TCSANOW, &settings) == 0 else {
                    close(fd)
                    throw RampartError(.serverUnreachable, "Cannot make \(path) a raw terminal: \(String(cString: strerror(errno))).")
                }
            }
            return try await NIOPipeBootstrap(group: group)
                .takingOwnershipOfDescriptor(input: fd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        }
    }
}
