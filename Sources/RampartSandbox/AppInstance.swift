import Foundation
import Logging
import RampartCore
import RampartImage
import Synchronization
@_spi(Fuzzing) import WasmKit

/// One app's module, instantiated in its own store with bounded memory and fuel. Not thread-safe: it
/// lives on the app's own thread (``AppRunner``), and every call into it comes from there.
final class AppInstance {
    /// The exports the runtime calls, with the types they must have.
    static let entryPoints: [String: FunctionType] = [
        "app_start": FunctionType(parameters: []),
        "app_on_timer": FunctionType(parameters: [.i32]),
        "app_on_message": FunctionType(parameters: [.i32, .i32]),
        "app_on_event": FunctionType(parameters: [.i32, .i32]),
    ]

    let manifest: AppManifest
    let limits: AppLimits
    let environment: AppEnvironment
    let inbox: AppInbox
    let store: Store
    let limiter: MemoryLimiter
    private var instance: Instance?
    var memory: Memory?

    // State the host calls keep, all on the app's thread.
    var sockets: SocketTable
    var timers: [Int32: (deadline: UInt64, period: UInt64)] = [:]
    var message: (sender: String?, bytes: [UInt8])?
    var logWindow = (second: UInt64(0), lines: 0, dropped: 0)
    var storage: AppStorageFile?
    /// The app's name lookups still running (see ``Resolver``).
    let lookups = Resolver.Gate(maximum: Resolver.Gate.perApp)
    /// The hour (monotonic) in which a storage write was last refused for the write budget, for logging once.
    var storageRefusalHour: UInt64?
    /// The fuel spent by every event so far.
    private(set) var fuelSpent: UInt64 = 0
    /// The export being run, for fault messages.
    var currentEntry = "app_start"
    /// Set for the shutdown event: its host calls run although a stop was requested, but never block.
    var isShuttingDown = false

    var capabilities: AppCapabilities { manifest.granted }

    /// Parses, checks and instantiates `wasm`.
    ///
    /// - Throws: ``AppFault`` `appLoadFailure` for a module that is not valid WebAssembly, imports what
    ///   the host does not offer, or lacks `app_start`; `memoryExhausted` for one that starts bigger than
    ///   the memory limit.
    init(wasm: [UInt8], manifest: AppManifest, limits: AppLimits, environment: AppEnvironment, inbox: AppInbox) throws(AppFault) {
        self.manifest = manifest
        self.limits = limits
        self.environment = environment
        self.inbox = inbox
        self.sockets = SocketTable(capacity: limits.maximumSockets)
        self.limiter = MemoryLimiter(memoryBytes: limits.memoryBytes)
        let module: Module
        do {
            // The WebAssembly 2.0 core without reference types or exception handling: a try_table with
            // thousands of catch clauses costs host memory that neither fuel nor the memory limit bounds, and
            // reference types allow any number of tables. One table, as clang's output needs, is enough.
            module = try parseWasm(bytes: wasm, features: [])
        } catch {
            throw AppFault(.appLoadFailure, "The app's module is not valid WebAssembly: \(error)")
        }
        for entry in module.imports {
            guard entry.module == HostAPI.moduleName, case .function = entry.descriptor, HostAPI.names.contains(entry.name) else {
                throw AppFault(
                    .appLoadFailure,
                    "The app imports '\(entry.module).\(entry.name)', which the host does not offer. Apps import only the functions of rampart.h (module \"rampart\").")
            }
        }
        var configuration = EngineConfiguration(stackSize: limits.stackBytes, fuelMetering: true)
        configuration.memoryBoundsChecking = .software
        store = Store(engine: Engine(configuration: configuration))
        store.resourceLimiter = limiter
        store.fuel = Fuel(remaining: limits.fuelPerEvent)
        let imports = HostAPI.imports(for: self)
        do {
            instance = try module.instantiate(store: store, imports: imports)
        } catch is AppStopRequest {
            throw AppFault(.appLoadFailure, "The app was stopped while it started.")
        } catch {
            if limiter.wasDenied {
                throw AppFault(.memoryExhausted, "The app's module needs more memory than its limit of \(limits.memoryBytes) bytes.")
            }
            // A link error (an import with the wrong signature, say) will fail the same way every time.
            guard error is Trap || error is AppFault || error is AppExitRequest else {
                throw AppFault(.appLoadFailure, "The app's module cannot be instantiated: \(error)")
            }
            throw classify(error, during: "instantiation")
        }
        memory = instance?.exports[memory: "memory"]
        for (name, type) in Self.entryPoints {
            guard let function = instance?.exports[function: name] else {
                if name == "app_start" { throw AppFault(.appLoadFailure, "The app does not export app_start.") }
                continue
            }
            guard function.type == type else {
                throw AppFault(.appLoadFailure, "The app's export \(name) has the type \(function.type); rampart.h says \(type).")
            }
        }
    }

    /// Runs one event: `app_start`, `app_on_timer`, … with a fresh fuel budget. Returns the outcome if the
    /// app ended during it, nil if it carries on.
    func run(_ entry: String, _ arguments: [Value] = []) -> AppOutcome? {
        guard let function = instance?.exports[function: entry] else { return nil }
        currentEntry = entry
        limiter.reset()
        store.fuel = Fuel(remaining: limits.fuelPerEvent)
        defer {
            fuelSpent &+= limits.fuelPerEvent - (store.fuel?.remaining ?? 0)
            message = nil
        }
        do {
            _ = try function(arguments)
            return nil
        } catch let exit as AppExitRequest {
            return exit.code == 0 ? .exited : .failed(AppFault(.appExit, "The app exited with code \(exit.code)."))
        } catch is AppStopRequest {
            return .stopped
        } catch {
            return .failed(classify(error, during: entry))
        }
    }

    /// The memory the app has now, in bytes.
    var memoryBytes: Int { memory?.byteCount ?? 0 }

    /// Files an error from WasmKit or a host call under an error report class.
    private func classify(_ error: any Error, during entry: String) -> AppFault {
        if let fault = error as? AppFault { return fault }
        if error is AppExitRequest { return AppFault(.appExit, "The app exited while it was being instantiated.") }
        var text = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        if text.hasPrefix("Trap: ") { text.removeFirst(6) }
        if text == "out of fuel" {
            return AppFault(
                .fuelExhausted,
                "\(entry) spent its whole budget of \(limits.fuelPerEvent) fuel without returning: an endless loop?")
        }
        if limiter.wasDenied {
            return AppFault(
                .memoryExhausted,
                "The app asked for more than its \(limits.memoryBytes) bytes of memory, was refused, and then failed in \(entry): \(text).")
        }
        if text == "call stack exhausted" {
            return AppFault(.appTrap, "\(entry) overflowed the call stack (\(limits.stackBytes) bytes): runaway recursion?")
        }
        return AppFault(.appTrap, "The app trapped in \(entry): \(text).")
    }

    // MARK: Checked access to the app's memory

    /// The bytes at `pointer`..<`pointer + length` in the app's memory.
    ///
    /// - Throws: ``AppFault`` `hostCallFault` when the range is not the app's: the host never reads or
    ///   writes outside it.
    func read(_ pointer: UInt32, _ length: Int, call: String) throws(AppFault) -> [UInt8] {
        try check(pointer, length, call: call)
        guard length > 0, let memory else { return [] }
        return memory.withUnsafeBufferPointer(offset: UInt(pointer), count: length) { Array($0) }
    }

    /// Runs `body` on the app's memory at `pointer`..<`pointer + length`, after the same check as ``read``.
    func withBuffer<T>(_ pointer: UInt32, _ length: Int, call: String, _ body: (UnsafeMutableRawBufferPointer) -> T) throws(AppFault) -> T {
        try check(pointer, length, call: call)
        guard length > 0, let memory else { return body(UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
        return memory.withUnsafeMutableBufferPointer(offset: UInt(pointer), count: length, body)
    }

    private func check(_ pointer: UInt32, _ length: Int, call: String) throws(AppFault) {
        let size = memory?.byteCount ?? 0
        guard length >= 0, Int(pointer) + length <= size else {
            throw AppFault(
                .hostCallFault,
                "\(call) was passed \(length) bytes at address \(pointer), outside the app's \(size) bytes of memory.")
        }
    }

    /// Charges a host call's fuel, so that a flood of calls ends like an endless loop.
    ///
    /// A stop request ends the event at its next host call: an event that loops over blocking calls (each
    /// up to ``AppLimits/maximumBlockingMilliseconds``) would otherwise hold a stop off for hours.
    func chargeHostCall(_ call: String) throws {
        if !isShuttingDown && inbox.isStopRequested { throw AppStopRequest() }
        guard let fuel = store.fuel else { return }
        guard fuel.remaining >= limits.fuelPerHostCall else {
            throw AppFault(
                .fuelExhausted,
                "\(currentEntry) spent its whole budget of \(limits.fuelPerEvent) fuel, the last of it on host calls (\(call)): a flood of host calls?")
        }
        store.fuel = Fuel(remaining: fuel.remaining - limits.fuelPerHostCall)
    }
}

/// Caps linear memory and tables, and remembers a refusal so that the trap that usually follows is
/// reported as memory exhaustion.
final class MemoryLimiter: ResourceLimiter {
    let memoryBytes: Int
    private let denied = Atomic<Bool>(false)

    init(memoryBytes: Int) { self.memoryBytes = memoryBytes }

    var wasDenied: Bool { denied.load(ordering: .relaxed) }
    func reset() { denied.store(false, ordering: .relaxed) }

    func limitMemoryGrowth(to desired: Int) throws -> Bool {
        guard desired <= memoryBytes else {
            denied.store(true, ordering: .relaxed)
            return false
        }
        return true
    }

    func limitTableGrowth(to desired: Int) throws -> Bool { desired <= 10_000 }
}
