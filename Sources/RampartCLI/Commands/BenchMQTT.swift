import ArgumentParser
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RampartCore
import RampartMQTT
import RampartPKI
import SwiftASN1
import X509

extension BenchCommand {
    /// `rampart bench mqtt`: publish-to-deliver throughput and latency against any MQTT broker over TLS.
    struct MQTT: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mqtt",
            abstract: "Measure an MQTT broker: msg/s and p50/p99 publish-to-deliver latency over mutual TLS.",
            discussion: """
                N publishers send M messages in total to one subscriber. With --dialect iothub (a Rampart \
                gateway) publishers send device telemetry and the subscriber is module {id}/bench, so the \
                gateway needs a route INTO BrokeredEndpoint("/modules/bench/inputs/in") and [identity] device_id = \
                the --subscriber-id; with --dialect plain \
                (mosquitto and others) they use bench/{client}. Each client's certificate CN is its client ID \
                when --client-ca-cert/--client-ca-key are given; otherwise all share --cert/--key.
                """)
        @Option(help: "The broker, mqtts://host:port.") var broker: String
        @Option(help: "Publishing clients.") var clients = 10
        @Option(help: "QoS 0 or 1.") var qos = 1
        @Option(help: "Messages in total, across all publishers.") var messages = 100_000
        @Option(help: "Payload size in bytes (at least 16).") var payloadBytes = 64
        @Option(help: "QoS 1 messages each publisher keeps in flight.") var inFlight = 64
        @Option(help: "iothub or plain.") var dialect = "plain"
        @Option(help: "MQTT protocol level: 4 (3.1.1) or 5.") var protocolVersion = 4
        @Option(help: "A client certificate (PEM) all clients share.") var cert: String?
        @Option(help: "Its key.") var key: String?
        @Option(help: "A CA (PEM) that issues one certificate per client, CN = client ID.") var clientCaCert: String?
        @Option(help: "Its key.") var clientCaKey: String?
        @Option(help: "The CA (PEM) of the broker's server certificate.") var ca: String
        @Option(help: "Give up after this many seconds.") var timeout = 300
        @Option(help: "A label for the result line (e.g. rampart, mosquitto).") var label = "broker"
        @Option(help: "The subscriber's client (device) ID; with iothub, the gateway's own device ID.")
        var subscriberId = "bench-host"
        @Option(help: "The broker's process ID on this machine, to report its CPU time per message next to this client's.")
        var brokerPid: Int32?

        func validate() throws {
            guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1.") }
            guard clients >= 1, messages >= clients, payloadBytes >= 16, inFlight >= 1 else {
                throw ValidationError("Need --clients ≥ 1, --messages ≥ --clients, --payload-bytes ≥ 16, --in-flight ≥ 1.")
            }
            guard dialect == "iothub" || dialect == "plain" else { throw ValidationError("--dialect is iothub or plain.") }
            guard (cert != nil && key != nil) || (clientCaCert != nil && clientCaKey != nil) else {
                throw ValidationError("Give --cert and --key, or --client-ca-cert and --client-ca-key.")
            }
        }

        func run() async throws {
            let (host, port) = try BenchTLS.parseBroker(broker)
            let identities = try BenchTLS.Identities(cert: cert, key: key, caCert: clientCaCert, caKey: clientCaKey)
            let version: MQTTProtocolVersion = protocolVersion == 5 ? .v5 : .v311
            let runID = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let subscriberID = subscriberId
            func settings(_ clientID: String, tlsID: String) throws -> MQTTClient.Configuration {
                var configuration = MQTTClient.Configuration(
                    host: host, port: port, tls: try identities.tls(commonName: tlsID, serverCA: ca), clientID: clientID)
                configuration.protocolVersion = version
                configuration.keepAliveSeconds = 60
                configuration.maximumPacketSize = 1 << 20
                return configuration
            }
            let subscriber = try await MQTTClient.connect(
                try settings(dialect == "iothub" ? "\(subscriberID)/bench" : subscriberID, tlsID: subscriberID))
            let filter = dialect == "iothub" ? "devices/\(subscriberID)/modules/bench/inputs/#" : "bench/\(runID)/#"
            let granted = try await subscriber.subscribe([
                MQTTSubscription(topicFilter: filter, qos: qos == 1 ? .atLeastOnce : .atMostOnce, noLocal: false, retainAsPublished: false, retainHandling: 0)
            ])
            guard granted.allSatisfy({ !$0.isFailure }) else {
                throw RampartError(.invalidRequest, "The broker refused the subscription to \(filter): \(granted).")
            }
            var publishers: [(MQTTClient, String)] = []
            for index in 0..<clients {
                let id = "bench-pub-\(runID)-\(index)"
                publishers.append((try await MQTTClient.connect(try settings(id, tlsID: id)), id))
            }
            let perClient = messages / clients
            let total = perClient * clients
            let clock = ContinuousClock()
            let clientCPUBefore = ProcessCPU.seconds()
            let brokerCPUBefore = brokerPid.flatMap { ProcessCPU.seconds(pid: $0) }
            let origin = clock.now
            let start = origin
            let qosLevel: MQTTQoS = qos == 1 ? .atLeastOnce : .atMostOnce
            let deadline = Duration.seconds(timeout)

            let result = try await withThrowingTaskGroup(of: [Double]?.self) { group in
                group.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(total)
                    for await message in subscriber.messages {
                        var payload = message.payload
                        if let sent = payload.readInteger(as: Int64.self) {
                            let now = (clock.now - origin).nanoseconds
                            latencies.append(Double(now - sent) / 1_000_000)
                        }
                        if latencies.count >= total { break }
                    }
                    return latencies
                }
                for (client, id) in publishers {
                    group.addTask {
                        let topic = dialect == "iothub" ? "devices/\(id)/messages/events/" : "bench/\(runID)/\(id)"
                        var window: [EventLoopFuture<Void>] = []
                        var head = 0
                        for _ in 0..<perClient {
                            if window.count - head >= inFlight {
                                try await window[head].get()
                                head += 1
                            }
                            var payload = ByteBuffer()
                            payload.writeInteger((clock.now - origin).nanoseconds)
                            payload.writeRepeatingByte(0x61, count: payloadBytes - 8)
                            let publish = MQTTPublish(topic: topic, payload: payload, qos: qosLevel, retain: false, dup: false, packetID: nil, properties: MQTTProperties())
                            window.append(client.publish(publish))
                            if head > 4096 {
                                window.removeFirst(head)
                                head = 0
                            }
                        }
                        for future in window[head...] { try await future.get() }
                        return nil
                    }
                }
                group.addTask {
                    try await Task.sleep(for: deadline)
                    return []
                }
                while let next = try await group.next() {
                    if let latencies = next {
                        group.cancelAll()
                        return latencies
                    }
                }
                return []
            }
            let elapsed = clock.now - start
            // CPU time, user and system, per delivered message: what each side costs, apart from how the cores are shared.
            func perMessage(_ cpu: Double?) -> String {
                guard let cpu, !result.isEmpty else { return "—" }
                return String(format: "%.1f µs", cpu * 1e6 / Double(result.count))
            }
            let clientCPU = perMessage(ProcessCPU.seconds().flatMap { after in clientCPUBefore.map { after - $0 } })
            let brokerCPU = perMessage(brokerPid.flatMap { ProcessCPU.seconds(pid: $0) }.flatMap { after in brokerCPUBefore.map { after - $0 } })
            for (client, _) in publishers { await client.disconnect() }
            await subscriber.disconnect()
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let sorted = result.sorted()
            func percentile(_ p: Double) -> Double { sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
            let rate = Double(sorted.count) / seconds
            print(
                "| \(label) | QoS \(qos) | \(clients) | \(sorted.count)/\(total) | \(String(format: "%.0f", rate)) msg/s | "
                    + "\(String(format: "%.1f", percentile(0.5))) ms | \(String(format: "%.1f", percentile(0.99))) ms | \(brokerCPU) | \(clientCPU) |")
            if sorted.count < total {
                throw RampartError(.internalError, "Only \(sorted.count) of \(total) messages arrived within \(timeout) s.")
            }
        }
    }

    /// `rampart bench mqtt-connections`: hold many idle mutual-TLS connections and report the broker's memory.
    struct MQTTConnections: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mqtt-connections",
            abstract: "Open N mutual-TLS MQTT connections, hold them, and report the broker's resident memory.")
        @Option(help: "The broker, mqtts://host:port.") var broker: String
        @Option(help: "Connections to open.") var connections = 20_000
        @Option(help: "Connections opened at once.") var concurrency = 64
        @Option(help: "A CA (PEM) that issues one certificate per client, CN = client ID.") var clientCaCert: String
        @Option(help: "Its key.") var clientCaKey: String
        @Option(help: "The CA (PEM) of the broker's server certificate.") var ca: String
        @Option(help: "The broker's process ID, to read its resident memory.") var brokerPid: Int32
        @Option(help: "Seconds to hold the connections before measuring.") var hold = 5
        @Option(help: "A label for the result line.") var label = "broker"

        func run() async throws {
            let (host, port) = try BenchTLS.parseBroker(broker)
            let identities = try BenchTLS.Identities(cert: nil, key: nil, caCert: clientCaCert, caKey: clientCaKey)
            let before = BenchTLS.residentBytes(of: brokerPid)
            // Each event loop owns a share of the connections; 4 loops keep two cores busy with handshakes.
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 4)
            let runID = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let opened = NIOLockedValueBox<[MQTTClient]>([])
            let failures = NIOLockedValueBox(0)
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                var next = 0
                func launch() throws {
                    let id = "conn-\(runID)-\(next)"
                    next += 1
                    var settings = MQTTClient.Configuration(
                        host: host, port: port, tls: try identities.tls(commonName: id, serverCA: ca), clientID: id)
                    settings.keepAliveSeconds = 600
                    tasks.addTask {
                        do {
                            let client = try await MQTTClient.connect(settings, group: group)
                            opened.withLockedValue { $0.append(client) }
                        } catch {
                            failures.withLockedValue { $0 += 1 }
                        }
                    }
                }
                for _ in 0..<min(concurrency, connections) { try launch() }
                while try await tasks.next() != nil {
                    if next < connections { try launch() }
                }
            }
            let openSeconds = (ContinuousClock.now - started).components.seconds
            try await Task.sleep(for: .seconds(hold))
            let clients = opened.withLockedValue { $0 }
            let alive = clients.filter(\.isActive).count
            let after = BenchTLS.residentBytes(of: brokerPid)
            print(
                "| \(label) | \(alive)/\(connections) held (\(failures.withLockedValue { $0 }) failed) in \(openSeconds) s | "
                    + "RSS \(after / 1_048_576) MiB (was \(before / 1_048_576) MiB) | "
                    + "\(alive > 0 ? (after - before) / alive / 1024 : 0) KiB per connection |")
            for client in clients { client.close() }
            for client in clients { try? await client.closeFuture.get() }
            try await group.shutdownGracefully()
        }
    }
}

/// TLS identities for benchmark clients.
enum BenchTLS {
    static func parseBroker(_ text: String) throws -> (String, Int) {
        guard let url = URLComponents(string: text), url.scheme == "mqtts", let host = url.host, let port = url.port else {
            throw RampartError(.invalidRequest, "--broker must be mqtts://host:port.")
        }
        return (host, port)
    }

    /// Either one shared certificate, or a CA that mints one per client (cached per CN).
    struct Identities: Sendable {
        let shared: (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)?
        let issuer: (certificate: Certificate, key: P256.Signing.PrivateKey)?

        init(cert: String?, key: String?, caCert: String?, caKey: String?) throws {
            if let caCert, let caKey {
                let certificate = try Certificate(pemEncoded: try String(contentsOfFile: caCert, encoding: .utf8))
                let key = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: caKey, encoding: .utf8))
                issuer = (certificate, key)
                shared = nil
            } else if let cert, let key {
                shared = (try NIOSSLCertificate.fromPEMFile(cert), try NIOSSLPrivateKey(file: key, format: .pem))
                issuer = nil
            } else {
                throw RampartError(.invalidRequest, "No client identity given.")
            }
        }

        func tls(commonName: String, serverCA: String) throws -> TLSConfiguration {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(serverCA))
            if let shared {
                tls.certificateChain = shared.chain.map { .certificate($0) }
                tls.privateKey = .privateKey(shared.key)
            } else if let issuer {
                let key = P256.Signing.PrivateKey()
                let now = Date()
                let leaf = try CertificateIssuer.issueLeaf(
                    subject: try DistinguishedName { CommonName(commonName) }, publicKey: key.publicKey,
                    issuer: issuer.certificate, issuerKey: issuer.key, notBefore: now, notAfter: now + 86400, profile: .client)
                tls.certificateChain = [.certificate(try NIOSSLCertificate(bytes: try leaf.derBytes, format: .der))]
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
            }
            return tls
        }
    }

    /// VmRSS of a process, or another resident-memory field of /proc/PID/status (`RssAnon`, `RssFile`), in
    /// bytes (0 when unreadable).
    static func residentBytes(of pid: Int32, field: String = "VmRSS") -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
