import Foundation
import Logging
import RampartCore
import RampartDevice
import RampartGateway
import RampartPKI
import ServiceLifecycle
import Synchronization

/// Steps 10–12 of the demo: an edge gateway in front of a hub, both attested devices of the tenant. The demo
/// devices' runtimes then connect to the edge themselves (device.toml `[gateway]`), with their 24 h
/// certificates: their telemetry apps' readings go through edge and hub to the server, and a cloud-to-device
/// message goes back the same way to an app.
struct DemoGateways {
    let client: APIClient
    let tenant: RampartID
    let server: String
    let serverCA: URL
    let root: URL
    let manufacturer: ManufacturerCA
    let factoryRuntime: URL
    /// The demo devices' runtimes, restarted once device.toml names the edge.
    let runtimes: DemoDevices
    let logger: Logger

    /// Readings each device's app sends through the gateways before the demo shows the count.
    static let initialReadings = 2

    /// Sets up and runs the gateways, and switches the devices to the edge; `whileRunning` runs meanwhile (with a live count unless
    /// `once`), and everything stops when it returns.
    /// - Parameter guide: Printed once everything runs, before the live count.
    func run(devices: [DeviceState], once: Bool, guide: String, whileRunning: @Sendable () async throws -> Void) async throws {
        let directory = root.appendingPathComponent("gateways")
        var gatewayStates: [DeviceState] = []
        for name in ["hub", "edge"] {
            let state = DeviceState(directory: directory.appendingPathComponent("\(name)-device"))
            let id = try DeviceState.manufacture(at: state.directory, manufacturer: manufacturer, model: "demo-gateway")
            _ = try await client.json(DeviceInfo.self, .POST, "/v1/tenants/\(tenant)/devices", body: DeviceClaimRequest(deviceId: id))
            gatewayStates.append(state)
        }
        let (hubState, edgeState) = (gatewayStates[0], gatewayStates[1])
        let gatewayDevices = DemoDevices()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for state in gatewayStates {
                tasks.addTask {
                    try await gatewayDevices.run(
                        state: state, server: server, serverCA: serverCA.path, factoryRuntime: factoryRuntime, logger: logger)
                }
            }
            do {
                try await runGateways(
                    hubState: hubState, edgeState: edgeState, devices: devices, once: once, guide: guide, whileRunning: whileRunning)
            } catch {
                await gatewayDevices.stopAll()
                try? await tasks.waitForAll()
                throw error
            }
            await gatewayDevices.stopAll()
            try await tasks.waitForAll()
        }
    }

    private func runGateways(
        hubState: DeviceState, edgeState: DeviceState, devices: [DeviceState], once: Bool, guide: String,
        whileRunning: @Sendable () async throws -> Void
    ) async throws {
        let hubID = try hubState.identity().deviceID
        let edgeID = try edgeState.identity().deviceID
        try await waitForCertificates([hubState, edgeState])
        _ = try await client.send(.PUT, "/v1/tenants/\(tenant)/devices/\(hubID)/hub", body: SetHubRequest(hub: true))
        _ = try await client.send(.PUT, "/v1/tenants/\(tenant)/devices/\(edgeID)/parent", body: SetParentRequest(parentId: hubID))
        var deviceIDs: [String] = []
        for state in devices {
            let id = try state.identity().deviceID
            deviceIDs.append(id)
            _ = try await client.send(.PUT, "/v1/tenants/\(tenant)/devices/\(id)/parent", body: SetParentRequest(parentId: edgeID))
        }
        let bundle = try await client.send(.GET, "/v1/tenants/\(tenant)/ca-bundle").body
        let directory = root.appendingPathComponent("gateways")

        // The hub: any device of the tenant, the edge's $.cdid believed, telemetry stored on the server.
        let hubSetup = try GatewaySetup.initialize(directory: directory.appendingPathComponent("hub").path, hostname: "127.0.0.1")
        var hubConfiguration = try configuration(directory: directory.appendingPathComponent("hub"), bundle: bundle, state: hubState)
        hubConfiguration.forwarders = [edgeID]
        // The edge: registered children only, bridged to the hub with its own device certificate.
        _ = try GatewaySetup.initialize(directory: directory.appendingPathComponent("edge").path, hostname: "127.0.0.1")
        var edgeConfiguration = try configuration(directory: directory.appendingPathComponent("edge"), bundle: bundle, state: edgeState)
        edgeConfiguration.children = .registered

        let hub = try Gateway(configuration: hubConfiguration, logger: logger)
        let (hubPorts, hubBound) = AsyncStream.makeStream(of: Int.self)
        let hubGroup = ServiceGroup(
            configuration: .init(services: try hub.services(listenerBound: { hubBound.yield($0) }).map { .init(service: $0) }, logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { gateways in
            gateways.addTask { try await hubGroup.run() }
            var ports = hubPorts.makeAsyncIterator()
            guard let hubPort = await ports.next() else { throw RampartError(.internalError, "The hub did not start.", status: 500) }
            edgeConfiguration.upstream = .init(url: "mqtts://127.0.0.1:\(hubPort)")
            edgeConfiguration.upstream?.ca = hubSetup.caCertificate
            let edge = try Gateway(configuration: edgeConfiguration, logger: logger)
            let (edgePorts, edgeBound) = AsyncStream.makeStream(of: Int.self)
            let edgeGroup = ServiceGroup(
                configuration: .init(services: try edge.services(listenerBound: { edgeBound.yield($0) }).map { .init(service: $0) }, logger: logger))
            gateways.addTask { try await edgeGroup.run() }
            var edgePortIterator = edgePorts.makeAsyncIterator()
            guard let edgePort = await edgePortIterator.next() else { throw RampartError(.internalError, "The edge gateway did not start.", status: 500) }
            print("10. Gateways: an edge gateway (mqtts://127.0.0.1:\(edgePort), registered children only) in front of a hub")
            print("    (mqtts://127.0.0.1:\(hubPort)), both attested devices of the tenant; the hub stores telemetry on the server.")
            print("    Edge \(edgeID.prefix(12))… is the hub's child, and the 3 devices are the edge's children (device set-parent).")

            do {
                try await exchange(
                    deviceIDs: deviceIDs, devices: devices, edgePort: edgePort,
                    edgeCA: directory.appendingPathComponent("edge/gateway-ca.pem").path, once: once, guide: guide,
                    whileRunning: whileRunning)
            } catch {
                await edgeGroup.triggerGracefulShutdown()
                await hubGroup.triggerGracefulShutdown()
                try? await gateways.waitForAll()
                throw error
            }
            await edgeGroup.triggerGracefulShutdown()
            await hubGroup.triggerGracefulShutdown()
            try await gateways.waitForAll()
        }
    }

    /// The devices' runtimes switch to the edge (device.toml `[gateway]`, then a restart), so their telemetry apps'
    /// readings go edge → hub → server; a cloud-to-device message goes down the same way to the app; then the
    /// live count.
    private func exchange(
        deviceIDs: [String], devices: [DeviceState], edgePort: Int, edgeCA: String, once: Bool, guide: String,
        whileRunning: @Sendable () async throws -> Void
    ) async throws {
        for state in devices {
            try SecureFile.write(
                "[gateway]\nurl = \"mqtts://127.0.0.1:\(edgePort)\"\nca = \"\(edgeCA)\"\n", to: state.configFile, mode: 0o644)
        }
        await runtimes.restartAll()
        let counter = TelemetryCounter(client: client, tenant: tenant, devices: deviceIDs)
        // The telemetry app sends a reading every 5 s: two from each device through the gateways.
        let deadline = ContinuousClock.now + .seconds(90)
        while true {
            _ = try await counter.refresh()
            if try await counter.lastMessages().allSatisfy({ $0.1 >= Self.initialReadings }) { break }
            guard ContinuousClock.now < deadline else {
                let counts = try await counter.lastMessages().map { "\($0.0.prefix(8)): \($0.1)" }.joined(separator: ", ")
                throw RampartError(.internalError, "Within 90 s the devices' apps did not send \(Self.initialReadings) readings each through the gateways (\(counts)).", status: 500)
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        print("11. The devices' runtimes now connect to the edge themselves (device.toml [gateway]: MQTT with their 24 h")
        print("    certificates, CN = device ID), so each telemetry app's readings go edge → hub → server. Stored so far,")
        print("    each under the device that sent it ($.cdid, believed from the edge only):")
        Printer.table(["Device ID", "Messages", "Last payload"], try await counter.lastMessages().map { [$0.0, String($0.1), $0.2] })

        try await cloudToDevice(deviceID: deviceIDs[0])

        print(guide)
        if once { return try await whileRunning() }
        print("\nPress Ctrl-C to stop the demo and remove its data.")
        print("Live: each device's telemetry app sends a reading every 5 s; messages stored on the server through the gateways:")
        try await withThrowingTaskGroup(of: Void.self) { live in
            live.addTask {
                let terminal = isatty(STDOUT_FILENO) != 0
                var lastPrinted = ContinuousClock.now
                while !Task.isCancelled {
                    // Ctrl-C stops the server first; a count that cannot be read now is simply not shown.
                    guard let total = try? await counter.refresh() else {
                        try await Task.sleep(for: .seconds(1))
                        continue
                    }
                    if terminal {
                        FileHandle.standardOutput.write(Data("\r    \(total) messages   ".utf8))
                    } else if ContinuousClock.now - lastPrinted >= .seconds(10) {
                        print("    \(total) messages")
                        lastPrinted = ContinuousClock.now
                    }
                    try await Task.sleep(for: .seconds(1))
                }
            }
            try await whileRunning()
            live.cancelAll()
            while await live.nextResult() != nil {}  // only cancellation ends them
            print("")
        }
    }

    /// Step 12: a message for the device's telemetry app, held on the server until the edge delivers it over the
    /// runtime's own connection and the app takes it.
    private func cloudToDevice(deviceID: String) async throws {
        let (message, _) = try await DemoCommand.sendToTelemetryApp(client: client, tenant: tenant, device: deviceID, route: "through the edge")
        print("12. Cloud-to-device: the server held message \(message.id.prefix(8))… for the telemetry app until the edge")
        print("    (\(message.deliveredBy?.prefix(12) ?? "?")…) delivered it over device \(deviceID.prefix(12))…'s own connection; the runtime")
        print("    acknowledged it once the app took it, so the server shows it delivered.")
    }

    /// A gateway's settings: a directory made by `gateway init`, the tenant CAs refreshed from the server,
    /// and the gateway's own device as its identity.
    private func configuration(directory: URL, bundle: [UInt8], state: DeviceState) throws -> GatewayConfiguration {
        try GatewayConfiguration.loopback(
            directory: directory, server: server, tenant: tenant.description, deviceState: state.directory.path, trustBundle: bundle)
    }

    /// Waits until each device holds a certificate from attestation (at most 60 s).
    private func waitForCertificates(_ states: [DeviceState]) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while states.contains(where: { $0.storedCertificate() == nil }) {
            guard ContinuousClock.now < deadline else {
                throw RampartError(.internalError, "The demo gateways did not attest within 60 s.", status: 500)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// Counts the telemetry the server stored for some devices through a gateway (not what reached it over HTTPS
/// before the devices switched to the edge), reading on from where it stopped.
final class TelemetryCounter: Sendable {
    private let client: APIClient
    private let tenant: RampartID
    private let devices: [String]
    private let state = Mutex<(cursors: [String: Int64], counts: [String: Int64], last: [String: String])>(([:], [:], [:]))

    init(client: APIClient, tenant: RampartID, devices: [String]) {
        self.client = client
        self.tenant = tenant
        self.devices = devices
    }

    /// Messages stored so far.
    var total: Int { state.withLock { Int($0.counts.values.reduce(0, +)) } }

    /// Reads what arrived since the last call; returns the total.
    func refresh() async throws -> Int {
        for device in devices {
            while true {
                let after = state.withLock { $0.cursors[device] ?? 0 }
                let page = try await client.json(
                    DeviceMessageList.self, .GET, "/v1/tenants/\(tenant)/devices/\(device)/messages?after=\(after)&limit=1000")
                let relayed = page.messages.filter { $0.gatewayId != device }
                state.withLock {
                    $0.cursors[device] = page.next
                    $0.counts[device, default: 0] += Int64(relayed.count)
                    if let last = relayed.last { $0.last[device] = last.payload }
                }
                if page.messages.count < 1000 { break }
            }
        }
        return total
    }

    /// Each device with its count and last payload.
    func lastMessages() async throws -> [(String, Int64, String)] {
        state.withLock { state in devices.map { ($0, state.counts[$0] ?? 0, state.last[$0] ?? "") } }
    }
}
