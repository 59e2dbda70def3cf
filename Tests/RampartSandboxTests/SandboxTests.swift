import Foundation
import RampartCore
import RampartImage
import Testing
import WAT

@testable import RampartSandbox

@Suite("App manifests")
struct AppManifestTests {
    @Test(
        "Malformed capabilities are refused with a message naming them",
        arguments: [
            (#"{"Teleport": true}"#, "unknown capability 'Teleport'"),
            (#"{"Gpio": ["8"]}"#, "Gpio must be an array of numbers"),
            (#"{"Gpio": [5000]}"#, "Gpio must be an array of numbers 0…1023"),
            (#"{"AllowedTcpServerPorts": [70000]}"#, "AllowedTcpServerPorts must be an array of numbers 1…65535"),
            (#"{"AllowedConnections": ["*.example.com"]}"#, "AllowedConnections must be an array of host names"),
            (#"{"AllowedConnections": "example.com"}"#, "AllowedConnections must be an array of host names"),
            (#"{"MutableStorage": {"SizeKB": 0}}"#, "MutableStorage must be"),
            (#"{"DeviceAuthentication": true}"#, "DeviceAuthentication must be a tenant ID"),
            (#"{"SystemEventNotifications": "yes"}"#, "SystemEventNotifications must be true or false"),
            (#"{"PowerControls": ["SelfDestruct"]}"#, "PowerControls must be an array of"),
            (#"{"AllowedApplicationConnections": ["not-a-uuid"]}"#, "AllowedApplicationConnections must be an array of component IDs"),
        ])
    func refused(capabilities: String, message: String) throws {
        let error = #expect(throws: RampartError.self) { try SandboxHarness().manifest(capabilities) }
        #expect(error?.code == .packageMalformed)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test("Granted capabilities are typed and normalised")
    func granted() throws {
        let peer = UUID().uuidString
        let manifest = try SandboxHarness().manifest(
            #"{"Gpio": [8, 9], "AllowedConnections": ["Example.COM", "127.0.0.1"], "AllowedTcpServerPorts": [8080], "MutableStorage": {"SizeKB": 4}, "AllowedApplicationConnections": ["\#(peer)"], "PowerControls": ["ForceReboot"], "SoftwareUpdateDeferral": true}"#)
        #expect(manifest.granted.gpio == [8, 9])
        #expect(manifest.granted.allowedConnections == ["example.com", "127.0.0.1"])
        #expect(manifest.granted.allowedTcpServerPorts == [8080])
        #expect(manifest.granted.mutableStorageKB == 4)
        #expect(manifest.granted.allowedApplicationConnections == [peer.lowercased()])
        #expect(manifest.granted.powerControls == ["ForceReboot"])
        #expect(manifest.granted.softwareUpdateDeferral)
        #expect(!manifest.granted.systemEventNotifications)
    }
}

@Suite("App sandbox")
struct SandboxTests {
    @Test("An app that exits with 0 ends cleanly; a non-zero code is an error")
    func exitCodes() async throws {
        let harness = SandboxHarness()
        let clean = try harness.runner(wat: SandboxHarness.module(#"(func (export "app_start") (call $exit (i32.const 0)))"#))
        #expect(await harness.run(clean) == .exited)
        let failing = try harness.runner(wat: SandboxHarness.module(#"(func (export "app_start") (call $exit (i32.const 3)))"#))
        guard case .failed(let fault) = await harness.run(failing) else { Issue.record("not a failure"); return }
        #expect(fault.eventClass == .appExit)
        #expect(fault.message == "The app exited with code 3.")
    }

    @Test(
        "Modules that cannot run are refused before they start",
        arguments: [
            ("(module)", "does not export app_start"),
            (#"(module (import "env" "system" (func)) (func (export "app_start")))"#, "imports 'env.system'"),
            (#"(module (import "rampart" "exec" (func)) (func (export "app_start")))"#, "imports 'rampart.exec'"),
            (#"(module (func (export "app_start") (param i32)))"#, "export app_start has the type"),
            (#"(module (func (export "app_start")) (func (export "app_on_timer")))"#, "export app_on_timer has the type"),
            // Reference types would allow any number of tables, each a host allocation outside the memory limit.
            (#"(module (table 1 funcref) (table 1 funcref) (func (export "app_start")))"#, "multiple tables"),
            (#"(module (import "rampart" "log" (func (param i32))) (func (export "app_start")))"#, "cannot be instantiated"),
        ])
    func loadFailures(wat: String, message: String) async throws {
        let harness = SandboxHarness()
        guard case .failed(let fault) = await harness.run(try harness.runner(wat: wat)) else { Issue.record("it ran"); return }
        #expect(fault.eventClass == .appLoadFailure)
        #expect(fault.message.contains(message), "\(fault.message)")
    }

    @Test("Bytes that are not WebAssembly are refused")
    func notWasm() async throws {
        let harness = SandboxHarness()
        let runner = harness.runner(wasm: Array("#!/bin/sh\nrm -rf /\n".utf8), manifest: try harness.manifest())
        guard case .failed(let fault) = await harness.run(runner) else { Issue.record("it ran"); return }
        #expect(fault.eventClass == .appLoadFailure)
        #expect(fault.message.contains("not valid WebAssembly"))
    }

    @Test("A module that starts bigger than the memory limit is refused as memory exhaustion")
    func initialMemoryTooBig() async throws {
        let harness = SandboxHarness()
        let runner = try harness.runner(wat: SandboxHarness.module(#"(func (export "app_start"))"#, pages: 64))
        guard case .failed(let fault) = await harness.run(runner) else { Issue.record("it ran"); return }
        #expect(fault.eventClass == .memoryExhausted)
    }

    @Test("Timers fire, periodically and once, until the app stops")
    func timers() async throws {
        let harness = SandboxHarness()
        let runner = try harness.runner(
            wat: SandboxHarness.module(
                #"""
                (global $ticks (mut i32) (i32.const 0))
                (func (export "app_start") (drop (call $timer_start (i32.const 1) (i32.const 10) (i32.const 10))))
                (func (export "app_on_timer") (param $id i32)
                  (drop (call $gpio_set (i32.const 8) (i32.rem_u (global.get $ticks) (i32.const 2))))
                  (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
                  (if (i32.eq (global.get $ticks) (i32.const 5)) (then (call $exit (i32.const 0)))))
                """#),
            capabilities: #"{"Gpio": [8]}"#)
        #expect(await harness.run(runner) == .exited)
        #expect(harness.board.writes(pin: 8) == [false, true, false, true, false])
        #expect(runner.usage.events == 6)
    }

    @Test("A busy 1 ms timer is held to the CPU budget, and a stop still ends it at once")
    func cpuBudget() async throws {
        var limits = AppLimits()
        limits.cpuMillisecondsPerSecond = 10  // 1 % of a core: far below what the timer asks, however fast events run
        let harness = SandboxHarness(limits: limits)
        let runner = try harness.runner(
            wat: SandboxHarness.module(
                #"""
                (func (export "app_start") (drop (call $timer_start (i32.const 1) (i32.const 1) (i32.const 1))))
                (func (export "app_on_timer") (param $id i32) (local $i i32)
                  (loop (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br_if 0 (i32.lt_u (local.get $i) (i32.const 20000)))))
                """#))
        let started = Date()
        async let outcome = harness.run(runner)
        // Until the budget holds it back (at once on an idle machine; later where starting the app is slow),
        // and a little longer. Without a budget it never would, and this would wait in vain.
        for _ in 0..<400 where runner.usage.throttledMilliseconds == 0 { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(500))
        let stopped = Date()
        runner.stop()
        #expect(await outcome == .stopped)
        #expect(Date().timeIntervalSince(stopped) < 5)  // not held back for the budget (slack for a loaded machine)
        let usage = runner.usage
        let seconds = stopped.timeIntervalSince(started)
        // At 10 ms a second, with a second's burst and one event that may overrun (a slow debug interpreter
        // on a loaded machine): far from the 1,000 ms a second a core would give it.
        #expect(Double(usage.cpuMilliseconds) <= 10 * seconds + 10 + 170, "\(usage) in \(seconds) s")
        // It was held back (how long depends on how fast its events ran on this machine, so only that).
        #expect(usage.throttledMilliseconds > 0, "\(usage) in \(seconds) s")
        #expect(usage.events >= 2)
        #expect(harness.logs.messages.contains { $0.contains("CPU budget") })
    }

    @Test("A stop ends an app that loops over blocking calls at its next call")
    func stopWhileBlocking() async throws {
        var limits = AppLimits()
        limits.maximumBlockingMilliseconds = 500
        let harness = SandboxHarness(limits: limits)
        let port = TCPProbe.freePort()
        let runner = try harness.runner(
            wat: SandboxHarness.module(
                #"""
                (func (export "app_start") (local $listener i32)
                  (local.set $listener (call $tcp_listen (i32.const \#(port))))
                  (loop (drop (call $tcp_accept (local.get $listener) (i32.const 10000))) (br 0)))
                """#),
            capabilities: #"{"AllowedTcpServerPorts": [\#(port)]}"#)
        async let outcome = harness.run(runner)
        try await Task.sleep(for: .milliseconds(300))
        let stopped = Date()
        runner.stop()
        #expect(await outcome == .stopped)
        #expect(Date().timeIntervalSince(stopped) < 5)
    }

    @Test("An idle app runs until it is stopped")
    func stop() async throws {
        let harness = SandboxHarness()
        let runner = try harness.runner(wat: SandboxHarness.module(#"(func (export "app_start"))"#))
        async let outcome = harness.run(runner)
        try await Task.sleep(for: .milliseconds(100))
        runner.stop()
        #expect(await outcome == .stopped)
    }
}

@Suite("Capabilities and the firewall")
struct CapabilityTests {
    /// An app whose exit code is 100 plus the result of `call`.
    static func reporting(_ call: String, data: String = "") -> String {
        SandboxHarness.module(#"(func (export "app_start") (call $exit (i32.add (i32.const 100) \#(call))))"#, data: data)
    }

    func result(_ call: String, data: String = "", capabilities: String = "{}", harness: SandboxHarness = SandboxHarness()) async throws -> Int32? {
        let outcome = await harness.run(try harness.runner(wat: Self.reporting(call, data: data), capabilities: capabilities))
        return SandboxHarness.exitCode(outcome).map { $0 - 100 }
    }

    @Test("GPIO: a pin the manifest lists works, any other is denied")
    func gpio() async throws {
        let harness = SandboxHarness()
        #expect(try await result("(call $gpio_set (i32.const 8) (i32.const 1))", capabilities: #"{"Gpio": [8]}"#, harness: harness) == 0)
        #expect(harness.board.level(pin: 8))
        #expect(try await result("(call $gpio_set (i32.const 9) (i32.const 1))", capabilities: #"{"Gpio": [8]}"#, harness: harness) == -1)
        #expect(!harness.board.level(pin: 9))
        #expect(try await result("(call $gpio_get (i32.const 8))", harness: harness) == -1)
    }

    @Test("Outbound TCP reaches a server in AllowedConnections and no other")
    func allowedConnections() async throws {
        let server = try GreetingServer(greeting: "hello")
        let connectAndRead = """
            (call $socket_recv (call $tcp_connect (i32.const 0) (i32.const 9) (i32.const \(server.port)) (i32.const 2000)) (i32.const 64) (i32.const 32) (i32.const 2000))
            """
        #expect(try await result(connectAndRead, data: "127.0.0.1", capabilities: #"{"AllowedConnections": ["127.0.0.1"]}"#) == 5)
        #expect(server.connections == 1)
        // Not listed: denied before any packet leaves.
        let connect = "(call $tcp_connect (i32.const 0) (i32.const 9) (i32.const \(server.port)) (i32.const 2000))"
        #expect(try await result(connect, data: "127.0.0.1", capabilities: #"{"AllowedConnections": ["example.com"]}"#) == -1)
        #expect(try await result(connect, data: "127.0.0.1") == -1)
        #expect(server.connections == 1)
        // An allowed name whose answer is loopback (DNS rebinding, or a hostile resolver) does not lead into the
        // device: only a literal address in the manifest does.
        #expect(try await result(connect, data: "localhost", capabilities: #"{"AllowedConnections": ["localhost"]}"#) == -1)
        #expect(server.connections == 1)
    }

    @Test("A name lookup that hangs times out within the call's time, and lookups left running are bounded")
    func resolverTimeout() async throws {
        // Its own gates, so that other tests' lookups are not refused meanwhile: a "process" gate of 3 and
        // two apps' gates of 2.
        let process = Resolver.Gate(maximum: 3)
        let (app, other) = (Resolver.Gate(maximum: 2), Resolver.Gate(maximum: 2))
        let release = DispatchSemaphore(value: 0)
        let hanging: @Sendable (String, Int) -> [ResolvedAddress] = { _, _ in
            release.wait()
            return []
        }
        func answer(
            _ wait: Int, _ gate: Resolver.Gate, _ lookup: @escaping @Sendable (String, Int) -> [ResolvedAddress] = hanging
        ) -> String {
            switch Resolver.resolve("slow.example", port: 80, waitingAtMost: wait, gates: [gate, process], lookup: lookup) {
            case .addresses(let found): "\(found.count) addresses"
            case .timedOut: "timed out"
            case .busy: "busy"
            }
        }
        let started = Date()
        #expect(answer(200, app) == "timed out")
        #expect(Date().timeIntervalSince(started) < 2)
        // The first lookup still holds its thread. The app may have two running, not three, while another app
        // still gets the process's last one; after that, everyone is refused rather than queued.
        #expect(answer(10, app) == "timed out")
        #expect(answer(10, app) == "busy")
        #expect(answer(10, other) == "timed out")
        #expect(answer(10, other) == "busy")
        for _ in 0..<process.maximum { release.signal() }
        // Once they finish, lookups run again; a quick one answers.
        var answered = false
        for _ in 0..<100 where !answered {
            answered = answer(1000, app, { _, port in [Resolver.numeric("127.0.0.1", port: port)!] }) == "1 addresses"
            if !answered { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(answered)
    }

    @Test("Loopback, unspecified and link-local answers are the device's own, in IPv4, IPv6 and IPv4-mapped form")
    func deviceLocalAddresses() {
        let local = ["127.0.0.1", "127.3.2.1", "0.0.0.0", "169.254.169.254", "::1", "::", "fe80::1", "febf::1", "::ffff:127.0.0.1", "::ffff:169.254.1.1"]
        let remote = ["10.0.0.1", "192.168.1.1", "169.253.0.1", "8.8.8.8", "::2", "fec0::1", "2001:db8::1", "::ffff:10.0.0.1", "128.0.0.1"]
        for address in local { #expect(Resolver.numeric(address, port: 1)?.isDeviceLocal == true, "\(address)") }
        for address in remote { #expect(Resolver.numeric(address, port: 1)?.isDeviceLocal == false, "\(address)") }
    }

    @Test("Listening works only on a granted port")
    func listening() async throws {
        let port = TCPProbe.freePort()
        #expect(try await result("(call $tcp_listen (i32.const \(port)))", capabilities: #"{"AllowedTcpServerPorts": [\#(port + 1)]}"#) == -1)
        let harness = SandboxHarness()
        let runner = try harness.runner(
            wat: Self.reporting("(call $tcp_accept (call $tcp_listen (i32.const \(port))) (i32.const 5000))"),
            capabilities: #"{"AllowedTcpServerPorts": [\#(port)]}"#)
        async let outcome = harness.run(runner)
        var connected = false
        for _ in 0..<50 where !connected {
            try await Task.sleep(for: .milliseconds(50))
            connected = TCPProbe.connect(port: port)
        }
        #expect(connected)
        #expect(SandboxHarness.exitCode(await outcome).map { $0 - 100 } ?? 0 > 0)
    }

    @Test("The device certificate is out of reach without DeviceAuthentication")
    func deviceAuthentication() async throws {
        #expect(try await result("(call $telemetry_send (i32.const 0) (i32.const 2))", data: "{}") == -1)
        #expect(try await result("(call $tls_connect (i32.const 0) (i32.const 9) (i32.const 443) (i32.const 100))", data: "127.0.0.1", capabilities: #"{"AllowedConnections": ["127.0.0.1"]}"#) == -1)
        // With it, and no telemetry connection in this runtime: unavailable, not denied.
        #expect(try await result("(call $telemetry_send (i32.const 0) (i32.const 2))", data: "{}", capabilities: #"{"DeviceAuthentication": "\#(UUID())"}"#) == -8)
    }

    @Test("Storage stays within MutableStorage.SizeKB and survives a restart")
    func storage() async throws {
        let harness = SandboxHarness()
        let component = UUID().uuidString.lowercased()
        let capabilities = #"{"MutableStorage": {"SizeKB": 1}}"#
        let write = try harness.runner(wat: Self.reporting("(call $storage_write (i32.const 0) (i32.const 0) (i32.const 5))", data: "state"), capabilities: capabilities, component: component)
        #expect(SandboxHarness.exitCode(await harness.run(write)) == 105)
        let beyond = try harness.runner(wat: Self.reporting("(call $storage_write (i32.const 1000) (i32.const 0) (i32.const 25))"), capabilities: capabilities, component: component)
        #expect(SandboxHarness.exitCode(await harness.run(beyond)) == 100 - 3)
        let read = try harness.runner(
            wat: SandboxHarness.module(
                #"(func (export "app_start") (drop (call $storage_read (i32.const 0) (i32.const 100) (i32.const 5))) (call $exit (i32.load8_u (i32.const 104))))"#),
            capabilities: capabilities, component: component)
        #expect(SandboxHarness.exitCode(await harness.run(read)) == Int32(UInt8(ascii: "e")))
        #expect(try await result("(call $storage_write (i32.const 0) (i32.const 0) (i32.const 1))", harness: harness) == -1)
    }

    @Test("Storage writes are metered in 4 KiB pages against an hourly budget that a restart does not reset")
    func storageWriteBudget() async throws {
        var limits = AppLimits()
        limits.storageWriteBytesPerHour = 8192
        let harness = SandboxHarness(limits: limits)
        let component = UUID().uuidString.lowercased()
        let capabilities = #"{"MutableStorage": {"SizeKB": 16}}"#
        // Ten one-byte writes: each rewrites a page, so two fit in 8 KiB; the rest are EAGAIN and change nothing.
        let writes = SandboxHarness.module(
            #"""
            (func (export "app_start") (local $i i32) (local $ok i32)
              (loop
                (if (i32.ge_s (call $storage_write (local.get $i) (i32.const 0) (i32.const 1)) (i32.const 0))
                  (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if 0 (i32.lt_u (local.get $i) (i32.const 10))))
              (call $exit (i32.add (i32.const 100) (local.get $ok))))
            """#)
        let first = try harness.runner(wat: writes, capabilities: capabilities, component: component)
        #expect(SandboxHarness.exitCode(await harness.run(first)) == 102)
        let restarted = try harness.runner(wat: writes, capabilities: capabilities, component: component)
        #expect(SandboxHarness.exitCode(await harness.run(restarted)) == 100)
        #expect(harness.logs.messages.contains { $0.contains("write budget") })
        // The bytes that were refused were not written: the file holds the first two writes only.
        let file = harness.storage.appendingPathComponent(component).appendingPathComponent("storage.bin")
        #expect(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int == 2)
    }

    @Test("The write meter charges every page a write touches and refills over the hour")
    func storageWriteMeter() {
        let meter = StorageWriteMeter()
        let file = "/tmp/\(UUID())"
        #expect(meter.take(file: file, offset: 0, count: 1, perHour: 16384, now: 0))          // 1 page
        #expect(meter.take(file: file, offset: 4000, count: 5000, perHour: 16384, now: 0))    // pages 0–2
        #expect(!meter.take(file: file, offset: 0, count: 1, perHour: 16384, now: 0))         // empty
        #expect(meter.take(file: file, offset: 0, count: 1, perHour: 16384, now: 900_000))    // a quarter hour: 1 page
        #expect(!meter.take(file: file, offset: 0, count: 1, perHour: 16384, now: 900_000))
        #expect(meter.take(file: file, offset: 0, count: 4096 * 4, perHour: 16384, now: 10_000_000))  // full, never more
        #expect(meter.take(file: "/other", offset: 0, count: 1, perHour: 16384, now: 0))      // per file
        #expect(meter.take(file: file, offset: 0, count: 1 << 30, perHour: 0, now: 0))        // 0: no budget
    }

    @Test("Apps reach each other only when both manifests allow it")
    func appConnections() async throws {
        let harness = SandboxHarness()
        let (sender, receiver) = (UUID().uuidString.lowercased(), UUID().uuidString.lowercased())
        let receiving = SandboxHarness.module(
            #"""
            (func (export "app_start"))
            (func (export "app_on_message") (param $kind i32) (param $length i32)
              (call $exit (i32.add (i32.const 100) (call $message_read (i32.const 200) (i32.const 64)))))
            """#)
        let sending = Self.reporting("(call $app_send (i32.const 0) (i32.const 36) (i32.const 0) (i32.const 36))", data: receiver)
        func attempt(receiverAllows: Bool) async throws -> (sent: Int32?, received: Int32?) {
            let inbox = try harness.runner(
                wat: receiving, capabilities: #"{"AllowedApplicationConnections": [\#(receiverAllows ? "\"\(sender)\"" : "")]}"#, component: receiver)
            async let received = harness.run(inbox, seconds: 5)
            while inbox.usage.events == 0 { try await Task.sleep(for: .milliseconds(10)) }
            let sent = SandboxHarness.exitCode(
                await harness.run(try harness.runner(wat: sending, capabilities: #"{"AllowedApplicationConnections": ["\#(receiver)"]}"#, component: sender)))
            if sent != 136 { inbox.stop() }
            return (sent, SandboxHarness.exitCode(await received))
        }
        let allowed = try await attempt(receiverAllows: true)
        #expect(allowed.sent == 136)
        #expect(allowed.received == 136)
        let oneSided = try await attempt(receiverAllows: false)
        #expect(oneSided.sent == 99)
    }
}

@Suite("Hostile apps")
struct HostileAppTests {
    /// A smaller fuel budget than a device's, so that endless loops end sooner in a debug build.
    static var limits: AppLimits {
        var limits = AppLimits()
        limits.fuelPerEvent = 4_000_000
        return limits
    }

    func fault(_ body: String, capabilities: String = "{}", limits: AppLimits = HostileAppTests.limits) async throws -> AppFault? {
        let harness = SandboxHarness(limits: limits)
        guard case .failed(let fault) = await harness.run(try harness.runner(wat: SandboxHarness.module(body), capabilities: capabilities)) else {
            Issue.record("the app did not fail")
            return nil
        }
        return fault
    }

    @Test("A pointer outside the app's memory ends the app, and the host never touches it")
    func outOfBounds() async throws {
        let outside = try await fault(#"(func (export "app_start") (drop (call $log (i32.const 1) (i32.const 65500) (i32.const 100))))"#)
        #expect(outside?.eventClass == .hostCallFault)
        #expect(outside?.message.contains("outside the app's 65536 bytes") == true)
        let wrapped = try await fault(#"(func (export "app_start") (drop (call $storage_read (i32.const 0) (i32.const -1) (i32.const 16))))"#, capabilities: #"{"MutableStorage": {"SizeKB": 1}}"#)
        #expect(wrapped?.eventClass == .hostCallFault)
    }

    @Test("Unbounded memory growth stops at the limit")
    func memoryGrowth() async throws {
        let fault = try await fault(
            #"(func (export "app_start") (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable)"#)
        #expect(fault?.eventClass == .memoryExhausted)
    }

    @Test("An endless loop runs out of fuel")
    func endlessLoop() async throws {
        let fault = try await fault(#"(func (export "app_start") (loop (br 0)))"#)
        #expect(fault?.eventClass == .fuelExhausted)
    }

    @Test("Deep recursion overflows the app's own stack, not the runtime's")
    func recursion() async throws {
        let fault = try await fault(#"(func $down (export "app_start") (call $down))"#)
        #expect(fault?.eventClass == .appTrap)
        #expect(fault?.message.contains("call stack") == true)
    }

    @Test("A flood of host calls runs out of fuel")
    func hostCallFlood() async throws {
        let fault = try await fault(#"(func (export "app_start") (loop (drop (call $gpio_get (i32.const 1))) (br 0)))"#)
        #expect(fault?.eventClass == .fuelExhausted)
        #expect(fault?.message.contains("host calls") == true)
    }

    @Test("A huge log line is cut, and a flood of lines is rate-limited")
    func hugeLogs() async throws {
        let harness = SandboxHarness()
        let runner = try harness.runner(
            wat: SandboxHarness.module(
                #"""
                (func (export "app_start") (local $i i32)
                  (drop (call $log (i32.const 1) (i32.const 0) (i32.const 2147483647)))
                  (loop (drop (call $log (i32.const 1) (i32.const 0) (i32.const 4)))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br_if 0 (i32.lt_u (local.get $i) (i32.const 1000))))
                  (call $exit (i32.const 0)))
                """#, data: "line"))
        #expect(await harness.run(runner) == .exited)
        let lines = harness.logs.messages
        #expect(lines.first?.utf8.count ?? 0 <= 1024 + 3)
        // 100 lines a second, counted per second of the monotonic clock: a loop that straddles a second's
        // boundary keeps up to 100 in each (and the dropped-lines warning).
        #expect(lines.count <= 2 * 100 + 1, "\(lines.count) lines kept")
        #expect(lines.count < 1000)
    }

    @Test("Hostile apps fail alone: a well-behaved app keeps running beside them")
    func isolation() async throws {
        let harness = SandboxHarness()
        let good = try harness.runner(
            wat: SandboxHarness.module(
                #"""
                (func (export "app_start") (drop (call $timer_start (i32.const 0) (i32.const 5) (i32.const 5))))
                (func (export "app_on_timer") (param i32) (drop (call $gpio_set (i32.const 3) (i32.const 1))))
                """#),
            capabilities: #"{"Gpio": [3]}"#)
        async let goodOutcome = harness.run(good)
        let hostile = [
            #"(func (export "app_start") (loop (br 0)))"#,
            #"(func $down (export "app_start") (call $down))"#,
            #"(func (export "app_start") (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable)"#,
            #"(func (export "app_start") (drop (call $log (i32.const 1) (i32.const -8) (i32.const 100))))"#,
            #"(func (export "app_start") unreachable)"#,
        ]
        for body in hostile {
            let outcome = await harness.run(try harness.runner(wat: SandboxHarness.module(body)))
            guard case .failed = outcome else { Issue.record("\(body) did not fail"); continue }
        }
        let before = good.usage.events
        try await Task.sleep(for: .milliseconds(100))
        #expect(good.usage.events > before)
        good.stop()
        #expect(await goodOutcome == .stopped)
    }
}

/// Loopback sockets for the tests: a free port, and a connect that closes again.
enum TCPProbe {
    /// A loopback port nothing listens on now: the kernel's choice for a socket bound to port 0.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return Loopback.bind(fd, port: 0) ?? 0
    }

    static func connect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return Loopback.withAddress(port: port) { Glibc.connect(fd, $0, $1) } == 0
    }
}
