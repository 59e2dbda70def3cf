import Foundation

// Wire types for updates: the TUF repository, products and device groups.

/// One role of a tenant's TUF repository.
public struct TUFRoleInfo: Codable, Sendable, Equatable {
    public var role: String
    public var version: Int
    public var expiresAt: Date
    public init(role: String, version: Int, expiresAt: Date) {
        self.role = role
        self.version = version
        self.expiresAt = expiresAt
    }
}

/// `GET /v1/tenants/{tenantId}/tuf`: the state of a tenant's repository.
public struct TUFRepositoryInfo: Codable, Sendable, Equatable {
    public var rootVersion: Int
    public var rootThreshold: Int
    public var rootKeyIDs: [String]
    /// Whether the server still holds the root keys; `false` once they are in offline custody.
    public var rootKeysHeldByServer: Bool
    /// The newest version of every role.
    public var roles: [TUFRoleInfo]
    public init(rootVersion: Int, rootThreshold: Int, rootKeyIDs: [String], rootKeysHeldByServer: Bool, roles: [TUFRoleInfo]) {
        self.rootVersion = rootVersion
        self.rootThreshold = rootThreshold
        self.rootKeyIDs = rootKeyIDs
        self.rootKeysHeldByServer = rootKeysHeldByServer
        self.roles = roles
    }
}

/// `POST /v1/tenants/{tenantId}/tuf/root`: the next root, signed by its new keys (and old offline keys).
public struct TUFRootRotationRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["root"]
    /// The signed root metadata file, as JSON text.
    public var root: String
    public init(root: String) { self.root = root }
}

/// How a device group takes updates (Azure Sphere's update policies).
public enum UpdatePolicy: String, Codable, Sendable, CaseIterable {
    /// Runtime and app updates.
    case updateAll = "UpdateAll"
    /// Runtime updates only; apps stay as they are.
    case no3rdPartyAppUpdates = "No3rdPartyAppUpdates"
    /// Nothing is updated.
    case noUpdates = "NoUpdates"
}

/// The runtime release feed a device group follows.
public enum OSFeed: String, Codable, Sendable, CaseIterable {
    case retail = "Retail"
    case retailEval = "RetailEval"
}

/// A product.
public struct ProductInfo: Codable, Sendable, Equatable {
    public var id: RampartID
    public var name: String
    public var description: String
    public var createdAt: Date
    public var updatedAt: Date
    public init(id: RampartID, name: String, description: String, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.description = description
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// `GET /v1/tenants/{tenantId}/products`.
public struct ProductList: Codable, Sendable {
    public var products: [ProductInfo]
    public init(products: [ProductInfo]) { self.products = products }
}

/// `POST` and `PATCH /v1/tenants/{tenantId}/products…`.
public struct ProductRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["name", "description"]
    public var name: String?
    public var description: String?
    public init(name: String?, description: String?) {
        self.name = name
        self.description = description
    }
}

/// A device group.
public struct DeviceGroupInfo: Codable, Sendable, Equatable {
    public var id: RampartID
    public var productId: RampartID
    public var productName: String
    public var name: String
    public var description: String
    public var updatePolicy: UpdatePolicy
    public var osFeed: OSFeed
    /// `HH:MM-HH:MM UTC`, or `nil` for any time.
    public var maintenanceWindow: String?
    public var deviceCount: Int
    /// The delegated TUF role that lists this group's deployment.
    public var tufRole: String
    public var createdAt: Date
    public var updatedAt: Date
    public init(
        id: RampartID, productId: RampartID, productName: String, name: String, description: String,
        updatePolicy: UpdatePolicy, osFeed: OSFeed, maintenanceWindow: String?, deviceCount: Int, tufRole: String,
        createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.productId = productId
        self.productName = productName
        self.name = name
        self.description = description
        self.updatePolicy = updatePolicy
        self.osFeed = osFeed
        self.maintenanceWindow = maintenanceWindow
        self.deviceCount = deviceCount
        self.tufRole = tufRole
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// `GET /v1/tenants/{tenantId}/device-groups`.
public struct DeviceGroupList: Codable, Sendable {
    public var deviceGroups: [DeviceGroupInfo]
    public init(deviceGroups: [DeviceGroupInfo]) { self.deviceGroups = deviceGroups }
}

/// `POST` and `PATCH /v1/tenants/{tenantId}/device-groups…`. On update, absent fields stay as they are;
/// an empty `maintenanceWindow` clears the window.
public struct DeviceGroupRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["product", "name", "description", "updatePolicy", "osFeed", "maintenanceWindow"]
    /// Product ID or name (create only).
    public var product: String?
    public var name: String?
    public var description: String?
    public var updatePolicy: UpdatePolicy?
    public var osFeed: OSFeed?
    public var maintenanceWindow: String?
    public init(
        product: String? = nil, name: String? = nil, description: String? = nil, updatePolicy: UpdatePolicy? = nil,
        osFeed: OSFeed? = nil, maintenanceWindow: String? = nil
    ) {
        self.product = product
        self.name = name
        self.description = description
        self.updatePolicy = updatePolicy
        self.osFeed = osFeed
        self.maintenanceWindow = maintenanceWindow
    }
}

/// `PATCH /v1/tenants/{tenantId}/devices/{deviceId}`: move a device to a group.
public struct DeviceUpdateRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["deviceGroupId"]
    public var deviceGroupId: RampartID
    public init(deviceGroupId: RampartID) { self.deviceGroupId = deviceGroupId }
}

/// A maintenance window, `HH:MM-HH:MM UTC`; it may wrap past midnight.
public struct MaintenanceWindow: Sendable, Equatable, CustomStringConvertible {
    /// Minutes after midnight UTC.
    public var start: Int
    public var end: Int

    /// Parses `02:00-04:00 UTC` (the ` UTC` suffix is optional; no other zone is accepted).
    ///
    /// - Throws: ``RampartError`` `invalidRequest` saying what the format is.
    public init(parsing text: String) throws {
        var body = text.trimmingCharacters(in: .whitespaces)
        if body.uppercased().hasSuffix(" UTC") { body = String(body.dropLast(4)).trimmingCharacters(in: .whitespaces) }
        let parts = body.split(separator: "-")
        func minutes(_ part: Substring) -> Int? {
            let hm = part.split(separator: ":")
            guard hm.count == 2, hm[0].count == 2, hm[1].count == 2, let h = Int(hm[0]), let m = Int(hm[1]),
                (0...23).contains(h), (0...59).contains(m)
            else { return nil }
            return h * 60 + m
        }
        guard parts.count == 2, let start = minutes(parts[0]), let end = minutes(parts[1]), start != end else {
            throw RampartError.invalidRequest(
                "Maintenance window '\(text)' is not of the form HH:MM-HH:MM UTC with different start and end, e.g. 02:00-04:00 UTC.")
        }
        self.start = start
        self.end = end
    }

    /// Whether `date` falls inside the window.
    public func contains(_ date: Date) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.hour, .minute], from: date)
        let minute = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
        return start < end ? (start <= minute && minute < end) : (minute >= start || minute < end)
    }

    public var description: String {
        String(format: "%02d:%02d-%02d:%02d UTC", start / 60, start % 60, end / 60, end % 60)
    }
}
