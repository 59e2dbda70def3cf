/// A token bucket: at most `capacity` tokens, refilled continuously at `perSecond`, on a monotonic clock in
/// milliseconds that the caller passes in (so tests can move it). It starts full. One type serves every rate
/// limit in Rampart: an app's CPU time, its storage writes, and the router control channel's reports.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    public let perSecond: Double
    /// What is in the bucket; negative while a debt is being repaid (see ``spend(_:now:)``).
    public private(set) var tokens: Double
    private var updatedAt: UInt64

    public init(capacity: Double, perSecond: Double, now: UInt64) {
        self.capacity = capacity
        self.perSecond = perSecond
        tokens = capacity
        updatedAt = now
    }

    /// Adds what accrued since the last look, up to the capacity. A clock that went back adds nothing.
    public mutating func refill(now: UInt64) {
        if now > updatedAt { tokens = min(capacity, tokens + Double(now - updatedAt) * perSecond / 1000) }
        updatedAt = max(updatedAt, now)
    }

    /// Takes `amount` if the bucket holds it; takes nothing and returns false if not.
    public mutating func take(_ amount: Double, now: UInt64) -> Bool {
        refill(now: now)
        guard tokens >= amount else { return false }
        tokens -= amount
        return true
    }

    /// Takes `amount` whether or not the bucket holds it, going into debt: for what was already used.
    public mutating func spend(_ amount: Double, now: UInt64) {
        refill(now: now)
        tokens -= amount
    }

    /// Milliseconds until the bucket is out of debt (0 when it is not in debt).
    public mutating func millisecondsUntilSolvent(now: UInt64) -> UInt64 {
        refill(now: now)
        guard tokens < 0, perSecond > 0 else { return 0 }
        return UInt64((-tokens * 1000 / perSecond).rounded(.up))
    }
}
