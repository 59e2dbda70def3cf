import Foundation
import Logging
import RampartCore
import RampartImage
import Synchronization
import Testing
import WAT

@testable import RampartSandbox

/// Builds apps from WAT text and runs them with a deadline, for the sandbox tests.
struct SandboxHarness {
    let board = VirtualPeripheralBoard()
    let bus = AppMessageBus()
    let logs = LogCapture()
    let storage: URL
    var limits: AppLimits
    /// What `rampart_tls_connect` is lent.
    var deviceTLS: (@Sendable (String) -> AppTLSIdentity.Lookup)?

    init(limits: AppLimits = AppLimits()) {
        storage = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-sandbox-\(UUID().uuidString)")
        var limits = limits
        limits.listenAddress = "127.0.0.1"
        self.limits = limits
    }

    /// Every host import of rampart.h, in WAT, so that test modules can call any of them by name.
    static let imports = """
          (import "rampart" "log" (func $log (param i32 i32 i32) (result i32)))
          (import "rampart" "time_ms" (func $time_ms (result i64)))
          (import "rampart" "exit" (func $exit (param i32)))
          (import "rampart" "timer_start" (func $timer_start (param i32 i32 i32) (result i32)))
          (import "rampart" "storage_read" (func $storage_read (param i32 i32 i32) (result i32)))
          (import "rampart" "storage_write" (func $storage_write (param i32 i32 i32) (result i32)))
          (import "rampart" "gpio_set" (func $gpio_set (param i32 i32) (result i32)))
          (import "rampart" "gpio_get" (func $gpio_get (param i32) (result i32)))
          (import "rampart" "tcp_connect" (func $tcp_connect (param i32 i32 i32 i32) (result i32)))
          (import "rampart" "tls_connect" (func $tls_connect (param i32 i32 i32 i32) (result i32)))
          (import "rampart" "tcp_listen" (func $tcp_listen (param i32) (result i32)))
          (import "rampart" "tcp_accept" (func $tcp_accept (param i32 i32) (result i32)))
          (import "rampart" "socket_recv" (func $socket_recv (param i32 i32 i32 i32) (result i32)))
          (import "rampart" "socket_send" (func $socket_send (param i32 i32 i32) (result i32)))
          (import "rampart" "socket_close" (func $socket_close (param i32) (result i32)))
          (import "rampart" "telemetry_send" (func $telemetry_send (param i32 i32) (result i32)))
          (import "rampart" "app_send" (func $app_send (param i32 i32 i32 i32) (result i32)))
          (import "rampart" "message_read" (func $message_read (param i32 i32) (result i32)))
        """

    /// A module with every import, one page of memory, `data` at address 0 and `body` as its functions.
    static func module(_ body: String, data: String = "", pages: Int = 1) -> String {
        """
        (module
        \(imports)
          (memory (export "memory") \(pages))
          (data (i32.const 0) "\(data)")
        \(body)
        )
        """
    }

    func manifest(_ capabilities: String = "{}", component: String = UUID().uuidString.lowercased(), name: String = "test") throws -> AppManifest {
        try AppManifest(bytes: Array(
            #"{"SchemaVersion": 1, "Name": "\#(name)", "ComponentId": "\#(component)", "EntryPoint": "app.wasm", "Capabilities": \#(capabilities)}"#.utf8))
    }

    func runner(wasm: [UInt8], manifest: AppManifest, name: String = "test") -> AppRunner {
        var logger = Logger(label: "app") { _ in logs }
        logger.logLevel = .debug
        var environment = AppEnvironment(
            board: board, messages: bus, storageDirectory: storage.appendingPathComponent(manifest.componentID), logger: logger)
        environment.deviceTLS = deviceTLS
        return AppRunner(wasm: wasm, manifest: manifest, limits: limits, environment: environment)
    }

    func runner(wat: String, capabilities: String = "{}", component: String = UUID().uuidString.lowercased()) throws -> AppRunner {
        runner(wasm: try wat2wasm(wat), manifest: try manifest(capabilities, component: component))
    }

    /// Runs to the end, or stops the app after `seconds` and fails the test.
    func run(_ runner: AppRunner, seconds: Double = 20, sourceLocation: SourceLocation = #_sourceLocation) async -> AppOutcome {
        await withTaskGroup(of: AppOutcome?.self) { group in
            group.addTask { await runner.run() }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = await group.next()!
            if first == nil {
                Issue.record("The app did not end within \(seconds) s", sourceLocation: sourceLocation)
                runner.stop()
            }
            group.cancelAll()
            var outcome = first
            while let next = await group.next() { outcome = outcome ?? next }
            return outcome ?? .stopped
        }
    }

    /// The code an app passed to `rampart_exit`, from its outcome.
    static func exitCode(_ outcome: AppOutcome) -> Int32? {
        switch outcome {
        case .exited: return 0
        case .failed(let fault) where fault.eventClass == .appExit:
            return fault.message.split(separator: " ").last.flatMap { Int32($0.dropLast()) }
        default: return nil
        }
    }
}

/// Collects log messages.
final class LogCapture: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { lines.withLock { $0.append(event.message.description) } }
    var messages: [String] { lines.withLock { $0 } }
}

/// A TCP server on loopback that answers each connection with a greeting and closes it, in a thread of its own.
final class GreetingServer: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let accepted = Counter()

    init(greeting: String = "hello", port: Int = 0) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fd = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard let bound = Loopback.bind(listener, port: port), listen(listener, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
        self.port = bound
        let accepted = accepted
        Thread {
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                accepted.value.add(1, ordering: .relaxed)
                _ = greeting.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                close(client)
            }
        }.start()
    }

    var connections: Int { accepted.value.load(ordering: .relaxed) }

    final class Counter: Sendable { let value = Atomic<Int>(0) }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

/// The sample apps of apps/, built once per test run by scripts/build-apps with the toolchain's clang.
enum SampleApps {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let built: Result<URL, any Error> = Result {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("rampart-apps-\(UUID().uuidString)")
        let process = Process()
        process.executableURL = root.appendingPathComponent("scripts/build-apps")
        process.arguments = [output.path]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw POSIXError(.ENOEXEC) }
        return output
    }

    /// The module and manifest of a sample app.
    static func app(_ name: String) throws -> (wasm: [UInt8], manifest: AppManifest) {
        let folder = try built.get().appendingPathComponent(name)
        return (
            Array(try Data(contentsOf: folder.appendingPathComponent("app.wasm"))),
            try AppManifest(bytes: try Data(contentsOf: folder.appendingPathComponent("app_manifest.json")))
        )
    }
}

/// 127.0.0.1 as a `sockaddr` for the socket calls.
enum Loopback {
    static func withAddress<T>(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Binds `fd` to 127.0.0.1:`port` (0: any free port); returns the port bound, or nil.
    static func bind(_ fd: Int32, port: Int) -> Int? {
        guard withAddress(port: port, { Glibc.bind(fd, $0, $1) }) == 0 else { return nil }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
