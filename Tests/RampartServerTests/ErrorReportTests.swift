import Crypto
import Foundation
import Logging
import NIOHTTP1
import RampartAttestation
import RampartCLI
import RampartCore
import RampartDevice
import RampartServer
import RampartTestKit
import Testing
import X509

@Suite("Error report: device uploads, filters, retention")
struct ErrorReportTests {
    typealias Device = MessageTests.Gateway

    static func upload(_ h: AttestationHarness, _ events: [ErrorEvent], as device: Device) async throws -> ErrorEventUploadResult {
        try await upload(h, body: ErrorEventUploadRequest(events: events), as: device)
    }

    static func upload(_ h: AttestationHarness, body: some Encodable, as device: Device) async throws -> ErrorEventUploadResult {
        let (status, data) = try await MessageTests.deviceRequest(h, .POST, "/v1/errors/\(h.tenant.id)", body: body, as: device)
        #expect(status == 200, "\(String(decoding: data, as: UTF8.self))")
        return try JSONCoding.decoder().decode(ErrorEventUploadResult.self, from: data)
    }

    static func report(_ h: AttestationHarness, _ query: String = "") async throws -> ErrorReport {
        try await h.admin.client.json(ErrorReport.self, .GET, "/v1/tenants/\(h.tenant.id)/error-report?format=json\(query)")
    }

    /// In the past, so that rows the server records now sort after every uploaded one.
    static let t0 = Date(timeIntervalSince1970: 1_700_000_000)

    static func event(
        _ key: String, _ eventClass: ErrorEventClass, component: String? = nil, _ description: String = "it failed", count: Int = 1,
        first: TimeInterval, last: TimeInterval? = nil
    ) -> ErrorEvent {
        ErrorEvent(
            key: key, eventClass: eventClass, componentId: component, description: description, count: count,
            firstSeen: t0 + first, lastSeen: t0 + (last ?? first))
    }

    /// An uploaded event as a client that knows other classes than this server might send it.
    struct RawEvent: Encodable {
        var key = "raw"
        var eventClass = "appTrap"
        var componentId: String?
        var description = "raw"
        var count = 1
        var firstSeen = ErrorReportTests.t0
        var lastSeen = ErrorReportTests.t0
    }

    struct RawUpload: Encodable { var events: [RawEvent] }

    @Test("an uploaded event is stored once per key; sent again it only widens; it shows with its component in JSON and CSV")
    func storedOnceAndWidened() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.attestedDevice()
            let component = RampartID().description
            let trap = Self.event("k1", .appTrap, component: component, "trap: unreachable, in blink", count: 2, first: 0, last: 10)
            let update = Self.event("k2", .updateFailure, "download failed", first: 20)
            #expect(try await Self.upload(h, [trap, update], as: device) == ErrorEventUploadResult(stored: 2, duplicates: 0))
            // The answer was lost: the same batch again stores nothing twice.
            #expect(try await Self.upload(h, [trap, update], as: device) == ErrorEventUploadResult(stored: 0, duplicates: 2))
            // Meanwhile the device folded three more traps into the event it had not heard back about.
            var grown = trap
            grown.count = 5
            grown.lastSeen = Self.t0 + 30
            #expect(try await Self.upload(h, [grown], as: device) == ErrorEventUploadResult(stored: 0, duplicates: 1))
            // A stale resend never shrinks a row.
            #expect(try await Self.upload(h, [trap], as: device) == ErrorEventUploadResult(stored: 0, duplicates: 1))
            // Repeats after the device heard back come under a new key: a row of their own.
            let later = Self.event("k3", .appTrap, component: component, "trap: unreachable, in blink", first: 40)
            #expect(try await Self.upload(h, [later], as: device) == ErrorEventUploadResult(stored: 1, duplicates: 0))

            let report = try await Self.report(h)
            #expect(report.events.map(\.eventCount) == [1, 5, 1])  // most recent last
            #expect(report.events.map(\.eventClass) == ["updateFailure", "appTrap", "appTrap"])
            let row = report.events[1]
            #expect(row.deviceId == device.device.id && row.eventType == "unplanned" && row.componentId == component)
            #expect(row.startTimestamp == Self.t0 && row.endTimestamp == Self.t0 + 30)
            #expect(report.events[0].componentId == nil)

            let csv = String(decoding: try await h.admin.client.send(.GET, "/v1/tenants/\(h.tenant.id)/error-report").body, as: UTF8.self)
            let lines = csv.split(separator: "\r\n").map(String.init)
            #expect(lines.first == ErrorReport.csvHeader)
            #expect(lines.count == 4)
            #expect(lines[1] == "\(device.device.id),unplanned,updateFailure,1,download failed,\(Timestamp.format(Self.t0 + 20)),\(Timestamp.format(Self.t0 + 20)),")
            #expect(lines[2] == "\(device.device.id),unplanned,appTrap,5,\"trap: unreachable, in blink\",\(Timestamp.format(Self.t0)),\(Timestamp.format(Self.t0 + 30)),\(component)")
        }
    }

    @Test("the report narrows by device, class, time window and limit, attestation refusals included")
    func filters() async throws {
        try await AttestationHarness.run { h in
            let a = try await h.attestedDevice()
            let b = try await h.attestedDevice()
            _ = try await Self.upload(h, [Self.event("a1", .appTrap, first: 0, last: 10), Self.event("a2", .appExit, first: 100, last: 200)], as: a)
            _ = try await Self.upload(h, [Self.event("b1", .appTrap, first: 50)], as: b)
            // A refusal the server records itself, at the real time, after every uploaded event.
            let refused = try await h.device()
            await h.expectRefusal(
                "measurementUnknown:rampart-runtime",
                try refused.evidence(nonce: try await h.challenge(refused), measurements: [TestDevice.runtime(String(repeating: "cd", count: 32))]))
            func name(_ row: ErrorReportRow) -> String {
                if row.deviceId == a.device.id { return row.eventClass == "appTrap" ? "a1" : "a2" }
                if row.deviceId == b.device.id { return "b1" }
                return row.deviceId == refused.id && row.eventClass == "Attestation" ? "refusal" : "?"
            }
            func keys(_ query: String) async throws -> [String] { try await Self.report(h, query).events.map(name) }
            let all = ["a1", "b1", "a2", "refusal"]
            #expect(try await keys("") == all)
            #expect(try await keys("&deviceId=\(a.device.id)") == ["a1", "a2"])
            #expect(try await keys("&eventClass=appTrap") == ["a1", "b1"])
            #expect(try await keys("&eventClass=Attestation") == ["refusal"])
            #expect(try await keys("&eventClass=restartLoop").isEmpty)
            #expect(try await keys("&from=\(Timestamp.format(Self.t0 + 20))&to=\(Timestamp.format(Self.t0 + 60))") == ["b1"])
            #expect(try await keys("&from=\(Timestamp.format(Self.t0 + 150))&to=\(Timestamp.format(Self.t0 + 1000))") == ["a2"])
            #expect(try await keys("&to=\(Timestamp.format(Self.t0 + 50))") == ["a1"])
            #expect(try await keys("&from=\(Timestamp.format(Date() - 3600))") == ["refusal"])
            #expect(try await keys("&deviceId=\(a.device.id)&limit=1") == ["a2"])
            #expect(try await keys("&limit=2") == Array(all.suffix(2)))
            // The CSV takes the same filters.
            let csv = String(
                decoding: try await h.admin.client.send(.GET, "/v1/tenants/\(h.tenant.id)/error-report?deviceId=\(b.device.id)").body,
                as: UTF8.self)
            #expect(csv.split(separator: "\r\n").count == 2)

            for (query, fragment) in [
                ("&from=\(Timestamp.format(Self.t0 + 60))&to=\(Timestamp.format(Self.t0 + 60))", "before"),
                ("&from=yesterday", "from"), ("&to=2027-13-01T00:00:00Z", "to"), ("&limit=0", "limit"), ("&limit=100001", "limit"),
                ("&limit=ten", "limit"), ("&deviceId=nope", nil), ("&eventClass=\(String(repeating: "x", count: 65))", "eventClass"),
            ] as [(String, String?)] {
                await expectAPIError("invalidRequest", status: 400, containing: fragment) { _ = try await Self.report(h, query) }
            }
        }
    }

    @Test("malformed events and unknown classes are refused one by one; the rest of the batch is stored")
    func refusals() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.attestedDevice()
            let result = try await Self.upload(
                h,
                body: RawUpload(events: [
                    RawEvent(key: "ok1", componentId: "rampart-runtime"),
                    RawEvent(key: "new", eventClass: "quantumFault"),
                    RawEvent(key: ""),
                    RawEvent(key: String(repeating: "k", count: 129)),
                    RawEvent(key: "sp ace"),
                    RawEvent(key: "c1", componentId: "a/b"),
                    RawEvent(key: "d1", description: String(repeating: "é", count: 1025)),
                    RawEvent(key: "n1", count: 0),
                    RawEvent(key: "t1", firstSeen: Self.t0 + 1, lastSeen: Self.t0),
                    RawEvent(
                        key: "ok2", eventClass: "restartLoop", description: "nul \u{0} inside; é kept; \(String(repeating: "é", count: 990))",
                        firstSeen: Self.t0 + 5, lastSeen: Self.t0 + 5),
                ]),
                as: device)
            #expect(result.stored == 2 && result.duplicates == 0)
            #expect(result.refused.map(\.index) == [1, 2, 3, 4, 5, 6, 7, 8])
            #expect(result.refused.map(\.code) == ["unknownEventClass"] + Array(repeating: "invalidRequest", count: 7))
            #expect(result.refused[0].message.contains("quantumFault") && result.refused[0].message.contains("appTrap"))
            let report = try await Self.report(h)
            #expect(report.events.map(\.componentId) == ["rampart-runtime", nil])
            // PostgreSQL cannot hold NUL in text: it is stored as U+FFFD, the rest as sent.
            #expect(report.events.last?.description.hasPrefix("nul \u{FFFD} inside; é kept; éé") == true)

            // The request as a whole fails only for its shape.
            let tooMany = ErrorEventUploadRequest(events: (0...500).map { Self.event("m\($0)", .appExit, first: 0) })
            let (status, body) = try await MessageTests.deviceRequest(h, .POST, "/v1/errors/\(h.tenant.id)", body: tooMany, as: device)
            #expect(status == 400 && String(decoding: body, as: UTF8.self).contains("500"))
            let (unknown, _) = try await MessageTests.deviceRequest(
                h, .POST, "/v1/errors/\(h.tenant.id)", body: ["events": [String](), "extra": []], as: device)
            #expect(unknown == 400)
            #expect(try await Self.report(h).events.count == 2)
        }
    }

    @Test("uploads need a current device certificate of the tenant")
    func authentication() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.attestedDevice()
            let body = ErrorEventUploadRequest(events: [Self.event("x", .appTrap, first: 0)])
            let (anonymous, anonymousBody) = try await MessageTests.deviceRequest(h, .POST, "/v1/errors/\(h.tenant.id)", body: body, as: nil)
            #expect(anonymous == 401 && String(decoding: anonymousBody, as: UTF8.self).contains("deviceCertificateRequired"))
            let (elsewhere, elsewhereBody) = try await MessageTests.deviceRequest(h, .POST, "/v1/errors/\(RampartID())", body: body, as: device)
            #expect(elsewhere == 403 && String(decoding: elsewhereBody, as: UTF8.self).contains("deviceCertificateInvalid"))
            let (malformed, _) = try await MessageTests.deviceRequest(h, .POST, "/v1/errors/not-a-tenant", body: body, as: device)
            #expect(malformed == 404)
            #expect(try await Self.report(h).events.isEmpty)
            // Reading the report is for the tenant's users.
            await expectAPIError("unauthenticated", status: 401) {
                _ = try await h.admin.client.send(.GET, "/v1/tenants/\(h.tenant.id)/error-report", authenticated: false)
            }
        }
    }

    @Test("retention deletes rows the server has not heard of for its period, whatever time the device claimed")
    func retention() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.attestedDevice()
            // Device clocks can be anywhere: one event from long ago, one from the future.
            _ = try await Self.upload(
                h,
                [
                    ErrorEvent(key: "old", eventClass: .appTrap, componentId: nil, description: "1970", count: 1,
                               firstSeen: Date(timeIntervalSince1970: 10), lastSeen: Date(timeIntervalSince1970: 10)),
                    Self.event("future", .appExit, first: 10 * 365 * 86400),
                ],
                as: device)
            try await h.server.runtime.devices.purgeErrorEvents(olderThan: h.server.runtime.configuration.limits.errorEventRetention)
            #expect(try await Self.report(h).events.count == 2)
            try await h.server.runtime.devices.purgeErrorEvents(olderThan: -60)
            #expect(try await Self.report(h).events.isEmpty)
            // A key seen before the purge is new again after it (the device would not resend it anyway).
            #expect(try await Self.upload(h, [Self.event("old", .appTrap, first: 0)], as: device).stored == 1)
        }
    }

    /// An attested device with its status board, as the runtime has them.
    static func attested(_ h: AttestationHarness) async throws -> (device: TestDevice, status: DeviceStatusBoard, logger: Logger) {
        let device = try await DeviceUnderTest.make(h, group: nil)
        await device.attest()
        #expect(device.status.snapshot.tenantId == h.tenant.id)
        var logger = Logger(label: "test.device")
        logger.logLevel = .critical
        return (device.device, device.status, logger)
    }

    @Test("apps' telemetry goes out with the device certificate and is stored under the device, tagged with the app")
    func appTelemetry() async throws {
        try await AttestationHarness.run { h in
            let unattested = try await h.device()
            let early = AppTelemetrySender(
                state: unattested.state, server: h.server.url, serverCAPEM: try h.server.tlsCAPEM,
                status: DeviceStatusBoard(state: unattested.state, deviceID: unattested.id), logger: Logger(label: "test"))
            #expect(early.submit(componentID: RampartID().description, tenant: "00000000-0000-0000-0000-000000000000", payload: [1]) == -8)

            let (device, status, logger) = try await Self.attested(h)
            let sender = AppTelemetrySender(
                state: device.state, server: h.server.url, serverCAPEM: try h.server.tlsCAPEM, status: status, logger: logger)
            let component = RampartID().description
            #expect(sender.submit(componentID: component, tenant: RampartID().description, payload: [1]) == -1)  // another tenant
            #expect(sender.submit(componentID: component, tenant: "00000000-0000-0000-0000-000000000000", payload: Array(#"{"t":21.5}"#.utf8)) == 10)
            #expect(sender.submit(componentID: component, tenant: h.tenant.id.description, payload: Array("second".utf8)) == 6)
            #expect(await sender.sendOnce())
            let stored = try await h.admin.client.json(DeviceMessageList.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.id)/messages")
            #expect(stored.messages.map(\.payload) == [#"{"t":21.5}"#, "second"])
            #expect(stored.messages.allSatisfy { $0.properties == [MessageProperty(name: "componentId", value: component)] && $0.gatewayId == device.id })
        }
    }

    @Test("the device's own queue and uploader: stored once, the queue emptied, a folded repeat counted")
    func deviceRoundTrip() async throws {
        try await AttestationHarness.run { h in
            let (device, status, logger) = try await Self.attested(h)

            let component = RampartID().description
            let queue = ErrorEventQueue(state: device.state)
            queue.record(.appTrap, componentID: component, description: "trap: out of bounds memory access")
            queue.record(.appTrap, componentID: component, description: "trap: out of bounds memory access")
            queue.record(.updateFailure, description: "image sha256 mismatch")
            let uploader = ErrorEventUploader(
                state: device.state, server: h.server.url, serverCAPEM: try h.server.tlsCAPEM, queue: queue, status: status,
                logger: logger, eventQueued: Doorbell())
            #expect(await uploader.uploadOnce() == .sent(2))  // the two traps went as one event with a count
            #expect(queue.pending().isEmpty)
            #expect(await uploader.uploadOnce() == .nothing)
            let report = try await Self.report(h, "&deviceId=\(device.id)")
            #expect(Set(report.events.map(\.eventClass)) == ["appTrap", "updateFailure"])
            let trap = try #require(report.events.first { $0.eventClass == "appTrap" })
            #expect(trap.eventCount == 2 && trap.componentId == component && trap.startTimestamp <= trap.endTimestamp)
        }
    }

    @Test("the CLI's error commands exist and check their filters before calling the server")
    func cli() async {
        let id = String(repeating: "ab", count: 32)
        #expect(await RampartCommand.main(arguments: ["device", "error", "list", "--help"]) == 0)
        #expect(await RampartCommand.main(arguments: ["device", "error", "list", "--device-id", id, "--from", "yesterday"]) != 0)
        #expect(
            await RampartCommand.main(arguments: [
                "device", "error", "list", "--device-id", id, "--class", "appTrap", "--from", "2026-11-21T08:00:00Z", "--to",
                "2026-11-20T08:00:00Z",
            ]) != 0)
        #expect(await RampartCommand.main(arguments: ["device", "error", "list", "--device-id", id, "--limit", "0"]) != 0)
        #expect(
            await RampartCommand.main(arguments: ["tenant", "download-error-report", "--destination", "/dev/null", "--limit", "0"]) != 0)
    }
}
