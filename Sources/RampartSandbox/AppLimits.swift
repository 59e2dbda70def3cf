/// The bounds every app runs within, whatever its manifest says. The defaults suit a small device: Azure
/// Sphere gives a high-level app 256 KiB of RAM.
public struct AppLimits: Sendable, Equatable {
    /// The most linear memory an app may have, in bytes (a multiple of 64 KiB). Growth beyond it fails,
    /// as `memory.grow` returning -1; a module that starts bigger is refused.
    public var memoryBytes: Int = 1 << 20
    /// Fuel (about one WebAssembly instruction each) for one event: `app_start`, a timer, a message.
    public var fuelPerEvent: UInt64 = 20_000_000
    /// The fuel one host call costs on top, so that a flood of cheap calls also runs out.
    public var fuelPerHostCall: UInt64 = 2_000
    /// The interpreter's stack for locals and call frames, in bytes: a deep recursion traps when it is full.
    public var stackBytes: Int = 256 * 1024
    /// Open sockets and listeners per app.
    public var maximumSockets: Int = 8
    /// Log lines per second kept; the rest are counted and dropped.
    public var logLinesPerSecond: Int = 100
    /// The longest a host call may block the app (connect, receive, accept), whatever the app asks.
    public var maximumBlockingMilliseconds: Int = 10_000
    /// CPU time an app may use per second of wall time, in milliseconds, with up to a second's worth at
    /// once. Beyond it the runtime holds the app's next event back (throttling, not a fault), so that a busy
    /// timer cannot take a core. 0 turns the budget off.
    public var cpuMillisecondsPerSecond: Int = 500
    /// Bytes an app may write to its storage per hour, counted in 4 KiB flash pages (every write is synced,
    /// so even one byte rewrites a page), with up to an hour's worth at once. Beyond it writes return
    /// `RAMPART_EAGAIN` and change nothing, so that a loop of writes cannot wear out the device's flash.
    /// The count survives the app's restarts. 0 turns the budget off.
    public var storageWriteBytesPerHour: Int = 16 << 20
    /// The address apps' listeners bind to. A device listens on every interface; tests use loopback.
    public var listenAddress: String = "0.0.0.0"

    /// The defaults.
    public init() {}
}
