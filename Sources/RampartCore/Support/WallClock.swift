import Foundation
import Synchronization

/// The source of the current time, injected wherever time decides behaviour (CA rotation, token expiry,
/// nonce lifetimes) so that tests can move it.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Date
}

/// The real clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that tests set and advance by hand.
public final class ManualWallClock: WallClock {
    private let current: Mutex<Date>

    /// Creates a clock reading `start`.
    public init(_ start: Date = Date()) { current = Mutex(start) }

    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock forward.
    public func advance(by interval: TimeInterval) { current.withLock { $0 += interval } }

    /// Sets the clock.
    public func set(_ date: Date) { current.withLock { $0 = date } }
}
