import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A moment's calendar fields in UTC, from the C library's `gmtime_r`.
///
/// Foundation's `Calendar` looks up the current time zone through ICU even when it is given UTC, which maps
/// megabytes of ICU's data into the device runtime; what the runtime needs (a month, a minute of the day, a
/// log timestamp) is plain arithmetic on UTC.
public struct UTCTime: Sendable, Equatable {
    /// The year, e.g. 2026.
    public var year: Int
    /// The month, 1–12.
    public var month: Int
    /// The day of the month, 1–31.
    public var day: Int
    /// The hour, 0–23.
    public var hour: Int
    /// The minute, 0–59.
    public var minute: Int
    /// The second, 0–60.
    public var second: Int
    /// The millisecond, 0–999.
    public var millisecond: Int

    /// The fields of `date` in UTC (to the millisecond, rounded down).
    public init(_ date: Date) {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        year = Int(parts.tm_year) + 1900
        month = Int(parts.tm_mon) + 1
        day = Int(parts.tm_mday)
        hour = Int(parts.tm_hour)
        minute = Int(parts.tm_min)
        second = Int(parts.tm_sec)
        millisecond = Int(milliseconds - Int64(seconds) * 1000)
    }

    /// `YYYY-MM`.
    public var yearMonth: String { "\(Self.pad(year, 4))-\(Self.pad(month, 2))" }

    /// Minutes since midnight.
    public var minuteOfDay: Int { hour * 60 + minute }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    public var timestamp: String {
        "\(Self.pad(year, 4))-\(Self.pad(month, 2))-\(Self.pad(day, 2))T"
            + "\(Self.pad(hour, 2)):\(Self.pad(minute, 2)):\(Self.pad(second, 2)).\(Self.pad(millisecond, 3))Z"
    }

    /// `value` in decimal, zero-padded on the left to `width` digits.
    public static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
