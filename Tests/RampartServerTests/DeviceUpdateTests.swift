import Crypto
import Foundation
import Logging
import RampartAttestation
import RampartCLI
import RampartCore
import RampartDevice
import RampartImage
import RampartServer
import RampartTUF
import RampartTestKit
import Testing

/// A device runtime's agents, driven step by step against a test server.
struct DeviceUnderTest {
    let device: TestDevice
    let status: DeviceStatusBoard
    let attestation: DeviceAgent
    var updates: UpdateAgent
    let executable: URL

    static func make(_ h: AttestationHarness, group: DeviceGroupInfo?, egress: ServiceEgress? = nil) async throws -> DeviceUnderTest {
        let device = try await h.device()
        let executable = h.fleet.directory.file("runtime-\(device.id.prefix(8))")
        try Data("factory runtime \(device.id)".utf8).write(to: executable)
        _ = try await h.admin.client.send(
            .POST, "/v1/tenants/\(h.tenant.id)/reference-values",
            body: ReferenceValueRequest(sha256: try Measurer.sha256(of: executable), version: RampartVersion.current))
        if let group {
            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)", body: DeviceUpdateRequest(deviceGroupId: group.id))
        }
        var logger = Logger(label: "test.device")
        logger.logLevel = .critical
        let status = DeviceStatusBoard(state: device.state, deviceID: device.id)
        let attestNow = Doorbell()
        var client = try AttestationClient(server: h.server.url, serverCAPEM: try h.server.tlsCAPEM)
        client.egress = egress
        let attestation = DeviceAgent(
            state: device.state, client: client, status: status, logger: logger, executable: executable, attestNow: attestNow)
        var updates = UpdateAgent(
            state: device.state, server: h.server.url, serverCAPEM: try h.server.tlsCAPEM, status: status, logger: logger,
            attestNow: attestNow, restart: {})
        updates.egress = egress
        return DeviceUnderTest(device: device, status: status, attestation: attestation, updates: updates, executable: executable)
    }

    func attest() async {
        _ = await attestation.attestOnceForTesting()
    }
}

@Suite("Device update agent")
struct DeviceUpdateTests {
    @Test("a device installs its group's deployment atomically, re-attests with the app measured, and reports")
    func installsDeployment() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let production = groups["Production"]!
            let component = RampartID()
            let app = try await h.upload(try factory.app(component, version: "1.0.0"))
            try await h.deploy([app], to: production)

            let dut = try await DeviceUnderTest.make(h, group: production)
            let before = try await dut.updates.checkOnce()
            #expect(before.result == "waiting")  // no certificate yet
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "success")

            let report = try await dut.updates.checkOnce()
            #expect(report.result == "installed")
            #expect(report.installedApps.map(\.componentId) == [component.description])
            let installed = AppStore(state: dut.device.state).installed()
            #expect(installed.count == 1 && installed[0].version == "1.0.0")
            let measured = try Measurer.measure(state: dut.device.state, executable: dut.executable)
            #expect(measured.contains { $0.kind == .app && $0.component == component.description && $0.sha256 == app.payloadSha256 })
            await dut.attest()
            #expect(dut.status.snapshot.lastAttestationResult == "success")
            #expect(try await dut.updates.checkOnce().result == "upToDate")

            await dut.updates.send(try await dut.updates.checkOnce())
            let status = try await h.admin.client.json(
                DeploymentStatus.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)/deployment-status")
            #expect(status.upToDate && status.targetImageIds == [app.id])

            // An empty deployment removes the app; an app the service did not deploy would fail attestation.
            try await h.deploy([], to: production)
            #expect(try await dut.updates.checkOnce().result == "installed")
            #expect(AppStore(state: dut.device.state).installed().isEmpty)
        }
    }

    @Test("update policy and maintenance window: NoUpdates installs nothing, outside the window defers")
    func policyAndWindow() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let production = groups["Production"]!
            try await h.deploy([try await h.upload(try factory.app())], to: production)
            let dut = try await DeviceUnderTest.make(h, group: production)
            await dut.attest()
            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/device-groups/\(production.id)", body: DeviceGroupRequest(updatePolicy: .noUpdates))
            #expect(try await dut.updates.checkOnce().result == "upToDate")
            #expect(AppStore(state: dut.device.state).installed().isEmpty)
            let window = try MaintenanceWindow(parsing: "02:00-03:00 UTC")
            let outside = Date(timeIntervalSince1970: 12 * 3600)  // 12:00 UTC
            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/device-groups/\(production.id)",
                body: DeviceGroupRequest(updatePolicy: .updateAll, maintenanceWindow: window.description))
            #expect(try await dut.updates.checkOnce(now: Date(timeIntervalSince1970: Double(Int(Date().timeIntervalSince1970) / 86_400 * 86_400) + 12 * 3600)).result == "deferred")
            #expect(!window.contains(outside) && window.contains(Date(timeIntervalSince1970: 2 * 3600 + 60)))
            #expect(try await dut.updates.checkOnce(now: Date(timeIntervalSince1970: Double(Int(Date().timeIntervalSince1970) / 86_400 * 86_400) + 2 * 3600 + 60)).result == "installed")
        }
    }

    @Test("check-now reaches a waiting device's long-poll within a second, and stays until the device checks")
    func pushCheck() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let checks = h.server.runtime.checks
            #expect(try await checks.waitForCheck(deviceID: device.id, wait: .milliseconds(300)).checkNow == false)
            async let answer = checks.waitForCheck(deviceID: device.id, wait: .seconds(10))
            try await Task.sleep(for: .milliseconds(200))
            let start = ContinuousClock.now
            _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/check-now")
            #expect(try await answer.checkNow == true)
            #expect(ContinuousClock.now - start < .seconds(2))
            // That answer may have gone into a connection the device had given up on: the next poll hears it
            // too, until the device fetches its settings, which is its check.
            #expect(try await checks.waitForCheck(deviceID: device.id, wait: .milliseconds(300)).checkNow == true)
            _ = try await h.server.runtime.repository.deviceSettings(tenant: h.tenant.id, deviceID: device.id)
            #expect(try await checks.waitForCheck(deviceID: device.id, wait: .milliseconds(300)).checkNow == false)
            await expectAPIError("notFound", status: 404) {
                _ = try await h.admin.client.send(.POST, "/v1/tenants/\(h.tenant.id)/devices/\(String(repeating: "1", count: 64))/check-now")
            }
        }
    }

    @Test("a runtime release installs into the inactive slot; an interrupted download resumes with Range")
    func runtimeToSlot() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let groups = try await h.productGroups()
            let dut = try await DeviceUnderTest.make(h, group: groups["Field Test"]!)
            await dut.attest()
            let payload = Array("#!/bin/sh\nexit 0\n".utf8) + Array(repeating: 0x23, count: 5000)
            let package = try factory.runtime(version: "9.0.0", payload: payload)
            let image = try await h.upload(package)
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/runtime-releases", body: RuntimeReleaseRequest(imageId: image.id, feed: .retail))
            // Half the package arrived before a cut.
            let downloads = dut.device.state.directory.appendingPathComponent("downloads")
            try FileManager.default.createDirectory(at: downloads, withIntermediateDirectories: true)
            try Data(package.bytes[0..<2000]).write(to: downloads.appendingPathComponent("\(image.sha256).part"))

            let report = try await dut.updates.checkOnce()
            #expect(report.result == "restart")
            let slots = SlotStore(state: dut.device.state)
            #expect(slots.active == .a && slots.pending?.version == "9.0.0")
            #expect(try Data(contentsOf: slots.executable(.a)) == Data(payload))
            #expect(try FileManager.default.contentsOfDirectory(atPath: downloads.path).isEmpty)
        }
    }
}

@Suite("A/B slots and atomic app installs")
struct SlotTests {
    @Test("a new slot that never confirms is rolled back after its starts or its deadline; a confirmed one stays")
    func rollback() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let state = DeviceState(directory: directory.url)
        var slots = SlotStore(state: state)
        slots.maximumBoots = 2
        let now = Date()
        try slots.install(payload: Array("v2".utf8), manifestJSON: #"{"version":"2.0.0"}"#, version: "2.0.0", now: now)
        #expect(slots.active == .a && slots.activeVersion == "2.0.0")
        #expect(try slots.decideBoot(now: now) == .slot(.a, executable: slots.executable(.a)))
        #expect(try slots.decideBoot(now: now) == .slot(.a, executable: slots.executable(.a)))
        #expect(try slots.decideBoot(now: now) == .factory)  // third start: rolled back to the factory runtime
        #expect(slots.lastOutcome?.result == "rolledBack" && slots.lastOutcome?.reason?.contains("2 starts") == true)

        try slots.install(payload: Array("v3".utf8), manifestJSON: #"{"version":"3.0.0"}"#, version: "3.0.0", now: now)
        try slots.confirm(executable: URL(fileURLWithPath: "/elsewhere"), now: now)  // the old runtime cannot confirm
        #expect(slots.pending != nil)
        try slots.confirm(executable: slots.executable(slots.active!), now: now)
        #expect(slots.pending == nil && slots.lastOutcome?.result == "confirmed")
        try slots.install(payload: Array("v4".utf8), manifestJSON: #"{"version":"4.0.0"}"#, version: "4.0.0", now: now)
        let current = slots.active
        #expect(try slots.decideBoot(now: now + 86_400) == .slot(current!, executable: slots.executable(current!)))  // off for a day: its time starts now
        #expect(try slots.decideBoot(now: now + 86_400 + 3600) == .slot(current!.other, executable: slots.executable(current!.other)))
        #expect(slots.lastOutcome?.reason?.contains("deadline") == true && slots.activeVersion == "3.0.0")
    }

    @Test("an app swap interrupted at any step recovers to the old or the new app, never half of one")
    func appRecovery() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let state = DeviceState(directory: directory.url)
        let store = AppStore(state: state)
        let factory = PackageFactory()
        let component = RampartID()
        try store.install(try factory.app(component, version: "1.0.0"), imageID: "one")
        let apps = store.directory
        // Crash after the old version moved aside, before the new one moved in.
        try FileManager.default.moveItem(at: apps.appendingPathComponent(component.description), to: apps.appendingPathComponent(".old-\(component)"))
        try FileManager.default.createDirectory(at: apps.appendingPathComponent(".staging-\(component)"), withIntermediateDirectories: true)
        store.recover()
        #expect(store.installed().map(\.version) == ["1.0.0"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: apps.path) == [component.description])
        // Crash after the new version moved in, before the old one was deleted.
        try store.install(try factory.app(component, version: "2.0.0"), imageID: "two")
        try FileManager.default.copyItem(at: apps.appendingPathComponent(component.description), to: apps.appendingPathComponent(".old-\(component)"))
        store.recover()
        #expect(store.installed().map(\.version) == ["2.0.0"])
    }
}
