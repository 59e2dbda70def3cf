import Foundation
import RampartCore
import RampartStore

/// Products and their device groups. Every change that affects what devices may run republishes the tenant's
/// TUF repository in the same transaction.
public struct ProductService: Sendable {
    let context: DomainContext
    let repository: TUFRepositoryService

    public init(context: DomainContext, repository: TUFRepositoryService) {
        self.context = context
        self.repository = repository
    }

    /// The groups every new product gets (REFERENCE, products and device groups).
    static let defaultGroups: [(name: String, description: String, policy: UpdatePolicy, feed: OSFeed)] = [
        ("Development", "Runtime updates only; apps are sideloaded.", .no3rdPartyAppUpdates, .retail),
        ("Field Test", "Retail runtime, cloud app updates.", .updateAll, .retail),
        ("Production", "Retail runtime, cloud app updates.", .updateAll, .retail),
        ("Field Test OS Evaluation", "RetailEval runtime (about 14 days early), cloud app updates.", .updateAll, .retailEval),
        ("Production OS Evaluation", "RetailEval runtime (about 14 days early), cloud app updates.", .updateAll, .retailEval),
    ]

    // MARK: Products

    /// Creates a product and its five default groups (Contributor or above).
    public func createProduct(tenant: RampartID, name rawName: String, description: String?, caller: UserRecord)
        async throws -> ProductInfo
    {
        try await context.audited(Actor(user: caller), tenant: tenant, action: "product.create", target: rawName) { session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            let name = try Name.validated(rawName, what: "product name")
            try await session.lockTenant(tenant)
            guard try await session.product(name, tenant: tenant) == nil else {
                throw RampartError.conflict(.conflict, "A product named '\(name)' already exists in this tenant.")
            }
            let now = context.clock.now()
            let product = ProductRecord(
                id: RampartID(), tenantID: tenant, name: name, description: try Self.description(description),
                createdAt: now, updatedAt: now)
            try await session.insertProduct(product)
            for group in Self.defaultGroups {
                try await session.insertDeviceGroup(
                    DeviceGroupRecord(
                        id: RampartID(), tenantID: tenant, productID: product.id, name: group.name,
                        description: group.description, updatePolicy: group.policy.rawValue, osFeed: group.feed.rawValue,
                        maintenanceWindow: nil, createdAt: now, updatedAt: now))
            }
            try await repository.republish(tenant: tenant, now: now, session: session)
            return Self.info(product)
        }
    }

    /// The tenant's products.
    public func listProducts(tenant: RampartID, caller: UserRecord) async throws -> ProductList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return ProductList(products: try await session.products(ofTenant: tenant).map(Self.info))
        }
    }

    /// One product by ID or name.
    public func showProduct(tenant: RampartID, product: String, caller: UserRecord) async throws -> ProductInfo {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            return Self.info(try await Self.product(product, tenant: tenant, session: session))
        }
    }

    /// Renames or re-describes a product (Contributor or above).
    public func updateProduct(tenant: RampartID, product reference: String, name: String?, description: String?, caller: UserRecord)
        async throws -> ProductInfo
    {
        try await context.audited(Actor(user: caller), tenant: tenant, action: "product.update", target: reference) { session in
            _ = try await context.authorize(caller, tenant: tenant, .update, session: session)
            var product = try await Self.product(reference, tenant: tenant, session: session)
            if let name {
                let validated = try Name.validated(name, what: "product name")
                if validated != product.name, try await session.product(validated, tenant: tenant) != nil {
                    throw RampartError.conflict(.conflict, "A product named '\(validated)' already exists in this tenant.")
                }
                product.name = validated
            }
            if let description { product.description = try Self.description(description) }
            product.updatedAt = context.clock.now()
            try await session.updateProduct(product)
            return Self.info(product)
        }
    }

    /// Deletes a product and its groups (Administrator). Refused while any of its groups holds devices.
    public func deleteProduct(tenant: RampartID, product reference: String, caller: UserRecord) async throws {
        try await context.audited(Actor(user: caller), tenant: tenant, action: "product.delete", target: reference) { session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            try await session.lockTenant(tenant)
            let product = try await Self.product(reference, tenant: tenant, session: session)
            for group in try await session.deviceGroups(ofTenant: tenant, product: product.id) {
                let count = try await session.deviceCount(inGroup: group.id)
                guard count == 0 else {
                    throw RampartError.conflict(
                        .conflict, "Group '\(group.name)' of this product still holds \(count) device(s). Move them first.")
                }
            }
            try await session.deleteProduct(id: product.id)
            try await repository.republish(tenant: tenant, now: context.clock.now(), session: session)
        }
    }

    // MARK: Device groups

    /// Creates a device group in a product (Contributor or above).
    public func createGroup(tenant: RampartID, request: DeviceGroupRequest, caller: UserRecord) async throws -> DeviceGroupInfo {
        try await context.audited(
            Actor(user: caller), tenant: tenant, action: "device-group.create", target: request.name ?? ""
        ) { session in
            _ = try await context.authorize(caller, tenant: tenant, .create, session: session)
            guard let productReference = request.product, let rawName = request.name else {
                throw RampartError.invalidRequest("A device group needs 'product' and 'name'.")
            }
            let product = try await Self.product(productReference, tenant: tenant, session: session)
            let name = try Name.validated(rawName, what: "device group name")
            try await session.lockTenant(tenant)
            let siblings = try await session.deviceGroups(ofTenant: tenant, product: product.id)
            guard !siblings.contains(where: { $0.name.lowercased() == name.lowercased() }) else {
                throw RampartError.conflict(.conflict, "Product '\(product.name)' already has a group named '\(name)'.")
            }
            let now = context.clock.now()
            let group = DeviceGroupRecord(
                id: RampartID(), tenantID: tenant, productID: product.id, name: name,
                description: try Self.description(request.description),
                updatePolicy: (request.updatePolicy ?? .updateAll).rawValue, osFeed: (request.osFeed ?? .retail).rawValue,
                maintenanceWindow: try Self.window(request.maintenanceWindow), createdAt: now, updatedAt: now,
                dataBudgetMB: try request.dataBudgetMB.flatMap(Self.dataBudget))
            try await session.insertDeviceGroup(group)
            try await repository.republish(tenant: tenant, now: now, session: session)
            return try await Self.info(group, product: product, session: session)
        }
    }

    /// The tenant's device groups, optionally of one product.
    public func listGroups(tenant: RampartID, product: String?, caller: UserRecord) async throws -> DeviceGroupList {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            let products = Dictionary(uniqueKeysWithValues: try await session.products(ofTenant: tenant).map { ($0.id, $0) })
            var only: RampartID?
            if let product { only = try await Self.product(product, tenant: tenant, session: session).id }
            var out: [DeviceGroupInfo] = []
            for group in try await session.deviceGroups(ofTenant: tenant, product: only) {
                out.append(try await Self.info(group, product: products[group.productID]!, session: session))
            }
            return DeviceGroupList(deviceGroups: out)
        }
    }

    /// One device group.
    public func showGroup(tenant: RampartID, group: RampartID, caller: UserRecord) async throws -> DeviceGroupInfo {
        try await context.store.read { session in
            _ = try await context.authorize(caller, tenant: tenant, .read, session: session)
            let record = try await Self.group(group, tenant: tenant, session: session)
            let product = try await Self.product(record.productID.description, tenant: tenant, session: session)
            return try await Self.info(record, product: product, session: session)
        }
    }

    /// Changes a group's name, description, policy, feed, window or data budget (Contributor or above).
    public func updateGroup(tenant: RampartID, group id: RampartID, request: DeviceGroupRequest, caller: UserRecord)
        async throws -> DeviceGroupInfo
    {
        try await context.audited(Actor(user: caller), tenant: tenant, action: "device-group.update", target: id.description) {
            session in
            _ = try await context.authorize(caller, tenant: tenant, .update, session: session)
            guard request.product == nil else {
                throw RampartError.invalidRequest("A device group cannot move to another product; create a new group.")
            }
            try await session.lockTenant(tenant)
            var group = try await Self.group(id, tenant: tenant, session: session)
            let product = try await Self.product(group.productID.description, tenant: tenant, session: session)
            if let rawName = request.name {
                let name = try Name.validated(rawName, what: "device group name")
                let siblings = try await session.deviceGroups(ofTenant: tenant, product: product.id)
                if siblings.contains(where: { $0.id != id && $0.name.lowercased() == name.lowercased() }) {
                    throw RampartError.conflict(.conflict, "Product '\(product.name)' already has a group named '\(name)'.")
                }
                group.name = name
            }
            if let description = request.description { group.description = try Self.description(description) }
            if let policy = request.updatePolicy { group.updatePolicy = policy.rawValue }
            if let feed = request.osFeed { group.osFeed = feed.rawValue }
            if let window = request.maintenanceWindow { group.maintenanceWindow = try Self.window(window) }
            if let budget = request.dataBudgetMB { group.dataBudgetMB = try Self.dataBudget(budget) }
            group.updatedAt = context.clock.now()
            try await session.updateDeviceGroup(group)
            try await repository.republish(tenant: tenant, now: group.updatedAt, session: session)
            return try await Self.info(group, product: product, session: session)
        }
    }

    /// Deletes a device group (Administrator). Refused while it holds devices.
    public func deleteGroup(tenant: RampartID, group id: RampartID, caller: UserRecord) async throws {
        try await context.audited(Actor(user: caller), tenant: tenant, action: "device-group.delete", target: id.description) {
            session in
            _ = try await context.authorize(caller, tenant: tenant, .delete, session: session)
            try await session.lockTenant(tenant)
            let group = try await Self.group(id, tenant: tenant, session: session)
            let count = try await session.deviceCount(inGroup: group.id)
            guard count == 0 else {
                throw RampartError.conflict(.conflict, "Group '\(group.name)' still holds \(count) device(s). Move them first.")
            }
            try await session.deleteDeviceGroup(id: group.id)
            try await repository.republish(tenant: tenant, now: context.clock.now(), session: session)
        }
    }

    /// Moves a claimed device into a group of the same tenant (Contributor or above).
    public func moveDevice(tenant: RampartID, deviceID: String, group id: RampartID, caller: UserRecord) async throws
        -> DeviceGroupInfo
    {
        try await context.audited(Actor(user: caller), tenant: tenant, action: "device.update", target: deviceID) { session in
            _ = try await context.authorize(caller, tenant: tenant, .update, session: session)
            guard let device = try await session.device(id: deviceID.lowercased()), device.tenantID == tenant else {
                throw RampartError.notFound("Device \(deviceID)")
            }
            let group = try await Self.group(id, tenant: tenant, session: session)
            try await session.setDeviceGroup(deviceID: device.id, group: group.id)
            let product = try await Self.product(group.productID.description, tenant: tenant, session: session)
            return try await Self.info(group, product: product, session: session)
        }
    }

    // MARK: Helpers

    static func product(_ reference: String, tenant: RampartID, session: StoreSession) async throws -> ProductRecord {
        guard let product = try await session.product(reference, tenant: tenant) else {
            throw RampartError.notFound("Product \(reference)")
        }
        return product
    }

    static func group(_ id: RampartID, tenant: RampartID, session: StoreSession) async throws -> DeviceGroupRecord {
        guard let group = try await session.deviceGroup(id: id, tenant: tenant) else {
            throw RampartError.notFound("Device group \(id)")
        }
        return group
    }

    static func description(_ text: String?) throws -> String {
        let value = (text ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard value.count <= 200, !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw RampartError.invalidRequest("A description has at most 200 characters and no control characters.")
        }
        return value
    }

    static func window(_ text: String?) throws -> String? {
        guard let text, !text.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        return try MaintenanceWindow(parsing: text).description
    }

    /// The largest monthly data budget a group may set, in MB: a terabyte, far beyond any metered plan, so
    /// that a typo is refused rather than read as "no limit".
    static let maximumDataBudgetMB = 1_000_000

    /// A group's data budget from a request: 0 removes it (`nil`).
    static func dataBudget(_ megabytes: Int) throws -> Int? {
        guard (0...maximumDataBudgetMB).contains(megabytes) else {
            throw RampartError.invalidRequest(
                "The data budget must be a whole number of MB from 1 to \(maximumDataBudgetMB), or 0 to remove it; "
                    + "got \(megabytes).")
        }
        return megabytes == 0 ? nil : megabytes
    }

    static func info(_ product: ProductRecord) -> ProductInfo {
        ProductInfo(
            id: product.id, name: product.name, description: product.description, createdAt: product.createdAt,
            updatedAt: product.updatedAt)
    }

    static func info(_ group: DeviceGroupRecord, product: ProductRecord, session: StoreSession) async throws -> DeviceGroupInfo {
        DeviceGroupInfo(
            id: group.id, productId: product.id, productName: product.name, name: group.name,
            description: group.description, updatePolicy: UpdatePolicy(rawValue: group.updatePolicy) ?? .noUpdates,
            osFeed: OSFeed(rawValue: group.osFeed) ?? .retail, maintenanceWindow: group.maintenanceWindow,
            deviceCount: try await session.deviceCount(inGroup: group.id),
            tufRole: TUFRepositoryService.roleName(group: group.id), createdAt: group.createdAt,
            updatedAt: group.updatedAt, dataBudgetMB: group.dataBudgetMB)
    }
}
