import Foundation
import Logging
import NIOHTTP1
import RampartCLI
import RampartCore
import RampartDevice
import RampartTestKit
import Testing

@Suite("Cloud-to-device messages to apps")
struct CloudMessageAppTests {
    /// Writes every cloud message it reads into its storage, from offset 0.
    static let recorder = #"""
        (module
          (import "rampart" "message_read" (func $message_read (param i32 i32) (result i32)))
          (import "rampart" "storage_write" (func $storage_write (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "app_start"))
          (func (export "app_on_message") (param $kind i32) (param $length i32) (local $n i32)
            (local.set $n (call $message_read (i32.const 1024) (i32.const 512)))
            (drop (call $storage_write (i32.const 0) (i32.const 1024) (local.get $n)))))
        """#

    static func stored(_ state: DeviceState, _ component: String) -> String? {
        (try? Data(contentsOf: state.directory.appendingPathComponent("appdata/\(component)/storage.bin")))
            .map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("the runtime fetches the device's app-addressed messages with its certificate, hands each to its app, and acknowledges it")
    func delivery() async throws {
        try await AttestationHarness.run { h in
            let dut = try await DeviceUnderTest.make(h, group: nil)
            await dut.attest()
            let state = dut.device.state
            let tenant = h.tenant.id.description
            let capabilities = #"{"DeviceAuthentication": "00000000-0000-0000-0000-000000000000", "MutableStorage": {"SizeKB": 4}}"#
            let recorder = try AppSupervisorTests.install(Self.recorder, name: "recorder", capabilities: capabilities, in: state)
            let deaf = try AppSupervisorTests.install(Self.recorder, name: "deaf", capabilities: #"{"MutableStorage": {"SizeKB": 4}}"#, in: state)
            let logger = Logger(label: "test")
            let apps = AppSupervisor(state: state, errors: ErrorEventQueue(state: state), logger: logger)
            let receiver = CloudMessageReceiver(
                state: state, server: h.server.url, serverCAPEM: try h.server.tlsCAPEM, status: dut.status, apps: apps, logger: logger)
            let base = "/v1/tenants/\(h.tenant.id)/devices/\(dut.device.id)/cloud-messages"
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await apps.run() }
                #expect(try await AppSupervisorTests.eventually { await apps.hasCloudRecipients(tenant: tenant) })
                // Nothing waiting: the poll waits, then comes back empty.
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 1) == .delivered)

                // A message without componentId is the device's own (for its MQTT connection): the runtime leaves it.
                let unaddressed = try await h.admin.client.json(CloudMessage.self, .POST, base, body: CloudMessageRequest(payload: "for the device"))
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 1) == .delivered)
                #expect(try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/\(unaddressed.id)").state == .pending)
                #expect(Self.stored(state, recorder) == nil)

                let sent = try await h.admin.client.json(
                    CloudMessage.self, .POST, base,
                    body: CloudMessageRequest(payload: "open the valve", properties: [MessageProperty(name: "componentId", value: recorder)]))
                #expect(await receiver.receiveOnce(tenant: tenant, wait: receiver.pollSeconds) == .delivered)
                #expect(try await AppSupervisorTests.eventually { Self.stored(state, recorder) == "open the valve" })
                #expect(Self.stored(state, deaf) == nil)  // no DeviceAuthentication, no cloud messages
                let after = try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/\(sent.id)")
                #expect(after.state == .delivered && after.deliveredBy == dut.device.id)

                // Addressed to an app that does not take cloud messages: it waits on the service.
                let addressed = try await h.admin.client.json(
                    CloudMessage.self, .POST, base,
                    body: CloudMessageRequest(payload: "for deaf", properties: [MessageProperty(name: "componentId", value: deaf)]))
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 1) == .waiting)
                #expect(try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/\(addressed.id)").state == .pending)
                // As the running receiver polls: the waiting message is set aside, so the next poll waits for new
                // ones instead of returning it at once, and a new one for the recorder is not held up by it.
                var cursor = CloudMessageReceiver.Cursor()
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 1, cursor: &cursor) == .waiting)
                let start = ContinuousClock.now
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 1, cursor: &cursor) == .delivered)
                #expect(ContinuousClock.now - start >= .milliseconds(900))  // it waited: nothing new
                try await Task.sleep(for: .seconds(1.1))  // the wire's times are whole seconds: a new second
                _ = try await h.admin.client.json(
                    CloudMessage.self, .POST, base,
                    body: CloudMessageRequest(payload: "still open", properties: [MessageProperty(name: "componentId", value: recorder)]))
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 5, cursor: &cursor) == .delivered)
                #expect(try await AppSupervisorTests.eventually { Self.stored(state, recorder)?.hasPrefix("still open") == true })

                // With the recorder stopped, nobody takes a new one; started again, it gets the one that waited for
                // it (the one for deaf still waits).
                _ = try await apps.stop(recorder)
                #expect(try await AppSupervisorTests.eventually { !(await apps.hasCloudRecipients(tenant: tenant)) })
                let later = try await h.admin.client.json(
                    CloudMessage.self, .POST, base,
                    body: CloudMessageRequest(payload: "close it", properties: [MessageProperty(name: "componentId", value: recorder.uppercased())]))
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 1) == .waiting)
                _ = try await apps.start(recorder)
                #expect(try await AppSupervisorTests.eventually { await apps.hasCloudRecipients(tenant: tenant) })
                #expect(await receiver.receiveOnce(tenant: tenant, wait: 1) == .waiting)  // "for deaf" still has no taker
                #expect(try await AppSupervisorTests.eventually { Self.stored(state, recorder)?.hasPrefix("close it") == true })
                #expect(try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/\(later.id)").state == .delivered)

                group.cancelAll()
            }
        }
    }
}
