#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOSSL
import Logging
import RampartCore
import RampartImage
import WasmKit

/// The host functions of `rampart.h`, in the import module `rampart`. Each one charges its fuel, checks
/// the capability it needs, then checks every pointer and length, before it does anything.
enum HostAPI {
    static let moduleName = "rampart"

    private typealias Body = @Sendable (AppInstance, [Value]) throws(AppFault) -> Int32

    private struct Definition: Sendable {
        var parameters: Int
        var body: Body
    }

    /// The longest log line kept, in bytes.
    static let maximumLogLine = 1024
    /// The most bytes one call moves (send, receive, storage, peripherals, random).
    static let maximumTransfer = 64 * 1024

    static let names: Set<String> = Set(definitions.keys).union(["time_ms", "monotonic_ms", "exit"])

    /// The imports for `app`. The closures hold it unowned: the store they live in is the app's own.
    static func imports(for app: AppInstance) -> Imports {
        var imports = Imports()
        for (name, definition) in definitions {
            imports.define(
                module: moduleName, name: name,
                Function(store: app.store, parameters: Array(repeating: .i32, count: definition.parameters), results: [.i32]) {
                    [unowned app] _, arguments in
                    try app.chargeHostCall(name)
                    return [.i32(UInt32(bitPattern: try definition.body(app, arguments)))]
                })
        }
        imports.define(
            module: moduleName, name: "time_ms",
            Function(store: app.store, parameters: [], results: [.i64]) { [unowned app] _, _ in
                try app.chargeHostCall("time_ms")
                return [.i64(UInt64(bitPattern: Int64(Date().timeIntervalSince1970 * 1000)))]
            })
        imports.define(
            module: moduleName, name: "monotonic_ms",
            Function(store: app.store, parameters: [], results: [.i64]) { [unowned app] _, _ in
                try app.chargeHostCall("monotonic_ms")
                return [.i64(Monotonic.milliseconds)]
            })
        imports.define(
            module: moduleName, name: "exit",
            Function(store: app.store, parameters: [.i32], results: []) { _, arguments in
                throw AppExitRequest(code: Int32(bitPattern: arguments[0].i32))
            })
        return imports
    }

    private static func int(_ arguments: [Value], _ index: Int) -> Int32 { Int32(bitPattern: arguments[index].i32) }
    private static func pointer(_ arguments: [Value], _ index: Int) -> UInt32 { arguments[index].i32 }

    /// Reads a (pointer, length) argument pair as text for a host call, refusing what is too long.
    private static func text(_ app: AppInstance, _ arguments: [Value], _ index: Int, maximum: Int, call: String) throws(AppFault) -> String? {
        let length = int(arguments, index + 1)
        guard length >= 0, Int(length) <= maximum else { return nil }
        return String(validating: try app.read(pointer(arguments, index), Int(length), call: call), as: UTF8.self)
    }

    private static let definitions: [String: Definition] = [
        "log": Definition(parameters: 3) { app, a throws(AppFault) in
            let length = int(a, 2)
            guard length >= 0 else { return HostResult.invalid }
            // Cut first, then check only what is read: a huge length is not a fault, just a long line.
            let bytes = try app.read(pointer(a, 1), min(Int(length), maximumLogLine), call: "rampart_log")
            let second = Monotonic.milliseconds / 1000
            if app.logWindow.second != second {
                if app.logWindow.dropped > 0 {
                    app.environment.logger.warning("App log lines dropped", metadata: ["dropped": "\(app.logWindow.dropped)"])
                }
                app.logWindow = (second, 0, 0)
            }
            guard app.logWindow.lines < app.limits.logLinesPerSecond else {
                app.logWindow.dropped += 1
                return HostResult.again
            }
            app.logWindow.lines += 1
            let line = String(decoding: bytes, as: UTF8.self)
            let level: Logger.Level = switch int(a, 0) {
            case 0: .debug
            case 2: .warning
            case 3: .error
            default: .info
            }
            app.environment.logger.log(level: level, "\(line)\(Int(length) > maximumLogLine ? "…" : "")")
            return Int32(bytes.count)
        },
        "random": Definition(parameters: 2) { app, a throws(AppFault) in
            let length = int(a, 1)
            guard (0...4096).contains(length) else { return HostResult.invalid }
            return try app.withBuffer(pointer(a, 0), Int(length), call: "rampart_random") { buffer in
                var generator = SystemRandomNumberGenerator()
                for index in buffer.indices { buffer[index] = generator.next() }
                return length
            }
        },
        "timer_start": Definition(parameters: 3) { app, a throws(AppFault) in
            let (id, delay, period) = (int(a, 0), int(a, 1), int(a, 2))
            let day: Int32 = 86_400_000
            guard (0..<64).contains(id), (1...day).contains(delay), (0...day).contains(period) else { return HostResult.invalid }
            app.timers[id] = (Monotonic.milliseconds + UInt64(delay), UInt64(period))
            return 0
        },
        "timer_cancel": Definition(parameters: 1) { app, a throws(AppFault) in
            app.timers.removeValue(forKey: int(a, 0)) == nil ? HostResult.notFound : 0
        },
        "storage_read": Definition(parameters: 3) { app, a throws(AppFault) in
            guard let storage = app.storageFile() else { return HostResult.permissionDenied }
            let (offset, length) = (int(a, 0), int(a, 2))
            guard offset >= 0, (0...maximumTransfer).contains(Int(length)) else { return HostResult.invalid }
            return try app.withBuffer(pointer(a, 1), Int(length), call: "rampart_storage_read") { storage.read(at: Int(offset), into: $0) }
        },
        "storage_write": Definition(parameters: 3) { app, a throws(AppFault) in
            guard let storage = app.storageFile() else { return HostResult.permissionDenied }
            let (offset, length) = (int(a, 0), int(a, 2))
            guard offset >= 0, (0...maximumTransfer).contains(Int(length)) else { return HostResult.invalid }
            let bytes = try app.read(pointer(a, 1), Int(length), call: "rampart_storage_write")
            guard Int(offset) + bytes.count <= storage.quota else { return HostResult.noSpace }
            guard app.takeStorageWrite(storage, offset: Int(offset), count: bytes.count) else { return HostResult.again }
            return storage.write(bytes, at: Int(offset))
        },
        "storage_size": Definition(parameters: 0) { app, _ throws(AppFault) in
            guard let storage = app.storageFile() else { return HostResult.permissionDenied }
            return storage.size
        },
        "storage_truncate": Definition(parameters: 1) { app, a throws(AppFault) in
            guard let storage = app.storageFile() else { return HostResult.permissionDenied }
            guard (0...storage.quota).contains(Int(int(a, 0))) else { return storage.truncate(to: Int(int(a, 0))) }
            guard app.takeStorageWrite(storage, offset: Int(int(a, 0)), count: 1) else { return HostResult.again }
            return storage.truncate(to: Int(int(a, 0)))
        },
        "gpio_set": Definition(parameters: 2) { app, a throws(AppFault) in
            guard app.capabilities.gpio.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            return app.environment.board.gpioSet(pin: Int(int(a, 0)), high: int(a, 1) != 0) ? 0 : HostResult.notFound
        },
        "gpio_get": Definition(parameters: 1) { app, a throws(AppFault) in
            guard app.capabilities.gpio.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            return app.environment.board.gpioGet(pin: Int(int(a, 0))).map { $0 ? 1 : 0 } ?? HostResult.notFound
        },
        "uart_write": Definition(parameters: 3) { app, a throws(AppFault) in
            guard app.capabilities.uart.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            guard (0...maximumTransfer).contains(Int(int(a, 2))) else { return HostResult.invalid }
            let bytes = try app.read(pointer(a, 1), Int(int(a, 2)), call: "rampart_uart_write")
            return app.environment.board.uartWrite(uart: Int(int(a, 0)), bytes: bytes).map { Int32(clamping: $0) } ?? HostResult.notFound
        },
        "uart_read": Definition(parameters: 3) { app, a throws(AppFault) in
            guard app.capabilities.uart.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            let length = Int(int(a, 2))
            guard (0...maximumTransfer).contains(length) else { return HostResult.invalid }
            return try app.withBuffer(pointer(a, 1), length, call: "rampart_uart_read") { buffer in
                guard let bytes = app.environment.board.uartRead(uart: Int(int(a, 0)), maximum: length) else { return HostResult.notFound }
                buffer.copyBytes(from: bytes.prefix(length))
                return Int32(min(bytes.count, length))
            }
        },
        "i2c_transfer": Definition(parameters: 6) { app, a throws(AppFault) in
            guard app.capabilities.i2cMaster.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            let (writeLength, readLength) = (Int(int(a, 3)), Int(int(a, 5)))
            guard (0...4096).contains(writeLength), (0...4096).contains(readLength), (0...127).contains(int(a, 1)) else {
                return HostResult.invalid
            }
            let written = try app.read(pointer(a, 2), writeLength, call: "rampart_i2c_transfer")
            return try app.withBuffer(pointer(a, 4), readLength, call: "rampart_i2c_transfer") { buffer in
                guard let bytes = app.environment.board.i2cTransfer(bus: Int(int(a, 0)), address: Int(int(a, 1)), write: written, readCount: readLength)
                else { return HostResult.notFound }
                buffer.copyBytes(from: bytes.prefix(readLength))
                return Int32(min(bytes.count, readLength))
            }
        },
        "spi_transfer": Definition(parameters: 5) { app, a throws(AppFault) in
            guard app.capabilities.spiMaster.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            let (writeLength, readLength) = (Int(int(a, 2)), Int(int(a, 4)))
            guard (0...4096).contains(writeLength), (0...4096).contains(readLength) else { return HostResult.invalid }
            let written = try app.read(pointer(a, 1), writeLength, call: "rampart_spi_transfer")
            return try app.withBuffer(pointer(a, 3), readLength, call: "rampart_spi_transfer") { buffer in
                guard let bytes = app.environment.board.spiTransfer(bus: Int(int(a, 0)), write: written, readCount: readLength)
                else { return HostResult.notFound }
                buffer.copyBytes(from: bytes.prefix(readLength))
                return Int32(min(bytes.count, readLength))
            }
        },
        "adc_read": Definition(parameters: 2) { app, a throws(AppFault) in
            guard app.capabilities.adc.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            guard let value = app.environment.board.adcRead(controller: Int(int(a, 0)), channel: Int(int(a, 1))) else { return HostResult.notFound }
            return Int32(clamping: value)
        },
        "pwm_set": Definition(parameters: 4) { app, a throws(AppFault) in
            guard app.capabilities.pwm.contains(Int(int(a, 0))) else { return HostResult.permissionDenied }
            let (period, duty) = (int(a, 2), int(a, 3))
            guard period > 0, (0...period).contains(duty) else { return HostResult.invalid }
            return app.environment.board.pwmSet(controller: Int(int(a, 0)), channel: Int(int(a, 1)), periodMicroseconds: Int(period), dutyMicroseconds: Int(duty))
                ? 0 : HostResult.notFound
        },
        "tcp_connect": Definition(parameters: 4) { app, a throws(AppFault) in
            try connect(app, a, call: "rampart_tcp_connect", tls: false)
        },
        "tls_connect": Definition(parameters: 4) { app, a throws(AppFault) in
            try connect(app, a, call: "rampart_tls_connect", tls: true)
        },
        "tcp_listen": Definition(parameters: 1) { app, a throws(AppFault) in
            let port = Int(int(a, 0))
            guard app.capabilities.allowedTcpServerPorts.contains(port) else { return HostResult.permissionDenied }
            return app.sockets.listen(address: app.limits.listenAddress, port: port, datagram: false)
        },
        "udp_bind": Definition(parameters: 1) { app, a throws(AppFault) in
            let port = Int(int(a, 0))
            guard app.capabilities.allowedUdpServerPorts.contains(port) else { return HostResult.permissionDenied }
            return app.sockets.listen(address: app.limits.listenAddress, port: port, datagram: true)
        },
        "tcp_accept": Definition(parameters: 2) { app, a throws(AppFault) in
            app.sockets.accept(listener: int(a, 0), timeout: app.blockingTimeout(int(a, 1)))
        },
        "socket_send": Definition(parameters: 3) { app, a throws(AppFault) in
            let length = Int(int(a, 2))
            guard (0...maximumTransfer).contains(length) else { return HostResult.invalid }
            let bytes = try app.read(pointer(a, 1), length, call: "rampart_socket_send")
            return bytes.withUnsafeBytes { app.sockets.send(int(a, 0), bytes: $0, timeout: app.blockingTimeout(1000)) }
        },
        "socket_recv": Definition(parameters: 4) { app, a throws(AppFault) in
            let length = Int(int(a, 2))
            guard (0...maximumTransfer).contains(length) else { return HostResult.invalid }
            let timeout = app.blockingTimeout(int(a, 3))
            return try app.withBuffer(pointer(a, 1), length, call: "rampart_socket_recv") { app.sockets.receive(int(a, 0), into: $0, timeout: timeout) }
        },
        "socket_close": Definition(parameters: 1) { app, a throws(AppFault) in
            app.sockets.close(int(a, 0))
        },
        "telemetry_send": Definition(parameters: 2) { app, a throws(AppFault) in
            guard let tenant = app.capabilities.deviceAuthentication else { return HostResult.permissionDenied }
            let length = Int(int(a, 1))
            guard (0...maximumTransfer).contains(length) else { return HostResult.invalid }
            let payload = try app.read(pointer(a, 0), length, call: "rampart_telemetry_send")
            guard let telemetry = app.environment.telemetry else { return HostResult.unavailable }
            return telemetry(app.manifest.componentID, tenant, payload)
        },
        "app_send": Definition(parameters: 4) { app, a throws(AppFault) in
            guard let recipient = try text(app, a, 0, maximum: 64, call: "rampart_app_send"), (0...4096).contains(int(a, 3)) else {
                return HostResult.invalid
            }
            let bytes = try app.read(pointer(a, 2), Int(int(a, 3)), call: "rampart_app_send")
            return app.environment.messages.send(
                from: app.manifest.componentID, allowed: app.capabilities.allowedApplicationConnections, to: recipient.lowercased(), bytes: bytes)
        },
        "message_read": Definition(parameters: 2) { app, a throws(AppFault) in
            guard let message = app.message else { return HostResult.again }
            let length = min(Int(max(0, int(a, 1))), message.bytes.count)
            return try app.withBuffer(pointer(a, 0), length, call: "rampart_message_read") { buffer in
                buffer.copyBytes(from: message.bytes.prefix(length))
                return Int32(length)
            }
        },
        "message_sender": Definition(parameters: 2) { app, a throws(AppFault) in
            guard let sender = app.message?.sender else { return HostResult.notFound }
            let bytes = Array(sender.utf8)
            guard int(a, 1) >= Int32(bytes.count) else { return HostResult.invalid }
            return try app.withBuffer(pointer(a, 0), bytes.count, call: "rampart_message_sender") { buffer in
                buffer.copyBytes(from: bytes)
                return Int32(bytes.count)
            }
        },
        "update_defer": Definition(parameters: 1) { app, a throws(AppFault) in
            guard app.capabilities.softwareUpdateDeferral else { return HostResult.permissionDenied }
            guard (1...1440).contains(int(a, 0)) else { return HostResult.invalid }
            guard let deferUpdate = app.environment.deferUpdate else { return HostResult.unavailable }
            deferUpdate(app.manifest.componentID, Int(int(a, 0)))
            return 0
        },
        "link_status": Definition(parameters: 1) { app, a throws(AppFault) in
            guard app.capabilities.networkConfig else { return HostResult.permissionDenied }
            guard let linkStatus = app.environment.linkStatus else { return HostResult.unavailable }
            let facts = linkStatus()
            let radios: [LinkFacts.RadioTechnology] = [.gsm, .umts, .lte, .nbIoT, .nr]
            let registrations: [LinkFacts.Registration] = [.notRegistered, .home, .searching, .denied, .unknown, .roaming]
            // rampart_link_status_t: four little-endian int32 fields.
            let fields: [Int32] = [
                facts == nil ? 0 : 1,
                Int32(facts?.signalDBm ?? 0),
                facts?.registration.flatMap { registrations.firstIndex(of: $0) }.map(Int32.init) ?? -1,
                facts?.radio.flatMap { radios.firstIndex(of: $0) }.map { Int32($0 + 1) } ?? 0,
            ]
            return try app.withBuffer(pointer(a, 0), 16, call: "rampart_link_status") { buffer in
                for (index, field) in fields.enumerated() {
                    for byte in 0..<4 { buffer[index * 4 + byte] = UInt8(truncatingIfNeeded: field >> (8 * byte)) }
                }
                return 16
            }
        },
        "reboot_request": Definition(parameters: 0) { app, _ throws(AppFault) in
            guard app.capabilities.powerControls.contains("ForceReboot") else { return HostResult.permissionDenied }
            guard let requestReboot = app.environment.requestReboot else { return HostResult.unavailable }
            requestReboot(app.manifest.componentID)
            return 0
        },
    ]

    /// `tcp_connect` and `tls_connect`: the firewall first, then the connection.
    private static func connect(_ app: AppInstance, _ a: [Value], call: String, tls: Bool) throws(AppFault) -> Int32 {
        guard let given = try text(app, a, 0, maximum: 253, call: call), let host = AppCapabilities.host(given),
            (1...65_535).contains(int(a, 2))
        else { return HostResult.invalid }
        guard app.capabilities.allowedConnections.contains(host) else {
            app.environment.logger.notice("Firewall denied a connection", metadata: ["host": "\(host)", "port": "\(int(a, 2))"])
            return HostResult.permissionDenied
        }
        var tlsContext: NIOSSLContext?
        if tls {
            guard let tenant = app.capabilities.deviceAuthentication else { return HostResult.permissionDenied }
            switch app.environment.deviceTLS?(tenant) {
            case .identity(let identity)?:
                do {
                    tlsContext = try identity.clientContext()
                } catch {
                    app.environment.logger.warning("The device's TLS identity could not be loaded", metadata: ["error": "\(error)"])
                    return HostResult.unavailable
                }
            case .otherTenant?: return HostResult.permissionDenied
            case .unavailable?, nil: return HostResult.unavailable  // never plain TCP instead
            }
        }
        let timeout = app.blockingTimeout(int(a, 3))
        let started = Monotonic.milliseconds
        var addresses: [ResolvedAddress]
        if Resolver.isNumeric(host) {
            addresses = Resolver.resolve(host, port: Int(int(a, 2)))
        } else {
            // The name's lookup counts against the call's timeout (with a tenth of a second at least, so that a
            // call with no time left still tries).
            switch Resolver.resolve(host, port: Int(int(a, 2)), waitingAtMost: max(100, Int(timeout)), gates: [app.lookups, .shared]) {
            case .addresses(let found): addresses = found
            case .timedOut: return HostResult.timedOut
            case .busy: return HostResult.again
            }
        }
        guard !addresses.isEmpty else { return HostResult.notFound }
        if !Resolver.isNumeric(host) {
            // A name is allowed for what it names on the network, not for wherever a DNS answer points: an
            // answer of loopback, link-local or unspecified would lead into the device itself (its local
            // services) or its link. Only an address the manifest lists literally reaches those.
            addresses.removeAll(where: \.isDeviceLocal)
            guard !addresses.isEmpty else {
                app.environment.logger.notice(
                    "Firewall denied a connection: the name resolved only to loopback or link-local addresses",
                    metadata: ["host": "\(host)", "port": "\(int(a, 2))"])
                return HostResult.permissionDenied
            }
        }
        var remaining = max(0, Int64(timeout) - Int64(Monotonic.milliseconds - started))
        let handle = app.sockets.connect(addresses: addresses, timeout: Int32(remaining))
        guard let tlsContext, handle > 0 else { return handle }
        // The handshake shares the call's timeout. The server is verified against the system's trust store and
        // the runtime's own service CA: by name (and SNI) for a name, by IP address for an address.
        remaining = max(0, Int64(timeout) - Int64(Monotonic.milliseconds - started))
        let (result, failure) = app.sockets.startTLS(
            handle, context: tlsContext, serverHostname: Resolver.isNumeric(host) ? nil : host, timeout: Int32(remaining))
        if let failure {
            app.environment.logger.notice("TLS connection failed", metadata: ["host": "\(host)", "port": "\(int(a, 2))", "reason": "\(failure)"])
        }
        return result
    }
}

extension AppInstance {
    /// A timeout the app asked for, within the runtime's limit.
    func blockingTimeout(_ requested: Int32) -> Int32 {
        isShuttingDown ? 0 : Int32(min(max(0, Int(requested)), limits.maximumBlockingMilliseconds))
    }

    /// Takes a storage write from the app's hourly budget; logs the first refusal of each hour.
    func takeStorageWrite(_ storage: AppStorageFile, offset: Int, count: Int) -> Bool {
        if StorageWriteMeter.shared.take(file: storage.url.path, offset: offset, count: count, perHour: limits.storageWriteBytesPerHour) {
            return true
        }
        let hour = Monotonic.milliseconds / 3_600_000
        if storageRefusalHour != hour {
            storageRefusalHour = hour
            environment.logger.notice(
                "App storage write refused: over its write budget",
                metadata: ["budget": "\(limits.storageWriteBytesPerHour / 1024) KiB per hour"])
        }
        return false
    }

    /// The app's storage, if its manifest grants any.
    func storageFile() -> AppStorageFile? {
        guard let kb = capabilities.mutableStorageKB else { return nil }
        if storage == nil {
            storage = AppStorageFile(directory: environment.storageDirectory, quota: kb * 1024)
        }
        return storage
    }
}

/// Milliseconds on the monotonic clock.
enum Monotonic {
    static var milliseconds: UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
    }
}
