import Foundation
import Hummingbird
import RampartCore

/// Telemetry and cloud-to-device messages: gateways hand them over with their device certificate; users
/// read and send them with a token.
struct MessageRoutes: Sendable {
    let messages: MessageService
    let devices: DeviceService
    let deviceAuthenticator: DeviceCertificateAuthenticator
    let bodyLimit: Int

    /// A telemetry batch: up to 1000 messages of up to 256 KiB, base64 in JSON.
    static let uploadLimit = 48 << 20

    func addPublic(to router: Router<RampartRequestContext>) {
        router.post("/v1/gateway/:tenantId/messages") { request, context in
            let tenant = try APIRoutes.tenant(context)
            let gateway = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let body = try await request.decodeStrict(TelemetryUploadRequest.self, limit: Self.uploadLimit)
            return try await messages.upload(body, from: gateway, tenant: tenant)
        }
        router.get("/v1/gateway/:tenantId/cloud-messages") { request, context in
            let tenant = try APIRoutes.tenant(context)
            let gateway = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let query = request.uri.queryParameters
            var since: Date?
            if let text = query.get("since") {
                guard let date = Timestamp.parse(text) else { throw RampartError.invalidRequest("'since' must be an RFC 3339 date-time.") }
                since = date
            }
            return try await messages.pending(
                for: gateway, tenant: tenant, deviceID: query.get("deviceId"), since: since, after: query.get("after"),
                wait: try Self.integer(query.get("wait"), "wait", default: 0, in: 0...MessageService.maximumWait),
                forApps: try Self.flag(query.get("forApps"), "forApps"))
        }
        router.post("/v1/gateway/:tenantId/cloud-messages/:messageId/delivered") { _, context -> Response in
            let tenant = try APIRoutes.tenant(context)
            let gateway = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            try await messages.delivered(try context.parameters.require("messageId"), by: gateway, tenant: tenant)
            return Response(status: .noContent)
        }
    }

    func addAuthenticated(to group: RouterGroup<RampartRequestContext>) {
        group.put("/v1/tenants/:tenantId/devices/:deviceId/hub") { request, context in
            let body = try await request.decodeStrict(SetHubRequest.self, limit: bodyLimit)
            return try await devices.setHub(
                try context.parameters.require("deviceId"), hub: body.hub, tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/devices/:deviceId/messages") { request, context in
            let query = request.uri.queryParameters
            return try await messages.list(
                deviceID: try context.parameters.require("deviceId"),
                after: Int64(try Self.integer(query.get("after"), "after", default: 0, in: 0...Int.max)),
                limit: try Self.integer(query.get("limit"), "limit", default: 100, in: 1...1000),
                wait: try Self.integer(query.get("wait"), "wait", default: 0, in: 0...MessageService.maximumWait),
                tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/devices/:deviceId/cloud-messages") { request, context in
            // A 64 KiB payload in base64, with properties.
            let body = try await request.decodeStrict(CloudMessageRequest.self, limit: max(bodyLimit, 256 << 10))
            let message = try await messages.send(
                body, deviceID: try context.parameters.require("deviceId"), tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
            return EditedResponse(status: .created, response: message)
        }
        group.get("/v1/tenants/:tenantId/devices/:deviceId/cloud-messages") { request, context in
            try await messages.cloudMessages(
                deviceID: try context.parameters.require("deviceId"),
                limit: try Self.integer(request.uri.queryParameters.get("limit"), "limit", default: 100, in: 1...1000),
                tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/devices/:deviceId/cloud-messages/:messageId") { _, context in
            try await messages.cloudMessage(
                try context.parameters.require("messageId"), deviceID: try context.parameters.require("deviceId"),
                tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
    }

    /// A whole-number query parameter within `range`.
    static func integer(_ text: String?, _ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw RampartError.invalidRequest("'\(name)' must be a whole number from \(range.lowerBound) to \(range.upperBound).")
        }
        return number
    }

    static func flag(_ text: String?, _ name: String) throws -> Bool {
        switch text {
        case nil, "false": return false
        case "true": return true
        default: throw RampartError.invalidRequest("'\(name)' must be true or false.")
        }
    }
}

extension TelemetryUploadResult: ResponseEncodable {}
extension DeviceMessageList: ResponseEncodable {}
extension CloudMessage: ResponseEncodable {}
extension CloudMessageList: ResponseEncodable {}
