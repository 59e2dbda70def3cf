import Foundation
import Hummingbird
import RampartCore
import RampartStore

/// Attestation (for devices, no user token) and device management (for users).
struct DeviceRoutes: Sendable {
    let attestation: AttestationService
    let devices: DeviceService
    let certificateAuthority: TenantCAService
    let deviceAuthenticator: DeviceCertificateAuthenticator
    let bodyLimit: Int

    func addPublic(to router: Router<RampartRequestContext>) {
        router.post("/v1/attestation/challenge") { request, _ in
            let body = try await request.decodeStrict(AttestationChallengeRequest.self, limit: bodyLimit)
            return try await attestation.challenge(deviceID: body.deviceId)
        }
        router.post("/v1/attestation") { request, _ in
            let body = try await request.decodeStrict(AttestationRequest.self, limit: bodyLimit)
            return try await attestation.attest(body.evidence)
        }
        // For gateways, which ask with their own device certificate (mutual TLS).
        router.get("/v1/gateway/:tenantId/trust-bundle") { _, context -> Response in
            let tenant = try APIRoutes.tenant(context)
            _ = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let pem = try await certificateAuthority.relyingPartyBundle(tenant: tenant)
            var response = FileResponse.make(Array(pem.utf8), contentType: "application/x-pem-file", filename: "trust-bundle.pem")
            response.headers[.cacheControl] = "no-store"
            return response
        }
        router.get("/v1/gateway/:tenantId/children") { _, context in
            let tenant = try APIRoutes.tenant(context)
            let gateway = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            return try await devices.children(of: gateway, tenant: tenant)
        }
        // A device's own error events, sent with its device certificate.
        router.post("/v1/errors/:tenantId") { request, context in
            let tenant = try APIRoutes.tenant(context)
            let device = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let body = try await request.decodeStrict(ErrorEventUploadBody.self, limit: Self.errorUploadLimit)
            return try await devices.uploadErrorEvents(body, from: device, tenant: tenant)
        }
    }

    /// An error upload: up to 500 events with descriptions of up to 1,024 characters, escaped in JSON.
    static let errorUploadLimit = 4 << 20

    func addAuthenticated(to group: RouterGroup<RampartRequestContext>) {
        group.get("/v1/tenants/:tenantId/devices") { _, context in
            try await devices.list(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/devices") { request, context in
            let tenant = try APIRoutes.tenant(context)
            let body = try await request.decodeStrict(DeviceClaimRequest.self, limit: bodyLimit)
            let device = try await devices.claim(body.deviceId, tenant: tenant, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: device)
        }
        group.get("/v1/tenants/:tenantId/devices/:deviceId") { _, context in
            try await devices.show(
                try context.parameters.requireDecoded("deviceId"), tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
        }
        group.put("/v1/tenants/:tenantId/devices/:deviceId/parent") { request, context in
            let body = try await request.decodeStrict(SetParentRequest.self, limit: bodyLimit)
            return try await devices.setParent(
                try context.parameters.requireDecoded("deviceId"), parent: body.parentId, tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/devices/:deviceId/diagnosis") { _, context in
            try await devices.diagnose(
                try context.parameters.requireDecoded("deviceId"), tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/reference-values") { _, context in
            try await devices.referenceValues(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/reference-values") { request, context in
            let tenant = try APIRoutes.tenant(context)
            let body = try await request.decodeStrict(ReferenceValueRequest.self, limit: bodyLimit)
            let value = try await devices.addReferenceValue(body, tenant: tenant, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: value)
        }
        group.delete("/v1/tenants/:tenantId/reference-values/:sha256") { _, context -> Response in
            try await devices.revokeReferenceValue(
                try context.parameters.requireDecoded("sha256"), tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
            return Response(status: .noContent)
        }
        group.get("/v1/tenants/:tenantId/error-report") { request, context -> Response in
            let query = request.uri.queryParameters
            func time(_ name: String) throws -> Date? {
                guard let text = query.get(name) else { return nil }
                guard let date = Timestamp.parse(text) else {
                    throw RampartError.invalidRequest("'\(name)' must be an RFC 3339 date-time, e.g. 2026-11-21T08:00:00Z.")
                }
                return date
            }
            let limit = try query.get("limit").map {
                try MessageRoutes.integer($0, "limit", default: 0, in: 1...DeviceService.maximumErrorReportRows)
            }
            let filter = ErrorEventFilter(
                deviceID: query.get("deviceId"), eventClass: query.get("eventClass"), from: try time("from"), to: try time("to"),
                limit: limit)
            let report = try await devices.errorReport(
                tenant: try APIRoutes.tenant(context), filter: filter, caller: try context.requireCaller())
            switch query.get("format") ?? "csv" {
            case "csv":
                return FileResponse.make(Array(report.csv.utf8), contentType: "text/csv; charset=utf-8", filename: "error-report.csv")
            case "json":
                return FileResponse.make(Array(try JSONCoding.encoder().encode(report)), contentType: "application/json")
            default:
                throw RampartError.invalidRequest("'format' must be csv or json.")
            }
        }
    }
}

extension AttestationChallenge: ResponseEncodable {}
extension AttestationResult: ResponseEncodable {}
extension DeviceInfo: ResponseEncodable {}
extension DeviceList: ResponseEncodable {}
extension ChildList: ResponseEncodable {}
extension DeviceDiagnosis: ResponseEncodable {}
extension ReferenceValue: ResponseEncodable {}
extension ReferenceValueList: ResponseEncodable {}
extension ErrorEventUploadResult: ResponseEncodable {}
