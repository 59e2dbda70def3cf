import ArgumentParser
import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import RampartCLI
import RampartCore
import RampartDevice
import RampartTUF
import RampartTestKit
import Testing
import X509

extension AttestationHarness {
    /// `POST /v1/tuf/{tenantId}/report` with the device's certificate and `json` as the body, byte for byte.
    func postReport(_ json: String, as device: MessageTests.Gateway) async throws
        -> (status: Int, error: APIErrorBody?)
    {
        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = try DeviceTLS.configuration(
            serverCAPEM: server.tlsCAPEM, certificate: (device.chain, device.key))
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { _ = http.shutdown() }
        var request = HTTPClientRequest(url: "\(server.url)/v1/tuf/\(tenant.id)/report")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(Array(json.utf8))
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = Data(try await response.body.collect(upTo: 1 << 16).readableBytesView)
        let status = Int(response.status.code)
        return (status, status >= 400 ? try JSONDecoder().decode(APIErrorBody.self, from: body) : nil)
    }

    /// The device's update settings, as it fetches them over mutual TLS.
    func settings(of device: MessageTests.Gateway) async throws -> DeviceUpdateSettings {
        let tls = try DeviceTLS.configuration(serverCAPEM: server.tlsCAPEM, certificate: (device.chain, device.key))
        let bytes = try await HTTPFetcher(tlsConfiguration: tls).fetch(
            "\(server.url)/v1/tuf/\(tenant.id)/device", maximumLength: 65536)
        return try JSONCoding.decoder().decode(DeviceUpdateSettings.self, from: Data(try #require(bytes)))
    }

    /// A device group as `device-group show` reads it.
    func group(_ id: RampartID) async throws -> DeviceGroupInfo {
        try await admin.client.json(DeviceGroupInfo.self, .GET, "/v1/tenants/\(tenant.id)/device-groups/\(id)")
    }

    /// `PATCH` of a device group.
    @discardableResult
    func updateGroup(_ id: RampartID, _ request: DeviceGroupRequest) async throws -> DeviceGroupInfo {
        try await admin.client.json(
            DeviceGroupInfo.self, .PATCH, "/v1/tenants/\(tenant.id)/device-groups/\(id)", body: request)
    }
}

@Suite("Data budgets and link facts: device groups, device settings, update reports and device show")
struct DataBudgetTests {
    @Test("a group's data budget is set on create and update, kept when absent, cleared by 0; bad values are refused")
    func groupBudget() async throws {
        try await AttestationHarness.run { h in
            let base = "/v1/tenants/\(h.tenant.id)"
            let groups = try await h.productGroups()
            #expect(groups.values.allSatisfy { $0.dataBudgetMB == nil })
            let product = groups["Production"]!.productId.description
            func create(_ name: String, budget: Int) async throws -> DeviceGroupInfo {
                try await h.admin.client.json(
                    DeviceGroupInfo.self, .POST, "\(base)/device-groups",
                    body: DeviceGroupRequest(product: product, name: name, dataBudgetMB: budget))
            }

            let created = try await create("Metered", budget: 5)
            #expect(created.dataBudgetMB == 5)
            #expect(try await create("Zero", budget: 0).dataBudgetMB == nil)
            let raised = try await h.updateGroup(created.id, DeviceGroupRequest(dataBudgetMB: 1_000_000))
            #expect(raised.dataBudgetMB == 1_000_000)
            let other = try await h.updateGroup(created.id, DeviceGroupRequest(updatePolicy: .noUpdates))
            #expect(other.dataBudgetMB == 1_000_000 && other.updatePolicy == .noUpdates)
            #expect(try await h.group(created.id).dataBudgetMB == 1_000_000)
            let listed = try await h.admin.client.json(
                DeviceGroupList.self, .GET, "\(base)/device-groups?product=\(product)")
            #expect(listed.deviceGroups.first { $0.id == created.id }?.dataBudgetMB == 1_000_000)

            for bad in [-1, 1_000_001, Int.max] {
                await expectAPIError("invalidRequest", status: 400, containing: "data budget") {
                    try await h.updateGroup(created.id, DeviceGroupRequest(dataBudgetMB: bad))
                }
                await expectAPIError("invalidRequest", status: 400, containing: "data budget") {
                    _ = try await create("Bad", budget: bad)
                }
            }
            await expectAPIError("invalidRequest", status: 400) {
                _ = try await h.admin.client.raw(
                    .PATCH, "\(base)/device-groups/\(created.id)", #"{"dataBudgetMB": "5"}"#)
            }
            #expect(try await h.group(created.id).dataBudgetMB == 1_000_000)

            #expect(try await h.updateGroup(created.id, DeviceGroupRequest(dataBudgetMB: 0)).dataBudgetMB == nil)
            #expect(try await h.group(created.id).dataBudgetMB == nil)
        }
    }

    @Test("a device's update settings carry its group's budget in bytes, and none outside a group or without a budget")
    func settingsCarryBytes() async throws {
        try await AttestationHarness.run { h in
            let production = try await h.productGroups()["Production"]!
            let device = try await h.attestedDevice()
            #expect(try await h.settings(of: device).dataBudgetBytes == nil)

            _ = try await h.admin.client.send(
                .PATCH, "/v1/tenants/\(h.tenant.id)/devices/\(device.device.id)",
                body: DeviceUpdateRequest(deviceGroupId: production.id))
            #expect(try await h.settings(of: device).dataBudgetBytes == nil)
            try await h.updateGroup(production.id, DeviceGroupRequest(dataBudgetMB: 3))
            let settings = try await h.settings(of: device)
            #expect(settings.dataBudgetBytes == 3_000_000 && settings.deviceGroupId == production.id)
            try await h.updateGroup(production.id, DeviceGroupRequest(dataBudgetMB: 0))
            #expect(try await h.settings(of: device).dataBudgetBytes == nil)
        }
    }

    static let link = LinkFacts(
        signalDBm: -71, bitErrorRate: 2, registration: .roaming, operatorName: "Example Telecom", radio: .lte,
        routerSentBytes: 123_456, routerReceivedBytes: 654_321, reportedAt: Date(timeIntervalSince1970: 1_795_000_000))
    static let usage = ServicingDataUsage(
        month: "2026-11", bytes: 420_000, budgetBytes: 1_000_000, exceededForCriticalUpdate: true)

    /// A report's JSON as the device sends it.
    static func report(link: LinkFacts? = link, usage: ServicingDataUsage? = usage) throws -> String {
        let report = UpdateReport(
            result: "upToDate", message: nil, at: Date(timeIntervalSince1970: 1_795_000_100), runtimeVersion: "1.0.0",
            installedApps: [], lastSwitch: nil, link: link, dataUsage: usage)
        return String(decoding: try JSONCoding.encoder().encode(report), as: UTF8.self)
    }

    @Test("a device's report with link facts and data use shows in device show, and in its deployment status")
    func reportShows() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.attestedDevice()
            let path = "/v1/tenants/\(h.tenant.id)/devices/\(device.device.id)"
            let before = try await h.admin.client.json(DeviceInfo.self, .GET, path)
            #expect(before.link == nil && before.dataUsage == nil)
            let raw = try await h.admin.client.send(.GET, path)
            #expect(!String(decoding: raw.body, as: UTF8.self).contains("\"link\""))

            #expect(try await h.postReport(try Self.report(), as: device).status == 204)
            let shown = try await h.admin.client.json(DeviceInfo.self, .GET, path)
            #expect(shown.link == Self.link && shown.dataUsage == Self.usage)
            #expect(shown.link?.roaming == true)
            let status = try await h.admin.client.json(DeploymentStatus.self, .GET, "\(path)/deployment-status")
            #expect(status.report?.link == Self.link && status.report?.dataUsage == Self.usage)
            // Lists stay one query: they leave the report out.
            let list = try await h.admin.client.json(DeviceList.self, .GET, "/v1/tenants/\(h.tenant.id)/devices")
            #expect(list.devices.first { $0.id == device.device.id }?.link == nil)

            // What `device show` prints for them.
            let rows = Dictionary(uniqueKeysWithValues: shown.linkRows.map { ($0[0], $0[1]) })
            #expect(rows["Signal"] == "-71 dBm (bit error rate class 2)")
            #expect(rows["Registration"] == "roaming" && rows["Roaming"] == "yes")
            #expect(rows["Operator"] == "Example Telecom" && rows["Radio"] == "lte")
            #expect(rows["Link reported at"] == Timestamp.format(Self.link.reportedAt!))
            #expect(
                rows["Servicing data this month"]
                    == "0.42 MB of 1 MB (2026-11); over budget for a security-critical update")
            let unbudgeted = ServicingDataUsage(month: "2026-12", bytes: 2_500_000, budgetBytes: nil)
            #expect(unbudgeted.summary == "2.50 MB (2026-12), no budget")

            // A report without them (a device with no router control channel) clears them.
            #expect(try await h.postReport(try Self.report(link: nil, usage: nil), as: device).status == 204)
            let cleared = try await h.admin.client.json(DeviceInfo.self, .GET, path)
            #expect(cleared.link == nil && cleared.dataUsage == nil && cleared.linkRows.isEmpty)
        }
    }

    /// Reports the server must refuse, made from a valid one by setting `path` (`object.key`, or a top-level
    /// key) to `value`, or removing it for `nil`; with the code a device gets and a word its message names.
    static var refusals: [(path: String, value: Any?, code: String, names: String)] {
        [
            ("link.snr", 3, "unknownField", "link.snr"),
            ("dataUsage.extra", true, "unknownField", "dataUsage.extra"),
            ("installedApps", [["componentId": "c", "name": "n", "version": "1", "sideloaded": true]], "unknownField",
             "installedApps[0].sideloaded"),
            ("link.registration", "visiting", "invalidRequest", "registration"),
            ("link.radio", "5g", "invalidRequest", "radio"),
            ("link.signalDBm", "-71", "invalidRequest", "signalDBm"),
            ("link.signalDBm", 12, "invalidRequest", "signalDBm"),
            ("link.bitErrorRate", 99, "invalidRequest", "bitErrorRate"),
            ("link.operatorName", "Evil\u{1B}[2J", "invalidRequest", "operatorName"),
            ("link.routerSentBytes", -5, "invalidRequest", "byte counts"),
            ("dataUsage.month", "2026-13", "invalidRequest", "month"),
            ("dataUsage.month", "+202-11", "invalidRequest", "month"),
            ("dataUsage.month", nil, "invalidRequest", "month"),
            ("dataUsage.bytes", -1, "invalidRequest", "bytes"),
            ("link", "lte", "invalidRequest", "link"),
        ]
    }

    @Test("a report with an unknown nested field, a bad enum value or a value out of range is refused with 400")
    func reportRefusals() async throws {
        try await AttestationHarness.run { h in
            let device = try await h.attestedDevice()
            let valid = try Self.report()
            #expect(try await h.postReport(valid, as: device).status == 204)
            for refusal in Self.refusals {
                var object = try #require(try JSONSerialization.jsonObject(with: Data(valid.utf8)) as? [String: Any])
                let parts = refusal.path.split(separator: ".").map(String.init)
                if parts.count == 2 {
                    var nested = try #require(object[parts[0]] as? [String: Any])
                    nested[parts[1]] = refusal.value
                    object[parts[0]] = nested
                } else {
                    object[parts[0]] = refusal.value
                }
                let body = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
                let answer = try await h.postReport(body, as: device)
                let message = answer.error?.message ?? ""
                #expect(answer.status == 400, "\(refusal.path): \(body)")
                #expect(answer.error?.code == refusal.code, "\(refusal.path): \(message)")
                #expect(message.contains(refusal.names), "\(refusal.path): \(message)")
            }
            // The refused reports left the last good one in place.
            let shown = try await h.admin.client.json(
                DeviceInfo.self, .GET, "/v1/tenants/\(h.tenant.id)/devices/\(device.device.id)")
            #expect(shown.link == Self.link && shown.dataUsage == Self.usage)
        }
    }

    @Test("the nested keys the server allows are exactly the keys the types encode")
    func nestedKeysMatchTypes() throws {
        func keys(_ value: some Encodable) throws -> Set<String> {
            let object = try JSONSerialization.jsonObject(with: try JSONCoding.encoder().encode(value))
            return Set(try #require(object as? [String: Any]).keys)
        }
        let app = UpdateReport.InstalledImage(componentId: "c", name: "n", version: "1", imageId: "i")
        #expect(UpdateReport.nestedAllowedKeys["link"] == (try keys(Self.link)))
        #expect(UpdateReport.nestedAllowedKeys["dataUsage"] == (try keys(Self.usage)))
        #expect(UpdateReport.nestedAllowedKeys["installedApps"] == (try keys(app)))
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(try Self.report().utf8)) as? [String: Any])
        #expect(UpdateReport.allowedKeys == Set(report.keys).union(["message", "lastSwitch", "developmentMode"]))
    }

    @Test("the CLI's device-group commands take --data-budget-mb as a whole number")
    func cli() throws {
        let group = RampartID().description
        _ = try RampartCommand.parseAsRoot(["device-group", "create", "--product", "P", "--name", "G", "--data-budget-mb", "5"])
        _ = try RampartCommand.parseAsRoot(["device-group", "update", "--device-group", group, "--data-budget-mb", "5"])
        #expect(throws: (any Error).self) {
            try RampartCommand.parseAsRoot(["device-group", "update", "--device-group", group, "--data-budget-mb", "lots"])
        }
    }
}
