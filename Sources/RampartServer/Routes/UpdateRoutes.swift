import Foundation
import Hummingbird
import RampartCore

/// The TUF repositories (devices, mTLS) and products, device groups and repository administration (users).
struct UpdateRoutes: Sendable {
    let repository: TUFRepositoryService
    let products: ProductService
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
        group.patch("/v1/tenants/:tenantId/devices/:deviceId") { request, context in
            let body = try await request.decodeStrict(DeviceUpdateRequest.self, limit: bodyLimit)
            return try await products.moveDevice(
                tenant: try APIRoutes.tenant(context), deviceID: try context.parameters.requireDecoded("deviceId"),
                group: body.deviceGroupId, caller: try context.requireCaller())
        }
    }

    static func group(_ context: RampartRequestContext) throws -> RampartID {
        try context.parameters.requireID("groupId", what: "Device group")
    }
}

extension TUFRepositoryInfo: ResponseEncodable {}
extension ProductInfo: ResponseEncodable {}
extension ProductList: ResponseEncodable {}
extension DeviceGroupInfo: ResponseEncodable {}
extension DeviceGroupList: ResponseEncodable {}
