import Foundation
import RampartCore
import SQLKit

/// A TUF key of a tenant's repository. Online keys carry their sealed private key; keys in offline custody
/// (root, once exported) carry none.
public struct TUFKeyRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    /// `root`, `targets`, `snapshot`, `timestamp` or `delegation`.
    public var role: String
    public var keyID: String
    /// The key object as TUF metadata lists it, JSON.
    public var publicKey: String
    public var sealedPrivate: String?
    public var createdAt: Date
    public var retiredAt: Date?
    public init(
        id: RampartID, tenantID: RampartID, role: String, keyID: String, publicKey: String, sealedPrivate: String?,
        createdAt: Date, retiredAt: Date? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.role = role
        self.keyID = keyID
        self.publicKey = publicKey
        self.sealedPrivate = sealedPrivate
        self.createdAt = createdAt
        self.retiredAt = retiredAt
    }
}

/// One published metadata file.
public struct TUFMetadataRecord: Sendable, Equatable {
    public var role: String
    public var version: Int
    public var expiresAt: Date
    public var content: String
    public init(role: String, version: Int, expiresAt: Date, content: String) {
        self.role = role
        self.version = version
        self.expiresAt = expiresAt
        self.content = content
    }
}

/// A product: a kind of device, with its device groups.
public struct ProductRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var name: String
    public var description: String
    public var createdAt: Date
    public var updatedAt: Date
    public init(id: RampartID, tenantID: RampartID, name: String, description: String, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.description = description
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A device group: devices of one product that share an update policy, a feed and a deployment.
public struct DeviceGroupRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var productID: RampartID
    public var name: String
    public var description: String
    public var updatePolicy: String
    public var osFeed: String
    public var maintenanceWindow: String?
    /// The monthly servicing data budget per device in MB (10^6 bytes); `nil` for none.
    public var dataBudgetMB: Int?
    public var createdAt: Date
    public var updatedAt: Date
    public init(
        id: RampartID, tenantID: RampartID, productID: RampartID, name: String, description: String,
        updatePolicy: String, osFeed: String, maintenanceWindow: String?, createdAt: Date, updatedAt: Date,
        dataBudgetMB: Int? = nil
    ) {
        self.dataBudgetMB = dataBudgetMB
        self.id = id
        self.tenantID = tenantID
        self.productID = productID
        self.name = name
        self.description = description
        self.updatePolicy = updatePolicy
        self.osFeed = osFeed
        self.maintenanceWindow = maintenanceWindow
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

extension StoreSession {
    // MARK: TUF keys and metadata

    /// Stores a repository key.
    public func insertTUFKey(_ key: TUFKeyRecord) async throws {
        try await db.raw(
            """
            INSERT INTO tuf_keys (id, tenant_id, role, key_id, public_key, sealed_private, created_at)
            VALUES (\(bind: key.id.description), \(bind: key.tenantID.description), \(bind: key.role), \(bind: key.keyID),
                    \(bind: key.publicKey), \(bind: key.sealedPrivate), \(bind: key.createdAt.storeMillis))
            """
        ).run()
    }

    /// The tenant's keys in use (not retired), oldest first.
    public func tufKeys(ofTenant tenant: RampartID) async throws -> [TUFKeyRecord] {
        try await db.raw(
            "SELECT * FROM tuf_keys WHERE tenant_id = \(bind: tenant.description) AND retired_at IS NULL ORDER BY created_at, id"
        ).all().map {
            TUFKeyRecord(
                id: try $0.id("id"), tenantID: try $0.id("tenant_id"), role: try $0.string("role"), keyID: try $0.string("key_id"),
                publicKey: try $0.string("public_key"), sealedPrivate: try $0.optionalString("sealed_private"),
                createdAt: try $0.date("created_at"), retiredAt: try $0.optionalDate("retired_at"))
        }
    }

    /// Retires the tenant's keys of `role`.
    public func retireTUFKeys(ofTenant tenant: RampartID, role: String, at time: Date) async throws {
        try await db.raw(
            """
            UPDATE tuf_keys SET retired_at = \(bind: time.storeMillis), sealed_private = NULL
            WHERE tenant_id = \(bind: tenant.description) AND role = \(bind: role) AND retired_at IS NULL
            """
        ).run()
    }

    /// Stores a published metadata file.
    public func insertTUFMetadata(_ file: TUFMetadataRecord, tenant: RampartID, at time: Date) async throws {
        try await db.raw(
            """
            INSERT INTO tuf_metadata (tenant_id, role, version, expires_at, content, created_at)
            VALUES (\(bind: tenant.description), \(bind: file.role), \(bind: Int64(file.version)),
                    \(bind: file.expiresAt.storeMillis), \(bind: file.content), \(bind: time.storeMillis))
            """
        ).run()
    }

    /// The newest file of every role of the tenant's repository.
    public func latestTUFMetadata(ofTenant tenant: RampartID) async throws -> [String: TUFMetadataRecord] {
        let rows = try await db.raw(
            """
            SELECT m.role, m.version, m.expires_at, m.content FROM tuf_metadata m
            JOIN (SELECT role, MAX(version) AS version FROM tuf_metadata WHERE tenant_id = \(bind: tenant.description) GROUP BY role) latest
              ON m.role = latest.role AND m.version = latest.version
            WHERE m.tenant_id = \(bind: tenant.description)
            """
        ).all()
        var out: [String: TUFMetadataRecord] = [:]
        for row in rows {
            let record = try Self.tufMetadata(row)
            out[record.role] = record
        }
        return out
    }

    /// One version of a role's file, or the newest when `version` is `nil`.
    public func tufMetadata(ofTenant tenant: RampartID, role: String, version: Int?) async throws -> TUFMetadataRecord? {
        let row: (any SQLRow)?
        if let version {
            row = try await db.raw(
                """
                SELECT role, version, expires_at, content FROM tuf_metadata
                WHERE tenant_id = \(bind: tenant.description) AND role = \(bind: role) AND version = \(bind: Int64(version))
                """
            ).first()
        } else {
            row = try await db.raw(
                """
                SELECT role, version, expires_at, content FROM tuf_metadata
                WHERE tenant_id = \(bind: tenant.description) AND role = \(bind: role) ORDER BY version DESC LIMIT 1
                """
            ).first()
        }
        return try row.map(Self.tufMetadata)
    }

    /// Deletes versions of non-root roles older than the newest `keep`, which no current snapshot names.
    public func pruneTUFMetadata(ofTenant tenant: RampartID, keep: Int) async throws {
        try await db.raw(
            """
            DELETE FROM tuf_metadata WHERE tenant_id = \(bind: tenant.description) AND role <> 'root'
              AND version <= (SELECT MAX(version) FROM tuf_metadata newer
                              WHERE newer.tenant_id = tuf_metadata.tenant_id AND newer.role = tuf_metadata.role) - \(bind: Int64(keep))
            """
        ).run()
    }

    /// Tenants that have a TUF repository.
    public func tenantsWithTUF() async throws -> [RampartID] {
        try await db.raw("SELECT DISTINCT tenant_id FROM tuf_metadata ORDER BY tenant_id").all().map { try $0.id("tenant_id") }
    }

    static func tufMetadata(_ row: any SQLRow) throws -> TUFMetadataRecord {
        TUFMetadataRecord(
            role: try row.string("role"), version: Int(try row.decode(column: "version", as: Int64.self)),
            expiresAt: try row.date("expires_at"), content: try row.string("content"))
    }

    // MARK: Products

    /// Inserts a product.
    public func insertProduct(_ product: ProductRecord) async throws {
        try await db.raw(
            """
            INSERT INTO products (id, tenant_id, name, description, created_at, updated_at)
            VALUES (\(bind: product.id.description), \(bind: product.tenantID.description), \(bind: product.name),
                    \(bind: product.description), \(bind: product.createdAt.storeMillis), \(bind: product.updatedAt.storeMillis))
            """
        ).run()
    }

    /// Updates a product's name and description.
    public func updateProduct(_ product: ProductRecord) async throws {
        try await db.raw(
            """
            UPDATE products SET name = \(bind: product.name), description = \(bind: product.description),
                updated_at = \(bind: product.updatedAt.storeMillis)
            WHERE id = \(bind: product.id.description) AND tenant_id = \(bind: product.tenantID.description)
            """
        ).run()
    }

    /// The tenant's products by name.
    public func products(ofTenant tenant: RampartID) async throws -> [ProductRecord] {
        try await db.raw("SELECT * FROM products WHERE tenant_id = \(bind: tenant.description) ORDER BY name").all()
            .map(Self.product)
    }

    /// A product of the tenant, by ID or name.
    public func product(_ reference: String, tenant: RampartID) async throws -> ProductRecord? {
        try await db.raw(
            """
            SELECT * FROM products WHERE tenant_id = \(bind: tenant.description)
              AND (id = \(bind: reference.lowercased()) OR name = \(bind: reference))
            """
        ).first().map(Self.product)
    }

    /// Deletes a product and its device groups.
    public func deleteProduct(id: RampartID) async throws {
        try await db.raw(
            "UPDATE devices SET device_group_id = NULL WHERE device_group_id IN (SELECT id FROM device_groups WHERE product_id = \(bind: id.description))"
        ).run()
        try await db.raw(
            "DELETE FROM deployments WHERE device_group_id IN (SELECT id FROM device_groups WHERE product_id = \(bind: id.description))"
        ).run()
        try await db.raw("DELETE FROM device_groups WHERE product_id = \(bind: id.description)").run()
        try await db.raw("DELETE FROM products WHERE id = \(bind: id.description)").run()
    }

    static func product(_ row: any SQLRow) throws -> ProductRecord {
        ProductRecord(
            id: try row.id("id"), tenantID: try row.id("tenant_id"), name: try row.string("name"),
            description: try row.string("description"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }

    // MARK: Device groups

    /// Inserts a device group.
    public func insertDeviceGroup(_ group: DeviceGroupRecord) async throws {
        try await db.raw(
            """
            INSERT INTO device_groups (id, tenant_id, product_id, name, description, update_policy, os_feed,
                                       maintenance_window, data_budget_mb, created_at, updated_at)
            VALUES (\(bind: group.id.description), \(bind: group.tenantID.description), \(bind: group.productID.description),
                    \(bind: group.name), \(bind: group.description), \(bind: group.updatePolicy), \(bind: group.osFeed),
                    \(bind: group.maintenanceWindow), \(bind: group.dataBudgetMB.map(Int64.init)),
                    \(bind: group.createdAt.storeMillis), \(bind: group.updatedAt.storeMillis))
            """
        ).run()
    }

    /// Updates a device group's settings.
    public func updateDeviceGroup(_ group: DeviceGroupRecord) async throws {
        try await db.raw(
            """
            UPDATE device_groups SET name = \(bind: group.name), description = \(bind: group.description),
                update_policy = \(bind: group.updatePolicy), os_feed = \(bind: group.osFeed),
                maintenance_window = \(bind: group.maintenanceWindow),
                data_budget_mb = \(bind: group.dataBudgetMB.map(Int64.init)),
                updated_at = \(bind: group.updatedAt.storeMillis)
            WHERE id = \(bind: group.id.description) AND tenant_id = \(bind: group.tenantID.description)
            """
        ).run()
    }

    /// The tenant's device groups, optionally of one product.
    public func deviceGroups(ofTenant tenant: RampartID, product: RampartID? = nil) async throws -> [DeviceGroupRecord] {
        if let product {
            return try await db.raw(
                "SELECT * FROM device_groups WHERE tenant_id = \(bind: tenant.description) AND product_id = \(bind: product.description) ORDER BY name"
            ).all().map(Self.deviceGroup)
        }
        return try await db.raw("SELECT * FROM device_groups WHERE tenant_id = \(bind: tenant.description) ORDER BY product_id, name")
            .all().map(Self.deviceGroup)
    }

    /// A device group of the tenant by ID.
    public func deviceGroup(id: RampartID, tenant: RampartID) async throws -> DeviceGroupRecord? {
        try await db.raw(
            "SELECT * FROM device_groups WHERE tenant_id = \(bind: tenant.description) AND id = \(bind: id.description)"
        ).first().map(Self.deviceGroup)
    }

    /// Deletes a device group; its devices leave it.
    public func deleteDeviceGroup(id: RampartID) async throws {
        try await db.raw("UPDATE devices SET device_group_id = NULL WHERE device_group_id = \(bind: id.description)").run()
        try await db.raw("DELETE FROM deployments WHERE device_group_id = \(bind: id.description)").run()
        try await db.raw("DELETE FROM device_groups WHERE id = \(bind: id.description)").run()
    }

    /// How many devices are in a group.
    public func deviceCount(inGroup group: RampartID) async throws -> Int {
        let row = try await db.raw("SELECT COUNT(*) AS n FROM devices WHERE device_group_id = \(bind: group.description)").first()
        return Int(try row?.decode(column: "n", as: Int64.self) ?? 0)
    }

    /// Moves a device into a group.
    public func setDeviceGroup(deviceID: String, group: RampartID?) async throws {
        try await db.raw("UPDATE devices SET device_group_id = \(bind: group?.description) WHERE id = \(bind: deviceID)").run()
    }

    /// The group a device is in.
    public func deviceGroupID(ofDevice deviceID: String) async throws -> RampartID? {
        try await db.raw("SELECT device_group_id FROM devices WHERE id = \(bind: deviceID)").first()
            .flatMap { try $0.optionalID("device_group_id") }
    }

    static func deviceGroup(_ row: any SQLRow) throws -> DeviceGroupRecord {
        DeviceGroupRecord(
            id: try row.id("id"), tenantID: try row.id("tenant_id"), productID: try row.id("product_id"),
            name: try row.string("name"), description: try row.string("description"),
            updatePolicy: try row.string("update_policy"), osFeed: try row.string("os_feed"),
            maintenanceWindow: try row.optionalString("maintenance_window"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"),
            dataBudgetMB: try row.decode(column: "data_budget_mb", as: Int64?.self).map { Int($0) })
    }
}

/// A package signing key registered with a tenant.
public struct SigningKeyRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    /// SHA-256 of the SubjectPublicKeyInfo.
    public var keyID: String
    /// PEM SubjectPublicKeyInfo.
    public var publicKey: String
    public var description: String
    public var createdAt: Date
    public var revokedAt: Date?
    public init(
        id: RampartID, tenantID: RampartID, keyID: String, publicKey: String, description: String, createdAt: Date,
        revokedAt: Date? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.keyID = keyID
        self.publicKey = publicKey
        self.description = description
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// An uploaded image: its verified manifest; the package bytes live in `image_blobs`.
public struct ImageRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var componentID: String
    public var name: String
    public var kind: String
    public var version: String
    /// SHA-256 of the whole package (the TUF target hash).
    public var sha256: String
    /// Length of the whole package.
    public var length: Int
    /// The manifest as JSON (payload digest included).
    public var manifest: String
    public var signingKeyID: String
    public var createdAt: Date
    public init(
        id: RampartID, tenantID: RampartID, componentID: String, name: String, kind: String, version: String,
        sha256: String, length: Int, manifest: String, signingKeyID: String, createdAt: Date
    ) {
        self.id = id
        self.tenantID = tenantID
        self.componentID = componentID
        self.name = name
        self.kind = kind
        self.version = version
        self.sha256 = sha256
        self.length = length
        self.manifest = manifest
        self.signingKeyID = signingKeyID
        self.createdAt = createdAt
    }
}

/// A deployment: the set of images a device group runs from `createdAt` on.
public struct DeploymentRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var deviceGroupID: RampartID
    public var imageIDs: [RampartID]
    public var createdBy: String
    public var createdAt: Date
    public init(id: RampartID, tenantID: RampartID, deviceGroupID: RampartID, imageIDs: [RampartID], createdBy: String, createdAt: Date) {
        self.id = id
        self.tenantID = tenantID
        self.deviceGroupID = deviceGroupID
        self.imageIDs = imageIDs
        self.createdBy = createdBy
        self.createdAt = createdAt
    }
}

/// A runtime image published to a feed.
public struct RuntimeReleaseRecord: Sendable, Equatable {
    public var id: RampartID
    public var tenantID: RampartID
    public var feed: String
    public var imageID: RampartID
    public var createdAt: Date
    public init(id: RampartID, tenantID: RampartID, feed: String, imageID: RampartID, createdAt: Date) {
        self.id = id
        self.tenantID = tenantID
        self.feed = feed
        self.imageID = imageID
        self.createdAt = createdAt
    }
}

extension StoreSession {
    // MARK: Signing keys

    /// Registers a signing key.
    public func insertSigningKey(_ key: SigningKeyRecord) async throws {
        try await db.raw(
            """
            INSERT INTO signing_keys (id, tenant_id, key_id, public_key, description, created_at)
            VALUES (\(bind: key.id.description), \(bind: key.tenantID.description), \(bind: key.keyID), \(bind: key.publicKey),
                    \(bind: key.description), \(bind: key.createdAt.storeMillis))
            """
        ).run()
    }

    /// The tenant's signing keys, revoked ones included.
    public func signingKeys(ofTenant tenant: RampartID) async throws -> [SigningKeyRecord] {
        try await db.raw("SELECT * FROM signing_keys WHERE tenant_id = \(bind: tenant.description) ORDER BY created_at, id").all().map {
            SigningKeyRecord(
                id: try $0.id("id"), tenantID: try $0.id("tenant_id"), keyID: try $0.string("key_id"),
                publicKey: try $0.string("public_key"), description: try $0.string("description"),
                createdAt: try $0.date("created_at"), revokedAt: try $0.optionalDate("revoked_at"))
        }
    }

    /// Revokes a signing key.
    public func revokeSigningKey(keyID: String, tenant: RampartID, at time: Date) async throws {
        try await db.raw(
            """
            UPDATE signing_keys SET revoked_at = \(bind: time.storeMillis)
            WHERE tenant_id = \(bind: tenant.description) AND key_id = \(bind: keyID) AND revoked_at IS NULL
            """
        ).run()
    }

    // MARK: Images

    /// Stores an image and its package bytes (base64, portable across both backends).
    public func insertImage(_ image: ImageRecord, package: [UInt8]) async throws {
        try await db.raw(
            """
            INSERT INTO images (id, tenant_id, component_id, name, kind, version, sha256, length, manifest, signing_key_id, created_at)
            VALUES (\(bind: image.id.description), \(bind: image.tenantID.description), \(bind: image.componentID),
                    \(bind: image.name), \(bind: image.kind), \(bind: image.version), \(bind: image.sha256),
                    \(bind: Int64(image.length)), \(bind: image.manifest), \(bind: image.signingKeyID), \(bind: image.createdAt.storeMillis))
            """
        ).run()
        try await db.raw(
            """
            INSERT INTO image_blobs (sha256, content) VALUES (\(bind: image.sha256), \(bind: Data(package).base64EncodedString()))
            ON CONFLICT (sha256) DO NOTHING
            """
        ).run()
    }

    /// The tenant's images, newest first.
    public func images(ofTenant tenant: RampartID) async throws -> [ImageRecord] {
        try await db.raw("SELECT * FROM images WHERE tenant_id = \(bind: tenant.description) ORDER BY created_at DESC, id").all()
            .map(Self.image)
    }

    /// An image of the tenant by ID.
    public func image(id: RampartID, tenant: RampartID) async throws -> ImageRecord? {
        try await db.raw("SELECT * FROM images WHERE tenant_id = \(bind: tenant.description) AND id = \(bind: id.description)")
            .first().map(Self.image)
    }

    /// An image of the tenant by package SHA-256.
    public func image(sha256: String, tenant: RampartID) async throws -> ImageRecord? {
        try await db.raw("SELECT * FROM images WHERE tenant_id = \(bind: tenant.description) AND sha256 = \(bind: sha256)")
            .first().map(Self.image)
    }

    /// The package bytes of an image.
    public func imagePackage(sha256: String) async throws -> [UInt8]? {
        guard let row = try await db.raw("SELECT content FROM image_blobs WHERE sha256 = \(bind: sha256)").first() else { return nil }
        guard let data = Data(base64Encoded: try row.string("content")) else {
            throw RampartError(.internalError, "Stored image \(sha256) is corrupt.", status: 500)
        }
        return Array(data)
    }

    static func image(_ row: any SQLRow) throws -> ImageRecord {
        ImageRecord(
            id: try row.id("id"), tenantID: try row.id("tenant_id"), componentID: try row.string("component_id"),
            name: try row.string("name"), kind: try row.string("kind"), version: try row.string("version"),
            sha256: try row.string("sha256"), length: Int(try row.decode(column: "length", as: Int64.self)),
            manifest: try row.string("manifest"), signingKeyID: try row.string("signing_key_id"),
            createdAt: try row.date("created_at"))
    }

    // MARK: Deployments and runtime releases

    /// Stores a deployment.
    public func insertDeployment(_ deployment: DeploymentRecord) async throws {
        let ids = "[" + deployment.imageIDs.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        try await db.raw(
            """
            INSERT INTO deployments (id, tenant_id, device_group_id, image_ids, created_by, created_at)
            VALUES (\(bind: deployment.id.description), \(bind: deployment.tenantID.description),
                    \(bind: deployment.deviceGroupID.description), \(bind: ids), \(bind: deployment.createdBy),
                    \(bind: deployment.createdAt.storeMillis))
            """
        ).run()
    }

    /// A group's deployments, newest first.
    public func deployments(ofGroup group: RampartID, limit: Int = 50) async throws -> [DeploymentRecord] {
        try await db.raw(
            "SELECT * FROM deployments WHERE device_group_id = \(bind: group.description) ORDER BY created_at DESC, id DESC LIMIT \(bind: Int64(limit))"
        ).all().map { row in
            let text = try row.string("image_ids")
            let ids = (try? JSONDecoder().decode([String].self, from: Data(text.utf8)))?.compactMap(RampartID.init) ?? []
            return DeploymentRecord(
                id: try row.id("id"), tenantID: try row.id("tenant_id"), deviceGroupID: try row.id("device_group_id"),
                imageIDs: ids, createdBy: try row.string("created_by"), createdAt: try row.date("created_at"))
        }
    }

    /// Publishes a runtime image to a feed.
    public func insertRuntimeRelease(_ release: RuntimeReleaseRecord) async throws {
        try await db.raw(
            """
            INSERT INTO runtime_releases (id, tenant_id, feed, image_id, created_at)
            VALUES (\(bind: release.id.description), \(bind: release.tenantID.description), \(bind: release.feed),
                    \(bind: release.imageID.description), \(bind: release.createdAt.storeMillis))
            """
        ).run()
    }

    /// The tenant's runtime releases, newest first.
    public func runtimeReleases(ofTenant tenant: RampartID) async throws -> [RuntimeReleaseRecord] {
        try await db.raw("SELECT * FROM runtime_releases WHERE tenant_id = \(bind: tenant.description) ORDER BY created_at DESC, id DESC")
            .all().map {
                RuntimeReleaseRecord(
                    id: try $0.id("id"), tenantID: try $0.id("tenant_id"), feed: try $0.string("feed"),
                    imageID: try $0.id("image_id"), createdAt: try $0.date("created_at"))
            }
    }

    /// Removes a runtime image from the feeds.
    public func deleteRuntimeReleases(imageID: RampartID) async throws {
        try await db.raw("DELETE FROM runtime_releases WHERE image_id = \(bind: imageID.description)").run()
    }
}

extension StoreSession {
    // MARK: Update checks and reports

    /// Asks a device to check for updates now.
    public func requestUpdateCheck(deviceID: String, at time: Date) async throws {
        try await db.raw(
            """
            INSERT INTO update_requests (device_id, requested_at) VALUES (\(bind: deviceID), \(bind: time.storeMillis))
            ON CONFLICT (device_id) DO UPDATE SET requested_at = excluded.requested_at
            """
        ).run()
    }

    /// Whether a check request waits for a device.
    public func hasUpdateCheck(deviceID: String) async throws -> Bool {
        try await db.raw("SELECT device_id FROM update_requests WHERE device_id = \(bind: deviceID)").first() != nil
    }

    /// Takes a pending check request for a device, if any.
    public func takeUpdateCheck(deviceID: String) async throws -> Bool {
        try await db.raw("DELETE FROM update_requests WHERE device_id = \(bind: deviceID) RETURNING device_id").first() != nil
    }

    /// Stores what a device reported about its updates (JSON).
    public func setUpdateReport(deviceID: String, report: String) async throws {
        try await db.raw("UPDATE devices SET update_report = \(bind: report) WHERE id = \(bind: deviceID)").run()
    }

    /// What a device last reported about its updates.
    public func updateReport(deviceID: String) async throws -> String? {
        try await db.raw("SELECT update_report FROM devices WHERE id = \(bind: deviceID)").first().flatMap { try $0.optionalString("update_report") }
    }
}
