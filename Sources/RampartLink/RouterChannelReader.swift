import RampartCore

/// The limits the router control channel enforces (docs/router-control-channel.md).
public struct RouterChannelLimits: Sendable, Equatable {
    /// Reports of one type accepted in a burst.
    public var burstPerType = 5
    /// Seconds between reports of one type, sustained: one token per interval refills the burst.
    public var secondsPerReport: Double = 1
    /// Lines of any kind (valid or not) in one second beyond which the channel is disconnected.
    public var floodLinesPerSecond = 50
    /// Bytes in one second beyond which the channel is disconnected.
    public var floodBytesPerSecond = 4096
    /// Rejected lines (unknown, malformed, oversized) per minute beyond which the channel is disconnected.
    public var rejectedLinesPerMinute = 30

    public init() {}
}

/// What the channel counted since the runtime started: `device network show-status` shows it.
public struct RouterChannelCounters: Codable, Sendable, Equatable {
    public var accepted = 0
    public var unknown = 0
    public var malformed = 0
    public var oversized = 0
    public var rateLimited = 0
    public var disconnects = 0
    public init() {}
}

/// Frames the router's byte stream into lines and applies the parser, the per-type rate limits and the flood
/// rules. A value type with an injected clock so that tests and the fuzz target drive it deterministically.
public struct RouterChannelReader: Sendable {
    /// What the caller should do after a chunk of bytes.
    public enum Verdict: Sendable, Equatable {
        case keepReading
        /// Close the channel and back off: the router floods or sends garbage.
        case disconnect(reason: String)
    }

    public let limits: RouterChannelLimits
    /// The facts accumulated from accepted reports.
    public private(set) var facts = LinkFacts()
    public private(set) var counters = RouterChannelCounters()
    /// The last rejected line's reason, for status and logs.
    public private(set) var lastRejection: RouterLineError?

    private var line: [UInt8] = []
    private var discardingOversizedLine = false
    private var tokens: [RouterMessage.Kind: TokenBucket] = [:]
    private var secondWindow: (start: Duration, lines: Int, bytes: Int) = (.zero, 0, 0)
    private var minuteWindow: (start: Duration, rejected: Int) = (.zero, 0)

    public init(limits: RouterChannelLimits = RouterChannelLimits()) {
        self.limits = limits
        line.reserveCapacity(RouterMessageParser.maximumLineLength + 2)
    }

    /// Consumes bytes that arrived at `now`, a monotonic time that keeps running across reconnects (so a
    /// reconnecting router does not start its windows afresh), returning the accepted reports in order.
    ///
    /// - Returns: the reports accepted, and whether to keep reading.
    public mutating func consume(_ bytes: some Sequence<UInt8>, now: Duration) -> (accepted: [RouterMessage], verdict: Verdict) {
        var accepted: [RouterMessage] = []
        // A clock that went backwards (a caller's mistake) restarts the windows rather than freezing them.
        if now - secondWindow.start >= .seconds(1) || now < secondWindow.start { secondWindow = (now, 0, 0) }
        if now - minuteWindow.start >= .seconds(60) || now < minuteWindow.start { minuteWindow = (now, 0) }
        for byte in bytes {
            secondWindow.bytes += 1
            if secondWindow.bytes > limits.floodBytesPerSecond {
                return (accepted, disconnect("more than \(limits.floodBytesPerSecond) bytes in a second"))
            }
            guard byte == UInt8(ascii: "\n") else {
                if discardingOversizedLine { continue }
                line.append(byte)
                // Room for the CR of a CR LF ending.
                if line.count > RouterMessageParser.maximumLineLength + 1 {
                    reject(RouterLineError(.oversized, "a line longer than \(RouterMessageParser.maximumLineLength) bytes"))
                    line.removeAll(keepingCapacity: true)
                    discardingOversizedLine = true
                }
                continue
            }
            if discardingOversizedLine {
                discardingOversizedLine = false
            } else {
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                secondWindow.lines += 1
                if !line.isEmpty {  // blank lines separate AT responses
                    if let message = process(now: now) { accepted.append(message) }
                }
                line.removeAll(keepingCapacity: true)
            }
            if secondWindow.lines > limits.floodLinesPerSecond {
                return (accepted, disconnect("more than \(limits.floodLinesPerSecond) lines in a second"))
            }
            if minuteWindow.rejected > limits.rejectedLinesPerMinute {
                return (accepted, disconnect("more than \(limits.rejectedLinesPerMinute) rejected lines in a minute"))
            }
        }
        return (accepted, .keepReading)
    }

    /// Forgets a partial line, as after a reconnect.
    public mutating func reset() {
        line.removeAll(keepingCapacity: true)
        discardingOversizedLine = false
    }

    private mutating func process(now: Duration) -> RouterMessage? {
        let message: RouterMessage
        do {
            message = try RouterMessageParser.parse(line)
        } catch {
            reject(error)
            return nil
        }
        let milliseconds = UInt64(max(0, now.components.seconds)) * 1000 + UInt64(max(0, now.components.attoseconds)) / 1_000_000_000_000_000
        var bucket = tokens[message.kind]
            ?? TokenBucket(capacity: Double(limits.burstPerType), perSecond: 1 / limits.secondsPerReport, now: milliseconds)
        let admitted = bucket.take(1, now: milliseconds)
        tokens[message.kind] = bucket
        guard admitted else {
            counters.rateLimited += 1
            lastRejection = RouterLineError(.rateLimited, "\(message.kind.rawValue) more often than every \(limits.secondsPerReport) s")
            return nil
        }
        counters.accepted += 1
        message.apply(to: &facts)
        return message
    }

    private mutating func reject(_ error: RouterLineError) {
        switch error.code {
        case .unknown: counters.unknown += 1
        case .malformed: counters.malformed += 1
        case .oversized: counters.oversized += 1
        case .rateLimited: counters.rateLimited += 1
        }
        minuteWindow.rejected += 1
        lastRejection = error
    }

    private mutating func disconnect(_ reason: String) -> Verdict {
        counters.disconnects += 1
        reset()
        return .disconnect(reason: reason)
    }
}
