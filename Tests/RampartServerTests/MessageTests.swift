import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import RampartCLI
import RampartCore
import RampartDevice
import RampartServer
import RampartTestKit
import Testing
import X509

@Suite("Hub role on the server: stored telemetry and cloud-to-device messages")
struct MessageTests {
    typealias Gateway = (device: TestDevice, chain: [Certificate], key: P256.Signing.PrivateKey)

    /// A request with a device certificate (mutual TLS); returns the status and body.
    static func deviceRequest(
        _ h: AttestationHarness, _ method: HTTPMethod, _ path: String, body: (any Encodable)? = nil, as gateway: Gateway?
    ) async throws -> (Int, Data) {
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = try DeviceTLS.configuration(
            serverCAPEM: h.server.tlsCAPEM, certificate: gateway.map { ($0.chain, $0.key) })
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { _ = http.shutdown() }
        var request = HTTPClientRequest(url: h.server.url + path)
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(Array(try JSONCoding.encoder().encode(body)))
        }
        let response = try await http.execute(request, timeout: .seconds(40))
        let bytes = try await response.body.collect(upTo: 8 << 20)
        return (Int(response.status.code), Data(bytes.readableBytesView))
    }

    static func upload(_ h: AttestationHarness, _ messages: [TelemetryUpload], as gateway: Gateway) async throws -> TelemetryUploadResult {
        let (status, body) = try await deviceRequest(
            h, .POST, "/v1/gateway/\(h.tenant.id)/messages", body: TelemetryUploadRequest(messages: messages), as: gateway)
        #expect(status == 200, "\(String(decoding: body, as: UTF8.self))")
        return try JSONCoding.decoder().decode(TelemetryUploadResult.self, from: body)
    }

    static func telemetry(_ key: String, from device: String, _ payload: [UInt8], properties: [MessageProperty] = []) -> TelemetryUpload {
        TelemetryUpload(
            key: key, deviceId: device, moduleId: nil, enqueuedAt: Date(), properties: properties,
            systemProperties: ["contentType": "application/json"], payload: Data(payload).base64EncodedString())
    }

    static func list(_ h: AttestationHarness, _ device: String, after: Int64 = 0, wait: Int = 0) async throws -> DeviceMessageList {
        try await h.admin.client.json(
            DeviceMessageList.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device)/messages?after=\(after)&wait=\(wait)")
    }

    @Test("a hub's batch is stored once, in order per device, however often it is sent, and read back page by page")
    func storedOnce() async throws {
        try await AttestationHarness.run { h in
            let hub = try await h.attestedDevice()
            let child = try await h.device()
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(hub.device.id)/hub", body: SetHubRequest(hub: true))
            let batch = [
                Self.telemetry("s/1", from: child.id, Array(#"{"t":1}"#.utf8), properties: [.init(name: "alert", value: "no")]),
                Self.telemetry("s/2", from: child.id, [0x00, 0xFF, 0x10]),
                Self.telemetry("s/3", from: hub.device.id, Array("own".utf8)),
                Self.telemetry("s/4", from: child.id, Array("third".utf8)),
            ]
            #expect(try await Self.upload(h, batch, as: hub) == TelemetryUploadResult(stored: 4, duplicates: 0, refused: []))
            // The answer was lost, say: the same batch again stores nothing twice.
            #expect(try await Self.upload(h, batch, as: hub) == TelemetryUploadResult(stored: 0, duplicates: 4, refused: []))

            let page = try await Self.list(h, child.id)
            #expect(page.messages.map(\.sequence) == [1, 2, 3])
            #expect(page.messages.map(\.payload) == [#"{"t":1}"#, "AP8Q", "third"])
            #expect(page.messages.map(\.payloadEncoding) == [.utf8, .base64, .utf8])
            #expect(page.messages[0].properties == [MessageProperty(name: "alert", value: "no")])
            #expect(page.messages[0].systemProperties == ["contentType": "application/json"])
            #expect(page.messages.allSatisfy { $0.gatewayId == hub.device.id })
            #expect(page.next == 3)
            #expect(try await Self.list(h, child.id, after: 2).messages.map(\.payload) == ["third"])
            #expect(try await Self.list(h, child.id, after: 3).messages.isEmpty)
            #expect(try await Self.list(h, hub.device.id).messages.map(\.payload) == ["own"])

            // A follower waits for the next message instead of polling.
            let waiting = Task { try await Self.list(h, child.id, after: 3, wait: 10) }
            try await Task.sleep(for: .milliseconds(500))
            _ = try await Self.upload(h, [Self.telemetry("s/5", from: child.id, Array("later".utf8))], as: hub)
            let woken = try await waiting.value
            #expect(woken.messages.map(\.payload) == ["later"])
            #expect(woken.messages.map(\.sequence) == [4])
        }
    }

    @Test("retention deletes old telemetry, and numbering goes on where it was, so a reader's cursor stays valid")
    func retention() async throws {
        try await AttestationHarness.run { h in
            let gateway = try await h.attestedDevice()
            _ = try await Self.upload(h, [Self.telemetry("r/1", from: gateway.device.id, [1]), Self.telemetry("r/2", from: gateway.device.id, [2])], as: gateway)
            try await h.server.runtime.messages.purge(olderThan: -60)
            #expect(try await Self.list(h, gateway.device.id).messages.isEmpty)
            _ = try await Self.upload(h, [Self.telemetry("r/3", from: gateway.device.id, Array("after".utf8))], as: gateway)
            let page = try await Self.list(h, gateway.device.id, after: 2)
            #expect(page.messages.map(\.sequence) == [3] && page.messages.map(\.payload) == ["after"])
        }
    }

    @Test("a gateway that is not a hub acts only for itself and the devices registered below it")
    func authority() async throws {
        try await AttestationHarness.run { h in
            let edge = try await h.attestedDevice()
            let child = try await h.device()
            let grandchild = try await h.device()
            let stranger = try await h.device()
            let unclaimed = try await h.device(claimed: false)
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/parent", body: SetParentRequest(parentId: edge.device.id))
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(grandchild.id)/parent", body: SetParentRequest(parentId: child.id))
            let result = try await Self.upload(h, [
                Self.telemetry("a", from: child.id, [1]),
                Self.telemetry("b", from: grandchild.id, [2]),
                Self.telemetry("c", from: stranger.id, [3]),
                Self.telemetry("d", from: unclaimed.id, [4]),
                TelemetryUpload(key: "e", deviceId: child.id, moduleId: nil, enqueuedAt: Date(), properties: [], systemProperties: [:], payload: "%%%"),
                Self.telemetry("f", from: "not-a-device", [6]),
                Self.telemetry("g", from: child.id, [7], properties: [.init(name: "bad\u{1}", value: "x")]),
                Self.telemetry(String(repeating: "k", count: 201), from: child.id, [8]),
            ], as: edge)
            #expect(result.stored == 2)
            #expect(result.refused.map(\.index) == [2, 3, 4, 5, 6, 7])
            #expect(result.refused.map(\.code) == ["notChild", "deviceNotClaimed", "invalidRequest", "invalidRequest", "invalidRequest", "invalidRequest"])
            #expect(result.refused[0].message.contains("set-hub"))
            #expect(try await Self.list(h, stranger.id).messages.isEmpty)

            // As a hub it acts for the whole tenant, and still not for devices outside it.
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(edge.device.id)/hub", body: SetHubRequest(hub: true))
            let asHub = try await Self.upload(h, [Self.telemetry("c2", from: stranger.id, [3]), Self.telemetry("d2", from: unclaimed.id, [4])], as: edge)
            #expect(asHub.stored == 1 && asHub.refused.map(\.code) == ["deviceNotClaimed"])

            // Whole-request refusals: no certificate, too many messages, not JSON.
            let (anonymous, _) = try await Self.deviceRequest(
                h, .POST, "/v1/gateway/\(h.tenant.id)/messages", body: TelemetryUploadRequest(messages: []), as: nil)
            #expect(anonymous == 401)
            let tooMany = (0...MessageService.maximumBatch).map { Self.telemetry("m\($0)", from: child.id, [0]) }
            let (large, largeBody) = try await Self.deviceRequest(
                h, .POST, "/v1/gateway/\(h.tenant.id)/messages", body: TelemetryUploadRequest(messages: tooMany), as: edge)
            #expect(large == 400 && String(decoding: largeBody, as: UTF8.self).contains("at most 1000"))
            let (unknown, unknownBody) = try await Self.deviceRequest(
                h, .POST, "/v1/gateway/\(h.tenant.id)/messages", body: ["messages": [String](), "extra": []], as: edge)
            #expect(unknown == 400 && String(decoding: unknownBody, as: UTF8.self).contains("unknownField"))
            // Users cannot read a device of another tenant, or one that does not exist.
            await expectAPIError("notFound", status: 404) {
                _ = try await Self.list(h, String(repeating: "0", count: 64))
            }
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await h.admin.client.send(.GET, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/messages?limit=0")
            }
        }
    }

    @Test("cloud-to-device: held on the server until a gateway reports the device's acknowledgement")
    func cloudToDevice() async throws {
        try await AttestationHarness.run { h in
            let edge = try await h.attestedDevice()
            let child = try await h.device()
            let stranger = try await h.device()
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/parent", body: SetParentRequest(parentId: edge.device.id))
            let base = "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/cloud-messages"
            let sent = try await h.admin.client.json(
                CloudMessage.self, .POST, base,
                body: CloudMessageRequest(payload: "reboot", properties: [.init(name: "command", value: "reboot")], ttlSeconds: 600))
            #expect(sent.state == .pending && sent.payload == "reboot")
            _ = try await h.admin.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/devices/\(stranger.id)/cloud-messages", body: CloudMessageRequest(payload: "x"))

            // The gateway asks for the device when it connects, and for everything new since a time.
            let (status, body) = try await Self.deviceRequest(
                h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?deviceId=\(child.id)", as: edge)
            #expect(status == 200)
            let forDevice = try JSONCoding.decoder().decode(CloudMessageList.self, from: body)
            #expect(forDevice.messages.map(\.id) == [sent.id])
            #expect(forDevice.messages.first?.properties == [MessageProperty(name: "command", value: "reboot")])
            // forApps: only messages addressed to an app (componentId); this one is not.
            let (appsStatus, appsBody) = try await Self.deviceRequest(
                h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?deviceId=\(child.id)&forApps=true", as: edge)
            #expect(appsStatus == 200)
            #expect(try JSONCoding.decoder().decode(CloudMessageList.self, from: appsBody).messages.isEmpty)
            let (badFlag, _) = try await Self.deviceRequest(
                h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?deviceId=\(child.id)&forApps=maybe", as: edge)
            #expect(badFlag == 400)
            let (_, sinceBody) = try await Self.deviceRequest(
                h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?since=1970-01-01T00:00:00Z", as: edge)
            // The stranger's message is not this gateway's to deliver.
            #expect(try JSONCoding.decoder().decode(CloudMessageList.self, from: sinceBody).messages.map(\.id) == [sent.id])
            let (refused, _) = try await Self.deviceRequest(
                h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?deviceId=\(stranger.id)", as: edge)
            #expect(refused == 403)

            // Delivered once the device acknowledged it; saying so twice changes nothing.
            for _ in 0..<2 {
                let (delivered, _) = try await Self.deviceRequest(
                    h, .POST, "/v1/gateway/\(h.tenant.id)/cloud-messages/\(sent.id)/delivered", as: edge)
                #expect(delivered == 204)
            }
            let shown = try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/\(sent.id)")
            #expect(shown.state == .delivered && shown.deliveredBy == edge.device.id && shown.deliveredAt != nil)
            let (_, afterBody) = try await Self.deviceRequest(
                h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?deviceId=\(child.id)", as: edge)
            #expect(try JSONCoding.decoder().decode(CloudMessageList.self, from: afterBody).messages.isEmpty)
            let (strangerDelivered, _) = try await Self.deviceRequest(
                h, .POST, "/v1/gateway/\(h.tenant.id)/cloud-messages/\(RampartID())/delivered", as: edge)
            #expect(strangerDelivered == 404)

            // A TTL that passes leaves the message expired, never sent.
            let short = try await h.admin.client.json(CloudMessage.self, .POST, base, body: CloudMessageRequest(payload: "late", ttlSeconds: 1))
            try await Task.sleep(for: .milliseconds(1200))
            #expect(try await h.admin.client.json(CloudMessage.self, .GET, "\(base)/\(short.id)").state == .expired)
            let (_, expiredBody) = try await Self.deviceRequest(
                h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?deviceId=\(child.id)", as: edge)
            #expect(try JSONCoding.decoder().decode(CloudMessageList.self, from: expiredBody).messages.isEmpty)
            let history = try await h.admin.client.json(CloudMessageList.self, .GET, base)
            #expect(history.messages.map(\.state) == [.delivered, .expired])
        }
    }

    @Test("a forwarded message is believed only if the forwarding gateway acts for its device")
    func forwarders() async throws {
        try await AttestationHarness.run { h in
            let hub = try await h.attestedDevice()
            let edge = try await h.device()
            let child = try await h.device()
            let stranger = try await h.device()
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(hub.device.id)/hub", body: SetHubRequest(hub: true))
            _ = try await h.admin.client.send(
                .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/parent", body: SetParentRequest(parentId: edge.id))
            func forwarded(_ key: String, _ device: String, by forwarder: String) -> TelemetryUpload {
                var message = Self.telemetry(key, from: device, Array(key.utf8))
                message.forwardedBy = forwarder
                return message
            }
            // The hub acts for everyone, but an edge that names a device not below it is not believed.
            let result = try await Self.upload(h, [
                forwarded("f1", child.id, by: edge.id),
                forwarded("f2", stranger.id, by: edge.id),
                forwarded("f3", child.id, by: String(repeating: "e", count: 64)),
            ], as: hub)
            #expect(result.stored == 1)
            #expect(result.refused.map(\.index) == [1, 2])
            #expect(result.refused.map(\.code) == ["notChild", "deviceNotClaimed"])
            #expect(try await Self.list(h, child.id).messages.map(\.payload) == ["f1"])
            #expect(try await Self.list(h, stranger.id).messages.isEmpty)
        }
    }

    @Test("a gateway reads pending messages page by page, by count and by bytes, and acts only for its devices")
    func pendingPages() async throws {
        try await AttestationHarness.run { h in
            let edge = try await h.attestedDevice()
            var children: [TestDevice] = []
            for _ in 0..<3 {
                let child = try await h.device()
                _ = try await h.admin.client.send(
                    .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/parent", body: SetParentRequest(parentId: edge.device.id))
                children.append(child)
            }
            let stranger = try await h.device()
            let big = String(repeating: "b", count: 60 * 1024)
            var sent: Set<String> = []
            for child in children[0..<2] {
                for _ in 0..<50 {
                    let message = try await h.admin.client.json(
                        CloudMessage.self, .POST, "/v1/tenants/\(h.tenant.id)/devices/\(child.id)/cloud-messages",
                        body: CloudMessageRequest(payload: big))
                    sent.insert(message.id)
                }
            }
            for _ in 0..<10 {
                _ = try await h.admin.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/devices/\(stranger.id)/cloud-messages", body: CloudMessageRequest(payload: "x"))
            }
            var received: [String] = []
            var query = "since=1970-01-01T00:00:00Z"
            var pages = 0
            while pages < 20 {
                let (status, body) = try await Self.deviceRequest(h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?\(query)", as: edge)
                #expect(status == 200)
                #expect(body.count < 4 << 20, "a page stays well below the gateway's 8 MiB answer limit")
                let page = try JSONCoding.decoder().decode(CloudMessageList.self, from: body)
                received += page.messages.map(\.id)
                pages += 1
                guard let next = page.next else { break }
                query = "after=\(next)"
            }
            #expect(pages > 2)
            #expect(Set(received) == sent && received.count == sent.count)

            // Recording a delivery of another gateway's device is refused.
            let strangers = try await h.admin.client.json(
                CloudMessageList.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(stranger.id)/cloud-messages")
            let (refused, _) = try await Self.deviceRequest(
                h, .POST, "/v1/gateway/\(h.tenant.id)/cloud-messages/\(strangers.messages[0].id)/delivered", as: edge)
            #expect(refused == 403)
            let (badCursor, _) = try await Self.deviceRequest(h, .GET, "/v1/gateway/\(h.tenant.id)/cloud-messages?after=nonsense", as: edge)
            #expect(badCursor == 400)
        }
    }

    @Test("roles: a Reader reads telemetry but cannot send; only an Administrator makes a hub")
    func roles() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let reader = try await h.admin.invite("reader@test.rampart", as: .reader, to: h.tenant.id, on: h.server)
            let contributor = try await h.admin.invite("contributor@test.rampart", as: .contributor, to: h.tenant.id, on: h.server)
            #expect(try await reader.client.json(
                DeviceMessageList.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/messages").messages.isEmpty)
            await expectAPIError("forbidden", status: 403) {
                _ = try await reader.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/cloud-messages", body: CloudMessageRequest(payload: "x"))
            }
            _ = try await contributor.client.send(
                .POST, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/cloud-messages", body: CloudMessageRequest(payload: "x"))
            await expectAPIError("forbidden", status: 403) {
                _ = try await contributor.client.send(
                    .PUT, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/hub", body: SetHubRequest(hub: true))
            }
        }
    }

    @Test("cloud-to-device refusals: bad payloads, properties and TTLs, unknown devices, a full device queue")
    func cloudToDeviceRefusals() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.device()
            let base = "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/cloud-messages"
            for (body, fragment) in [
                (CloudMessageRequest(payload: String(repeating: "x", count: 64 * 1024 + 1)), "at most 65536"),
                (CloudMessageRequest(payload: "!!", payloadEncoding: .base64), "base64"),
                (CloudMessageRequest(payload: "x", ttlSeconds: 0), "ttlSeconds"),
                (CloudMessageRequest(payload: "x", ttlSeconds: 172_801), "ttlSeconds"),
                (CloudMessageRequest(payload: "x", properties: [.init(name: "", value: "v")]), "names are 1 to 128"),
                (CloudMessageRequest(payload: "x", properties: (0...64).map { .init(name: "p\($0)", value: "") }), "At most 64"),
            ] {
                await expectAPIError("invalidRequest", status: 400, containing: fragment) {
                    _ = try await h.admin.client.send(.POST, base, body: body)
                }
            }
            await expectAPIError("notFound", status: 404) {
                _ = try await h.admin.client.send(
                    .POST, "/v1/tenants/\(h.tenant.id)/devices/\(String(repeating: "0", count: 64))/cloud-messages",
                    body: CloudMessageRequest(payload: "x"))
            }
            for index in 0..<MessageService.maximumPendingPerDevice {
                _ = try await h.admin.client.send(.POST, base, body: CloudMessageRequest(payload: "m\(index)"))
            }
            await expectAPIError("deviceQueueFull", status: 409) {
                _ = try await h.admin.client.send(.POST, base, body: CloudMessageRequest(payload: "one too many"))
            }
            // Every send is in the audit log.
            let audit = try await h.admin.client.json(AuditList.self, .GET, "/v1/tenants/\(h.tenant.id)/audit")
            #expect(audit.events.filter { $0.action == "device.message.send" && $0.result == "success" }.count == MessageService.maximumPendingPerDevice)
        }
    }
}
