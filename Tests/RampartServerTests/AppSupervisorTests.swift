import Foundation
import Logging
import RampartCLI
import RampartCore
import RampartDevice
import RampartSandbox
import ServiceLifecycle
import Synchronization
import RampartTestKit
import Testing
import WAT

@Suite("Device apps and error events")
struct AppSupervisorTests {
    static func stateDirectory() throws -> DeviceState {
        // Short: the local API's socket path must fit in sockaddr_un.
        let directory = URL(fileURLWithPath: "/tmp/rs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return DeviceState(directory: directory)
    }

    /// Installs an app the way AppStore lays it out.
    static func install(_ wat: String, name: String, capabilities: String = "{}", version: String = "1.0.0", in state: DeviceState) throws -> String {
        let component = UUID().uuidString.lowercased()
        let folder = state.directory.appendingPathComponent("apps/\(component)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(try wat2wasm(wat)).write(to: folder.appendingPathComponent("app.wasm"))
        try Data(#"{"name": "\#(name)", "version": "\#(version)", "payloadSha256": "00", "kind": "app"}"#.utf8)
            .write(to: folder.appendingPathComponent("image.json"))
        try Data(#"{"SchemaVersion": 1, "Name": "\#(name)", "ComponentId": "\#(component)", "EntryPoint": "app.wasm", "Capabilities": \#(capabilities)}"#.utf8)
            .write(to: folder.appendingPathComponent("app_manifest.json"))
        return component
    }

    static let crasher = #"(module (memory (export "memory") 1) (func (export "app_start") unreachable))"#
    static let ticker = #"""
        (module
          (import "rampart" "timer_start" (func $timer_start (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "app_start") (drop (call $timer_start (i32.const 0) (i32.const 20) (i32.const 20))))
          (func (export "app_on_timer") (param i32)))
        """#

    static func eventually(_ seconds: Double = 15, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date() + seconds
        while Date() < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test("The error queue folds repeats, is bounded, survives a restart, and keeps repeats that came after an upload")
    func queue() throws {
        let state = try Self.stateDirectory()
        let queue = ErrorEventQueue(state: state)
        queue.record(.appTrap, componentID: "c", description: "boom")
        queue.record(.appTrap, componentID: "c", description: "boom")
        queue.record(.appExit, componentID: "c", description: "exit 3")
        #expect(queue.pending().map(\.count) == [2, 1])
        let sent = queue.pending()
        queue.record(.appTrap, componentID: "c", description: "boom")
        queue.acknowledge(sent)
        let rest = ErrorEventQueue(state: state).pending()  // reloaded from disk
        #expect(rest.count == 1)
        #expect(rest.first?.count == 1)
        #expect(rest.first?.key != sent.first?.key)
        for index in 0..<(ErrorEventQueue.capacity + 5) {
            queue.record(.updateFailure, description: "failure \(index)")
        }
        #expect(queue.pending(limit: 1000).count == ErrorEventQueue.capacity)
        #expect(queue.dropped == 6)
        #expect(queue.pending().last?.description == "failure \(ErrorEventQueue.capacity + 4)")
    }

    @Test("One app's flood of distinct events drops its own oldest, not other apps' or the runtime's")
    func queuePerComponent() throws {
        let state = try Self.stateDirectory()
        defer { try? FileManager.default.removeItem(at: state.directory) }
        let queue = ErrorEventQueue(state: state)
        queue.record(.updateFailure, description: "runtime")
        queue.record(.appTrap, componentID: "quiet", description: "once")
        for index in 0..<(ErrorEventQueue.capacity * 2) {
            queue.record(.appExit, componentID: "noisy", description: "exit \(index)")
        }
        let pending = queue.pending(limit: 1000)
        #expect(pending.filter { $0.componentId == "noisy" }.count == ErrorEventQueue.capacityPerComponent)
        #expect(pending.filter { $0.componentId == "noisy" }.last?.description == "exit \(ErrorEventQueue.capacity * 2 - 1)")
        #expect(pending.contains { $0.description == "runtime" } && pending.contains { $0.componentId == "quiet" })
        #expect(queue.dropped == ErrorEventQueue.capacity * 2 - ErrorEventQueue.capacityPerComponent)

        // Four apps at their cap fill the queue: the runtime's next events push out the largest app's oldest.
        let full = ErrorEventQueue(state: try Self.stateDirectory())
        full.record(.updateFailure, description: "runtime 0")
        for app in 0..<4 {
            for index in 0..<ErrorEventQueue.capacityPerComponent { full.record(.appExit, componentID: "app\(app)", description: "exit \(index)") }
        }
        for index in 1...3 { full.record(.updateFailure, description: "runtime \(index)") }
        let kept = full.pending(limit: 1000)
        #expect(kept.count == ErrorEventQueue.capacity)
        #expect(kept.filter { $0.componentId == nil }.map(\.description) == ["runtime 0", "runtime 1", "runtime 2", "runtime 3"])
        #expect((0..<4).map { app in kept.filter { $0.componentId == "app\(app)" }.count }.reduce(0, +) == ErrorEventQueue.capacity - 4)
    }

    @Test("An unreadable queue file is kept aside as queue.json.corrupt, said so, and the queue starts empty")
    func corruptQueue() throws {
        let state = try Self.stateDirectory()
        defer { try? FileManager.default.removeItem(at: state.directory) }
        ErrorEventQueue(state: state).record(.appTrap, componentID: "c", description: "boom")
        let file = state.directory.appendingPathComponent("errors/queue.json")
        #expect(ErrorEventQueue(state: state).loadProblem == nil)
        try Data("{\"events\": [tru".utf8).write(to: file)
        let queue = ErrorEventQueue(state: state)
        #expect(queue.pending().isEmpty)
        #expect(queue.loadProblem?.contains("queue.json.corrupt") == true)
        let aside = file.appendingPathExtension("corrupt")
        #expect(try String(contentsOf: aside, encoding: .utf8) == "{\"events\": [tru")
        // The next event is saved to a fresh file; the kept one is left alone.
        queue.record(.appExit, componentID: "c", description: "exit 1")
        #expect(ErrorEventQueue(state: state).pending().map(\.description) == ["exit 1"])
        #expect(FileManager.default.fileExists(atPath: aside.path))
    }

    @Test("device app commands refuse a malformed component ID, and say so when no runtime answers")
    func cliFailures() async throws {
        let state = try Self.stateDirectory()
        let path = state.directory.path
        #expect(await RampartCommand.main(arguments: ["device", "app", "start", "--state-dir", path]) != 0)
        #expect(await RampartCommand.main(arguments: ["device", "app", "stop", "--state-dir", path, "--component-id", "blink"]) != 0)
        #expect(await RampartCommand.main(arguments: ["device", "app", "show-status", "--state-dir", path]) != 0)
        let error = await #expect(throws: RampartError.self) { try await LocalAPIClient.get(AppStatusList.self, "/apps", state: state) }
        #expect(error?.code == .serverUnreachable)
        #expect(error?.message.contains("rampart device run --state-dir") == true)
        try? FileManager.default.removeItem(at: state.directory)
    }

    @Test("a cloud message's fate: taken by a running app; not now while it is stopped or before the apps are known; no recipient otherwise")
    func cloudDelivery() async throws {
        let state = try AppSupervisorTests.stateDirectory()
        let tenant = RampartID().description
        let own = #"{"DeviceAuthentication": "00000000-0000-0000-0000-000000000000", "MutableStorage": {"SizeKB": 4}}"#
        let listener = try AppSupervisorTests.install(CloudMessageAppTests.recorder, name: "listener", capabilities: own, in: state)
        let deaf = try AppSupervisorTests.install(CloudMessageAppTests.recorder, name: "deaf", capabilities: #"{"MutableStorage": {"SizeKB": 4}}"#, in: state)
        let foreign = try AppSupervisorTests.install(
            CloudMessageAppTests.recorder, name: "foreign", capabilities: #"{"DeviceAuthentication": "\#(RampartID())"}"#, in: state)
        let apps = AppSupervisor(state: state, errors: ErrorEventQueue(state: state), logger: Logger(label: "test"))
        // Before the supervisor has looked at the installed apps: nothing can be ruled out yet.
        #expect(await apps.deliverCloudMessage([1], componentID: RampartID().description, tenant: tenant) == .notNow)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await apps.run() }
            #expect(try await AppSupervisorTests.eventually { await apps.deliverCloudMessage(Array("hi".utf8), componentID: listener.uppercased(), tenant: tenant) == .taken })
            #expect(await apps.deliverCloudMessage([1], componentID: RampartID().description, tenant: tenant) == .noRecipient)  // not installed
            #expect(await apps.deliverCloudMessage([1], componentID: deaf, tenant: tenant) == .noRecipient)  // no DeviceAuthentication
            #expect(await apps.deliverCloudMessage([1], componentID: foreign, tenant: tenant) == .noRecipient)  // another tenant's
            // Stopped, each manifest still tells: the listener would take it later, the deaf one never.
            for app in [listener, deaf] { _ = try await apps.stop(app) }
            #expect(try await AppSupervisorTests.eventually {
                await apps.statuses().filter { [listener, deaf].contains($0.componentId) }.allSatisfy { $0.state == .stopped }
            })
            #expect(await apps.deliverCloudMessage([1], componentID: listener, tenant: tenant) == .notNow)
            #expect(await apps.deliverCloudMessage([1], componentID: deaf, tenant: tenant) == .noRecipient)
            group.cancelAll()
        }
    }

    @Test("Apps run under the supervisor: a crasher backs off and is reported, others run, the local API starts and stops them")
    func supervisor() async throws {
        let state = try Self.stateDirectory()
        let crasher = try Self.install(Self.crasher, name: "crasher", in: state)
        let ticker = try Self.install(Self.ticker, name: "ticker", in: state)
        let errors = ErrorEventQueue(state: state)
        let logger = Logger(label: "test")
        let apps = AppSupervisor(state: state, errors: errors, logger: logger)
        let api = try LocalAPI.application(
            state: state, status: DeviceStatusBoard(state: state, deviceID: String(repeating: "0", count: 64)), logger: logger, apps: apps)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await apps.run() }
            group.addTask { try await api.run() }
            #expect(try await Self.eventually { (try? await apps.status(of: crasher))?.restarts ?? 0 >= 2 })
            let crashed = try await apps.status(of: crasher)
            #expect(crashed.lastFaultClass == .appTrap)
            #expect(crashed.state == .backingOff || crashed.state == .running)
            let event = errors.pending().first { $0.componentId == crasher }
            #expect(event?.eventClass == .appTrap)
            #expect(event?.count ?? 0 >= 2)  // folded, not a row per crash
            #expect(try await apps.status(of: ticker).state == .running)

            // Through the local API, as `rampart device app …` does.
            #expect(try await Self.eventually { (try? await LocalAPIClient.get(AppStatusList.self, "/apps", state: state)) != nil })
            let listed = try await LocalAPIClient.get(AppStatusList.self, "/apps", state: state)
            #expect(Set(listed.apps.map(\.componentId)) == [crasher, ticker])
            #expect(listed.apps.first { $0.componentId == ticker }?.memoryLimitBytes == AppLimits().memoryBytes)
            _ = try await LocalAPIClient.post(AppStatus.self, "/apps/\(ticker)/stop", state: state)
            #expect(try await Self.eventually { try await apps.status(of: ticker).state == .stopped })
            _ = try await LocalAPIClient.post(AppStatus.self, "/apps/\(ticker)/start", state: state)
            #expect(try await Self.eventually { try await apps.status(of: ticker).state == .running })
            let unknown = await #expect(throws: RampartError.self) {
                try await LocalAPIClient.post(AppStatus.self, "/apps/\(UUID().uuidString.lowercased())/stop", state: state)
            }
            #expect(unknown?.code == .notFound)

            // Removed by an update: it stops and leaves the list.
            try FileManager.default.removeItem(at: state.directory.appendingPathComponent("apps/\(crasher)"))
            apps.appsChanged.ring()
            #expect(try await Self.eventually { await apps.statuses().map(\.componentId) == [ticker] })
            group.cancelAll()
        }
        try? FileManager.default.removeItem(at: state.directory)
    }
}

@Suite("App power controls and update deferral")
struct AppPowerTests {
    @Test("deferrals hold updates off, chain, and end at most 24 h after the first")
    func deferral() {
        let deferral = UpdateDeferral()
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        #expect(deferral.deferredUntil(now: t0) == nil)
        #expect(deferral.postpone(minutes: 60, now: t0) == t0 + 3600)
        #expect(deferral.deferredUntil(now: t0 + 10) == t0 + 3600)
        // A shorter one does not shorten it; longer ones chain up to the bound.
        #expect(deferral.postpone(minutes: 10, now: t0 + 20) == t0 + 3600)
        #expect(deferral.postpone(minutes: 1440, now: t0 + 1800) == t0 + 24 * 3600)
        #expect(deferral.deferredUntil(now: t0 + 24 * 3600) == nil)
        // After it ended, a new one counts from its own start.
        #expect(deferral.postpone(minutes: 1440, now: t0 + 25 * 3600) == t0 + 49 * 3600)
    }

    @Test("an app with PowerControls restarts the runtime in order, and one with SoftwareUpdateDeferral defers updates")
    func rebootAndDefer() async throws {
        let state = try AppSupervisorTests.stateDirectory()
        let app = #"""
            (module
              (import "rampart" "update_defer" (func $defer (param i32) (result i32)))
              (import "rampart" "reboot_request" (func $reboot (result i32)))
              (memory (export "memory") 1)
              (func (export "app_start") (drop (call $defer (i32.const 30))) (drop (call $reboot))))
            """#
        _ = try AppSupervisorTests.install(app, name: "rebooter", capabilities: #"{"PowerControls": ["ForceReboot"], "SoftwareUpdateDeferral": true}"#, in: state)
        let denied = try AppSupervisorTests.install(app, name: "plain", in: state)
        let restarted = Mutex(0)
        let deferral = UpdateDeferral()
        let apps = AppSupervisor(
            state: state, errors: ErrorEventQueue(state: state), deferral: deferral, restart: { restarted.withLock { $0 += 1 } },
            logger: Logger(label: "test"))
        let (rebooted, refusedRuns) = try await withThrowingTaskGroup(of: Void.self) { group -> (Bool, Bool) in
            group.addTask { try await apps.run() }
            let rebooted = try await AppSupervisorTests.eventually { restarted.withLock { $0 } == 1 }
            let refusedRuns = try await AppSupervisorTests.eventually { (try? await apps.status(of: denied))?.state == .running }
            group.cancelAll()
            return (rebooted, refusedRuns)
        }
        #expect(rebooted)
        #expect(refusedRuns)
        #expect(restarted.withLock { $0 } == 1)  // the app without PowerControls asked too, and was refused
        let until = try #require(deferral.deferredUntil())
        #expect(until > Date() + 29 * 60 && until <= Date() + 30 * 60)
        try? FileManager.default.removeItem(at: state.directory)
    }
}

@Suite("Update-pending event")
struct UpdatePendingTests {
    @Test("apps hear RAMPART_EVENT_UPDATE_PENDING before a download, and one that defers holds the update back")
    func appDefersPendingUpdate() async throws {
        try await AttestationHarness.run { h in
            let factory = PackageFactory()
            try await h.register(factory)
            let production = try await h.productGroups()["Production"]!
            var dut = try await DeviceUnderTest.make(h, group: production)
            await dut.attest()
            // An app that defers by 30 minutes when it hears of a pending update, and one that does not listen.
            let deferring = #"""
                (module
                  (import "rampart" "update_defer" (func $defer (param i32) (result i32)))
                  (memory (export "memory") 1)
                  (func (export "app_start"))
                  (func (export "app_on_event") (param $event i32) (param $arg i32)
                    (if (i32.eq (local.get $event) (i32.const 1)) (then (drop (call $defer (i32.const 30)))))))
                """#
            _ = try AppSupervisorTests.install(
                deferring, name: "careful", capabilities: #"{"SystemEventNotifications": true, "SoftwareUpdateDeferral": true}"#,
                in: dut.device.state)
            let deferral = UpdateDeferral()
            let apps = AppSupervisor(state: dut.device.state, errors: ErrorEventQueue(state: dut.device.state), deferral: deferral, logger: Logger(label: "test"))
            dut.updates.deferral = deferral
            dut.updates.updateNotice = .seconds(1)
            let told = Mutex(0)
            dut.updates.updatePending = { seconds in
                let count = await apps.notifyUpdatePending(inSeconds: seconds)
                told.withLock { $0 += count }
                return count
            }
            try await h.deploy([try await h.upload(try factory.app())], to: production)
            let updates = dut.updates
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await apps.run() }
                #expect(try await AppSupervisorTests.eventually { (await apps.statuses()).first?.state == .running })
                let report = try await updates.checkOnce()
                #expect(report.result == "deferred")
                #expect(report.message?.contains("SoftwareUpdateDeferral") == true)
                #expect(told.withLock { $0 } == 1)
                #expect(deferral.deferredUntil().map { $0 > Date() + 28 * 60 } == true)
                group.cancelAll()
            }
        }
    }
}
