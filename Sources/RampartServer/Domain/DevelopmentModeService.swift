import Foundation
import RampartCore
import RampartPKI
import RampartStore
import Synchronization

/// Development mode, Azure Sphere's `appDevelopment` capability: `device enable-development` moves a device
/// into a group without cloud app updates and grants it a capability, signed by the tenant CA, with which it
/// accepts sideloaded apps; attestation then accepts app images no deployment lists, from that device
/// alone. `device enable-cloud-test` reverses both, and the device drops the capability and its sideloaded
/// apps at its next update check.
public struct DevelopmentModeService: Sendable {
    let context: DomainContext
    let certificateAuthority: TenantCAService

    public init(context: DomainContext, certificateAuthority: TenantCAService) {
        self.context = context
        self.certificateAuthority = certificateAuthority
    }

    /// Puts a device in development mode (Contributor or above) and moves it to `group`, by default its
    /// product's Development group.
    ///
    /// - Throws: 404 for a device the tenant does not hold or an unknown group; 400 when the device is in no
    ///   group and none is named, or when the group takes cloud app updates (they would replace sideloaded apps).
    public func enableDevelopment(_ rawID: String, group: RampartID?, tenant: RampartID, caller: UserRecord) async throws
        -> DevelopmentModeInfo
    {
        try await set(rawID, development: true, group: group, tenant: tenant, caller: caller)
    }

    /// Takes a device out of development mode (Contributor or above) and moves it to `group`, by default its
    /// product's Field Test group.
    public func enableCloudTest(_ rawID: String, group: RampartID?, tenant: RampartID, caller: UserRecord) async throws
        -> DevelopmentModeInfo
    {
        try await set(rawID, development: false, group: group, tenant: tenant, caller: caller)
    }

    /// Adds the device's development mode to its update settings: the capability, signed afresh by the Active CA
    /// (so it follows CA rotation), or an explicit `false` that tells the device to leave development mode.
    func addDevelopmentMode(to settings: inout DeviceUpdateSettings, tenant: RampartID) async throws {
        let deviceID = settings.deviceId
        let device = try await context.store.read { session in try await session.device(id: deviceID) }
        guard let device, device.tenantID == tenant, let since = device.developmentSince else {
            settings.developmentMode = false
            return
        }
        settings.developmentMode = true
        settings.developmentCapability = try await certificateAuthority.signDevelopmentCapability(
            tenant: tenant, deviceID: device.id, since: since)
    }

    private func set(_ rawID: String, development: Bool, group requested: RampartID?, tenant: RampartID, caller: UserRecord)
        async throws -> DevelopmentModeInfo
    {
        let deviceID = try DeviceID.validated(rawID)
        let action = development ? "device.enable-development" : "device.enable-cloud-test"
        let now = context.clock.now()
        var info = try await context.audited(Actor(user: caller), tenant: tenant, action: action, target: deviceID) { session in
            _ = try await context.authorize(caller, tenant: tenant, .update, session: session)
            guard let device = try await session.device(id: deviceID), device.tenantID == tenant else {
                throw RampartError.notFound("Device \(deviceID)")
            }
            let group = try await Self.target(
                requested, development: development, current: try await session.deviceGroupID(ofDevice: deviceID),
                tenant: tenant, session: session)
            if development, UpdatePolicy(rawValue: group.updatePolicy) == .updateAll {
                throw RampartError.invalidRequest(
                    "Device group '\(group.name)' takes cloud app updates (UpdateAll), which would replace sideloaded apps. "
                        + "Choose a group with No3rdPartyAppUpdates or NoUpdates, such as the product's Development group.")
            }
            try await session.setDeviceGroup(deviceID: deviceID, group: group.id)
            let since = development ? device.developmentSince ?? now : nil
            try await session.setDevelopmentMode(deviceID, since: since)
            // The device hears of it within seconds while it long-polls, not only at its next scheduled check.
            try await session.requestUpdateCheck(deviceID: deviceID, at: now)
            let product = try await ProductService.product(group.productID.description, tenant: tenant, session: session)
            return DevelopmentModeInfo(
                deviceId: deviceID, developmentMode: development, developmentSince: since,
                deviceGroup: try await ProductService.info(group, product: product, session: session), capability: nil)
        }
        UpdateCheckService.signals.withLock { $0[deviceID, default: 0] += 1 }
        if let since = info.developmentSince {
            info.capability = try await certificateAuthority.signDevelopmentCapability(tenant: tenant, deviceID: deviceID, since: since)
        }
        return info
    }

    /// The group named, or the device's product's default group for the mode.
    private static func target(
        _ requested: RampartID?, development: Bool, current: RampartID?, tenant: RampartID, session: StoreSession
    ) async throws -> DeviceGroupRecord {
        if let requested { return try await ProductService.group(requested, tenant: tenant, session: session) }
        let name = development ? "Development" : "Field Test"
        guard let current, let group = try await session.deviceGroup(id: current, tenant: tenant) else {
            throw RampartError.invalidRequest(
                "The device is in no device group, so it has no product whose '\(name)' group it could join. Name a group with --device-group-id.")
        }
        guard let target = try await session.deviceGroups(ofTenant: tenant, product: group.productID).first(where: { $0.name == name })
        else {
            throw RampartError.invalidRequest(
                "The device's product has no '\(name)' group (it was renamed or deleted). Name a group with --device-group-id.")
        }
        return target
    }
}
