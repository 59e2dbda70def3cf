import Foundation
import Crypto
import NIOCore
import RampartCore
import RampartMQTT
import RampartPKI
import RampartTestKit
import Testing

@testable import RampartGateway

@Suite("Upstream bridge and configuration")
struct UpstreamBridgeTests {
    @Test("A gateway forwards to an upstream gateway, holds messages while it is down, and sends them in order once it is back")
    func storeAndForward() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        let gatewayIdentity = try tenant.device("edge-gw")
        // The hub: routes whatever comes from the edge gateway to a local module we read.
        let hubDirectory = try TemporaryDirectory()
        defer { hubDirectory.remove() }
        var hubConfiguration = try GatewayHarness.configuration(directory: hubDirectory, trust: [tenant])
        hubConfiguration.identity.deviceID = "hub"
        hubConfiguration.forwarders = ["edge-gw"]
        hubConfiguration.routes = [.init(name: "all", query: #"FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO BrokeredEndpoint("/modules/app/inputs/in")"#)]
        // Pick the hub's port first so that the edge can be configured with it.
        let hubPort = try await GatewayHarness.run(hubConfiguration) { $0.port }
        hubConfiguration.listener.port = hubPort
        let hub = hubConfiguration

        var edgeConfiguration = try GatewayHarness.configuration(directory: directory, trust: [tenant])
        let certificates = directory.file("edge-client")
        try FileManager.default.createDirectory(at: certificates, withIntermediateDirectories: true)
        try gatewayIdentity.certificate.pemString.write(to: certificates.appendingPathComponent("cert.pem"), atomically: true, encoding: .utf8)
        try gatewayIdentity.key.pemRepresentation.write(to: certificates.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        var upstream = GatewayConfiguration.Upstream(url: "mqtts://127.0.0.1:\(hubPort)")
        upstream.certificate = certificates.appendingPathComponent("cert.pem").path
        upstream.privateKey = certificates.appendingPathComponent("key.pem").path
        upstream.ca = hubDirectory.file("gateway/gateway-ca.pem").path
        edgeConfiguration.upstream = upstream
        edgeConfiguration.routes = [.init(name: "up", query: "FROM /messages/* INTO $upstream")]

        let device = try tenant.device("dev1")
        try await GatewayHarness.run(edgeConfiguration) { edge in
            // The hub is down: publishes are still acknowledged, because they are stored.
            let client = try await edge.connect(device)
            for n in 0..<50 { try await client.publish(.telemetry("dev1", "m\(n)")).get() }
            #expect(edge.store.statistics.queued == 50)
            try await GatewayHarness.run(hub) { hub in
                let app = try await hub.connect(try tenant.device("hub"), clientID: "hub/app")
                _ = try await app.subscribe([.init(topicFilter: "devices/hub/modules/app/inputs/#", qos: .atLeastOnce, noLocal: false, retainAsPublished: false, retainHandling: 0)])
                for n in 50..<60 { try await client.publish(.telemetry("dev1", "m\(n)")).get() }
                let received = await collect(app.messages, count: 60, timeout: .seconds(30))
                // In order, and the original device travels as $.cdid.
                #expect(received.map(\.text) == (0..<60).map { "m\($0)" })
                #expect(received.allSatisfy { $0.topic.contains("$.cdid=dev1") })
                await app.disconnect()
            }
            await client.disconnect()
        }
    }

    @Test("Configuration errors name the file and the key")
    func configurationErrors() throws {
        let cases: [(String, String)] = [
            ("[listener]\nport = \"x\"\n", "listener.port must be an integer"),
            ("[listner]\n", "listner is not a known setting"),
            ("[children]\npolicy = \"some\"\n", "children.policy must be"),
            ("[[routes]]\nname = \"a\"\n", "routes[0].query is required"),
            ("[[routes]]\nquery = \"FROM /messages/* INTO\"\npriority = 12\n", "routes[0].priority must be 0"),
            ("[store]\nmax_bytes = 10\n", "store.max_bytes must be at least"),
            ("[listener\n", "gateway.toml:1:"),
        ]
        for (text, expected) in cases {
            #expect {
                _ = try GatewayConfiguration.parse(text, file: "/etc/rampart/gateway.toml")
            } throws: { error in
                (error as? RampartError)?.code == .configurationInvalid && "\(error)".contains(expected)
            }
        }
    }

    @Test("A route that does not parse stops the gateway from starting, with line and column")
    func badRoute() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var configuration = try GatewayHarness.configuration(directory: directory, trust: [try TestTenantCA()])
        configuration.routes = [.init(name: "broken", query: "FROM /messages/* WHERE INTO $upstream")]
        #expect {
            _ = try Gateway(configuration: configuration)
        } throws: { error in
            "\(error)".contains("Route \"broken\"") && "\(error)".contains("column")
        }
    }

    @Test("gateway init writes a configuration that loads, and never overwrites")
    func initialize() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let result = try GatewaySetup.initialize(directory: directory.path, hostname: "gw.example.com")
        let configuration = try GatewayConfiguration.load(file: result.configuration)
        #expect(configuration.listener.port == 8883)
        #expect(configuration.hubRole)
        #expect(configuration.routes.count == 1)
        #expect(throws: RampartError.self) { _ = try GatewaySetup.initialize(directory: directory.path, hostname: "gw.example.com") }
    }
}
