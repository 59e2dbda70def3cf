import Foundation
import Synchronization

/// Deferrals of updates by apps with `SoftwareUpdateDeferral` (REFERENCE: an app may defer an update, up
/// to 24 h for system software). The update agent installs nothing while a deferral is in force, except a
/// runtime flagged critical. Deferrals chain, but never beyond 24 h after the first one still in force.
public final class UpdateDeferral: Sendable {
    /// The longest updates can be held off in all.
    public static let maximum: TimeInterval = 24 * 3600

    private let state = Mutex<(until: Date?, since: Date?)>((nil, nil))

    /// No deferral in force.
    public init() {}

    /// Holds updates off for `minutes` from `now`, within the 24 h bound. Returns when they may install.
    @discardableResult
    public func postpone(minutes: Int, now: Date = Date()) -> Date {
        state.withLock { state in
            if let until = state.until, until <= now { state = (nil, nil) }
            let since = state.since ?? now
            let until = min(max(state.until ?? now, now + TimeInterval(minutes) * 60), since + Self.maximum)
            state = (until, since)
            return until
        }
    }

    /// When updates may install, or nil if no deferral is in force.
    public func deferredUntil(now: Date = Date()) -> Date? {
        state.withLock { state in
            guard let until = state.until, until > now else {
                state = (nil, nil)
                return nil
            }
            return until
        }
    }
}
