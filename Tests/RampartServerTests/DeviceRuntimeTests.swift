import Crypto
import Foundation
import Logging
import RampartCLI
import RampartCore
import RampartDevice
import RampartPKI
import RampartServer
import RampartTestKit
import ServiceLifecycle
import Testing
import X509

@Suite("Device runtime")
struct DeviceRuntimeTests {
    @Test("the schedule renews before the last 4 h, jitters below 20 h, and backs off with a cap")
    func schedule() {
        let schedule = DeviceAgent.Schedule()
        var delays = Set<Int>()
        for _ in 0..<50 {
            let delay = schedule.delay(validity: 24 * 3600)
            #expect(delay <= 20 * 3600 && delay >= 18 * 3600)
            delays.insert(Int(delay))
            let short = schedule.delay(validity: 5 * 3600)
            #expect(short <= 3600 && short >= 0.9 * 3600)
            #expect(schedule.delay(validity: 60) == 60)
            #expect(schedule.backoff(failures: 1) <= 5 && schedule.backoff(failures: 1) >= 2.5)
            #expect(schedule.backoff(failures: 40) <= 30 * 60 && schedule.backoff(failures: 40) >= 15 * 60)
            #expect(schedule.backoff(failures: 0) >= 0.5)
        }
        #expect(delays.count > 40)  // jittered, not in lockstep
    }

    @Test("the runtime attests (servicing pinned to lo), keeps its certificate as PEM with a 0600 key, and reports status on its socket")
    func attestsAndReports() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let executable = h.fleet.directory.file("fake-runtime")
            try Data("runtime build 1".utf8).write(to: executable)
            let digest = try Measurer.sha256(of: executable)
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/reference-values",
                body: ReferenceValueRequest(sha256: digest, version: RampartVersion.current))
            let serverCA = h.fleet.directory.file("server-ca.pem")
            try h.server.tlsCAPEM.write(to: serverCA, atomically: true, encoding: .utf8)
            try "[network]\nservice_interface = \"lo\"\n".write(to: device.state.configFile, atomically: true, encoding: .utf8)
            var logger = Logger(label: "test.device")
            logger.logLevel = .critical
            let group = ServiceGroup(
                configuration: .init(
                    services: try DeviceRuntime.services(
                        state: device.state, server: h.server.url, serverCAFile: serverCA.path, logger: logger,
                        executable: executable),
                    logger: logger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                var status = DeviceStatus(deviceId: "")
                for _ in 0..<50 {
                    status = (try? await LocalAPIClient.status(state: device.state)) ?? status
                    if status.lastAttestationResult == "success" { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(status.deviceId == device.id && status.lastAttestationResult == "success")
                #expect(status.tenantId == h.tenant.id && status.certificateValid)
                #expect(status.nextAttestationAt.map { $0 > Date() + 17 * 3600 } == true)
                let mode = try FileManager.default.attributesOfItem(atPath: device.state.certificateKeyFile.path)[.posixPermissions] as? Int
                #expect(mode == 0o600)
                let stored = try #require(device.state.validCertificate())
                #expect(stored.chain.count == 2 && stored.chain[0].subject.description == "CN=\(device.id)")
                // An expired certificate is kept for inspection but never handed out.
                #expect(device.state.validCertificate(at: Date() + 25 * 3600) == nil)
                #expect(device.state.storedCertificate() != nil)
                // The network view of the local API: lo is the pinned service interface, and the attestation was
                // counted as servicing data.
                let interfaces = try await LocalAPIClient.get(NetworkInterfaceList.self, "/network/interfaces", state: device.state)
                let loopback = try #require(interfaces.interfaces.first { $0.name == "lo" })
                #expect(loopback.managed && loopback.service && loopback.loopback && loopback.addresses.contains("127.0.0.1"))
                #expect(interfaces.interfaces.filter { $0.name != "lo" }.allSatisfy { !$0.managed })
                let network = try await LocalAPIClient.get(LinkBoard.Snapshot.self, "/network/status", state: device.state)
                #expect(network.routerControl == nil && network.refusedServicingConnections == 0)
                #expect((network.dataUsage?.bytes ?? 0) > 5000)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let info = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)")
            #expect(info.softwareVersion == RampartVersion.current && info.lastAttestationResult == "success")
        }
    }

    @Test("a refused attestation is reported with its reason and retried with backoff")
    func refusalIsReported() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device(claimed: false)
            let client = try AttestationClient(server: h.server.url, serverCAPEM: try h.server.tlsCAPEM)
            let board = DeviceStatusBoard(state: device.state, deviceID: device.id)
            var logger = Logger(label: "test.device")
            logger.logLevel = .critical
            let agent = DeviceAgent(state: device.state, client: client, status: board, logger: logger)
            let delay = await agent.attestOnceForTesting()
            #expect(delay >= 2.5 && delay <= 5)
            let status = board.snapshot
            #expect(status.lastAttestationResult == "notClaimed" && status.consecutiveFailures == 1)
            #expect(status.lastAttestationMessage?.contains("claim") == true)
            // The status survives a restart.
            #expect(DeviceStatusBoard(state: device.state, deviceID: device.id).snapshot.lastAttestationResult == "notClaimed")
        }
    }

    @Test("a second runtime on the same state directory is refused")
    func oneRuntimePerDirectory() throws {
        let fleet = try TestFleet()
        defer { fleet.remove() }
        let device = try fleet.device()
        var logger = Logger(label: "test.device")
        logger.logLevel = .critical
        let first = try DeviceRuntime.services(state: device.state, server: "https://127.0.0.1:1", serverCAFile: nil, logger: logger)
        #expect(throws: RampartError(.conflict, "")) {
            _ = try DeviceRuntime.services(state: device.state, server: "https://127.0.0.1:1", serverCAFile: nil, logger: logger)
        }
        withExtendedLifetime(first) {}
    }

    @Test("a runtime whose device.toml names a gateway CA it cannot read does not start, and says which file")
    func unreadableGatewayCA() throws {
        let fleet = try TestFleet()
        defer { fleet.remove() }
        let device = try fleet.device()
        var logger = Logger(label: "test.device")
        logger.logLevel = .critical
        try Data("[gateway]\nurl = \"mqtts://127.0.0.1:8883\"\nca = \"no-such-ca.pem\"\n".utf8).write(to: device.state.configFile)
        #expect {
            _ = try DeviceRuntime.services(state: device.state, server: "https://127.0.0.1:1", serverCAFile: nil, logger: logger)
        } throws: { ($0 as? RampartError)?.code == .configurationInvalid && "\($0)".contains("no-such-ca.pem") }
    }

    @Test("an unreachable server is an error with a clear code, not a crash")
    func unreachable() async throws {
        let fleet = try TestFleet()
        defer { fleet.remove() }
        let device = try fleet.device()
        var client = try AttestationClient(server: "https://127.0.0.1:1", serverCAPEM: nil)
        client.requestTimeout = 1
        await expectAPIError("serverUnreachable", status: 503) {
            _ = try await client.attest(identity: device.identity, measurements: [TestDevice.runtime()], debugStatus: 3)
        }
        #expect(throws: RampartError(.configurationInvalid, "")) { try AttestationClient(server: "http://x", serverCAPEM: nil) }
    }

    @Test("manufacturing refuses to overwrite an identity, and device IDs are the SPKI hash")
    func manufacture() throws {
        let fleet = try TestFleet()
        defer { fleet.remove() }
        let device = try fleet.device()
        #expect(device.id == DeviceID.of(device.identity.keyStore.publicKey) && device.id.count == 64)
        #expect(throws: RampartError(.conflict, "")) {
            _ = try DeviceState.manufacture(at: device.state.directory, manufacturer: fleet.manufacturer, model: "x")
        }
        let mode = try FileManager.default.attributesOfItem(atPath: device.state.identityKeyFile.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(throws: RampartError(.invalidRequest, "")) { try DeviceID.validated("abc") }
    }
}
