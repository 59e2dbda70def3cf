import Foundation
import Hummingbird
import RampartCore

/// The TUF repositories (devices, mTLS) and products, device groups and repository administration (users).
struct UpdateRoutes: Sendable {
    let repository: TUFRepositoryService
    let products: ProductService
    let images: ImageService
    let checks: UpdateCheckService
    let development: DevelopmentModeService
    let deviceAuthenticator: DeviceCertificateAuthenticator
    let bodyLimit: Int

    func addPublic(to router: Router<RampartRequestContext>) {
        router.get("/v1/tuf/:tenantId/metadata/:file") { _, context -> Response in
            let tenant = try APIRoutes.tenant(context)
            _ = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let content = try await repository.metadataFile(tenant: tenant, name: try context.parameters.require("file"))
            var response = FileResponse.make(Array(content.utf8), contentType: "application/json")
            response.headers[.cacheControl] = "no-store"
            return response
        }
        router.get("/v1/tuf/:tenantId/targets/:prefix/:file") { request, context -> Response in
            let tenant = try APIRoutes.tenant(context)
            _ = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let bytes = try await repository.targetFile(
                tenant: tenant, prefix: try context.parameters.require("prefix"), name: try context.parameters.require("file"))
            return FileResponse.ranged(bytes, contentType: "application/octet-stream", range: request.headers[.range])
        }
        router.get("/v1/tuf/:tenantId/notifications") { request, context in
            let tenant = try APIRoutes.tenant(context)
            let device = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let text = request.uri.queryParameters.get("wait") ?? "25"
            guard let seconds = Int(text), (0...1800).contains(seconds) else {
                throw RampartError.invalidRequest("'wait' must be a whole number of seconds from 0 to 1800.")
            }
            return try await checks.waitForCheck(deviceID: device, wait: .seconds(seconds))
        }
        router.post("/v1/tuf/:tenantId/report") { request, context -> Response in
            let tenant = try APIRoutes.tenant(context)
            let device = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            let report = try await request.decodeStrict(UpdateReport.self, limit: 64 * 1024)
            try await checks.report(deviceID: device, report: report)
            return Response(status: .noContent)
        }
        router.get("/v1/tuf/:tenantId/device") { _, context in
            let tenant = try APIRoutes.tenant(context)
            let device = try await deviceAuthenticator.authenticate(channel: context.channel, tenant: tenant)
            var settings = try await repository.deviceSettings(tenant: tenant, deviceID: device)
            try await development.addDevelopmentMode(to: &settings, tenant: tenant)
            return settings
        }
    }

    func addAuthenticated(to group: RouterGroup<RampartRequestContext>) {
        // The tenant's TUF repository
        group.get("/v1/tenants/:tenantId/tuf") { _, context in
            try await repository.status(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/tuf/root") { _, context -> Response in
            let root = try await repository.currentRoot(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
            return FileResponse.make(Array(root.utf8), contentType: "application/json")
        }
        group.post("/v1/tenants/:tenantId/tuf/root") { request, context in
            let body = try await request.decodeStrict(TUFRootRotationRequest.self, limit: bodyLimit)
            return try await repository.rotateRoot(
                tenant: try APIRoutes.tenant(context), newRoot: body.root, caller: try context.requireCaller())
        }

        // Products
        group.get("/v1/tenants/:tenantId/products") { _, context in
            try await products.listProducts(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/products") { request, context in
            let body = try await request.decodeStrict(ProductRequest.self, limit: bodyLimit)
            guard let name = body.name else { throw RampartError.invalidRequest("A product needs a 'name'.") }
            let product = try await products.createProduct(
                tenant: try APIRoutes.tenant(context), name: name, description: body.description,
                caller: try context.requireCaller())
            return EditedResponse(status: .created, response: product)
        }
        group.get("/v1/tenants/:tenantId/products/:product") { _, context in
            try await products.showProduct(
                tenant: try APIRoutes.tenant(context), product: try context.parameters.requireDecoded("product"),
                caller: try context.requireCaller())
        }
        group.patch("/v1/tenants/:tenantId/products/:product") { request, context in
            let body = try await request.decodeStrict(ProductRequest.self, limit: bodyLimit)
            return try await products.updateProduct(
                tenant: try APIRoutes.tenant(context), product: try context.parameters.requireDecoded("product"), name: body.name,
                description: body.description, caller: try context.requireCaller())
        }
        group.delete("/v1/tenants/:tenantId/products/:product") { _, context -> Response in
            try await products.deleteProduct(
                tenant: try APIRoutes.tenant(context), product: try context.parameters.requireDecoded("product"),
                caller: try context.requireCaller())
            return Response(status: .noContent)
        }

        // Device groups
        group.get("/v1/tenants/:tenantId/device-groups") { request, context in
            try await products.listGroups(
                tenant: try APIRoutes.tenant(context), product: request.uri.queryParameters.get("product"),
                caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/device-groups") { request, context in
            let body = try await request.decodeStrict(DeviceGroupRequest.self, limit: bodyLimit)
            let created = try await products.createGroup(
                tenant: try APIRoutes.tenant(context), request: body, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: created)
        }
        group.get("/v1/tenants/:tenantId/device-groups/:groupId") { _, context in
            try await products.showGroup(
                tenant: try APIRoutes.tenant(context), group: try Self.group(context), caller: try context.requireCaller())
        }
        group.patch("/v1/tenants/:tenantId/device-groups/:groupId") { request, context in
            let body = try await request.decodeStrict(DeviceGroupRequest.self, limit: bodyLimit)
            return try await products.updateGroup(
                tenant: try APIRoutes.tenant(context), group: try Self.group(context), request: body,
                caller: try context.requireCaller())
        }
        group.delete("/v1/tenants/:tenantId/device-groups/:groupId") { _, context -> Response in
            try await products.deleteGroup(
                tenant: try APIRoutes.tenant(context), group: try Self.group(context), caller: try context.requireCaller())
            return Response(status: .noContent)
        }
        // Signing keys, images, deployments, runtime releases
        group.get("/v1/tenants/:tenantId/signing-keys") { _, context in
            try await images.signingKeys(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/signing-keys") { request, context in
            let body = try await request.decodeStrict(SigningKeyRequest.self, limit: bodyLimit)
            let key = try await images.addSigningKey(tenant: try APIRoutes.tenant(context), request: body, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: key)
        }
        group.post("/v1/tenants/:tenantId/signing-keys/:keyId/revoke") { _, context in
            try await images.revokeSigningKey(
                tenant: try APIRoutes.tenant(context), keyID: try context.parameters.requireDecoded("keyId"),
                caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/images") { _, context in
            try await images.images(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/images") { request, context in
            let bytes = try await request.collectBounded(limit: Self.maximumPackageBytes)
            let image = try await images.addImage(tenant: try APIRoutes.tenant(context), package: bytes, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: image)
        }
        group.get("/v1/tenants/:tenantId/images/:imageId") { _, context in
            try await images.image(
                tenant: try APIRoutes.tenant(context), id: try context.parameters.requireID("imageId", what: "Image"),
                caller: try context.requireCaller())
        }
        group.get("/v1/tenants/:tenantId/device-groups/:groupId/deployments") { _, context in
            try await images.deployments(tenant: try APIRoutes.tenant(context), group: try Self.group(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/device-groups/:groupId/deployments") { request, context in
            let body = try await request.decodeStrict(DeploymentRequest.self, limit: bodyLimit)
            let deployment = try await images.deploy(
                tenant: try APIRoutes.tenant(context), group: try Self.group(context), imageIDs: body.imageIds,
                caller: try context.requireCaller())
            return EditedResponse(status: .created, response: deployment)
        }
        group.get("/v1/tenants/:tenantId/runtime-releases") { _, context in
            try await images.runtimeReleases(tenant: try APIRoutes.tenant(context), caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/runtime-releases") { request, context in
            let body = try await request.decodeStrict(RuntimeReleaseRequest.self, limit: bodyLimit)
            let release = try await images.publishRuntime(tenant: try APIRoutes.tenant(context), request: body, caller: try context.requireCaller())
            return EditedResponse(status: .created, response: release)
        }

        group.post("/v1/tenants/:tenantId/devices/:deviceId/check-now") { _, context -> Response in
            try await checks.checkNow(
                tenant: try APIRoutes.tenant(context), deviceID: try context.parameters.requireDecoded("deviceId"),
                caller: try context.requireCaller())
            return Response(status: .accepted)
        }
        group.get("/v1/tenants/:tenantId/devices/:deviceId/deployment-status") { _, context in
            try await checks.deploymentStatus(
                tenant: try APIRoutes.tenant(context), deviceID: try context.parameters.requireDecoded("deviceId"),
                caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/devices/:deviceId/enable-development") { request, context in
            let body = try await request.decodeStrict(DevelopmentModeRequest.self, limit: bodyLimit)
            return try await development.enableDevelopment(
                try context.parameters.requireDecoded("deviceId"), group: body.deviceGroupId, tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
        }
        group.post("/v1/tenants/:tenantId/devices/:deviceId/enable-cloud-test") { request, context in
            let body = try await request.decodeStrict(DevelopmentModeRequest.self, limit: bodyLimit)
            return try await development.enableCloudTest(
                try context.parameters.requireDecoded("deviceId"), group: body.deviceGroupId, tenant: try APIRoutes.tenant(context),
                caller: try context.requireCaller())
        }
        group.patch("/v1/tenants/:tenantId/devices/:deviceId") { request, context in
            let body = try await request.decodeStrict(DeviceUpdateRequest.self, limit: bodyLimit)
            return try await products.moveDevice(
                tenant: try APIRoutes.tenant(context), deviceID: try context.parameters.requireDecoded("deviceId"),
                group: body.deviceGroupId, caller: try context.requireCaller())
        }
    }

    /// The largest image package accepted.
    static let maximumPackageBytes = 256 * 1024 * 1024

    static func group(_ context: RampartRequestContext) throws -> RampartID {
        try context.parameters.requireID("groupId", what: "Device group")
    }
}

extension TUFRepositoryInfo: ResponseEncodable {}
extension DevelopmentModeInfo: ResponseEncodable {}
extension ProductInfo: ResponseEncodable {}
extension ProductList: ResponseEncodable {}
extension DeviceGroupInfo: ResponseEncodable {}
extension DeviceGroupList: ResponseEncodable {}
extension SigningKeyInfo: ResponseEncodable {}
extension SigningKeyList: ResponseEncodable {}
extension ImageInfo: ResponseEncodable {}
extension ImageList: ResponseEncodable {}
extension DeploymentInfo: ResponseEncodable {}
extension DeploymentList: ResponseEncodable {}
extension RuntimeReleaseInfo: ResponseEncodable {}
extension RuntimeReleaseList: ResponseEncodable {}
extension DeviceUpdateSettings: ResponseEncodable {}
extension DeploymentStatus: ResponseEncodable {}
extension UpdateNotification: ResponseEncodable {}
