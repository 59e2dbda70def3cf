import Foundation
import RampartCore
import RampartImage
import Synchronization
import Testing

@testable import RampartSandbox

/// The C sample apps of apps/, built with the Swift toolchain's clang for wasm32, in the real sandbox.
@Suite("Sample apps")
struct SampleAppTests {
    @Test("blink toggles its pin and keeps its count in storage across restarts")
    func blink() async throws {
        let harness = SandboxHarness()
        let (wasm, manifest) = try SampleApps.app("blink")
        var ticks = 0
        for _ in 1...2 {
            let before = harness.board.writes(pin: 8).count
            let runner = harness.runner(wasm: wasm, manifest: manifest)
            async let outcome = harness.run(runner)
            // Two ticks (500 ms each); on a busy machine, allow for a slow scheduler.
            let deadline = Date() + 15
            while harness.board.writes(pin: 8).count < before + 3 && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            runner.stop()
            #expect(await outcome == .stopped)
            // Each run sets the pin low at start, then toggles it on every tick.
            let writes = Array(harness.board.writes(pin: 8).dropFirst(before))
            #expect(writes.first == false)
            #expect(writes.count >= 3)
            #expect(zip(writes, writes.dropFirst()).allSatisfy { $0 != $1 })
            ticks += writes.count - 1
        }
        #expect(harness.logs.messages.contains { $0.contains("blink on") })
        // The second run counted on from the first: storage holds the ticks of both.
        let stored = try Data(contentsOf: harness.storage.appendingPathComponent("\(manifest.componentID)/storage.bin"))
        #expect(stored.count == 4)
        #expect(Int(stored[stored.startIndex]) == ticks)
    }

    @Test("crasher's trap becomes an appTrap fault")
    func crasher() async throws {
        let harness = SandboxHarness()
        let (wasm, manifest) = try SampleApps.app("crasher")
        guard case .failed(let fault) = await harness.run(harness.runner(wasm: wasm, manifest: manifest)) else {
            Issue.record("crasher did not crash")
            return
        }
        #expect(fault.eventClass == .appTrap)
        #expect(fault.message.contains("app_on_timer"))
    }

    @Test("httpclient fetches from a server it is allowed to reach, and is stopped by the firewall otherwise")
    func httpClient() async throws {
        let server = try GreetingServer(greeting: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", port: 18080)
        let harness = SandboxHarness()
        let (wasm, manifest) = try SampleApps.app("httpclient")
        #expect(await harness.run(harness.runner(wasm: wasm, manifest: manifest)) == .exited)
        #expect(server.connections == 1)
        #expect(harness.logs.messages.contains { $0.contains("HTTP/1.0 200 OK") })

        var denied = manifest
        denied.granted.allowedConnections = ["example.com"]
        #expect(SandboxHarness.exitCode(await harness.run(harness.runner(wasm: wasm, manifest: denied))) == 2)
        #expect(server.connections == 1)
        #expect(harness.logs.messages.contains { $0.contains("denied by the firewall") })
    }

    @Test("telemetry sends through the runtime's connection, and reads cloud messages")
    func telemetry() async throws {
        let harness = SandboxHarness()
        let (wasm, manifest) = try SampleApps.app("telemetry")
        let sent = Mutex<[String]>([])
        var runner = harness.runner(wasm: wasm, manifest: manifest)
        var environment = runner.environment
        environment.telemetry = { _, _, payload in
            sent.withLock { $0.append(String(decoding: payload, as: UTF8.self)) }
            return Int32(payload.count)
        }
        runner = AppRunner(wasm: wasm, manifest: manifest, limits: harness.limits, environment: environment)
        async let outcome = harness.run(runner)
        try await Task.sleep(for: .milliseconds(300))
        #expect(runner.deliverCloudMessage(Array("reboot please".utf8)))
        let deadline = Date() + 8
        while sent.withLock({ $0.isEmpty }) && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        runner.stop()
        #expect(await outcome == .stopped)
        #expect(sent.withLock { $0.first }?.contains("\"temperature\"") == true)
        #expect(harness.logs.messages.contains { $0.contains("reboot please") })
    }
}
