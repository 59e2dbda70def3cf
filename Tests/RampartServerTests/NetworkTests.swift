import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RampartCLI
import RampartCore
import RampartDevice
import RampartSandbox
import RampartImage
import RampartLink
import RampartTUF
import RampartTestKit
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("device.toml")
struct DeviceConfigurationTests {
    @Test("network and router settings parse")
    func valid() throws {
        let config = try DeviceConfiguration.parse(
            """
            [network]
            managed_interfaces = ["eth0", "wwan0"]
            service_interface = "wwan0"
            minimum_signal_dbm = -100
            allow_roaming = true

            [router]
            control = "tcp://192.168.8.1:7011"
            """, file: "device.toml")
        #expect(config.network.managedInterfaces == ["eth0", "wwan0"])
        #expect(config.network.serviceInterface == "wwan0")
        #expect(config.network.manages("wwan0") && !config.network.manages("eth0"))
        #expect(config.network.minimumSignalDBm == -100 && config.network.allowRoaming)
        #expect(config.routerControl == .tcp(host: "192.168.8.1", port: 7011))
        #expect(try DeviceConfiguration.parse("[router]\ncontrol = \"/dev/ttyUSB2\"", file: "d").routerControl == .serial(path: "/dev/ttyUSB2"))
        #expect(try DeviceConfiguration.parse("", file: "d") == DeviceConfiguration())
        #expect(DeviceConfiguration().network.manages("anything"))
        #expect(try DeviceConfiguration.parse("", file: "d").peripherals == nil)
        let peripherals = try #require(
            try DeviceConfiguration.parse(
                """
                [peripherals]
                gpio = "/sys/class/gpio"
                uart = ["/dev/ttyS1", "/dev/ttyUSB0"]
                uart_baud = 9600
                i2c = ["/dev/i2c-1"]
                spi = ["/dev/spidev0.0"]
                adc = ["/sys/bus/iio/devices/iio:device0"]
                pwm = ["/sys/class/pwm/pwmchip0"]
                """, file: "device.toml"
            ).peripherals)
        #expect(peripherals.gpioDirectory == "/sys/class/gpio" && peripherals.uarts == ["/dev/ttyS1", "/dev/ttyUSB0"])
        #expect(peripherals.uartBaud == 9600 && peripherals.i2cBuses == ["/dev/i2c-1"] && peripherals.spiBuses == ["/dev/spidev0.0"])
        #expect(peripherals.adcDevices == ["/sys/bus/iio/devices/iio:device0"] && peripherals.pwmChips == ["/sys/class/pwm/pwmchip0"])

        // [gateway]: a relative CA path is the state directory's; the port defaults to 8883.
        let gateway = try DeviceConfiguration.parse("[gateway]\nurl = \"mqtts://gw.local\"\nca = \"gateway-ca.pem\"", file: "/var/lib/d/device.toml").gateway
        #expect(gateway == .init(host: "gw.local", port: 8883, caFile: "/var/lib/d/gateway-ca.pem"))
        #expect(try DeviceConfiguration.parse("[gateway]\nurl = \"mqtts://[::1]:1883\"", file: "d").gateway == .init(host: "::1", port: 1883))
        #expect(try DeviceConfiguration.parse("", file: "d").gateway == nil)
        #expect(try DeviceConfiguration.parse("[gateway]\nurl = \"MQTTS://GW.local\"", file: "d").gateway?.port == 8883)
    }

    @Test("the gateway CA is checked when the runtime starts: a missing or non-PEM file is refused with its name")
    func gatewayCA() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.file("missing.pem").path
        #expect { try GatewayConnection.readCA(missing) } throws: { ($0 as? RampartError)?.message.contains(missing) == true }
        let junk = directory.file("junk.pem")
        try Data("not a certificate".utf8).write(to: junk)
        #expect { try GatewayConnection.readCA(junk.path) } throws: {
            ($0 as? RampartError)?.code == .configurationInvalid && ($0 as? RampartError)?.message.contains("holds no PEM certificate") == true
        }
    }

    @Test(
        "bad settings are refused with the key named",
        arguments: [
            ("[network]\nservice_interfaces = \"eth0\"", "network.service_interfaces is not a known setting"),
            ("[net]\n", "net is not a known setting"),
            ("[network]\nmanaged_interfaces = \"eth0\"", "must be an array of strings"),
            ("[network]\nmanaged_interfaces = [\"eth 0\"]", "not an interface name"),
            ("[network]\nmanaged_interfaces = []", "is empty"),
            ("[network]\nservice_interface = \"an-interface-name-too-long\"", "not an interface name"),
            ("[network]\nmanaged_interfaces = [\"eth0\"]\nservice_interface = \"wwan0\"", "not one of managed_interfaces"),
            ("[network]\nminimum_signal_dbm = -20", "must be -113 to -51"),
            ("[network]\nallow_roaming = \"yes\"", "must be true or false"),
            ("[router]\ncontrol = \"udp://1.2.3.4:5\"", "must be tcp://HOST:PORT"),
            ("[peripherals]\nuart = [\"ttyS1\"]", "peripherals.uart holds \"ttyS1\", which is not an absolute path"),
            ("[peripherals]\nuart_baud = 12345", "peripherals.uart_baud must be one of 9600"),
            ("[peripherals]\ngpio = \"gpio\"", "peripherals.gpio must be an absolute path"),
            ("[peripherals]\ncan = [\"/dev/can0\"]", "peripherals.can is not a known setting"),
            ("[peripherals]\ni2c = \"/dev/i2c-1\"", "must be an array of strings"),
            ("[router]\ncontrol = \"tcp://host:99999\"", "must be tcp://HOST:PORT"),
            ("[router]\n", "router.control is required"),
            ("[network\n", "device.toml:1"),
            ("[gateway]\n", "gateway.url is required"),
            ("[gateway]\nurl = \"tcp://gw:8883\"", "gateway.url must be mqtts://host[:port]"),
            ("[gateway]\nurl = \"mqtts://gw:8883/devices\"", "gateway.url must be mqtts://host[:port]"),
            ("[gateway]\nurl = \"mqtts://:8883\"", "gateway.url must be mqtts://host[:port]"),
            ("[gateway]\nurl = \"mqtts://gw:0\"", "gateway.url has a port outside 1–65535"),
            ("[gateway]\nurl = \"mqtts://gw\"\nca_file = \"x.pem\"", "gateway.ca_file is not a known setting"),
            ("[gateway]\nurl = \"mqtts://gw:\"", "gateway.url must be mqtts://host[:port]"),
            ("[gateway]\nurl = \"mqtts://gw#x\"", "gateway.url must be mqtts://host[:port]"),
            ("[gateway]\nurl = \"mqtts://u:p@gw\"", "gateway.url must be mqtts://host[:port]"),
            ("[gateway]\nurl = \"mqtts://gw?x=1\"", "gateway.url must be mqtts://host[:port]"),
            ("[gateway]\nurl = \"mqtts://[fe80::1%25eth0]:8883\"", "no user, path, query or IPv6 zone"),
            ("[gateway]\nurl = \"mqtt://gw:1883\"", "gateway.url must be mqtts://host[:port] (TLS"),
        ])
    func invalid(text: String, message: String) {
        do {
            _ = try DeviceConfiguration.parse(text, file: "device.toml")
            Issue.record("accepted: \(text)")
        } catch let error as RampartError {
            #expect(error.code == .configurationInvalid)
            #expect(error.message.contains(message), "\(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }
}

@Suite("Servicing stays on managed interfaces")
struct ServiceEgressTests {
    static let quiet: Logger = {
        var logger = Logger(label: "test.egress")
        logger.logLevel = .critical
        return logger
    }()

    func healthz(_ server: TestServer, through client: HTTPClient, timeout: TimeAmount = .seconds(20)) async throws -> Int {
        var request = HTTPClientRequest(url: server.url + "/healthz")
        request.tlsConfiguration = try DeviceTLS.configuration(serverCAPEM: try server.tlsCAPEM)
        let response = try await client.execute(request, timeout: timeout)
        _ = try await response.body.collect(upTo: 1 << 16)
        return Int(response.status.code)
    }

    @Test("a path outside the managed set is refused before a packet leaves; a managed one tunnels and is counted")
    func refusesUnmanagedPath() async throws {
        try await TestServer.withServer { server in
            let meter = ServicingDataMeter(state: nil)
            var refusing = DeviceConfiguration.Network()
            refusing.managedInterfaces = ["rampart-no0"]
            let refused = try ServiceEgress(server: server.url, policy: refusing, meter: meter, logger: Self.quiet)
            do {
                try await refused.checkPath()
                Issue.record("the path through lo was accepted")
            } catch let error as RampartError {
                #expect(error.code == .networkPathRefused)
                #expect(error.message.contains("through lo, which is not a managed interface"), "\(error.message)")
            }
            // The tunnel itself refuses too, for a client that skipped the check (AsyncHTTPClient retries the
            // refused CONNECT until its deadline).
            await #expect(throws: (any Error).self) { _ = try await healthz(server, through: refused.httpClient, timeout: .seconds(2)) }
            #expect(refused.refusalCount >= 2)
            #expect(meter.usage().bytes == 0)
            await refused.shutdown()

            var pinned = DeviceConfiguration.Network()
            pinned.serviceInterface = "lo"
            let egress = try ServiceEgress(server: server.url, policy: pinned, meter: meter, logger: Self.quiet)
            try await egress.checkPath()
            #expect(try await healthz(server, through: egress.httpClient) == 200)
            #expect(meter.usage().bytes > 1000)  // a TLS handshake and a request, both ways
            #expect(egress.refusalCount == 0)
            await egress.shutdown()
        }
    }

    @Test("the egress serves only this runtime (its secret), and tunnels only to the service")
    func onlyToTheService() async throws {
        try await TestServer.withServer { server in
            let egress = try ServiceEgress(server: server.url, policy: .init(), meter: ServicingDataMeter(state: nil), logger: Self.quiet)
            func client(authorized: Bool) -> HTTPClient {
                var configuration = HTTPClient.Configuration()
                configuration.proxy = .server(
                    host: "127.0.0.1", port: egress.proxyPort, authorization: authorized ? .basic(credentials: egress.secret) : nil)
                return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            }
            // Another local process, without the secret: refused, nothing tunnelled or counted.
            let foreign = client(authorized: false)
            await #expect(throws: (any Error).self) { _ = try await healthz(server, through: foreign, timeout: .seconds(2)) }
            try await foreign.shutdown()
            #expect(egress.tunnelCount == 0 && egress.meter.usage().bytes == 0)
            // With the secret, but to another host: refused too.
            let other = client(authorized: true)
            var request = HTTPClientRequest(url: server.url.replacingOccurrences(of: "127.0.0.1", with: "localhost") + "/healthz")
            request.tlsConfiguration = try DeviceTLS.configuration(serverCAPEM: try server.tlsCAPEM)
            await #expect(throws: (any Error).self) { _ = try await other.execute(request, timeout: .seconds(2)) }
            #expect(try await healthz(server, through: other) == 200)
            try await other.shutdown()
            #expect(egress.tunnelCount == 1)
            await egress.shutdown()
        }
    }

    @Test("a device whose servicing may not use loopback never reaches the service, and says why")
    func deviceRefused() async throws {
        try await AttestationHarness.run { h in
            var policy = DeviceConfiguration.Network()
            policy.managedInterfaces = ["rampart-no0"]
            let egress = try ServiceEgress(server: h.server.url, policy: policy, meter: ServicingDataMeter(state: nil), logger: Self.quiet)
            let dut = try await DeviceUnderTest.make(h, group: nil, egress: egress)
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "networkPathRefused")
            #expect(dut.status.snapshot.lastAttestationMessage?.contains("lo") == true)
            let info = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)")
            #expect(info.lastAttestationAt == nil && info.lastSeenAt == nil)
            await egress.shutdown()
        }
    }

    @Test("an unreadable device.toml is an error, not the defaults")
    func unreadableConfiguration() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let state = DeviceState(directory: directory.url)
        try FileManager.default.createDirectory(at: state.configFile, withIntermediateDirectories: true)  // a directory
        #expect(throws: RampartError(.configurationInvalid, "")) { try DeviceConfiguration.load(state: state) }
    }

    @Test("a corrupt count is kept aside and reported; a clock that jumps back keeps the month's count")
    func meterRecovers() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let state = DeviceState(directory: directory.url)
        let file = directory.url.appendingPathComponent("network/usage.json")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{not json".utf8).write(to: file)
        let november = Date(timeIntervalSince1970: 1_795_000_000)
        let meter = ServicingDataMeter(state: state, now: november)
        #expect(meter.loadProblem?.contains("usage.json.corrupt") == true)
        #expect(try String(contentsOf: file.appendingPathExtension("corrupt"), encoding: .utf8) == "{not json")
        meter.add(5000, now: november)
        // Before time sync a device may think it is 1970: the count stays with November.
        meter.add(100, now: Date(timeIntervalSince1970: 0))
        #expect(meter.usage(now: Date(timeIntervalSince1970: 0)) == ServicingDataUsage(month: "2026-11", bytes: 5100, budgetBytes: nil))
        #expect(ServicingDataMeter(state: nil).loadProblem == nil)
    }

    @Test("the month's servicing bytes survive a restart and start again at a new month")
    func meter() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        let state = DeviceState(directory: directory.url)
        let november = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11
        let meter = ServicingDataMeter(state: state, now: november)
        meter.add(70_000, now: november)  // past the write threshold
        meter.setBudget(1_000_000)
        meter.add(10, now: november)
        meter.flush()
        let again = ServicingDataMeter(state: state, now: november)
        #expect(again.usage(now: november) == ServicingDataUsage(month: "2026-11", bytes: 70_010, budgetBytes: 1_000_000))
        let december = november + 40 * 86_400
        #expect(again.usage(now: december) == ServicingDataUsage(month: "2026-12", bytes: 0, budgetBytes: 1_000_000))
    }
}

/// A router on loopback: accepts connections one after another and writes what the test gives it.
final class TestRouter: Sendable {
    let port: Int
    private let listener: Int32
    private let pending = Mutex<(connections: [Int32], accepted: Int)>(([], 0))

    init() throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = listener
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        listen(fd, 4)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                self.pending.withLock {
                    $0.connections.append(client)
                    $0.accepted += 1
                }
            }
        }
        thread.start()
    }

    var accepted: Int { pending.withLock { $0.accepted } }

    /// Writes to the newest connection, waiting up to 10 s for one.
    func send(_ text: String) async throws {
        for _ in 0..<200 {
            if let fd = pending.withLock({ $0.connections.last }) {
                let bytes = Array(text.utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("the runtime never connected to the router")
    }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
        pending.withLock { $0.connections.forEach { _ = Glibc.close($0) } }
    }
}

/// Polls `condition` for up to 10 s.
func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<200 {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

@Suite("Router control channel and link-aware servicing")
struct LinkAwareServicingTests {
    @Test("the runtime reads link facts; a flooding router is disconnected and reconnected after a backoff")
    func channel() async throws {
        let router = try TestRouter()
        defer { router.close() }
        let board = LinkBoard(policy: .init(), routerControl: .tcp(host: "127.0.0.1", port: router.port))
        var channel = RouterChannel(source: .tcp(host: "127.0.0.1", port: router.port), board: board, logger: ServiceEgressTests.quiet)
        channel.backoff.backoffBase = 0.2
        let group = ServiceGroup(services: [channel], logger: ServiceEgressTests.quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await router.send("+CSQ: 20,0\r\n+CREG: 1\r\n+COPS: 0,0,\"Example\",7\r\nRING\r\n+CSQ: 40,0\r\n")
            #expect(try await eventually { board.snapshot.facts?.operatorName == "Example" })
            let snapshot = board.snapshot
            #expect(snapshot.connected)
            #expect(snapshot.facts?.signalDBm == -73 && snapshot.facts?.registration == .home && snapshot.facts?.radio == .lte)
            #expect(snapshot.counters.accepted == 3 && snapshot.counters.unknown == 1 && snapshot.counters.malformed == 1)
            #expect(snapshot.lastRejection?.contains("rssi 40") == true)

            try await router.send(String(repeating: "+CSQ: 21,0\r\n", count: 100))
            #expect(try await eventually { board.snapshot.counters.disconnects == 1 })
            #expect(try await eventually { board.snapshot.lastDisconnect?.contains("lines in a second") == true })
            #expect(try await eventually { router.accepted == 2 })  // back after its backoff
            // What it learned before the flood stays; the flood's own lines were not all taken.
            #expect(board.snapshot.facts?.operatorName == "Example")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("a large download waits while the router reports roaming, and goes when it reports home")
    func downloadWaitsForLink() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let production = try await h.productGroups()["Production"]!
            let app = try await h.upload(try factory.app(payload: [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0] + [UInt8](repeating: 7, count: 100_000)))
            try await h.deploy([app], to: production)
            let router = try TestRouter()
            defer { router.close() }
            var dut = try await DeviceUnderTest.make(h, group: production)
            let board = LinkBoard(policy: .init(), routerControl: .tcp(host: "127.0.0.1", port: router.port), linkImproved: dut.updates.checkNow)
            dut.updates.link = board
            let channel = RouterChannel(source: .tcp(host: "127.0.0.1", port: router.port), board: board, logger: ServiceEgressTests.quiet)
            let group = ServiceGroup(services: [channel], logger: ServiceEgressTests.quiet)
            await dut.attest()
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await router.send("+CREG: 5\r\n+CSQ: 20,0\r\n")
                #expect(try await eventually { board.snapshot.facts?.registration == .roaming })
                let deferred = try await dut.updates.checkOnce()
                #expect(deferred.result == "deferred")
                #expect(deferred.message?.contains("roaming") == true, "\(deferred.message ?? "")")
                #expect(deferred.link?.registration == .roaming)
                #expect(AppStore(state: dut.device.state).installed().isEmpty)

                // Home again: the download goes (and the board rings the agent's check-now doorbell).
                try await router.send("+CREG: 1\r\n")
                #expect(try await eventually { board.snapshot.downloadsWaitFor == nil })
                #expect(try await dut.updates.checkOnce().result == "installed")

                // A weak signal holds the next one back too.
                try await router.send("+CSQ: 2,0\r\n")
                #expect(try await eventually { board.snapshot.facts?.signalDBm == -109 })
                #expect(board.reasonToWait()?.contains("-109 dBm") == true)
                // …but never for longer than a day: the router cannot withhold updates.
                #expect(board.reasonToWait(now: Date() + LinkBoard.maximumWait + 1) == nil)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }

    @Test("the group's data budget defers a download; a critical runtime goes beyond it, and the device says so")
    func dataBudget() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let production = groups["Production"]!
            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/device-groups/\(production.id)", body: DeviceGroupRequest(dataBudgetMB: 1))
            let meter = ServicingDataMeter(state: nil)
            let egress = try ServiceEgress(server: h.server.url, policy: .init(), meter: meter, logger: ServiceEgressTests.quiet)
            let dut = try await DeviceUnderTest.make(h, group: production, egress: egress)
            await dut.attest()
            #expect(meter.usage().bytes > 5000)  // the attestation itself was counted
            meter.add(1_000_000 - Int(meter.usage().bytes) - 30_000)  // 30 kB left this month

            let app = try await h.upload(try factory.app(payload: [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0] + [UInt8](repeating: 1, count: 50_000)))
            try await h.deploy([app], to: production)
            let deferred = try await dut.updates.checkOnce()
            #expect(deferred.result == "deferred")
            #expect(deferred.message?.contains("of the group's 1 MB budget; it waits for next month") == true, "\(deferred.message ?? "")")
            #expect(deferred.dataUsage?.budgetBytes == 1_000_000 && deferred.dataUsage?.exceededForCriticalUpdate == false)
            #expect(AppStore(state: dut.device.state).installed().isEmpty)

            // An old critical runtime in the feed (not newer than what runs) makes nothing critical.
            let stale = try factory.runtime(version: "0.0.1", payload: Array("#!/bin/sh\nexit 0\n".utf8), critical: true)
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/runtime-releases", body: RuntimeReleaseRequest(imageId: try await h.upload(stale).id, feed: .retail))
            #expect(try await dut.updates.checkOnce().result == "deferred")
            #expect(meter.usage().exceededForCriticalUpdate == false)

            // A security-critical runtime is not held back by the budget (the apps still are); the report says it
            // went beyond.
            let runtime = try factory.runtime(version: "9.1.0", payload: Array("#!/bin/sh\nexit 0\n".utf8) + [UInt8](repeating: 2, count: 40_000), critical: true)
            let image = try await h.upload(runtime)
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/runtime-releases", body: RuntimeReleaseRequest(imageId: image.id, feed: .retail))
            let installed = try await dut.updates.checkOnce()
            #expect(installed.result == "restart")
            #expect(installed.dataUsage?.exceededForCriticalUpdate == true)
            #expect(AppStore(state: dut.device.state).installed().isEmpty)
            #expect(meter.usage().bytes > 1_000_000)
            await dut.updates.send(installed)
            let shown = try await h.admin.client.json(DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)")
            #expect(shown.dataUsage?.exceededForCriticalUpdate == true)
            await egress.shutdown()
        }
    }
}


@Suite("A hostile router's limits")
struct HostileRouterLimitTests {
    @Test("a router that flaps between good and bad neither restarts the day's wait nor rings more than every 15 min")
    func flapping() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let state = DeviceState(directory: directory.url)
        let router = try TestRouter()
        defer { router.close() }
        let doorbell = Doorbell()
        let board = LinkBoard(policy: .init(), routerControl: .tcp(host: "127.0.0.1", port: router.port), linkImproved: doorbell, state: state)
        let group = ServiceGroup(
            services: [RouterChannel(source: .tcp(host: "127.0.0.1", port: router.port), board: board, logger: ServiceEgressTests.quiet)],
            logger: ServiceEgressTests.quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await router.send("+CREG: 5\r\n")
            #expect(try await eventually { board.snapshot.facts?.registration == .roaming })
            let start = Date()
            #expect(board.reasonToWait(now: start) != nil)
            #expect(board.snapshot.downloadsWaitingSince == start)
            try await router.send("+CREG: 1\r\n")  // good: rings once
            #expect(try await eventually { board.snapshot.facts?.registration == .home })
            let rung = ContinuousClock.now
            await doorbell.wait(upTo: .seconds(5))
            #expect(ContinuousClock.now - rung < .seconds(4))
            try await Task.sleep(for: .seconds(1.1))  // the type's rate limit
            try await router.send("+CREG: 5\r\n")  // bad again, before any download went
            #expect(try await eventually { board.snapshot.facts?.registration == .roaming })
            #expect(board.reasonToWait(now: start + 3600) != nil)
            #expect(board.snapshot.downloadsWaitingSince == start)  // the day was not restarted
            try await Task.sleep(for: .seconds(1.1))
            try await router.send("+CREG: 1\r\n")  // good again within 15 minutes: no second ring
            #expect(try await eventually { board.snapshot.facts?.registration == .home })
            let quiet = ContinuousClock.now
            await doorbell.wait(upTo: .milliseconds(600))
            #expect(ContinuousClock.now - quiet >= .milliseconds(550))
            try await router.send("+CREG: 5\r\n")
            _ = try await eventually { board.snapshot.facts?.registration == .roaming }
            // The start survives a restart of the runtime, and a day after it the download goes anyway.
            let restarted = LinkBoard(policy: .init(), routerControl: .tcp(host: "127.0.0.1", port: router.port), state: state)
            #expect(restarted.snapshot.downloadsWaitingSince.map { abs($0.timeIntervalSince(start)) < 1 } == true)
            #expect(board.reasonToWait(now: start + LinkBoard.maximumWait + 1) == nil)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("a serial router is read as a raw terminal: nothing echoed back, ^D is a byte, not end of file")
    func serialRaw() async throws {
        let terminal = try Pseudoterminal()
        let (master, path) = (terminal.master, terminal.path)
        defer { withExtendedLifetime(terminal) {} }  // its deinit closes master
        let board = LinkBoard(policy: .init(), routerControl: .serial(path: path))
        let group = ServiceGroup(
            services: [RouterChannel(source: .serial(path: path), board: board, logger: ServiceEgressTests.quiet)],
            logger: ServiceEgressTests.quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(try await eventually { board.snapshot.connected })
            try await Task.sleep(for: .milliseconds(200))  // the raw settings are made right after the open
            let bytes = Array("+CSQ: 20,0\r\n\u{4}\r\n+CREG: 1\r\n".utf8)
            _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
            #expect(try await eventually { board.snapshot.facts?.registration == .home })
            #expect(board.snapshot.facts?.signalDBm == -73)
            #expect(board.snapshot.counters.unknown == 1 && board.snapshot.counters.disconnects == 0)
            // Nothing came back to the router.
            _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
            var echo = [UInt8](repeating: 0, count: 256)
            #expect(read(master, &echo, echo.count) <= 0)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

@Suite("Link facts for apps")
struct AppLinkStatusTests {
    @Test("an app with NetworkConfig reads the link the router reported; one without is refused")
    func linkStatus() async throws {
        let state = try AppSupervisorTests.stateDirectory()
        defer { try? FileManager.default.removeItem(at: state.directory) }
        let app = #"""
            (module
              (import "rampart" "link_status" (func $link (param i32) (result i32)))
              (import "rampart" "exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (func (export "app_start") (local $r i32)
                (local.set $r (call $link (i32.const 0)))
                (if (i32.ne (local.get $r) (i32.const 16)) (then (call $exit (local.get $r))))
                ;; known, signal and registration in one exit code: 1 × 100000 + (-73) × 10 + 5
                (call $exit (i32.add (i32.mul (i32.load (i32.const 0)) (i32.const 100000))
                  (i32.add (i32.mul (i32.load offset=4 (i32.const 0)) (i32.const 10)) (i32.load offset=8 (i32.const 0)))))))
            """#
        let granted = try AppSupervisorTests.install(app, name: "linked", capabilities: #"{"NetworkConfig": true}"#, in: state)
        let denied = try AppSupervisorTests.install(app, name: "plain", in: state)
        let router = try TestRouter()
        defer { router.close() }
        let board = LinkBoard(policy: .init(), routerControl: .tcp(host: "127.0.0.1", port: router.port))
        let channel = RouterChannel(source: .tcp(host: "127.0.0.1", port: router.port), board: board, logger: ServiceEgressTests.quiet)
        let group = ServiceGroup(services: [channel], logger: ServiceEgressTests.quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await router.send("+CSQ: 20,0\r\n+CREG: 5\r\n")
            #expect(try await eventually { board.snapshot.facts?.registration == .roaming })
            let apps = AppSupervisor(state: state, errors: ErrorEventQueue(state: state), link: board, logger: ServiceEgressTests.quiet)
            tasks.addTask { try await apps.run() }
            let fault = { (id: String) async -> String? in (try? await apps.status(of: id))?.lastFault }
            let bothEnded = try await AppSupervisorTests.eventually {
                let first = await fault(granted)
                let second = await fault(denied)
                return first != nil && second != nil
            }
            #expect(bothEnded)
            let grantedFault = await fault(granted) ?? ""
            let deniedFault = await fault(denied) ?? ""
            #expect(grantedFault.contains("99275"), "\(grantedFault)")  // 100000 - 730 + 5
            #expect(deniedFault.contains("-1"), "\(deniedFault)")  // RAMPART_EPERM
            await group.triggerGracefulShutdown()
            tasks.cancelAll()
        }
    }
}

@Suite("Update failures on a failing link")
struct LinkFailureTests {
    @Test("transport errors are the link's: not update failures, and no report is sent over the dead link")
    func classify() {
        let timeout = UpdateAgent.classify(HTTPClientError.readTimeout)
        #expect(timeout.code == .serverUnreachable && timeout.message.contains("downloads resume"))
        #expect(UpdateAgent.isLinkFailure(timeout))
        #expect(UpdateAgent.isLinkFailure(RampartError(.downloadFailed, "broke off")))
        #expect(UpdateAgent.isLinkFailure(RampartError(.networkPathRefused, "lo")))
        #expect(!UpdateAgent.isLinkFailure(RampartError(.packageSignatureInvalid, "bad")))
        #expect(UpdateAgent.classify(RampartError(.lengthOrHashMismatch, "x")).code == .lengthOrHashMismatch)
    }
}

@Suite("CLI parsing of device update")
struct DeviceUpdateParsingTests {
    @Test("'device update' moves a device by default, and 'device update check-now' takes its own --device-id")
    func parses() throws {
        let move = try RampartCommand.parseAsRoot(["device", "update", "--device-id", "abc", "--device-group", "g"])
        #expect(String(describing: type(of: move)).hasSuffix("Move"))
        let check = try RampartCommand.parseAsRoot(["device", "update", "check-now", "--device-id", "abc"])
        #expect(String(describing: type(of: check)).hasSuffix("CheckNow"))
        #expect(throws: (any Error).self) { try RampartCommand.parseAsRoot(["device", "update", "--device-id", "abc"]) }
        #expect(throws: (any Error).self) { try RampartCommand.parseAsRoot(["device", "update", "check-now"]) }
    }
}
