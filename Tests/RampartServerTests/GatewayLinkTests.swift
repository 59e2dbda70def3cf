import Foundation
import Logging
import NIOHTTP1
import RampartCLI
import RampartCore
import RampartDevice
import RampartGateway
import RampartMQTT
import RampartTestKit
import ServiceLifecycle
import Testing

/// Apps' telemetry and cloud messages through the runtime's own MQTT connection to a Rampart gateway
/// (`[gateway]` in device.toml): a real hub gateway in-process, attested with the server like any device.
@Suite("The runtime's gateway connection")
struct GatewayLinkTests {
    /// Sends one telemetry message when it starts, and appends every cloud message it reads to its storage,
    /// from offset 0 after each start.
    static let app = #"""
        (module
          (import "rampart" "telemetry_send" (func $telemetry_send (param i32 i32) (result i32)))
          (import "rampart" "message_read" (func $message_read (param i32 i32) (result i32)))
          (import "rampart" "storage_write" (func $storage_write (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (global $offset (mut i32) (i32.const 0))
          (data (i32.const 0) "{\"t\":21.5}")
          (func (export "app_start") (drop (call $telemetry_send (i32.const 0) (i32.const 10))))
          (func (export "app_on_message") (param $kind i32) (param $length i32) (local $n i32)
            (local.set $n (call $message_read (i32.const 1024) (i32.const 512)))
            (drop (call $storage_write (global.get $offset) (i32.const 1024) (local.get $n)))
            (global.set $offset (i32.add (global.get $offset) (local.get $n)))))
        """#

    static let quiet: Logger = {
        var logger = Logger(label: "test.gateway-link")
        logger.logLevel = .critical
        return logger
    }()

    /// Runs a hub gateway for the harness's tenant, its own device attested and marked as a hub on the server.
    /// Returns its MQTT port and CA file to `body`.
    static func withHub(_ h: AttestationHarness, _ body: @Sendable (_ port: Int, _ caFile: String) async throws -> Void) async throws {
        let hubDevice = try await DeviceUnderTest.make(h, group: nil)
        await hubDevice.attest()
        let hubState = hubDevice.device.state
        try SecureFile.write(try h.server.tlsCAPEM, to: hubState.serverCAFile, mode: 0o644)
        _ = try await h.admin.client.send(
            .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(hubDevice.device.id)/hub", body: SetHubRequest(hub: true))
        let directory = h.fleet.directory.file("hub-\(hubDevice.device.id.prefix(8))")
        let setup = try GatewaySetup.initialize(directory: directory.path, hostname: "127.0.0.1")
        let bundle = try await h.admin.client.send(.GET, "/v1/tenants/\(h.tenant.id)/ca-bundle").body
        let configuration = try GatewayConfiguration.loopback(
            directory: directory, server: h.server.url, tenant: h.tenant.id.description, deviceState: hubState.directory.path,
            trustBundle: Array(bundle))
        let gateway = try Gateway(configuration: configuration, logger: quiet)
        let (ports, bound) = AsyncStream.makeStream(of: Int.self)
        let group = ServiceGroup(
            configuration: .init(services: try gateway.services(listenerBound: { bound.yield($0) }).map { .init(service: $0) }, logger: quiet))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            do {
                try await body(port, setup.caCertificate)
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// The device's gateway connection and the telemetry sender that uses it, as the runtime wires them (a fast
    /// tick, and a second's tolerance for `$.exp`).
    static func link(_ h: AttestationHarness, _ dut: DeviceUnderTest, port: Int, caFile: String) throws -> (GatewayConnection, AppTelemetrySender) {
        let queued = Doorbell()
        let connection = GatewayConnection(
            settings: .init(host: "127.0.0.1", port: port, caFile: caFile), state: dut.device.state, status: dut.status, linkUp: queued,
            tick: .milliseconds(200), clockTolerance: 1, logger: quiet)
        let sender = AppTelemetrySender(
            state: dut.device.state, server: h.server.url, serverCAPEM: try h.server.tlsCAPEM, status: dut.status, gateway: connection,
            queued: queued, logger: quiet)
        return (connection, sender)
    }

    @Test("apps' telemetry goes up through the gateway and cloud messages come down to their apps, acknowledged once taken")
    func roundTrip() async throws {
        try await AttestationHarness.run { h in
            try await Self.withHub(h) { port, caFile in
                let dut = try await DeviceUnderTest.make(h, group: nil)
                await dut.attest()
                let state = dut.device.state
                let capabilities = #"{"DeviceAuthentication": "00000000-0000-0000-0000-000000000000", "MutableStorage": {"SizeKB": 4}}"#
                let app = try AppSupervisorTests.install(Self.app, name: "sensor", capabilities: capabilities, in: state)
                let deaf = try AppSupervisorTests.install(
                    CloudMessageAppTests.recorder, name: "deaf", capabilities: #"{"MutableStorage": {"SizeKB": 4}}"#, in: state)
                let (connection, sender) = try Self.link(h, dut, port: port, caFile: caFile)
                let apps = AppSupervisor(state: state, errors: ErrorEventQueue(state: state), telemetry: sender, logger: Self.quiet)
                connection.deliverCloudMessages(to: apps)
                let tenant = "/v1/tenants/\(h.tenant.id)"
                let base = "\(tenant)/devices/\(dut.device.id)"
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await apps.run() }
                    group.addTask { try await connection.run() }
                    group.addTask { try await sender.run() }

                    // Up: the app's reading reaches the server through the hub, under the device, tagged with the app.
                    #expect(try await AppSupervisorTests.eventually(30) {
                        try await h.admin.client.json(DeviceMessageList.self, .GET, "\(base)/messages").messages.contains {
                            $0.payload == #"{"t":21.5}"# && $0.properties.contains(MessageProperty(name: "componentId", value: app))
                        }
                    })
                    #expect(connection.isConnected && connection.connectionsMade == 1)

                    // Down: a message for the app reaches it, and the server records it delivered.
                    let sent = try await h.admin.client.json(
                        CloudMessage.self, .POST, "\(base)/cloud-messages",
                        body: CloudMessageRequest(payload: "open the valve", properties: [MessageProperty(name: "componentId", value: app)]))
                    #expect(try await AppSupervisorTests.eventually(30) { CloudMessageAppTests.stored(state, app) == "open the valve" })
                    #expect(try await AppSupervisorTests.eventually {
                        try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/cloud-messages/\(sent.id)").state == .delivered
                    })

                    // Never to be taken: for an app without DeviceAuthentication, or naming no app. Each is acknowledged
                    // (and logged), so that it does not hold a place in the gateway's window; the app never sees it.
                    let refused = try await h.admin.client.json(
                        CloudMessage.self, .POST, "\(base)/cloud-messages",
                        body: CloudMessageRequest(payload: "for deaf", properties: [MessageProperty(name: "componentId", value: deaf)]))
                    let unaddressed = try await h.admin.client.json(
                        CloudMessage.self, .POST, "\(base)/cloud-messages", body: CloudMessageRequest(payload: "for nobody"))
                    for id in [refused.id, unaddressed.id] {
                        #expect(try await AppSupervisorTests.eventually {
                            try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/cloud-messages/\(id)").state == .delivered
                        })
                    }
                    #expect(CloudMessageAppTests.stored(state, deaf) == nil)

                    // For a stopped app: held on the device, unacknowledged (pending on the server), in order; one that
                    // expires meanwhile is dropped; the rest reach the app once it starts, on the same connection.
                    _ = try await apps.stop(app)
                    #expect(try await AppSupervisorTests.eventually { await apps.statuses().first { $0.componentId == app }?.state == .stopped })
                    var waiting: [String] = []
                    for (payload, ttl) in [("first", 3600), ("brief", 8), ("close it", 3600)] {
                        waiting.append(try await h.admin.client.json(
                            CloudMessage.self, .POST, "\(base)/cloud-messages",
                            body: CloudMessageRequest(payload: payload, properties: [MessageProperty(name: "componentId", value: app)], ttlSeconds: ttl)
                        ).id)
                    }
                    #expect(try await AppSupervisorTests.eventually { connection.heldCount == 3 })
                    #expect(try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/cloud-messages/\(waiting[0])").state == .pending)
                    #expect(try await AppSupervisorTests.eventually(20) { connection.heldCount == 2 })  // "brief" expired
                    #expect(try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/cloud-messages/\(waiting[1])").state == .expired)
                    _ = try await apps.start(app)
                    for id in [waiting[0], waiting[2]] {
                        #expect(try await AppSupervisorTests.eventually(30) {
                            try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/cloud-messages/\(id)").state == .delivered
                        })
                    }
                    // In order, once each (the app appends from offset 0 after its start, over "open the valve").
                    #expect(try await AppSupervisorTests.eventually { CloudMessageAppTests.stored(state, app)?.hasPrefix("firstclose it") == true })
                    #expect(connection.heldCount == 0 && connection.connectionsMade == 1)

                    // More than the device holds: the rest stay at the gateway, unacknowledged, and come on a new
                    // connection made once the held ones are delivered.
                    _ = try await apps.stop(app)
                    #expect(try await AppSupervisorTests.eventually { await apps.statuses().first { $0.componentId == app }?.state == .stopped })
                    var burst: [String] = []
                    for n in 0..<(GatewayConnection.heldPerApp + 2) {
                        burst.append(try await h.admin.client.json(
                            CloudMessage.self, .POST, "\(base)/cloud-messages",
                            body: CloudMessageRequest(payload: "burst \(n)", properties: [MessageProperty(name: "componentId", value: app)])
                        ).id)
                    }
                    // All of them at the device before the app starts: the last two arrive after the held ones and
                    // would otherwise go straight to a started app.
                    #expect(try await AppSupervisorTests.eventually(30) {
                        connection.heldCount == GatewayConnection.heldPerApp && connection.leftAtGatewayCount == 2
                    })
                    _ = try await apps.start(app)
                    #expect(try await AppSupervisorTests.eventually(60) {
                        var delivered = 0
                        for id in burst where try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/cloud-messages/\(id)").state == .delivered {
                            delivered += 1
                        }
                        return delivered == burst.count
                    })
                    #expect(connection.connectionsMade == 2)
                    group.cancelAll()
                }
            }
        }
    }

    @Test("a gateway the device cannot trust gets nothing: telemetry stays queued, goes once its CA file is right; a renewed certificate reconnects at once, quick drops with growing backoff")
    func untrustedGateway() async throws {
        try await AttestationHarness.run { h in
            try await Self.withHub(h) { port, caFile in
                let dut = try await DeviceUnderTest.make(h, group: nil)
                await dut.attest()
                let state = dut.device.state
                // Another gateway's CA first: the hub's certificate does not chain to it.
                let wrongCA = try GatewaySetup.initialize(directory: h.fleet.directory.file("other-gateway").path, hostname: "127.0.0.1")
                let configuredCA = h.fleet.directory.file("configured-gateway-ca.pem")
                try FileManager.default.copyItem(atPath: wrongCA.caCertificate, toPath: configuredCA.path)
                let (connection, sender) = try Self.link(h, dut, port: port, caFile: configuredCA.path)
                let component = RampartID().description
                #expect(sender.submit(componentID: component, tenant: h.tenant.id.description, payload: Array("reading".utf8)) == 7)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await connection.run() }
                    try await Task.sleep(for: .seconds(2))
                    #expect(!connection.isConnected && connection.connectionsMade == 0)
                    #expect(!(await sender.sendOnce()))  // kept, not lost

                    // The CA file is read again on each attempt: fixed, the next attempt connects and the reading goes.
                    try Data(contentsOf: URL(fileURLWithPath: caFile)).write(to: configuredCA)
                    #expect(try await AppSupervisorTests.eventually(30) { connection.isConnected })
                    #expect(await sender.sendOnce())
                    #expect(try await AppSupervisorTests.eventually(30) {
                        try await h.admin.client.json(
                            DeviceMessageList.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)/messages"
                        ).messages.map(\.payload) == ["reading"]
                    })

                    // A renewed certificate: the runtime connects again with it, and telemetry still flows.
                    try await Task.sleep(for: .seconds(1.1))  // certificates' times are whole seconds
                    await dut.attest()
                    #expect(dut.status.snapshot.lastAttestationResult == "success")
                    #expect(try await AppSupervisorTests.eventually { connection.connectionsMade == 2 && connection.isConnected })
                    #expect(sender.submit(componentID: component, tenant: h.tenant.id.description, payload: Array("renewed".utf8)) == 7)
                    #expect(await sender.sendOnce())
                    #expect(try await AppSupervisorTests.eventually(30) {
                        try await h.admin.client.json(
                            DeviceMessageList.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)/messages"
                        ).messages.map(\.payload) == ["reading", "renewed"]
                    })

                    // Connections that end at once are made again with backoff, growing: another client with the
                    // device's identity takes the session over twice.
                    for (attempt, atLeast) in [(3, Duration.milliseconds(700)), (4, Duration.milliseconds(1400))] {
                        let certificate = try #require(state.validCertificate())
                        var settings = MQTTClient.Configuration(
                            host: "127.0.0.1", port: port,
                            tls: try DeviceTLS.configuration(serverCAPEM: try String(contentsOfFile: caFile, encoding: .utf8), certificate: certificate),
                            clientID: dut.device.id)
                        settings.username = "127.0.0.1/\(dut.device.id)/?api-version=2021-04-12"
                        let intruder = try await MQTTClient.connect(settings)
                        let kicked = ContinuousClock.now
                        #expect(try await AppSupervisorTests.eventually { connection.connectionsMade == attempt && connection.isConnected })
                        #expect(ContinuousClock.now - kicked >= atLeast)
                        intruder.close()
                    }
                    group.cancelAll()
                }
            }
        }
    }
}
