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
    /// The monthly servicing data budget per device in MB (10^6 bytes); `nil` for none.
    public var dataBudgetMB: Int?
    public var deviceCount: Int
    /// The delegated TUF role that lists this group's deployment.
    public var tufRole: String
    public var createdAt: Date
    public var updatedAt: Date
    public init(
        id: RampartID, productId: RampartID, productName: String, name: String, description: String,
        updatePolicy: UpdatePolicy, osFeed: OSFeed, maintenanceWindow: String?, deviceCount: Int, tufRole: String,
        createdAt: Date, updatedAt: Date, dataBudgetMB: Int? = nil
    ) {
        self.dataBudgetMB = dataBudgetMB
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
    public static let allowedKeys: Set<String> = [
        "product", "name", "description", "updatePolicy", "osFeed", "maintenanceWindow", "dataBudgetMB",
    ]
    /// Product ID or name (create only).
    public var product: String?
    public var name: String?
    public var description: String?
    public var updatePolicy: UpdatePolicy?
    public var osFeed: OSFeed?
    public var maintenanceWindow: String?
    /// The monthly servicing data budget per device in MB (10^6 bytes); 0 removes it.
    public var dataBudgetMB: Int?
    public init(
        product: String? = nil, name: String? = nil, description: String? = nil, updatePolicy: UpdatePolicy? = nil,
        osFeed: OSFeed? = nil, maintenanceWindow: String? = nil, dataBudgetMB: Int? = nil
    ) {
        self.product = product
        self.name = name
        self.description = description
        self.updatePolicy = updatePolicy
        self.osFeed = osFeed
        self.maintenanceWindow = maintenanceWindow
        self.dataBudgetMB = dataBudgetMB
    }
}

/// `PATCH /v1/tenants/{tenantId}/devices/{deviceId}`: move a device to a group.
public struct DeviceUpdateRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["deviceGroupId"]
    public var deviceGroupId: RampartID
    public init(deviceGroupId: RampartID) { self.deviceGroupId = deviceGroupId }
}

/// `POST /v1/tenants/{tenantId}/devices/{deviceId}/enable-development` and `…/enable-cloud-test`: the group to
/// move the device to; by default its product's Development or Field Test group.
public struct DevelopmentModeRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["deviceGroupId"]
    public var deviceGroupId: RampartID?
    public init(deviceGroupId: RampartID? = nil) { self.deviceGroupId = deviceGroupId }
}

/// A device's development mode after `device enable-development` or `device enable-cloud-test`.
public struct DevelopmentModeInfo: Codable, Sendable, Equatable {
    public var deviceId: String
    public var developmentMode: Bool
    /// Since when the device is in development mode.
    public var developmentSince: Date?
    /// The group the device is in now.
    public var deviceGroup: DeviceGroupInfo
    /// The signed `appDevelopment` capability, when development mode is on: the device receives it with its
    /// next update check, or at once through its local API (`--state-dir`).
    public var capability: String?
    public init(deviceId: String, developmentMode: Bool, developmentSince: Date?, deviceGroup: DeviceGroupInfo, capability: String?) {
        self.deviceId = deviceId
        self.developmentMode = developmentMode
        self.developmentSince = developmentSince
        self.deviceGroup = deviceGroup
        self.capability = capability
    }
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
        let minute = UTCTime(date).minuteOfDay
        return start < end ? (start <= minute && minute < end) : (minute >= start || minute < end)
    }

    public var description: String {
        "\(UTCTime.pad(start / 60, 2)):\(UTCTime.pad(start % 60, 2))-\(UTCTime.pad(end / 60, 2)):\(UTCTime.pad(end % 60, 2)) UTC"
    }
}

/// A package signing key of a tenant.
public struct SigningKeyInfo: Codable, Sendable, Equatable {
    /// SHA-256 of the SubjectPublicKeyInfo.
    public var keyId: String
    public var publicKey: String
    public var description: String
    public var createdAt: Date
    public var revokedAt: Date?
    public init(keyId: String, publicKey: String, description: String, createdAt: Date, revokedAt: Date?) {
        self.keyId = keyId
        self.publicKey = publicKey
        self.description = description
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// `GET /v1/tenants/{tenantId}/signing-keys`.
public struct SigningKeyList: Codable, Sendable {
    public var signingKeys: [SigningKeyInfo]
    public init(signingKeys: [SigningKeyInfo]) { self.signingKeys = signingKeys }
}

/// `POST /v1/tenants/{tenantId}/signing-keys`.
public struct SigningKeyRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["publicKey", "description"]
    /// PEM SubjectPublicKeyInfo of a P-256 key.
    public var publicKey: String
    public var description: String?
    public init(publicKey: String, description: String?) {
        self.publicKey = publicKey
        self.description = description
    }
}

/// An uploaded image.
public struct ImageInfo: Codable, Sendable, Equatable {
    public var id: RampartID
    public var componentId: String
    public var name: String
    /// `app`, `runtime` or `boardConfig`.
    public var kind: String
    public var version: String
    /// SHA-256 of the package file.
    public var sha256: String
    public var length: Int
    /// SHA-256 of the payload: what a device measures when it runs it.
    public var payloadSha256: String
    public var signingKeyId: String
    public var createdAt: Date
    public init(
        id: RampartID, componentId: String, name: String, kind: String, version: String, sha256: String, length: Int,
        payloadSha256: String, signingKeyId: String, createdAt: Date
    ) {
        self.id = id
        self.componentId = componentId
        self.name = name
        self.kind = kind
        self.version = version
        self.sha256 = sha256
        self.length = length
        self.payloadSha256 = payloadSha256
        self.signingKeyId = signingKeyId
        self.createdAt = createdAt
    }
}

/// `GET /v1/tenants/{tenantId}/images`.
public struct ImageList: Codable, Sendable {
    public var images: [ImageInfo]
    public init(images: [ImageInfo]) { self.images = images }
}

/// A deployment of images to a device group.
public struct DeploymentInfo: Codable, Sendable, Equatable {
    public var id: RampartID
    public var deviceGroupId: RampartID
    public var imageIds: [RampartID]
    public var createdBy: String
    public var createdAt: Date
    /// Whether this is the group's current deployment.
    public var current: Bool
    public init(id: RampartID, deviceGroupId: RampartID, imageIds: [RampartID], createdBy: String, createdAt: Date, current: Bool) {
        self.id = id
        self.deviceGroupId = deviceGroupId
        self.imageIds = imageIds
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.current = current
    }
}

/// `GET /v1/tenants/{tenantId}/device-groups/{groupId}/deployments`.
public struct DeploymentList: Codable, Sendable {
    public var deployments: [DeploymentInfo]
    public init(deployments: [DeploymentInfo]) { self.deployments = deployments }
}

/// `POST /v1/tenants/{tenantId}/device-groups/{groupId}/deployments`.
public struct DeploymentRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["imageIds"]
    public var imageIds: [RampartID]
    public init(imageIds: [RampartID]) { self.imageIds = imageIds }
}

/// A runtime release on a feed.
public struct RuntimeReleaseInfo: Codable, Sendable, Equatable {
    public var id: RampartID
    public var feed: OSFeed
    public var imageId: RampartID
    public var version: String
    public var createdAt: Date
    public init(id: RampartID, feed: OSFeed, imageId: RampartID, version: String, createdAt: Date) {
        self.id = id
        self.feed = feed
        self.imageId = imageId
        self.version = version
        self.createdAt = createdAt
    }
}

/// `GET /v1/tenants/{tenantId}/runtime-releases`.
public struct RuntimeReleaseList: Codable, Sendable {
    public var runtimeReleases: [RuntimeReleaseInfo]
    public init(runtimeReleases: [RuntimeReleaseInfo]) { self.runtimeReleases = runtimeReleases }
}

/// `POST /v1/tenants/{tenantId}/runtime-releases`.
public struct RuntimeReleaseRequest: APIRequest, Encodable {
    public static let allowedKeys: Set<String> = ["imageId", "feed"]
    public var imageId: RampartID
    public var feed: OSFeed
    public init(imageId: RampartID, feed: OSFeed) {
        self.imageId = imageId
        self.feed = feed
    }
}

/// `GET /v1/tuf/{tenantId}/device` (mutual TLS): what a device needs to know to look for updates.
public struct DeviceUpdateSettings: Codable, Sendable, Equatable {
    public var deviceId: String
    /// `nil` while the device is in no group: it then takes runtime releases from Retail only.
    public var deviceGroupId: RampartID?
    public var updatePolicy: UpdatePolicy
    public var osFeed: OSFeed
    public var maintenanceWindow: String?
    /// TUF path prefixes to look in: the group's role and the feed's role.
    public var targetPrefixes: [String]
    /// The group's monthly servicing data budget per device, in bytes; `nil` for none.
    public var dataBudgetBytes: Int64?
    /// Whether the device is in development mode. `false` tells the device to drop any capability it holds,
    /// with its sideloaded apps; `nil` (a server that does not say) changes nothing.
    public var developmentMode: Bool?
    /// The signed `appDevelopment` capability while the device is in development mode.
    public var developmentCapability: String?
    public init(
        deviceId: String, deviceGroupId: RampartID?, updatePolicy: UpdatePolicy, osFeed: OSFeed, maintenanceWindow: String?,
        targetPrefixes: [String], dataBudgetBytes: Int64? = nil
    ) {
        self.dataBudgetBytes = dataBudgetBytes
        self.deviceId = deviceId
        self.deviceGroupId = deviceGroupId
        self.updatePolicy = updatePolicy
        self.osFeed = osFeed
        self.maintenanceWindow = maintenanceWindow
        self.targetPrefixes = targetPrefixes
    }
}

/// What the update agent last did, for `device show-status` and the server's deployment status.
public struct UpdateReport: Codable, Sendable, Equatable, APIRequest {
    public static let allowedKeys: Set<String> = [
        "result", "message", "at", "runtimeVersion", "installedApps", "lastSwitch", "link", "dataUsage", "developmentMode",
    ]
    public static let nestedAllowedKeys: [String: Set<String>] = [
        "installedApps": ["componentId", "name", "version", "imageId"],
        "link": [
            "signalDBm", "bitErrorRate", "registration", "operatorName", "radio", "routerSentBytes",
            "routerReceivedBytes", "reportedAt",
        ],
        "dataUsage": ["month", "bytes", "budgetBytes", "exceededForCriticalUpdate"],
    ]
    /// `upToDate`, `installed`, `deferred`, `rolledBack`, `waiting` or a refusal code.
    public var result: String
    public var message: String?
    public var at: Date
    public var runtimeVersion: String
    public var installedApps: [InstalledImage]
    /// How the last runtime switch ended.
    public var lastSwitch: String?
    /// The link facts the router control channel last reported, if the device has one.
    public var link: LinkFacts?
    /// Servicing data used this month.
    public var dataUsage: ServicingDataUsage?
    /// Whether the device holds a valid development capability (it accepts sideloaded apps); absent from
    /// runtimes older than development mode.
    public var developmentMode: Bool?

    /// One installed image.
    public struct InstalledImage: Codable, Sendable, Equatable {
        public var componentId: String
        public var name: String
        public var version: String
        public var imageId: String?
        public init(componentId: String, name: String, version: String, imageId: String?) {
            self.componentId = componentId
            self.name = name
            self.version = version
            self.imageId = imageId
        }
    }

    public init(
        result: String, message: String?, at: Date, runtimeVersion: String, installedApps: [InstalledImage], lastSwitch: String?,
        link: LinkFacts? = nil, dataUsage: ServicingDataUsage? = nil
    ) {
        self.link = link
        self.dataUsage = dataUsage
        self.result = result
        self.message = message
        self.at = at
        self.runtimeVersion = runtimeVersion
        self.installedApps = installedApps
        self.lastSwitch = lastSwitch
    }
}

/// `GET /images` on a device's local API: what it runs.
public struct InstalledImages: Codable, Sendable, Equatable {
    public var runtimeVersion: String
    /// `a`, `b`, or `factory`.
    public var activeSlot: String
    public var apps: [UpdateReport.InstalledImage]
    public init(runtimeVersion: String, activeSlot: String, apps: [UpdateReport.InstalledImage]) {
        self.runtimeVersion = runtimeVersion
        self.activeSlot = activeSlot
        self.apps = apps
    }
}

/// `GET /v1/tenants/{tenantId}/devices/{deviceId}/deployment-status`: what a device runs against what its
/// group should run.
public struct DeploymentStatus: Codable, Sendable, Equatable {
    public var deviceId: String
    public var deviceGroupId: RampartID?
    /// The images of the group's current deployment.
    public var targetImageIds: [RampartID]
    /// The device's last report, if it sent one.
    public var report: UpdateReport?
    /// Whether the device reported exactly the deployment's apps installed (runtimes are in `report`).
    public var upToDate: Bool
    public init(deviceId: String, deviceGroupId: RampartID?, targetImageIds: [RampartID], report: UpdateReport?, upToDate: Bool) {
        self.deviceId = deviceId
        self.deviceGroupId = deviceGroupId
        self.targetImageIds = targetImageIds
        self.report = report
        self.upToDate = upToDate
    }
}

/// `GET /v1/tuf/{tenantId}/notifications` (mutual TLS): whether the device should check for updates now.
public struct UpdateNotification: Codable, Sendable, Equatable {
    public var checkNow: Bool
    public init(checkNow: Bool) { self.checkNow = checkNow }
}

/// `GET /development` on a device's local API: whether the device is in development mode.
public struct DevelopmentStatus: Codable, Sendable, Equatable {
    public var developmentMode: Bool
    /// Since when, as the capability says.
    public var since: Date?
    public var tenantId: RampartID?
    /// Why a stored capability is not accepted, if one is stored.
    public var problem: String?
    public init(developmentMode: Bool, since: Date? = nil, tenantId: RampartID? = nil, problem: String? = nil) {
        self.developmentMode = developmentMode
        self.since = since
        self.tenantId = tenantId
        self.problem = problem
    }
}

/// `POST /sideload` and `DELETE /sideload` on a device's local API: the apps installed or deleted.
public struct SideloadResult: Codable, Sendable, Equatable {
    public var componentIds: [String]
    public init(componentIds: [String]) { self.componentIds = componentIds }
}
