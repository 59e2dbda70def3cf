import Foundation
import NIOCore
import NIOSSL
import RampartCore
import RampartMQTT
import RampartPKI
import RampartTestKit
import Testing

@testable import RampartGateway

/// The broker end to end: real TLS with client certificates, the real codec, the real store.
@Suite("MQTT gateway")
struct BrokerTests {
    /// A configuration whose device telemetry goes to a local module, so that a test can read it.
    static func moduleConfiguration(_ directory: TemporaryDirectory, trust: [TestTenantCA]) throws -> GatewayConfiguration {
        var configuration = try GatewayHarness.configuration(directory: directory, trust: trust)
        configuration.identity.deviceID = "edge"
        configuration.routes = [
            .init(name: "toModule", query: #"FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO BrokeredEndpoint("/modules/sink/inputs/in")"#)
        ]
        return configuration
    }

    @Test("Telemetry from a device reaches a module subscriber with the device's identity and properties")
    func telemetryToModule() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        let device = try tenant.device("dev1")
        let edge = try tenant.device("edge")
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            let module = try await gateway.connect(edge, clientID: "edge/sink")
            let granted = try await module.subscribe([.init(topicFilter: "devices/edge/modules/sink/inputs/#", qos: .atLeastOnce, noLocal: false, retainAsPublished: false, retainHandling: 0)])
            #expect(granted == [.grantedQoS1])
            let client = try await gateway.connect(device)
            for n in 0..<5 {
                try await client.publish(.telemetry("dev1", "m\(n)", properties: "kind=test&$.ct=application%2Fjson")).get()
            }
            let received = await collect(module.messages, count: 5)
            #expect(received.map(\.text) == ["m0", "m1", "m2", "m3", "m4"])
            let topic = try #require(received.first?.topic)
            #expect(topic.hasPrefix("devices/edge/modules/sink/inputs/in/"))
            #expect(topic.contains("$.cdid=dev1"))
            #expect(topic.contains("kind=test"))
            #expect(topic.contains("$.ct=application%2Fjson"))
            await client.disconnect()
            await module.disconnect()
        }
    }

    @Test("MQTT 5 clients get the limits in CONNACK, and PUBACK says when no route took a message")
    func mqtt5() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        var configuration = try GatewayHarness.configuration(directory: directory, trust: [tenant])
        configuration.routes = [.init(name: "only-alarms", query: #"FROM /messages/* WHERE kind = 'alarm' INTO BrokeredEndpoint("/modules/a/inputs/b")"#)]
        try await GatewayHarness.run(configuration) { gateway in
            let client = try await gateway.connect(try tenant.device("dev5"), version: .v5)
            #expect(client.connAck.properties.maximumQoS == 1)
            #expect(client.connAck.properties.topicAliasMaximum == 0)
            // Unrouted messages are acknowledged with "no matching subscribers" (a success code) and counted.
            try await client.publish(.telemetry("dev5", "x")).get()
            #expect(gateway.gateway.metrics.exposition().contains(#"rampart_gateway_messages_dropped_total{reason="unrouted"} 1"#))
            await client.disconnect()
        }
    }

    @Test("A certificate whose CN is not the client ID is refused with clientIdentifierNotValid")
    func commonNameMismatch() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            for version in [MQTTProtocolVersion.v311, .v5] {
                await #expect {
                    _ = try await gateway.connect(try tenant.device("dev1"), clientID: "dev2", version: version)
                } throws: { error in
                    (error as? MQTTClientError)?.reasonCode == .clientIdentifierNotValid
                }
            }
        }
    }

    @Test("Certificates from another tenant, expired ones, server-only ones and none at all are refused")
    func refusedCertificates() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        let other = try TestTenantCA(name: "Another Tenant CA")
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            let foreign = try other.device("dev1")
            let expired = try tenant.device("dev1", notBefore: Date() - 7200, lifetime: 3600)
            let serverOnly = try tenant.device("dev1", profile: .server(dnsNames: ["dev1"], ipAddresses: []))
            for certificate in [foreign, expired, serverOnly] {
                await #expect(throws: MQTTClientError.self) { _ = try await gateway.connect(certificate) }
            }
            var settings = MQTTClient.Configuration(host: "127.0.0.1", port: gateway.port, clientID: "dev1")
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(gateway.caFile))
            settings.tls = tls
            await #expect(throws: MQTTClientError.self) { _ = try await MQTTClient.connect(settings) }
        }
    }

    @Test("With children = registered, only registered children are admitted, and the list can change while running")
    func registeredChildren() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        var configuration = try Self.moduleConfiguration(directory, trust: [tenant])
        configuration.children = .registered
        try await GatewayHarness.run(configuration) { gateway in
            let child = try tenant.device("child")
            await #expect {
                _ = try await gateway.connect(child, version: .v5)
            } throws: { error in
                (error as? MQTTClientError)?.reasonCode == .notAuthorized
            }
            gateway.broker.setRegisteredChildren(["child"])
            let client = try await gateway.connect(child, version: .v5)
            try await client.publish(.telemetry("child", "hello")).get()
            await client.disconnect()
            await #expect(throws: MQTTClientError.self) { _ = try await gateway.connect(try tenant.device("stranger")) }
        }
    }

    @Test("Only the gateway's own modules receive routed messages, and only forwarders may name another origin")
    func moduleHostAndForwarders() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        var configuration = try Self.moduleConfiguration(directory, trust: [tenant])
        configuration.forwarders = ["downstream"]
        try await GatewayHarness.run(configuration) { gateway in
            // A device that is not the gateway cannot connect as a module at all.
            await #expect {
                _ = try await gateway.connect(try tenant.device("rogue"), clientID: "rogue/sink", version: .v5)
            } throws: { error in
                (error as? MQTTClientError)?.reasonCode == .clientIdentifierNotValid
            }
            let module = try await gateway.connect(try tenant.device("edge"), clientID: "edge/sink")
            _ = try await module.subscribe([.init(topicFilter: "devices/edge/modules/sink/inputs/#", qos: .atLeastOnce, noLocal: false, retainAsPublished: false, retainHandling: 0)])
            let liar = try await gateway.connect(try tenant.device("liar"))
            try await liar.publish(.telemetry("liar", "a", properties: "$.cdid=victim")).get()
            let forwarder = try await gateway.connect(try tenant.device("downstream"))
            try await forwarder.publish(.telemetry("downstream", "b", properties: "$.cdid=child")).get()
            let received = await collect(module.messages, count: 2)
            #expect(received.map(\.text) == ["a", "b"])
            #expect(received.first?.topic.contains("$.cdid=liar") == true)
            #expect(received.last?.topic.contains("$.cdid=child") == true)
        }
    }

    @Test("A full store refuses: MQTT 5 gets PUBACK quotaExceeded, 3.1.1 loses its connection and may resend")
    func storeFull() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        var configuration = try Self.moduleConfiguration(directory, trust: [tenant])
        configuration.store.maximumBytes = 2048
        try await GatewayHarness.run(configuration) { gateway in
            let big = String(repeating: "x", count: 700)
            let v5 = try await gateway.connect(try tenant.device("dev5"), version: .v5)
            var refusal: MQTTClientError?
            for _ in 0..<10 {
                do { try await v5.publish(.telemetry("dev5", big)).get() } catch let error as MQTTClientError {
                    refusal = error
                    break
                }
            }
            #expect(refusal?.reasonCode == .quotaExceeded)
            #expect(v5.isActive)
            let v3 = try await gateway.connect(try tenant.device("dev3"))
            await #expect(throws: MQTTClientError.self) { try await v3.publish(.telemetry("dev3", big)).get() }
            #expect(gateway.gateway.metrics.exposition().contains(#"rampart_gateway_messages_dropped_total{reason="storeFull"} 2"#))
            await v5.disconnect()
        }
    }

    @Test("A device may publish and subscribe only on its own topics")
    func topicAuthorization() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            let v5 = try await gateway.connect(try tenant.device("dev1"), version: .v5)
            let codes = try await v5.subscribe([
                .init(topicFilter: "devices/dev2/messages/devicebound/#", qos: .atLeastOnce, noLocal: false, retainAsPublished: false, retainHandling: 0),
                .init(topicFilter: "#", qos: .atLeastOnce, noLocal: false, retainAsPublished: false, retainHandling: 0),
                .init(topicFilter: "devices/dev1/messages/devicebound/#", qos: .exactlyOnce, noLocal: false, retainAsPublished: false, retainHandling: 0),
            ])
            #expect(codes == [.notAuthorized, .notAuthorized, .grantedQoS1])
            await #expect {
                try await v5.publish(.telemetry("dev2", "spoof")).get()
            } throws: { error in
                (error as? MQTTClientError)?.reasonCode == .notAuthorized
            }
            await v5.disconnect()
            // A 3.1.1 client has no negative PUBACK: the gateway closes the connection.
            let v3 = try await gateway.connect(try tenant.device("dev3"))
            await #expect(throws: MQTTClientError.self) { try await v3.publish(.telemetry("dev2", "spoof")).get() }
        }
    }

    @Test("QoS 2 is refused the IoT Hub way: the connection is closed (MQTT 5: qosNotSupported)")
    func qos2() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            let client = try await gateway.connect(try tenant.device("dev1"), version: .v5)
            await #expect(throws: MQTTClientError.self) {
                try await client.publish(.telemetry("dev1", "x", qos: .exactlyOnce)).get()
            }
            let reason = try await client.disconnectReason.get()
            #expect(reason?.reasonCode == .qosNotSupported)
        }
    }

    @Test("A second connection with the same client ID takes over the first")
    func takeover() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        let device = try tenant.device("dev1")
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            let first = try await gateway.connect(device, version: .v5)
            let second = try await gateway.connect(device, version: .v5)
            let reason = try await first.disconnectReason.get()
            #expect(reason?.reasonCode == .sessionTakenOver)
            #expect(second.isActive)
            try await second.publish(.telemetry("dev1", "still works")).get()
            await second.disconnect()
        }
    }

    @Test("Cloud-to-device messages wait for a persistent session and arrive when the device subscribes")
    func cloudToDevice() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        let device = try tenant.device("dev1")
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            #expect(gateway.broker.sendCloudToDevice(deviceID: "dev1", payload: Array("reboot".utf8), properties: [("cmd", "1")]) == false)
            let client = try await gateway.connect(device) { $0.cleanStart = false }
            _ = try await client.subscribe([.init(topicFilter: "devices/dev1/messages/devicebound/#", qos: .atLeastOnce, noLocal: false, retainAsPublished: false, retainHandling: 0)])
            let received = await collect(client.messages, count: 1)
            #expect(received.map(\.text) == ["reboot"])
            #expect(received.first?.topic == "devices/dev1/messages/devicebound/cmd=1")
            await client.disconnect()
        }
    }

    @Test("Twin GET returns the document and PATCH of reported properties bumps the version")
    func twin() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            let client = try await gateway.connect(try tenant.device("dev1"))
            _ = try await client.subscribe([.init(topicFilter: "$iothub/twin/res/#", qos: .atMostOnce, noLocal: false, retainAsPublished: false, retainHandling: 0)])
            let patch = MQTTPublish(topic: "$iothub/twin/PATCH/properties/reported/?$rid=1", payload: ByteBuffer(string: #"{"fw":"1.2"}"#), qos: .atMostOnce, retain: false, dup: false, packetID: nil, properties: .init())
            try await client.publish(patch).get()
            let get = MQTTPublish(topic: "$iothub/twin/GET/?$rid=2", payload: ByteBuffer(), qos: .atMostOnce, retain: false, dup: false, packetID: nil, properties: .init())
            try await client.publish(get).get()
            let responses = await collect(client.messages, count: 2)
            #expect(responses.first?.topic == "$iothub/twin/res/204/?$rid=1&$version=2")
            #expect(responses.last?.topic == "$iothub/twin/res/200/?$rid=2")
            #expect(responses.last?.text.contains(#""fw":"1.2""#) == true)
            await client.disconnect()
        }
    }

    @Test("A will message is routed when a client goes away without DISCONNECT")
    func will() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = try TestTenantCA()
        try await GatewayHarness.run(try Self.moduleConfiguration(directory, trust: [tenant])) { gateway in
            let module = try await gateway.connect(try tenant.device("edge"), clientID: "edge/sink")
            _ = try await module.subscribe([.init(topicFilter: "devices/edge/modules/sink/inputs/#", qos: .atLeastOnce, noLocal: false, retainAsPublished: false, retainHandling: 0)])
            let client = try await gateway.connect(try tenant.device("dev1")) {
                $0.will = MQTTWill(topic: "devices/dev1/messages/events/", payload: Array("gone".utf8), qos: .atLeastOnce, retain: false, properties: .init())
            }
            client.close()
            let received = await collect(module.messages, count: 1)
            #expect(received.map(\.text) == ["gone"])
        }
    }
}
