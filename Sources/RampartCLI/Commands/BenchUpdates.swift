import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RampartAttestation
import RampartCore
import RampartDevice
import RampartPKI
import RampartServer
import Synchronization
import X509

extension BenchCommand {
    /// A device of the in-process bench server, claimed and attested.
    struct BenchDevice {
        let state: DeviceState
        let identity: DeviceState.Identity
        let runtime: URL
    }

    /// Manufactures a device in `root`, claims it, admits its stand-in runtime, and returns it unattested.
    static func makeDevice(root: URL, manufacturer: ManufacturerCA, client: APIClient, tenant: RampartID) async throws -> BenchDevice {
        let state = DeviceState(directory: root.appendingPathComponent("device-\(RampartID().description.prefix(8))"))
        _ = try DeviceState.manufacture(at: state.directory, manufacturer: manufacturer, model: "bench-board")
        let identity = try state.identity()
        _ = try await client.send(.POST, "/v1/tenants/\(tenant)/devices", body: DeviceClaimRequest(deviceId: identity.deviceID))
        let runtime = state.directory.appendingPathComponent("bench-runtime")
        try Data("bench runtime\n".utf8).write(to: runtime)
        _ = try await client.send(
            .POST, "/v1/tenants/\(tenant)/reference-values",
            body: ReferenceValueRequest(sha256: try Measurer.sha256(of: runtime), version: RampartVersion.current, description: "bench"))
        return BenchDevice(state: state, identity: identity, runtime: runtime)
    }

    /// One attestation through `server` on a fresh connection; stores the certificate in the device state.
    static func attest(_ device: BenchDevice, server: String, serverCA: String, egress: ServiceEgress? = nil) async throws {
        var client = try AttestationClient(server: server, serverCAPEM: serverCA)
        if let egress {
            client.egress = egress
        } else {
            client.httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        }
        defer { if egress == nil { _ = client.httpClient.shutdown() } }
        let measurements = try Measurer.measure(state: device.state, executable: device.runtime)
        let (result, key) = try await client.attest(identity: device.identity, measurements: measurements, debugStatus: 3)
        try device.state.store(chain: result.certificateChain, key: key)
    }

    struct Poll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "TUF timestamp.json polls per second over keep-alive mutual TLS, next to nginx serving the same file over TLS.")
        @Option(help: "Seconds each side is measured.") var seconds = 10
        @Option(help: "Concurrent keep-alive connections.") var connections = 16
        @Option(help: "The nginx binary.") var nginx = "/usr/sbin/nginx"

        func run() async throws {
            guard (1...120).contains(seconds), (1...256).contains(connections) else {
                throw RampartError.invalidRequest("--seconds must be 1…120 and --connections 1…256.")
            }
            try NginxReference.requireBinary(nginx)
            var logger = Logger(label: "rampart.bench")
            logger.logLevel = .error
            let (seconds, connections, nginx) = (self.seconds, self.connections, self.nginx)
            try await BenchCommand.withInProcessServer(logger: logger) { server, serverCA, manufacturer, client, tenant, data in
                let root = data.url.deletingLastPathComponent()
                let device = try await BenchCommand.makeDevice(root: root, manufacturer: manufacturer, client: client, tenant: tenant)
                try await BenchCommand.attest(device, server: server, serverCA: serverCA)
                let tls = try DeviceTLS.configuration(serverCAPEM: serverCA, certificate: device.state.validCertificate())
                let url = "\(server)/v1/tuf/\(tenant)/metadata/timestamp.json"
                let timestamp = try await HTTPFetcherProbe.get(url, tls: tls)

                let site = root.appendingPathComponent("nginx")
                try FileManager.default.createDirectory(at: site.appendingPathComponent("html"), withIntermediateDirectories: true)
                try Data(timestamp).write(to: site.appendingPathComponent("html/timestamp.json"))
                let nginxServer = try await NginxReference.start(
                    binary: nginx, directory: site, certificateFile: data.tlsCertificateFile.path, keyFile: data.tlsKeyFile.path,
                    site: "root \(site.path)/html; location / { default_type application/json; }")
                defer { nginxServer.stop() }
                let nginxURL = "https://127.0.0.1:\(nginxServer.port)/timestamp.json"
                var serverTLS = TLSConfiguration.makeClientConfiguration()
                serverTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(serverCA.utf8)))
                var ready = false
                for _ in 0..<100 where !ready {
                    ready = (try? await HTTPFetcherProbe.get(nginxURL, tls: serverTLS)) == timestamp
                    if !ready { try await Task.sleep(for: .milliseconds(100)) }
                }
                guard ready else { throw RampartError(.internalError, "nginx did not serve the file; see \(site.path)/error.log.", status: 500) }

                print("Polling \(timestamp.count)-byte timestamp.json for \(seconds) s each over \(connections) keep-alive TLS connections…")
                let rampart = try await BenchCommand.polls(url: url, tls: tls, connections: connections, seconds: seconds, expected: timestamp)
                let reference = try await BenchCommand.polls(url: nginxURL, tls: serverTLS, connections: connections, seconds: seconds, expected: timestamp)
                let ratio = rampart.rate / max(reference.rate, 1)
                print(
                    [
                        "| measurement | result |",
                        "|---|---|",
                        "| Rampart polls/s (mutual TLS, device certificate checked per request) | \(String(format: "%.0f", rampart.rate)) (\(rampart.failures) failed) |",
                        "| nginx polls/s (TLS, static file) | \(String(format: "%.0f", reference.rate)) (\(reference.failures) failed) |",
                        "| ratio Rampart / nginx | \(String(format: "%.2f", ratio)) (target ≥ 0.50: \(ratio >= 0.5 ? "met" : "not met")) |",
                    ].joined(separator: "\n"))
            }
        }
    }

    struct DataUsage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "data-usage",
            abstract: "Bytes on the wire (TLS included) per idle device per month: attestation and update checks with nothing new.")
        @Option(help: "Measured repetitions of each exchange.") var rounds = 5

        func run() async throws {
            guard (1...100).contains(rounds) else { throw RampartError.invalidRequest("--rounds must be 1…100.") }
            var quiet = Logger(label: "rampart.bench")
            quiet.logLevel = .error
            let (rounds, logger) = (self.rounds, quiet)
            try await BenchCommand.withInProcessServer(logger: logger) { server, serverCA, manufacturer, client, tenant, data in
                let root = data.url.deletingLastPathComponent()
                let device = try await BenchCommand.makeDevice(root: root, manufacturer: manufacturer, client: client, tenant: tenant)
                _ = try await client.send(.POST, "/v1/tenants/\(tenant)/products", body: ProductRequest(name: "Bench Board", description: nil))
                let groups = try await client.json(DeviceGroupList.self, .GET, "/v1/tenants/\(tenant)/device-groups")
                let production = groups.deviceGroups.first { $0.name == "Production" }!
                _ = try await client.send(
                    .PATCH, "/v1/tenants/\(tenant)/devices/\(device.identity.deviceID)", body: DeviceUpdateRequest(deviceGroupId: production.id))
                let target = Int(URL(string: server)!.port!)
                let counter = ByteCounter()
                try await CountingProxy.run(target: target, counter: counter) { proxyPort in
                    let proxied = "https://127.0.0.1:\(proxyPort)"
                    let status = DeviceStatusBoard(state: device.state, deviceID: device.identity.deviceID)
                    func updateCheck() async throws {
                        var agent = UpdateAgent(
                            state: device.state, server: proxied, serverCAPEM: serverCA, status: status, logger: logger,
                            attestNow: Doorbell(), restart: {})
                        agent.httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
                        defer { _ = agent.httpClient.shutdown() }
                        let report = try await agent.checkOnce()
                        guard report.result == "upToDate" else {
                            throw RampartError(.internalError, "The update check ended '\(report.result)': \(report.message ?? "")", status: 500)
                        }
                    }
                    // First contact: attestation, then the first update check, which also fetches the TUF root.
                    try await BenchCommand.attest(device, server: proxied, serverCA: serverCA)
                    status.update { $0.tenantId = tenant }
                    let firstAttestation = counter.take()
                    try await updateCheck()
                    let firstCheck = counter.take()
                    var attestations: [Int] = []
                    var checks: [Int] = []
                    for _ in 0..<rounds {
                        try await BenchCommand.attest(device, server: proxied, serverCA: serverCA)
                        attestations.append(counter.take())
                        try await updateCheck()
                        checks.append(counter.take())
                    }
                    // The push channel: empty long-polls on one kept-alive connection (the first pays the handshake).
                    let tls = try DeviceTLS.configuration(serverCAPEM: serverCA, certificate: device.state.validCertificate())
                    let pushClient = HTTPClient(eventLoopGroupProvider: .singleton)
                    var polls: [Int] = []
                    for _ in 0...rounds {
                        var request = HTTPClientRequest(url: "\(proxied)/v1/tuf/\(tenant)/notifications?wait=0")
                        request.tlsConfiguration = tls
                        _ = try await pushClient.execute(request, timeout: .seconds(10)).body.collect(upTo: 4096)
                        polls.append(counter.take())
                    }
                    try await pushClient.shutdown()
                    let poll = polls.dropFirst().sorted()[rounds / 2]
                    let pushPerMonth = 30 * 86_400 / UpdateAgent.defaultPushWaitSeconds * poll
                    // Medians: a connection's closing alerts sometimes land in the next exchange's count.
                    let attestation = attestations.sorted()[rounds / 2]

                    let check = checks.sorted()[rounds / 2]
                    // The device attests and checks every 20 h (less jitter): 36 of each in 30 days.
                    let perMonth = 36 * (attestation + check)
                    let megabytes = Double(perMonth) / 1_000_000

                    // The cellular profile: push off, and counted by the device's own service egress, the meter its
                    // data budget is enforced with. A fresh egress per exchange, as 20 h apart no connection survives.
                    let meter = ServicingDataMeter(state: nil)
                    var cellular: [Int64] = []
                    for _ in 0..<rounds {
                        let before = meter.usage().bytes
                        let egress = try ServiceEgress(server: server, policy: .init(), meter: meter, logger: logger)
                        try await BenchCommand.attest(device, server: server, serverCA: serverCA, egress: egress)
                        var agent = UpdateAgent(
                            state: device.state, server: server, serverCAPEM: serverCA, status: status, logger: logger,
                            attestNow: Doorbell(), restart: {})
                        agent.egress = egress
                        let report = try await agent.checkOnce()
                        await egress.shutdown()
                        guard report.result == "upToDate" else {
                            throw RampartError(.internalError, "The cellular update check ended '\(report.result)': \(report.message ?? "")", status: 500)
                        }
                        cellular.append(meter.usage().bytes - before)
                    }
                    let cellularMonth = 36 * cellular.sorted()[rounds / 2]
                    let cellularMB = Double(cellularMonth) / 1_000_000
                    print(
                        [
                            "| measurement | bytes |",
                            "|---|---|",
                            "| first attestation (one-time) | \(firstAttestation) |",
                            "| first update check, with the TUF root (one-time) | \(firstCheck) |",
                            "| attestation (fresh TLS connection, mutual TLS not needed) | \(attestation) |",
                            "| update check, nothing new (fresh mutual TLS connection, settings, root probe, timestamp) | \(check) |",
                            "| per idle device per month: 36 attestations + 36 checks | \(perMonth) (\(String(format: "%.2f", megabytes)) MB; target ≤ 1 MB: \(megabytes <= 1 ? "met" : "not met")) |",
                            "| optional push channel: one empty long-poll on a kept-alive connection | \(poll) |",
                            "| push channel per month at one poll per \(UpdateAgent.defaultPushWaitSeconds) s (not in the target; 0 disables it) | \(pushPerMonth) (\(String(format: "%.2f", Double(pushPerMonth) / 1_000_000)) MB) |",
                            "| **cellular profile**, per idle device per month: 36 attestations + 36 checks, push off (`--push-wait-seconds 0`), counted by the device's own egress meter (the data budget's) | \(cellularMonth) (\(String(format: "%.2f", cellularMB)) MB; target ≤ 1 MB: \(cellularMB <= 1 ? "met" : "not met")) |",
                        ].joined(separator: "\n"))
                    print("Bytes are TCP payload both ways (TLS records included), counted by a loopback proxy; TCP/IP headers are not included.")
                }
            }
        }
    }

    /// A free loopback port.
    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    /// Keep-alive GET loops on `connections` connections for `seconds`.
    static func polls(url: String, tls: TLSConfiguration, connections: Int, seconds: Int, expected: [UInt8]) async throws
        -> (rate: Double, failures: Int)
    {
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        configuration.httpVersion = .http1Only
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { _ = client.shutdown() }
        // Warm the connections up first, so handshakes are not counted.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<connections { group.addTask { _ = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10)).body.collect(upTo: 1 << 16) } }
            try await group.waitForAll()
        }
        let deadline = ContinuousClock.now + .seconds(seconds)
        let started = ContinuousClock.now
        let counts = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<connections {
                group.addTask {
                    var (ok, failed) = (0, 0)
                    while ContinuousClock.now < deadline {
                        do {
                            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
                            let body = try await response.body.collect(upTo: 1 << 16)
                            if response.status == .ok && body.readableBytes == expected.count { ok += 1 } else { failed += 1 }
                        } catch {
                            failed += 1
                        }
                    }
                    return (ok, failed)
                }
            }
            var total = (0, 0)
            for try await count in group { total = (total.0 + count.0, total.1 + count.1) }
            return total
        }
        let elapsed = ContinuousClock.now - started
        let secondsElapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (Double(counts.0) / secondsElapsed, counts.1)
    }
}

/// One GET, returning the body.
enum HTTPFetcherProbe {
    static func get(_ url: String, tls: TLSConfiguration) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.tlsConfiguration = tls
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw RampartError(.serverUnreachable, "\(url) answered HTTP \(response.status.code).", status: 502)
        }
        return Array(buffer: body)
    }
}

/// Bytes seen by ``CountingProxy``, both ways.
final class ByteCounter: Sendable {
    private let bytes = Mutex(0)
    func add(_ count: Int) { bytes.withLock { $0 += count } }
    /// The count since the last call.
    func take() -> Int { bytes.withLock { value in defer { value = 0 }; return value } }
}

/// A loopback TCP proxy that counts every byte it forwards.
enum CountingProxy {
    static func run(target: Int, counter: ByteCounter, _ body: (Int) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let port = server.channel.localAddress?.port ?? 0
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await withThrowingDiscardingTaskGroup { connections in
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            connections.addTask {
                                try? await forward(connection, target: target, counter: counter)
                            }
                        }
                    }
                }
            }
            try await body(port)
            tasks.cancelAll()
        }
    }

    private static func forward(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, target: Int, counter: ByteCounter) async throws {
        let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: target) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        try await connection.executeThenClose { clientIn, clientOut in
            try await upstream.executeThenClose { serverIn, serverOut in
                try await withThrowingTaskGroup(of: Void.self) { pipes in
                    pipes.addTask {
                        for try await buffer in clientIn {
                            counter.add(buffer.readableBytes)
                            try await serverOut.write(buffer)
                        }
                    }
                    pipes.addTask {
                        for try await buffer in serverIn {
                            counter.add(buffer.readableBytes)
                            try await clientOut.write(buffer)
                        }
                    }
                    try await pipes.next()
                    pipes.cancelAll()
                }
            }
        }
    }
}
